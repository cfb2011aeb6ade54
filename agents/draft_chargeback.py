"""Drafts for Stripe-started runs: a chargeback's answer, and a fraud warning's refund.

A chargeback is answered by contesting it with evidence or by accepting it. The draft is
made by rules from facts this system holds (the charge, the subscription, the CRM account
and its history, the policies), and every evidence field says where its text came from.
Nothing is filled that the system does not know. File evidence (Stripe takes only ids of
files uploaded for `dispute_evidence`) is listed here as the policy sections to render;
answer_dispute renders, uploads and submits them after approval.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from agents.retrieved import retrieved_view
from models.domain import BillingData, Charge, CRMData, PaymentData, PolicyHit
from models.state import DisputeState
from workflows.context import WorkflowContext

CONTEST, ACCEPT = "contest", "accept"
CHARGEBACK_DRAFTER = "rules:chargeback"
FRAUD_WARNING_DRAFTER = "rules:early_fraud_warning"
MAX_POLICIES = 3
DUPLICATE_WINDOW = timedelta(days=3)

# What to search the policies for, by the card network's reason.
REASON_QUERIES = {
    "subscription_canceled": "cancellation policy: cancelling a subscription, billing after",
    "duplicate": "duplicate charges: charged twice for the same period",
    "fraudulent": "unrecognized charges, fraud, account access",
    "credit_not_processed": "refund policy: refunds and credits, processing time",
    "product_not_received": "service availability, outages and service credits",
}


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def _policy_text(hits: list[PolicyHit]) -> str:
    return " ".join(f"{h.policy_id} {h.section}: {h.text[:300]}" for h in hits)


async def draft_chargeback_response(state: DisputeState, ctx: WorkflowContext) -> dict[str, Any]:
    """Contest or accept, with the evidence that fits the dispute's reason."""
    crm = CRMData.model_validate(state["crm_data"])
    payment = PaymentData.model_validate(state["payment_data"])
    billing = BillingData.model_validate(state["billing_data"])
    dispute = payment.dispute or {}
    charge = payment.disputed_charge
    assert charge is not None
    reason = str(dispute.get("reason") or "general")
    policies = await ctx.knowledge.search_policies(
        query=REASON_QUERIES.get(reason, f"{reason.replace('_', ' ')} dispute"), k=MAX_POLICIES
    )
    precedents = await ctx.knowledge.similar_cases(
        query=f"chargeback {reason}",
        dispute_type=f"chargeback:{reason}",
        amount=charge.amount,
        customer_segment=crm.account.segment,
        k=3,
        exclude_case_id=crm.case.case_id,
    )
    evidence: dict[str, str] = {}
    sources: dict[str, str] = {}

    def put(field: str, text: str, source: str) -> None:
        evidence[field] = text[:20000]
        sources[field] = source

    if crm.account.account_id:  # a customer the CRM does not know has no name to give
        put("customer_name", crm.account.name, "CRM account")
    if crm.account.email:
        put("customer_email_address", crm.account.email, "CRM account")
    put(
        "product_description",
        f"{charge.description or 'Subscription charge'} ({charge.amount} "
        f"{charge.currency.upper()}, {_fmt(charge.created_at)})",
        "Stripe charge",
    )
    subscription = billing.subscriptions[0] if billing.subscriptions else None
    if subscription is not None:
        put(
            "service_date",
            _fmt(charge.created_at),
            "Stripe charge date, within the subscription term",
        )
    action, why = CONTEST, ""
    if reason == "subscription_canceled":
        requested = subscription.cancellation_requested_at if subscription else None
        if requested is not None and requested <= charge.created_at:
            action = ACCEPT
            why = (
                f"The customer asked to cancel on {_fmt(requested)}, before this charge of "
                f"{_fmt(charge.created_at)}: the charge should not have been made."
            )
        else:
            active = subscription.status if subscription else "unknown"
            put(
                "cancellation_rebuttal",
                "No cancellation request is on record before this charge; the subscription "
                f"({subscription.plan if subscription else 'unknown plan'}) was {active} when "
                "it renewed.",
                "Zuora subscription (cancellation_requested_at, status)",
            )
            if policies:
                put("cancellation_policy_disclosure", _policy_text(policies), "policy documents")
            why = "No cancellation was requested before the renewal charge."
    elif reason == "duplicate":
        twins = [
            c
            for c in payment.recent_charges
            if c.charge_id != charge.charge_id
            and c.amount == charge.amount
            and abs(c.created_at - charge.created_at) <= DUPLICATE_WINDOW
        ]
        if twins:
            action = ACCEPT
            why = (
                f"Charge {twins[0].charge_id} of the same amount on "
                f"{_fmt(twins[0].created_at)} makes this one a duplicate."
            )
        else:
            put(
                "duplicate_charge_explanation",
                f"No other charge of {charge.amount} {charge.currency.upper()} within "
                f"{DUPLICATE_WINDOW.days} days: each charge pays a separate billing period.",
                "Stripe charges of the customer",
            )
            why = "No charge of the same amount close to this one."
    elif reason in ("fraudulent", "unrecognized"):
        if crm.disputes_last_90d == 0 and subscription is not None:
            put(
                "access_activity_log",
                f"Account {crm.account.name} holds an {subscription.status} subscription "
                f"({subscription.plan}) since {_fmt(subscription.start_date)}; the charge is "
                "its recurring fee.",
                "Zuora subscription and CRM account",
            )
            why = "The charge is the recurring fee of a long-standing subscription."
        else:
            action = ACCEPT
            why = "No usage facts to show the cardholder authorised the charge."
    else:
        if policies:
            put("refund_policy_disclosure", _policy_text(policies), "policy documents")
        put(
            "uncategorized_text",
            f"The charge pays the customer's {subscription.plan if subscription else ''} "
            "subscription as invoiced.",
            "Zuora subscription",
        )
        why = "The charge pays the subscription as invoiced."
    files = (
        {"refund_policy": [p.chunk_id for p in policies]} if action == CONTEST and policies else {}
    )
    # Stripe's verdicts on earlier chargebacks of this reason (recorded from its webhooks).
    history = await ctx.store.chargeback_history(reason, exclude=state["run_id"])
    proposal = {
        "action": action,
        "amount": str(Decimal(str(dispute.get("amount") or charge.amount))),
        "currency": charge.currency,
        "reason": why,
        "confidence": 0.7 if action == CONTEST else 0.8,
        "supporting_factors": [f"{f}: {s}" for f, s in sources.items()],
        "risk_level": "medium",
        "policy_ids": [p.policy_id for p in policies],
        "drafter": CHARGEBACK_DRAFTER,
        "fallback_used": False,
        "evidence": evidence if action == CONTEST else {},
        "evidence_sources": sources if action == CONTEST else {},
        "evidence_files": files,
        "similar_chargebacks": {**history, "considered": len(precedents)},
    }
    return {
        "proposal": proposal,
        "retrieved": retrieved_view(policies, precedents),
    }


def fraud_warning_proposal(charge: Charge, warning: dict[str, Any]) -> dict[str, Any]:
    """Refund what is left of a charge the issuer reported as likely fraud."""
    return {
        "proposal": {
            "action": "full_refund",
            "amount": str(charge.refundable),
            "currency": charge.currency,
            "reason": (
                f"Radar early fraud warning ({warning.get('fraud_type')}): refunding now "
                "prevents a chargeback, its fee and the loss of the funds twice."
            ),
            "confidence": 0.9,
            "supporting_factors": [f"warning {warning.get('warning_id')} is actionable"],
            "risk_level": "low",
            "policy_ids": [],
            "drafter": FRAUD_WARNING_DRAFTER,
            "fallback_used": False,
        }
    }
