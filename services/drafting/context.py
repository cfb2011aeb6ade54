"""What a drafter may see of one dispute."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from models.domain import BillingData, Charge, CRMCase, PolicyHit, PrecedentHit


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


__all__ = ["DraftingContext"]
