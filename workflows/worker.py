"""The worker process: SQS intake, the Procrastinate worker that drives runs, and the
maintenance loop, side by side until stopped.

Runs are claimed from PostgreSQL (Procrastinate jobs with a per-run lock), never from the
queue; no lock is held on a pooled connection for the length of a run. A worker killed at
any point stops heart-beating, and another worker's maintenance loop puts its jobs back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from workflows.dispatch import Maintenance, RunDriver, maintenance_loop, register_tasks
from workflows.intake import DisputeIntake

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = 4
    heartbeat_seconds: float = 5.0
    stalled_worker_seconds: float = 30.0
    # New jobs arrive by LISTEN/NOTIFY at once; a job scheduled for later (a retry's next
    # attempt) is found by polling, at most this long after it falls due.
    poll_seconds: float = 1.0
    maintenance: Maintenance = Maintenance()


class DisputeWorker:
    def __init__(
        self,
        *,
        intake: DisputeIntake | None,
        driver: RunDriver,
        settings: WorkerSettings,
        prune: Callable[[str], Awaitable[Any]] | None = None,
    ) -> None:
        self.intake = intake
        self.driver = driver
        self.settings = settings
        self.prune = prune
        register_tasks(driver.jobs.app, driver)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume events, drive runs and maintain until `stop` is set; runs in progress
        finish their current step first."""
        jobs = asyncio.create_task(self._run_jobs(stop), name="jobs")
        loops = [
            asyncio.create_task(
                maintenance_loop(self.driver, self.settings.maintenance, stop, prune=self.prune),
                name="maintenance",
            )
        ]
        if self.intake is not None:
            loops.append(asyncio.create_task(self.intake.run(stop), name="intake"))
        await stop.wait()
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        jobs.cancel()  # Procrastinate finishes the jobs in progress, then returns
        with contextlib.suppress(asyncio.CancelledError):
            await jobs

    async def _run_jobs(self, stop: asyncio.Event) -> None:
        """Run the Procrastinate worker, and start it again whenever it stops on its own:
        it gives up when its connection to PostgreSQL is lost (a restart, a failover)."""
        app = self.driver.jobs.app
        while not stop.is_set():
            try:
                await app.run_worker_async(
                    queues=["runs"],
                    concurrency=self.settings.concurrency,
                    wait=True,
                    install_signal_handlers=False,
                    update_heartbeat_interval=self.settings.heartbeat_seconds,
                    stalled_worker_timeout=self.settings.stalled_worker_seconds,
                    listen_notify=True,
                    fetch_job_polling_interval=self.settings.poll_seconds,
                )
            except asyncio.CancelledError:
                raise
            except Exception:  # the process boundary: the jobs are in PostgreSQL, not lost
                log.exception("the job worker stopped; starting it again in 2 s")
            else:
                log.warning("the job worker stopped; starting it again in 2 s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=2.0)


__all__ = ["DisputeWorker", "WorkerSettings"]
