"""execute_resolution: move the money and update the case, exactly once per decision."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from langgraph.runtime import Runtime

from models.domain import (
    BillingData,
    CRMData,
    PaymentData,
    ResolutionAction,
    ResolutionProposal,
    quantize_money,
)
from models.state import DisputeState
from services.errors import InvalidRequestError
from workflows.context import WorkflowContext

REFUND_ACTIONS = (ResolutionAction.FULL_REFUND, ResolutionAction.PARTIAL_REFUND)


def final_resolution(state: DisputeState) -> dict[str, Any]:
    """The proposal as approved: the latest reviewer modification wins."""
    proposal = ResolutionProposal.model_validate(state["proposal"])
    resolution = {
        "action": proposal.action.value,
        "amount": str(proposal.amount),
        "currency": proposal.currency,
        "reason": proposal.reason,
        "source": "proposal",
    }
    for decision in state.get("decisions", []):
        modified = decision.get("modified_resolution")
        if decision["decision"] == "approved" and modified:
            resolution = {
                "action": modified["action"],
                "amount": str(quantize_money(Decimal(str(modified["amount"])))),
                "currency": proposal.currency,
                "reason": modified["reason"],
                "source": f"modified by {decision['reviewer']}",
            }
    return resolution


async def execute_resolution(
    state: DisputeState, runtime: Runtime[WorkflowContext]
) -> dict[str, Any]:
    """Refund or credit, then record the outcome on the CRM case.

    Every call carries an idempotency key derived from the run, so a re-run after a crash
    replays the earlier result instead of moving money again.
    """
    ctx = runtime.context
    run_id = state["run_id"]
    resolution = final_resolution(state)
    action = ResolutionAction(resolution["action"])
    amount = Decimal(resolution["amount"])
    currency = resolution["currency"]
    crm = CRMData.model_validate(state["crm_data"])
    payment = PaymentData.model_validate(state["payment_data"])
    billing = BillingData.model_validate(state["billing_data"])
    charge = payment.disputed_charge
    assert charge is not None
    if action != ResolutionAction.DENY_REFUND and not Decimal("0") < amount <= charge.refundable:
        raise InvalidRequestError(
            f"refusing to move {amount} {currency}: refundable on {charge.charge_id} is "
            f"{charge.refundable}"
        )

    execution: dict[str, Any] = {
        "action": action.value,
        "amount": str(amount),
        "currency": currency,
    }
    if action in REFUND_ACTIONS:
        # The charge comes from the CRM case as confirmed by the payment system, never from
        # the queue message.
        refund = await ctx.retry(
            lambda: ctx.payments.refund(
                charge_id=charge.charge_id,
                amount=amount,
                currency=currency,
                reason=resolution["reason"],
                idempotency_key=f"{run_id}:refund",
            ),
            operation="payments.refund",
        )
        execution["refund"] = refund.model_dump(mode="json")
        await _audit(ctx, state, "refund_executed", execution["refund"])
    elif action == ResolutionAction.ACCOUNT_CREDIT:
        credit = await ctx.retry(
            lambda: ctx.billing.create_credit(
                account_key=billing.account_key,
                amount=amount,
                currency=currency,
                reason=resolution["reason"],
                idempotency_key=f"{run_id}:credit",
            ),
            operation="billing.credit",
        )
        execution["credit"] = credit.model_dump(mode="json")
        await _audit(ctx, state, "credit_executed", execution["credit"])

    summary = f"{action.value} {amount} {currency.upper()}: {resolution['reason']}"
    await ctx.retry(
        lambda: ctx.crm.record_outcome(
            case_id=crm.case.case_id,
            status="Resolved",
            summary=summary[:2000],
            idempotency_key=f"{run_id}:case_update",
        ),
        operation="crm.record_outcome",
    )
    execution["case_updated"] = True
    await _audit(ctx, state, "case_updated", {"case_id": crm.case.case_id, "summary": summary})
    return {"final_resolution": resolution, "execution": execution}


async def _audit(
    ctx: WorkflowContext, state: DisputeState, event: str, detail: dict[str, Any]
) -> None:
    await ctx.store.audit(
        run_id=state["run_id"],
        case_id=state["case_id"],
        step="execute_resolution",
        actor="system",
        event=event,
        detail=detail,
    )
