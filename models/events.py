"""Queue messages: parsed as JSON against this schema, never evaluated."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

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


# The Stripe events the webhook enqueues (api/routes/webhooks.py): the ones that start or
# update a run. Others are answered 2xx by the webhook and never reach the queue.
STARTS_CHARGEBACK = "charge.dispute.created"
UPDATES_CHARGEBACK = ("charge.dispute.updated", "charge.dispute.closed")
STARTS_FRAUD_WARNING = "radar.early_fraud_warning.created"
HANDLED_STRIPE_EVENTS = (STARTS_CHARGEBACK, *UPDATES_CHARGEBACK, STARTS_FRAUD_WARNING)


class StripeEventMessage(BaseModel):
    """A verified Stripe webhook event, as the webhook puts it on the dispute queue.

    Only ids and the dispute's status travel: the run reads the dispute, the charge and
    the warning from Stripe itself.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["stripe.event"]
    event_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")
    event_type: Literal[
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "radar.early_fraud_warning.created",
    ]
    object_id: str = Identifier  # the dispute (dp_/du_) or the warning (issfr_)
    charge_id: str | None = Field(default=None, max_length=64)
    status: str | None = Field(default=None, max_length=64)  # the dispute's, when given
    amount: int | None = Field(default=None, ge=0)  # minor units
    currency: str | None = Field(default=None, max_length=3)


QueueMessage = Annotated[DisputeEvent | StripeEventMessage, Field(discriminator="type")]
QUEUE_MESSAGE: TypeAdapter[DisputeEvent | StripeEventMessage] = TypeAdapter(QueueMessage)
