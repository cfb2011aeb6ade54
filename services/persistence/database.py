"""PostgreSQL: where the URL comes from (setting or embedded server), engines and migrations."""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


@dataclass
class Database:
    """A PostgreSQL URL and, when embedded, the server process that owns it."""

    url: str
    embedded: Any = None

    @property
    def sqlalchemy_url(self) -> str:
        return to_sqlalchemy_url(self.url)

    def describe(self) -> str:
        return "embedded" if self.embedded is not None else "external"


def to_sqlalchemy_url(url: str) -> str:
    """`postgresql://…` → `postgresql+psycopg://…` (psycopg 3 driver)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("POSTGRES_URL must start with postgresql://")


def open_database(url: str | None, data_dir: Path) -> Database:
    """Use `url`, or start (or reuse) the embedded PostgreSQL under `data_dir/postgres`."""
    if url:
        return Database(url=url)
    pgdata = (data_dir / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on headless machines; harmless here.
        warnings.simplefilter("ignore")
        import pgserver  # imported here: only the embedded default needs it

        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    log.info("embedded PostgreSQL at %s", pgdata)
    return Database(url=server.get_uri(), embedded=server)


def create_engine(database: Database, **kwargs: Any) -> AsyncEngine:
    """An async engine. No pre-ping (a round trip per checkout): a connection that died
    with a PostgreSQL restart fails its statement, is discarded by the pool, and the step
    is retried (database errors are retryable at a node boundary)."""
    return create_async_engine(database.sqlalchemy_url, **kwargs)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", to_sqlalchemy_url(url).replace("%", "%%"))
    return config


# Any constant: the advisory lock that serialises schema changes across processes.
MIGRATION_LOCK = 7_246_030_111
MIGRATION_WAIT_SECONDS = 300


# The advisory lock under which a process seeds the shared knowledge base at start-up.
SEED_LOCK = 7_246_030_112


@asynccontextmanager
async def startup_lock(engine: AsyncEngine, key: int) -> AsyncIterator[None]:
    """Hold a session advisory lock for a start-up task (seconds, once per process), so
    processes starting together do it one after the other. Polled, like the migration's."""
    async with engine.connect() as conn:
        deadline = time.monotonic() + MIGRATION_WAIT_SECONDS
        while not (
            await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
        ).scalar():
            if time.monotonic() > deadline:
                raise TimeoutError(f"another process has held start-up lock {key} too long")
            await asyncio.sleep(0.2)
        try:
            yield
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            await conn.commit()


def _try_lock(conn: Any) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK,)).fetchone()
    return bool(row and row[0])


def upgrade_schema(url: str) -> None:
    """Apply every pending migration and LangGraph's checkpoint tables (idempotent).

    Several processes may start at once on an empty database: each takes a session advisory
    lock held for the migration only, so they migrate one after the other and the later
    ones find nothing left to do.
    """
    import psycopg
    from alembic import command
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    with psycopg.connect(url, autocommit=True) as lock:
        # Polled, not waited on: a session blocked in pg_advisory_lock() holds a transaction
        # open, and LangGraph's CREATE INDEX CONCURRENTLY in the migrating process would
        # wait for it: a deadlock.
        deadline = time.monotonic() + MIGRATION_WAIT_SECONDS
        while not _try_lock(lock):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"another process has been migrating the database for over "
                    f"{MIGRATION_WAIT_SECONDS} s"
                )
            time.sleep(0.2)
        try:
            command.upgrade(alembic_config(url), "head")
            with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
                PostgresSaver(conn).setup()
        finally:
            lock.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def reset_schema(url: str) -> None:
    """Drop everything the migrations created, LangGraph's checkpoints too, and re-create it."""
    import psycopg
    from alembic import command

    command.downgrade(alembic_config(url), "base")
    with psycopg.connect(url, autocommit=True) as conn:
        for table in (
            "checkpoints",
            "checkpoint_blobs",
            "checkpoint_writes",
            "checkpoint_migrations",
        ):
            conn.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    command.upgrade(alembic_config(url), "head")


def schema_status(url: str) -> tuple[str | None, str]:
    """(current revision, head revision)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine as create_sync_engine

    config = alembic_config(url)
    head = ScriptDirectory.from_config(config).get_current_head()
    engine = create_sync_engine(to_sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    assert head is not None
    return current, head
