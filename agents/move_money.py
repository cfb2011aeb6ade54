"""move_money: refund or credit exactly what the required reviewers approved, at most once.

The step is its own checkpoint: the CRM update and the outcome come after it, so a retry
of those never re-enters this one. Inside, the payout ledger (services/persistence/
payouts.py) makes the movement happen at most once whatever is retried or replayed:

1. The approvals are checked once more: enough distinct reviewers approved exactly the
   version that is about to move (models/approvals.py). Otherwise nothing moves.
2. The payout row is written (`intended`) under the run's idempotency key.
3. Before any call that could pay, the provider is asked whether a payment under that key
   already exists (Stripe: the charge's refunds by metadata; Zuora: the credit memo's
   reference). Provider idempotency keys expire (Stripe's after 24 h), so the key alone
   never stands between a late retry and a second payment; the lookup does.
4. The charge must not be under dispute (a chargeback already took the money back), and
   the cap is checked against fresh figures: the charge's amount minus everything refunded
   at the provider or committed in the ledger by any run, credits included.
5. The call is made; its answer settles the row. A `pending` refund is followed up by
   retrying this step (the lookup finds it) until it settles; a `failed` one parks the
   run for a person, and only an operator's retry makes a new attempt.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from langgraph.runtime import Runtime

from agents.validate_stripe import charge_refund_safe
from models.approvals import ApprovalState, approval_state
from models.domain import (
    BillingData,
    CreditResult,
    PaymentData,
    RefundResult,
    ResolutionAction,
)
from models.state import DisputeState
from services.errors import (
    AttentionRequired,
    IntegrationError,
    InvalidRequestError,
    PaymentsAgentError,
)
from services.persistence.payouts import CREDIT, REFUND, Payout
from workflows.context import WorkflowContext

REFUND_ACTIONS = (ResolutionAction.FULL_REFUND, ResolutionAction.PARTIAL_REFUND)
PENDING_STATUSES = ("pending", "requires_action")
FAILED_STATUSES = ("failed", "canceled")


class ExecutionRefused(InvalidRequestError):
    """What is about to move is not what the required reviewers approved."""


def authorized(state: DisputeState) -> ApprovalState:
    """The approval state of the run, when it authorises execution; else ExecutionRefused."""
    proposal, review = state.get("proposal"), state.get("review")
    if proposal is None or review is None:
        raise ExecutionRefused("execution refused: the run has no proposal or review plan")
    approval = approval_state(proposal, review, state.get("decisions") or [])
    if approval.rejected_by is not None:
        raise ExecutionRefused(f"execution refused: rejected by {approval.rejected_by}")
    if not approval.satisfied:
        raise ExecutionRefused(
            f"execution refused: {approval.current.describe()} needs {approval.required} "
            f"distinct approval(s) of that exact version, has {len(approval.approvers)}"
        )
    return approval


def _resolution(approval: ApprovalState) -> dict[str, Any]:
    version = approval.current
    return {
        "action": version.action,
        "amount": str(version.amount),
        "currency": version.currency,
        "reason": version.reason,
        "version": version.number,
        "source": "proposal" if version.number == 1 else f"modified by {version.author}",
        "approved_by": list(approval.approver_names),
    }


async def move_money(state: DisputeState, runtime: Runtime[WorkflowContext]) -> dict[str, Any]:
    """Refund or credit the approved version; deny moves nothing."""
    ctx = runtime.context
    approval = authorized(state)
    resolution = _resolution(approval)
    version = approval.current
    action = ResolutionAction(version.action)
    execution: dict[str, Any] = {
        "action": action.value,
        "amount": str(version.amount),
        "currency": version.currency,
        "version": version.number,
        "money_moved": False,
    }
    if action == ResolutionAction.DENY_REFUND:
        return {"final_resolution": resolution, "execution": execution}

    payment = PaymentData.model_validate(state["payment_data"])
    charge = payment.disputed_charge
    if charge is None:
        raise ExecutionRefused("execution refused: the run has no disputed charge")
    payout = await _payout_for(ctx, state, approval, action, charge.charge_id)
    payout = await _settle(ctx, payout, reason=version.reason or "dispute resolution")
    if payout.state == "pending":
        raise IntegrationError(
            f"{payout.action} {payout.provider_ref} of {payout.amount} {payout.currency} is "
            "pending at the provider; following up until it settles",
            system=payout.provider,
            retryable=True,
        )
    if payout.state == "failed":
        raise AttentionRequired(
            f"{payout.action} of {payout.amount} {payout.currency.upper()} failed at "
            f"{payout.provider}: {payout.failure_reason or 'no reason given'}. No money moved; "
            "retry the run to pay again, or cancel it"
        )
    execution |= {"money_moved": True, "payout": payout.as_dict()}
    event = "refund_executed" if payout.action == REFUND else "credit_executed"
    await ctx.store.audit(
        run_id=state["run_id"],
        case_id=state["case_id"],
        step="move_money",
        actor="system",
        event=event,
        detail=payout.as_dict(),
    )
    return {"final_resolution": resolution, "execution": execution}


async def _payout_for(
    ctx: WorkflowContext,
    state: DisputeState,
    approval: ApprovalState,
    action: ResolutionAction,
    charge_id: str,
) -> Payout:
    """The run's current payout row: the latest, or a new attempt after an acknowledged
    failure. A failed payout nobody has looked at yet parks the run."""
    run_id = state["run_id"]
    version = approval.current
    kind = REFUND if action in REFUND_ACTIONS else CREDIT
    earlier = await ctx.store.payouts.for_run(run_id)
    latest = earlier[-1] if earlier else None
    if latest is not None and not (latest.state == "failed" and latest.acknowledged_at):
        if latest.state == "failed":
            raise AttentionRequired(
                f"{latest.action} {latest.idempotency_key} failed at {latest.provider}: "
                f"{latest.failure_reason or 'no reason given'}; retry the run to pay again"
            )
        if (latest.action, latest.amount, latest.version) != (kind, version.amount, version.number):
            raise ExecutionRefused(
                f"execution refused: payout {latest.idempotency_key} is {latest.action} "
                f"{latest.amount} (v{latest.version}), approved is {kind} {version.amount} "
                f"(v{version.number})"
            )
        return latest
    attempt = len(earlier) + 1
    key = f"{run_id}:{kind}" if attempt == 1 else f"{run_id}:{kind}:{attempt}"
    billing = BillingData.model_validate(state["billing_data"])
    return await ctx.store.payouts.intend(
        run_id=run_id,
        case_id=state["case_id"],
        charge_id=charge_id,
        account_key=billing.account_key,
        action=kind,
        amount=version.amount,
        currency=version.currency,
        idempotency_key=key,
        version=version.number,
        approved_by=sorted(approval.approvers),
        provider=ctx.payments.backend if kind == REFUND else ctx.billing.backend,
    )


async def _settle(ctx: WorkflowContext, payout: Payout, *, reason: str) -> Payout:
    """Bring the payout to what the provider knows; pay only if the provider has nothing."""
    if payout.state in ("succeeded", "failed"):
        return payout
    found = await _look_up(ctx, payout)
    if found is not None:
        return await _record(ctx, payout, found)
    if payout.state == "pending":
        # A pending refund the provider no longer lists under its key cannot be: say so.
        raise AttentionRequired(
            f"refund {payout.provider_ref} was pending and the provider no longer shows it"
        )
    await _check_not_disputed(ctx, payout)
    await _check_cap(ctx, payout)
    await ctx.store.payouts.mark(payout.idempotency_key, "sent")
    try:
        if payout.action == REFUND:
            result: RefundResult | CreditResult = await ctx.retry(
                lambda: ctx.payments.refund(
                    charge_id=payout.charge_id,
                    amount=payout.amount,
                    currency=payout.currency,
                    reason=reason,
                    idempotency_key=payout.idempotency_key,
                ),
                operation="payments.refund",
            )
        else:
            assert payout.account_key is not None
            account_key = payout.account_key
            result = await ctx.retry(
                lambda: ctx.billing.create_credit(
                    account_key=account_key,
                    amount=payout.amount,
                    currency=payout.currency,
                    reason=reason,
                    idempotency_key=payout.idempotency_key,
                ),
                operation="billing.credit",
            )
    except PaymentsAgentError as exc:
        if exc.retryable:
            # The call may or may not have landed: the next attempt looks it up first.
            await ctx.store.payouts.mark(
                payout.idempotency_key, "unknown", failure_reason=exc.message
            )
            raise
        return await ctx.store.payouts.mark(
            payout.idempotency_key, "failed", failure_reason=exc.message
        )
    return await _record(ctx, payout, result)


async def _look_up(ctx: WorkflowContext, payout: Payout) -> RefundResult | CreditResult | None:
    if payout.action == REFUND:
        if payout.state == "pending" and payout.provider_ref:
            ref = payout.provider_ref
            return await ctx.retry(
                lambda: ctx.payments.get_refund(refund_id=ref), operation="payments.refund.get"
            )
        return await ctx.retry(
            lambda: ctx.payments.find_refund(
                charge_id=payout.charge_id, idempotency_key=payout.idempotency_key
            ),
            operation="payments.refund.find",
        )
    assert payout.account_key is not None
    account_key = payout.account_key
    return await ctx.retry(
        lambda: ctx.billing.find_credit(
            account_key=account_key, idempotency_key=payout.idempotency_key
        ),
        operation="billing.credit.find",
    )


async def _record(
    ctx: WorkflowContext, payout: Payout, result: RefundResult | CreditResult
) -> Payout:
    if isinstance(result, CreditResult):
        return await ctx.store.payouts.mark(
            payout.idempotency_key, "succeeded", provider_ref=result.credit_id
        )
    if result.amount != payout.amount:
        # The provider holds a payment under this key for another amount: never pay again,
        # never call it done; a person looks.
        await ctx.store.payouts.mark(
            payout.idempotency_key,
            "unknown",
            provider_ref=result.refund_id,
            provider_status=result.status,
            failure_reason=f"provider shows {result.amount}, ledger {payout.amount}",
        )
        raise AttentionRequired(
            f"refund {result.refund_id} is {result.amount} at the provider, the ledger "
            f"intended {payout.amount}"
        )
    status = result.status
    state = (
        "succeeded"
        if status == "succeeded"
        else "failed"
        if status in FAILED_STATUSES
        else "pending"
    )
    return await ctx.store.payouts.mark(
        payout.idempotency_key,
        state,
        provider_ref=result.refund_id,
        provider_status=status,
        failure_reason=getattr(result, "failure_reason", None) if state == "failed" else None,
    )


async def _check_not_disputed(ctx: WorkflowContext, payout: Payout) -> None:
    """Refuse to pay back a charge under dispute: the bank already took the money back."""
    disputes = ctx.disputes
    if disputes is None:
        return
    found = await ctx.retry(
        lambda: disputes.dispute_of_charge(charge_id=payout.charge_id),
        operation="stripe.dispute_of_charge",
    )
    safe, detail = charge_refund_safe(found.model_dump(mode="json") if found else None)
    if not safe:
        await ctx.store.payouts.mark(payout.idempotency_key, "failed", failure_reason=detail)
        raise AttentionRequired(f"payout refused: {detail}; answer it as a chargeback")


async def _check_cap(ctx: WorkflowContext, payout: Payout) -> None:
    """Refuse to pay more than is left of the charge, by the provider and the ledger."""
    charge = await ctx.retry(
        lambda: ctx.payments.get_charge(charge_id=payout.charge_id), operation="payments.charge"
    )
    paid = await ctx.store.payouts.paid_against(
        payout.charge_id, exclude_key=payout.idempotency_key
    )
    refunded = max(charge.amount_refunded, paid.refunds)
    remaining = max(charge.amount - refunded - paid.credits, Decimal("0"))
    if payout.amount > remaining:
        reason = (
            f"{payout.amount} exceeds what is left of charge {payout.charge_id}: {remaining} of "
            f"{charge.amount} (refunded {refunded}, credited {paid.credits})"
        )
        await ctx.store.payouts.mark(payout.idempotency_key, "failed", failure_reason=reason)
        raise AttentionRequired(f"payout refused: {reason}")
