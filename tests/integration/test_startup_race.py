"""Several processes started at once on an empty database migrate it, and seed the
knowledge base, one at a time."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.persistence.database import SEED_LOCK, schema_status, startup_lock
from tests.conftest import drop_database, empty_database

ROOT = Path(__file__).resolve().parents[2]
MIGRATE = (
    "import sys; from services.persistence.database import upgrade_schema; "
    "upgrade_schema(sys.argv[1])"
)


def test_processes_starting_together_on_an_empty_database_all_succeed(
    postgres_server: str,
) -> None:
    url = empty_database(postgres_server)
    try:
        starts = [
            subprocess.Popen(
                [sys.executable, "-c", MIGRATE, url],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for _ in range(3)
        ]
        results = [
            (p.wait(timeout=120), p.stdout.read().decode() if p.stdout else "") for p in starts
        ]
        assert [code for code, _ in results] == [0, 0, 0], results
        current, head = schema_status(url)
        assert current == head
        with psycopg.connect(url) as conn:
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables").fetchall()}
        assert {"workflow_states", "procrastinate_jobs", "checkpoints"} <= tables
    finally:
        drop_database(postgres_server, url)


async def test_a_start_up_task_runs_in_one_process_at_a_time(engine: AsyncEngine) -> None:
    inside: list[str] = []
    overlaps: list[str] = []

    async def seed(name: str) -> None:
        async with startup_lock(engine, SEED_LOCK):
            if inside:
                overlaps.append(name)
            inside.append(name)
            await asyncio.sleep(0.3)
            inside.remove(name)

    await asyncio.gather(seed("worker-1"), seed("worker-2"), seed("worker-3"))
    assert overlaps == []
    async with engine.connect() as conn:  # released: anyone can take it now
        taken = await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": SEED_LOCK})
        assert taken.scalar() is True
