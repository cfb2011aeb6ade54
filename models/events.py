"""Queue messages: parsed as JSON against this schema, never evaluated."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Identifier = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")


class DisputeEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["dispute.created"]
    event_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")
    case_id: str = Identifier
    customer_id: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$"
    )
    occurred_at: datetime | None = None
