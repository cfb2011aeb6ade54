"""The facts of a run Stripe started: a chargeback or an early fraud warning.

Called by fetch_data for runs of kind `chargeback` and `early_fraud_warning`. The dispute
(or the warning) and its charge come from Stripe; the customer's CRM account is the one
whose Stripe customer id is the charge's (Salesforce SOQL); billing and the account's
dispute history as for a CRM dispute. There is no CRM case: the run's case is the Stripe
object, described as such (`CRMCase.dispute_label` names its source), so validation,
review and the audit read one shape of data.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

from models.domain import (
    BillingData,
    Charge,
    CRMAccount,
    CRMCase,
    CRMData,
    DisputeType,
    PaymentData,
)
from models.state import DisputeState
from services.errors import NotFoundError
from workflows.context import WorkflowContext

RECENT_CHARGES = 10

# A card network's dispute reason, as the nearest of this project's dispute types (for
# policies and similar past cases); the reason itself is shown to the reviewer.
REASON_TYPES: dict[str, DisputeType] = {
    "duplicate": DisputeType.DUPLICATE_CHARGE,
    "subscription_canceled": DisputeType.CANCELLATION_NOT_PROCESSED,
    "credit_not_processed": DisputeType.REFUND_NOT_PROCESSED,
    "fraudulent": DisputeType.UNRECOGNIZED_CHARGE,
    "unrecognized": DisputeType.UNRECOGNIZED_CHARGE,
    "incorrect_account_details": DisputeType.INCORRECT_AMOUNT,
    "product_not_received": DisputeType.SERVICE_OUTAGE,
    "product_unacceptable": DisputeType.SERVICE_OUTAGE,
}


async def fetch_stripe_facts(state: DisputeState, ctx: WorkflowContext) -> dict[str, Any]:
    """Gather a Stripe-started run's facts; an unknown id ends it as invalid."""
    retry = ctx.retry
    object_id = state["case_id"]
    disputes = ctx.disputes
    assert disputes is not None, "Stripe-started runs need the dispute gateway"
    dispute: dict[str, Any] | None = None
    warning: dict[str, Any] | None = None
    try:
        if state.get("kind") == "chargeback":
            found = await retry(
                lambda: disputes.get_dispute(dispute_id=object_id), operation="stripe.dispute"
            )
            dispute = found.model_dump(mode="json")
            charge_id = found.charge_id
        else:
            alert = await retry(
                lambda: disputes.get_early_fraud_warning(warning_id=object_id),
                operation="stripe.early_fraud_warning",
            )
            warning = alert.model_dump(mode="json")
            charge_id = alert.charge_id
            current = await retry(
                lambda: disputes.dispute_of_charge(charge_id=charge_id),
                operation="stripe.dispute_of_charge",
            )
            dispute = current.model_dump(mode="json") if current is not None else None
        charge = await retry(
            lambda: ctx.payments.get_charge(charge_id=charge_id), operation="payments.charge"
        )
        account = await retry(
            lambda: ctx.crm.find_account_by_stripe_customer(customer_id=charge.customer_id),
            operation="crm.account_by_customer",
        )
        charges = await retry(
            lambda: ctx.payments.list_charges(customer_id=charge.customer_id, limit=RECENT_CHARGES),
            operation="payments.charges",
        )
        if account is None or not account.zuora_account_id:
            # A chargeback is answered (or lost by default) whether or not the CRM knows the
            # customer: the run goes on to a reviewer, flagged, with what Stripe says only.
            account, billing = _unknown_customer(charge.customer_id, account), None
            history: list[CRMCase] = []
        else:
            zuora_key, account_id = account.zuora_account_id, account.account_id
            billing, history = await asyncio.gather(
                retry(lambda: ctx.billing.get_billing(account_key=zuora_key), operation="billing"),
                retry(
                    lambda: ctx.crm.list_account_disputes(
                        account_id=account_id, since=ctx.clock() - timedelta(days=90)
                    ),
                    operation="crm.disputes",
                ),
            )
    except NotFoundError as exc:
        return records_missing(exc.message)
    charge, prior = await with_ledger(ctx, charge, run_id=state["run_id"])
    if dispute is not None and state.get("kind") == "chargeback":
        reason = str(dispute.get("reason") or "general")
        due = str(dispute.get("evidence_due_by") or "")[:16].replace("T", " ")
        case = CRMCase(
            case_id=object_id,
            case_number=object_id,
            account_id=account.account_id,
            subject=f"Chargeback ({reason.replace('_', ' ')}) on {charge.charge_id}",
            description=(
                f"The cardholder's bank disputed charge {charge.charge_id} "
                f"({charge.description or 'no description'}) for "
                f"{dispute.get('amount')} {charge.currency.upper()}, reason '{reason}'. "
                f"Stripe withdrew the funds; evidence is due by {due} UTC."
            ),
            status="New",
            priority="High",
            created_at=ctx.clock(),
            dispute_type=REASON_TYPES.get(reason, DisputeType.UNRECOGNIZED_CHARGE).value,
            dispute_label=f"Stripe dispute: {reason}",
            amount=Decimal(str(dispute.get("amount") or charge.amount)),
            currency=charge.currency,
            charge_id=charge.charge_id,
        )
    else:
        assert warning is not None
        fraud_type = str(warning.get("fraud_type") or "unknown")
        case = CRMCase(
            case_id=object_id,
            case_number=object_id,
            account_id=account.account_id,
            subject=f"Early fraud warning ({fraud_type.replace('_', ' ')}) on {charge.charge_id}",
            description=(
                f"The card issuer reported charge {charge.charge_id} "
                f"({charge.description or 'no description'}) for {charge.amount} "
                f"{charge.currency.upper()} as likely fraud ({fraud_type}). Refunding "
                "before a chargeback avoids the dispute and its fee."
            ),
            status="New",
            priority="High",
            created_at=ctx.clock(),
            dispute_type=DisputeType.UNRECOGNIZED_CHARGE.value,
            dispute_label=f"Radar early fraud warning: {fraud_type}",
            amount=charge.refundable,
            currency=charge.currency,
            charge_id=charge.charge_id,
        )
    crm = CRMData(case=case, account=account, disputes_last_90d=len(history))
    payment = PaymentData(
        customer_id=charge.customer_id,
        disputed_charge=charge,
        recent_charges=charges,
        prior_payouts=prior,
        dispute=dispute,
        fraud_warning=warning,
    )
    if billing is None:
        billing = BillingData(
            account_key="",
            balance=Decimal("0"),
            currency=charge.currency,
            subscriptions=[],
            data_quality=[NO_ACCOUNT_NOTE],
        )
    return {
        "customer_id": charge.customer_id,
        "crm_data": crm.model_dump(mode="json"),
        "billing_data": billing.model_dump(mode="json"),
        "payment_data": payment.model_dump(mode="json"),
    }


def records_missing(message: str) -> dict[str, Any]:
    """The run ends invalid: a case, account or charge it names does not exist."""
    return {
        "validation": {
            "valid": False,
            "failed_rule": "records_exist",
            "reason": message,
            "checks": [{"rule": "records_exist", "passed": False, "detail": message}],
        }
    }


NO_ACCOUNT_FLAG = "crm_account_not_found"
NO_ACCOUNT_NOTE = (
    "no CRM account (or no billing account) has this Stripe customer: facts from Stripe only"
)


def _unknown_customer(customer_id: str, found: CRMAccount | None) -> CRMAccount:
    """The account a Stripe-started run shows when the CRM has none: named as unknown,
    flagged, never presented as a real CRM record."""
    return CRMAccount(
        account_id=found.account_id if found else "",
        name=found.name if found else f"unknown (Stripe customer {customer_id})",
        type=found.type if found else "unknown",
        segment=found.segment if found else "standard",
        stripe_customer_id=customer_id,
        data_quality=[NO_ACCOUNT_NOTE],
    )


async def with_ledger(
    ctx: WorkflowContext, charge: Charge, *, run_id: str
) -> tuple[Charge, list[dict[str, Any]]]:
    """The charge with what this system already paid against it, which the payment
    system's figure does not show (credits, refunds it has not reported yet), and those
    earlier payouts of other runs, for the reviewer."""
    paid = await ctx.store.payouts.paid_against(charge.charge_id)
    prior = [p.as_dict() for p in paid.payouts if p.run_id != run_id]
    unreported = max(paid.refunds - charge.amount_refunded, Decimal("0"))
    charge = charge.model_copy(update={"credited": paid.credits, "refunds_unreported": unreported})
    return charge, prior
