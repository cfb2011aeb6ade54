"""The worker: consumes dispute events from SQS and applies recorded review decisions.

Delivery is at-least-once, so every message is checked against what PostgreSQL already
knows before anything starts. A message is deleted only once its run rests at a durable
checkpoint; while it is in progress its visibility timeout is extended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from pydantic import ValidationError

from models.events import DisputeEvent
from services.logs import bind_run_id
from services.persistence.store import DECISION_CHANNEL, RunBusyError, StoredDecision, WorkflowStore
from services.queue import DisputeQueue
from workflows.runner import RunOutcome, WorkflowRunner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    max_in_flight: int = 4
    visibility_timeout: int = 60
    wait_time: int = 10
    sweep_interval: float = 15.0


class DisputeWorker:
    def __init__(
        self,
        *,
        queue: DisputeQueue,
        runner: WorkflowRunner,
        store: WorkflowStore,
        postgres_url: str,
        settings: WorkerSettings,
        on_outcome: Any = None,
    ) -> None:
        self.queue = queue
        self.runner = runner
        self.store = store
        self.postgres_url = postgres_url
        self.settings = settings
        self.on_outcome = on_outcome
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and apply decisions until `stop` is set; in-flight runs are finished."""
        loops = [
            asyncio.create_task(self._consume(stop), name="consume"),
            asyncio.create_task(self._listen(stop), name="listen"),
            asyncio.create_task(self._sweep(stop), name="sweep"),
        ]
        await stop.wait()
        self._wake.set()
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    # Messages

    async def _consume(self, stop: asyncio.Event) -> None:
        limit = self.settings.max_in_flight
        while not stop.is_set():
            free = limit - len(self._in_flight)
            if free <= 0:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                response = await asyncio.to_thread(
                    self.queue.client.receive_message,
                    QueueUrl=self.queue.url,
                    MaxNumberOfMessages=min(10, free),
                    WaitTimeSeconds=self.settings.wait_time,
                    VisibilityTimeout=self.settings.visibility_timeout,
                    AttributeNames=["ApproximateReceiveCount"],
                )
            except Exception:  # the process boundary: a queue outage must not stop the worker
                log.exception("receiving from the queue failed; retrying in 5 s")
                await asyncio.sleep(5)
                continue
            for message in response.get("Messages", []):
                task = asyncio.create_task(self._handle_message(message))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)

    async def _handle_message(self, message: dict[str, Any]) -> None:
        heartbeat = asyncio.create_task(self._keep_invisible(message["ReceiptHandle"]))
        try:
            delete = await self.process_message(message)
        except Exception:  # the process boundary: log, leave the message for redelivery
            log.exception("message %s failed; it will be redelivered", message.get("MessageId"))
            delete = False
        finally:
            heartbeat.cancel()
        if delete:
            await asyncio.to_thread(
                self.queue.client.delete_message,
                QueueUrl=self.queue.url,
                ReceiptHandle=message["ReceiptHandle"],
            )

    async def _keep_invisible(self, receipt: str) -> None:
        interval = max(self.settings.visibility_timeout / 2, 1)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    self.queue.client.change_message_visibility,
                    QueueUrl=self.queue.url,
                    ReceiptHandle=receipt,
                    VisibilityTimeout=self.settings.visibility_timeout,
                )

    async def process_message(self, message: dict[str, Any]) -> bool:
        """Handle one message; True when it may be deleted from the queue."""
        message_id = str(message.get("MessageId", "unknown"))
        body = str(message.get("Body", ""))
        try:
            event = DisputeEvent.model_validate_json(body)
        except ValidationError as exc:
            reason = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            log.warning("rejected malformed message %s: %s", message_id, reason)
            await self.store.record_message(
                message_id=message_id, outcome="rejected", error=reason, body=body
            )
            # Left on the queue: its redrive policy moves it to the DLQ after a few receives.
            return False

        existing = await self.store.message_for_event(event.event_id)
        if existing is not None and existing["run_id"] is not None:
            return await self._redelivered(event, existing["run_id"])

        try:
            async with self.store.run_lock(f"case:{event.case_id}"):
                active = await self.store.active_run_for_case(event.case_id)
                if active is not None:
                    log.info(
                        "case %s already has run %s; %s starts nothing",
                        event.case_id,
                        active,
                        event.event_id,
                    )
                    await self.store.record_message(
                        message_id=message_id,
                        event_id=event.event_id,
                        case_id=event.case_id,
                        run_id=active,
                        outcome="duplicate",
                    )
                    return True
                run_id = str(uuid.uuid4())
                accepted = await self.store.record_message(
                    message_id=message_id,
                    event_id=event.event_id,
                    case_id=event.case_id,
                    run_id=run_id,
                    outcome="accepted",
                )
                if not accepted:
                    return True  # the same event, recorded by another worker a moment ago
                async with self.store.run_lock(run_id):
                    outcome = await self.runner.start(
                        run_id=run_id,
                        case_id=event.case_id,
                        customer_id=event.customer_id,
                        event_id=event.event_id,
                    )
        except RunBusyError:
            return False  # another worker is creating a run for this case right now
        self._report(outcome)
        return outcome.durable

    async def _redelivered(self, event: DisputeEvent, run_id: str) -> bool:
        run = await self.store.get_run(run_id)
        if run is None:
            return True
        if run["status"] not in ("running", "failed"):
            log.info("event %s redelivered; run %s is %s", event.event_id, run_id, run["status"])
            return True
        if not await self.runner.has_pending_steps(run_id):
            return True
        try:
            async with self.store.run_lock(run_id):
                with bind_run_id(run_id):
                    log.info(
                        "event %s redelivered; continuing run from its checkpoint", event.event_id
                    )
                outcome = await self.runner.continue_run(run_id)
        except RunBusyError:
            return True  # a live worker holds the run and will finish it
        self._report(outcome)
        return outcome.durable

    def _report(self, outcome: RunOutcome) -> None:
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    # Decisions

    async def _listen(self, stop: asyncio.Event) -> None:
        """Apply decisions as soon as the API announces them (PostgreSQL NOTIFY)."""
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.postgres_url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {DECISION_CHANNEL}")
                    await self.apply_pending_decisions()
                    async for notice in conn.notifies():
                        await self.apply_pending_decisions(run_id=notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception:  # the process boundary: the sweep still applies decisions
                log.exception("decision listener lost its connection; reconnecting in 5 s")
                await asyncio.sleep(5)

    async def _sweep(self, stop: asyncio.Event) -> None:
        """Apply any recorded decision not yet applied: a lost notification loses nothing."""
        while not stop.is_set():
            await asyncio.sleep(self.settings.sweep_interval)
            try:
                await self.apply_pending_decisions()
            except Exception:  # the process boundary
                log.exception("decision sweep failed")

    async def apply_pending_decisions(self, *, run_id: str | None = None) -> int:
        applied = 0
        for stored in await self.store.unapplied_decisions(run_id=run_id):
            if await self.apply_decision(stored):
                applied += 1
        return applied

    async def apply_decision(self, stored: StoredDecision) -> bool:
        """Resume the run with the decision; True once it is applied."""
        try:
            async with self.store.run_lock(stored.run_id):
                awaiting = await self.runner.awaiting_round(stored.run_id)
                outcome: RunOutcome | None = None
                if awaiting == stored.round:
                    outcome = await self.runner.resume(
                        run_id=stored.run_id, decision=stored.decision
                    )
                elif awaiting is None and await self.runner.has_pending_steps(stored.run_id):
                    outcome = await self.runner.continue_run(stored.run_id)
                if outcome is not None:
                    self._report(outcome)
                    if not outcome.durable:
                        return False  # retryable failure: the next sweep tries again
                await self.store.mark_decision_applied(stored.id)
                return True
        except RunBusyError:
            return False
