"""validate_dispute: check the claim against the facts; each failure names its rule.

A dispute type the project does not know is not a failure: the run goes on to drafting
and a human review (route_review flags it `unknown_dispute_type`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from langgraph.runtime import Runtime

from agents.validate_stripe import charge_refund_safe, chargeback_checks, fraud_warning_checks
from models.domain import CRMData, PaymentData
from models.state import DisputeState, Validation
from workflows.context import WorkflowContext

Check = tuple[str, Callable[[], tuple[bool, str]]]

# CRM case statuses that mean the case is over (Salesforce's standard "Closed", and the
# "Resolved" this system writes; "Closed - …" variants too).
CLOSED_STATUSES = ("closed", "resolved")


def is_closed(status: str) -> bool:
    status = status.strip().casefold()
    return any(status == s or status.startswith(f"{s} ") for s in CLOSED_STATUSES)


async def validate_dispute(
    state: DisputeState, runtime: Runtime[WorkflowContext]
) -> dict[str, Any]:
    """Apply the validation rules in order; the first failure decides the run."""
    if state.get("validation") is not None:  # fetch_data already failed the run
        return {}
    ctx = runtime.context
    crm = CRMData.model_validate(state["crm_data"])
    payment = PaymentData.model_validate(state["payment_data"])
    case, charge = crm.case, payment.disputed_charge
    window_start = ctx.clock() - timedelta(days=ctx.dispute_window_days)
    kind = state.get("kind", "dispute")
    if kind == "chargeback":
        return _apply(chargeback_checks(payment.dispute, ctx.clock()))
    others = await ctx.store.other_runs_of_case(case.case_id, exclude=state["run_id"])
    if kind == "early_fraud_warning":
        return _apply(
            [
                (
                    "case_not_resolved_before",
                    lambda: (others.completed is None, f"run {others.completed or 'none'}"),
                ),
                *fraud_warning_checks(payment.fraud_warning, payment.dispute, charge),
            ]
        )

    checks: list[Check] = [
        (
            "case_not_resolved_before",
            lambda: (
                others.completed is None,
                f"resolved by run {others.completed}" if others.completed else "none",
            ),
        ),
        (
            "case_open",
            lambda: (not is_closed(case.status), f"CRM case status {case.status!r}"),
        ),
        (
            "charge_exists",
            lambda: (charge is not None, f"charge {case.charge_id or '(none given)'}"),
        ),
        (
            "charge_belongs_to_customer",
            lambda: (
                charge is not None and charge.customer_id == payment.customer_id,
                f"charge customer {charge.customer_id if charge else '-'}, "
                f"case customer {payment.customer_id}",
            ),
        ),
        ("amount_positive", lambda: (case.amount > 0, f"claimed {case.amount}")),
        (
            "amount_within_refundable",
            lambda: (
                charge is not None and case.amount <= charge.refundable,
                f"claimed {case.amount} {case.currency.upper()}, refundable "
                f"{charge.refundable if charge else 0} (charged {charge.amount if charge else 0},"
                f" refunded {charge.amount_refunded if charge else 0})",
            ),
        ),
        (
            "within_dispute_window",
            lambda: (
                charge is not None and charge.created_at >= window_start,
                f"charge of {charge.created_at.date() if charge else '-'}, "
                f"window {ctx.dispute_window_days} days",
            ),
        ),
        # A charge under dispute is never refunded: that would pay the money back twice.
        ("charge_not_disputed", lambda: charge_refund_safe(payment.dispute)),
        (
            "no_other_active_run",
            lambda: (
                others.active is None,
                f"active run {others.active}" if others.active else "none",
            ),
        ),
    ]
    return _apply(checks)


def _apply(checks: list[Check]) -> dict[str, Any]:
    """The verdict of the rules in order: the first failure decides."""
    results: list[dict[str, Any]] = []
    for rule, check in checks:
        passed, detail = check()
        results.append({"rule": rule, "passed": passed, "detail": detail})
        if not passed:
            return {"validation": _verdict(False, rule, detail, results)}
    return {"validation": _verdict(True, None, "all rules passed", results)}


def _verdict(
    valid: bool, rule: str | None, reason: str, checks: list[dict[str, Any]]
) -> Validation:
    return {"valid": valid, "failed_rule": rule, "reason": reason, "checks": checks}
