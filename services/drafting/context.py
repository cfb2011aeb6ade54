"""What a drafter may see of one dispute."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from models.domain import (
    BillingData,
    Charge,
    CRMCase,
    CRMData,
    PaymentData,
    PolicyHit,
    PrecedentHit,
)


class DraftingContext(BaseModel):
    """Everything a drafter may see. Contact data (e-mail, phone, address) is not in it."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    case: CRMCase
    segment: str
    account_type: str
    disputes_last_90d: int
    billing: BillingData
    disputed_charge: Charge
    recent_charges: list[Charge]
    refundable: Decimal
    policies: list[PolicyHit]
    precedents: list[PrecedentHit]

    @classmethod
    def of_dispute(
        cls,
        run_id: str,
        crm: CRMData,
        billing: BillingData,
        payment: PaymentData,
        *,
        policies: list[PolicyHit],
        precedents: list[PrecedentHit],
    ) -> DraftingContext:
        """The context of a CRM dispute from its fetched facts (the run's state or row)."""
        charge = payment.disputed_charge
        if charge is None:
            raise ValueError("a dispute is drafted only with its disputed charge")
        return cls(
            run_id=run_id,
            case=crm.case,
            segment=crm.account.segment,
            account_type=crm.account.type,
            disputes_last_90d=crm.disputes_last_90d,
            billing=billing,
            disputed_charge=charge,
            # the prompt shows at most 5; the drafter sees all, to find a duplicate's twin.
            recent_charges=payment.recent_charges,
            refundable=charge.refundable,
            policies=policies,
            precedents=precedents,
        )


def knowledge_query(case: CRMCase) -> str:
    """What the knowledge base is asked for a CRM dispute: the customer's own words.

    Not prefixed with the dispute type: the prefix pulled short descriptions toward generic
    sections (recall@3 0.83 against 0.95 on tests/data/policies_b, bench/retrieval.py).
    """
    words = ". ".join(part.strip() for part in (case.subject, case.description) if part.strip())
    return words or case.dispute_type.replace("_", " ")


__all__ = ["DraftingContext", "knowledge_query"]
