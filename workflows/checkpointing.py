"""LangGraph's PostgreSQL checkpointer over a psycopg pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


@asynccontextmanager
async def open_checkpointer(
    url: str, *, max_size: int = 10, timeout: float = 10.0
) -> AsyncIterator[AsyncPostgresSaver]:
    """Yield an AsyncPostgresSaver on a pool of `max_size` (its tables are created by
    `upgrade_schema`, under the migration lock)."""
    pool = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        timeout=timeout,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    await pool.open(wait=True)
    try:
        yield AsyncPostgresSaver(pool)  # type: ignore[arg-type]
    finally:
        await pool.close()
