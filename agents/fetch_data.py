"""fetch_data: the CRM case, then subscription, charges and dispute history in parallel."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from langgraph.runtime import Runtime

from agents.fetch_stripe import fetch_stripe_facts, records_missing, with_ledger
from models.domain import Charge, CRMData, PaymentData
from models.state import DisputeState
from services.errors import NotFoundError
from workflows.context import WorkflowContext

RECENT_CHARGES = 10


async def fetch_data(state: DisputeState, runtime: Runtime[WorkflowContext]) -> dict[str, Any]:
    """Gather the facts of the dispute from the CRM, billing and payment systems."""
    ctx = runtime.context
    if state.get("kind", "dispute") != "dispute":
        return await fetch_stripe_facts(state, ctx)  # a chargeback or a fraud warning
    retry = ctx.retry
    try:
        case = await retry(lambda: ctx.crm.get_case(case_id=state["case_id"]), operation="crm.case")
        account = await retry(
            lambda: ctx.crm.get_account(account_id=case.account_id), operation="crm.account"
        )
        if not account.stripe_customer_id or not account.zuora_account_id:
            raise NotFoundError(f"account {account.account_id} has no payment or billing account")
        customer_id = account.stripe_customer_id
        zuora_key = account.zuora_account_id
        billing, charges, disputes = await asyncio.gather(
            retry(lambda: ctx.billing.get_billing(account_key=zuora_key), operation="billing"),
            retry(
                lambda: ctx.payments.list_charges(customer_id=customer_id, limit=RECENT_CHARGES),
                operation="payments.charges",
            ),
            retry(
                lambda: ctx.crm.list_account_disputes(
                    account_id=account.account_id, since=ctx.clock() - timedelta(days=90)
                ),
                operation="crm.disputes",
            ),
        )
        # The disputed charge is usually among the recent ones, as Stripe lists them: the
        # same object a retrieve returns, so no second call for it.
        disputed = next((c for c in charges if c.charge_id == case.charge_id), None)
        if disputed is None:
            disputed = await _disputed_charge(ctx, case.charge_id)
    except NotFoundError as exc:
        # An unknown case or account is not worth retrying: the run ends as rejected.
        return records_missing(exc.message)
    crm = CRMData(case=case, account=account, disputes_last_90d=len(disputes))
    prior: list[dict[str, Any]] = []
    chargeback: dict[str, Any] | None = None
    if disputed is not None:
        disputed, prior = await with_ledger(ctx, disputed, run_id=state["run_id"])
        if disputed.disputed is not False:  # a charge never disputed has no chargeback
            chargeback = await _open_dispute(ctx, disputed.charge_id)
    payment = PaymentData(
        customer_id=customer_id,
        disputed_charge=disputed,
        recent_charges=charges,
        prior_payouts=prior,
        dispute=chargeback,
    )
    return {
        "customer_id": customer_id,
        "crm_data": crm.model_dump(mode="json"),
        "billing_data": billing.model_dump(mode="json"),
        "payment_data": payment.model_dump(mode="json"),
    }


async def _open_dispute(ctx: WorkflowContext, charge_id: str) -> dict[str, Any] | None:
    """The charge's chargeback, if any: a charge under dispute is never refunded."""
    disputes = ctx.disputes
    if disputes is None:
        return None
    found = await ctx.retry(
        lambda: disputes.dispute_of_charge(charge_id=charge_id),
        operation="stripe.dispute_of_charge",
    )
    return found.model_dump(mode="json") if found is not None else None


async def _disputed_charge(ctx: WorkflowContext, charge_id: str | None) -> Charge | None:
    if not charge_id:
        return None
    try:
        return await ctx.retry(
            lambda: ctx.payments.get_charge(charge_id=charge_id), operation="payments.charge"
        )
    except NotFoundError:
        return None  # validate_dispute names the failed rule
