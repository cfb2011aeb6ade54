"""SQS intake: dispute events in, runs recorded, messages deleted. Intake only.

Each message is parsed against `models.events.QUEUE_MESSAGE`: a CRM dispute event, or a
Stripe event the webhook enqueued (a chargeback or an early fraud warning starts a run; a
dispute's update or closing is recorded on its run). A valid event is recorded
with its run in one PostgreSQL transaction, the run's driver (a Procrastinate job)
included, and the message is deleted at once: SQS never drives a run's progress. A
database error leaves the message to be received again, and nothing half-recorded behind.
An unparseable body is recorded once per message and left to the queue's redrive policy.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from models.events import (
    QUEUE_MESSAGE,
    STARTS_CHARGEBACK,
    STARTS_FRAUD_WARNING,
    DisputeEvent,
    StripeEventMessage,
)
from services.persistence.jobs import RunJobs
from services.persistence.store import Intake, WorkflowStore
from services.queue import DisputeQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntakeSettings:
    batch: int = 10
    visibility_timeout: int = 60
    wait_time: int = 10


class DisputeIntake:
    def __init__(
        self,
        *,
        queue: DisputeQueue,
        store: WorkflowStore,
        jobs: RunJobs,
        settings: IntakeSettings,
    ) -> None:
        self.queue = queue
        self.store = store
        self.jobs = jobs
        self.settings = settings

    async def run(self, stop: asyncio.Event) -> None:
        """Receive and record events until `stop` is set."""
        while not stop.is_set():
            try:
                response = await asyncio.to_thread(
                    self.queue.client.receive_message,
                    QueueUrl=self.queue.url,
                    MaxNumberOfMessages=self.settings.batch,
                    WaitTimeSeconds=self.settings.wait_time,
                    VisibilityTimeout=self.settings.visibility_timeout,
                )
            except Exception:  # the process boundary: a queue outage must not stop the worker
                log.exception("receiving from the queue failed; retrying in 5 s")
                await asyncio.sleep(5)
                continue
            messages = response.get("Messages", [])
            if messages:
                await self.handle_batch(messages)

    async def handle_batch(self, messages: list[dict[str, Any]]) -> None:
        """Record a batch of messages, then delete the recorded ones in one call."""
        recorded = await asyncio.gather(*(self.handle(message) for message in messages))
        done = [message for message, ok in zip(messages, recorded, strict=True) if ok]
        if not done:
            return
        try:
            await asyncio.to_thread(
                self.queue.client.delete_message_batch,
                QueueUrl=self.queue.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]}
                    for i, message in enumerate(done)
                ],
            )
        except Exception:  # redelivered later, then found recorded: nothing is lost
            log.exception("deleting %d recorded message(s) failed", len(done))

    async def handle(self, message: dict[str, Any]) -> bool:
        """Record one message; True when it may be deleted from the queue."""
        try:
            return await self.process_message(message)
        except Exception:  # the process boundary: the message is received again later
            log.exception("message %s not recorded; redelivered later", message.get("MessageId"))
            return False

    async def process_message(self, message: dict[str, Any]) -> bool:
        """Record one message; True when it may be deleted from the queue."""
        message_id = str(message.get("MessageId", "unknown"))
        body = str(message.get("Body", ""))
        try:
            event = QUEUE_MESSAGE.validate_json(body)
        except ValidationError as exc:
            reason = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            log.warning("rejected malformed message %s: %s", message_id, reason)
            await self.store.record_rejected_message(message_id=message_id, error=reason, body=body)
            # Left on the queue: its redrive policy moves it to the DLQ after a few receives.
            return False
        if isinstance(event, StripeEventMessage) and event.event_type not in (
            STARTS_CHARGEBACK,
            STARTS_FRAUD_WARNING,
        ):
            await self.store.record_dispute_update(
                message_id=message_id,
                event_id=event.event_id,
                dispute_id=event.object_id,
                event_type=event.event_type,
                status=event.status,
                amount=event.amount,
                currency=event.currency,
            )
            return True
        intake = await self.accept(event, message_id=message_id)
        if intake.outcome == "duplicate":
            log.info("event %s starts nothing: run %s", event.event_id, intake.run_id)
        return True

    async def accept(self, event: DisputeEvent | StripeEventMessage, *, message_id: str) -> Intake:
        """Record the event and its run (with its driver) in one transaction."""

        async def wake(connection: Any, run_id: str) -> None:
            await self.jobs.wake(run_id, connection=connection)

        if isinstance(event, DisputeEvent):
            case_id, customer_id, kind = event.case_id, event.customer_id, "dispute"
        else:
            # A Stripe dispute or warning is its own case: its id is the run's case id, so
            # the one-active-run-per-case rule and the event dedupe apply to it as well.
            case_id, customer_id = event.object_id, None
            kind = "chargeback" if event.event_type == STARTS_CHARGEBACK else "early_fraud_warning"
        intake = await self.store.accept_event(
            message_id=message_id,
            event_id=event.event_id,
            case_id=case_id,
            customer_id=customer_id,
            wake=wake,
            kind=kind,
        )
        if intake.outcome == "accepted":
            log.info("event %s started %s run %s", event.event_id, kind, intake.run_id)
        return intake


__all__ = ["DisputeIntake", "IntakeSettings"]
