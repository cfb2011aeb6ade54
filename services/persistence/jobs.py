"""Run dispatch on PostgreSQL: Procrastinate jobs that drive runs.

Every run that is not final has a driver: an `advance_run` job in Procrastinate's tables,
due now or at the run's next-attempt time. Two locks make that safe under any number of
workers and wake-ups:
- `lock=run:<id>`: jobs of one run never execute at the same time (a lease that ends with
  the job, or with its worker: a worker that stops heart-beating has its jobs retried);
- `queueing_lock=run:<id>`: at most one job of a run waits in the queue, so waking a run
  that already has a waiting job changes nothing.

The task itself is registered by the worker (workflows/dispatch.py); any process, the API
included, can wake a run by the task's name.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued, ConnectorException
from procrastinate.jobs import Status

log = logging.getLogger(__name__)

ADVANCE_TASK = "advance_run"
RUN_QUEUE = "runs"


def run_lock(run_id: str) -> str:
    """The lock (and queueing lock) of a run's jobs."""
    return f"run:{run_id}"


def job_app(url: str, *, pool_size: int) -> procrastinate.App:
    """A Procrastinate app on its own small psycopg pool (opened by the caller)."""
    connector = procrastinate.PsycopgConnector(
        conninfo=url, min_size=1, max_size=pool_size, timeout=10.0
    )
    return procrastinate.App(connector=connector)


class RunJobs:
    """Wakes runs: defers the job that drives a run, now or at a given time."""

    def __init__(self, app: procrastinate.App) -> None:
        self.app = app

    async def wake(
        self, run_id: str, *, at: datetime | None = None, connection: Any = None
    ) -> bool:
        """Make sure the run has a job due at `at` (now by default); False when one was
        already waiting. With `connection` (a psycopg AsyncConnection inside the caller's
        transaction), the job commits or rolls back with the caller's own writes."""
        options: dict[str, Any] = {
            "lock": run_lock(run_id),
            "queueing_lock": run_lock(run_id),
            "queue": RUN_QUEUE,
        }
        if at is not None:
            options["schedule_at"] = at
        if connection is not None:
            options["connection"] = connection
        deferrer = self.app.configure_task(ADVANCE_TASK, **options)
        try:
            await deferrer.defer_async(run_id=run_id)
        except AlreadyEnqueued:
            return False
        return True

    async def stalled_jobs_retried(self, *, seconds_since_heartbeat: float) -> int:
        """Put back in the queue the jobs of workers that stopped heart-beating."""
        manager = self.app.job_manager
        stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=seconds_since_heartbeat)
        count = 0
        for job in stalled:
            try:
                await manager.retry_job(job)
            except ConnectorException:
                # Another job of the run is already waiting (its queueing lock): that one
                # drives the run. End the stalled one so its lock stops holding the run.
                await manager.finish_job(job, status=Status.FAILED, delete_job=False)
            count += 1
        return count


__all__ = ["ADVANCE_TASK", "RUN_QUEUE", "RunJobs", "job_app", "run_lock"]
