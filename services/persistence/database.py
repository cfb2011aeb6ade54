"""PostgreSQL: where the URL comes from (setting or embedded server), engines and migrations."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


class DatabaseUnavailableError(Exception):
    """PostgreSQL cannot be reached at start-up. The message says where (host, port and
    database, never the user or password) and why, on one line."""


def describe_location(url: str) -> str:
    """`host:port/database` of a PostgreSQL URL: no user, no password, no options."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


def check_connection(url: str, *, timeout: float = 10.0) -> None:
    """Connect once (at most `timeout` s) or raise DatabaseUnavailableError saying why."""
    import psycopg

    try:
        to_sqlalchemy_url(url)
    except ValueError as exc:
        raise DatabaseUnavailableError(str(exc)) from None
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout))):
            pass
    except psycopg.Error as exc:
        raise DatabaseUnavailableError(
            f"cannot connect to PostgreSQL at {describe_location(url)}: {_reason(exc)}"
        ) from None


def _reason(exc: Exception) -> str:
    """libpq's reason, on one line: 'Connection refused', 'password authentication failed
    for user "x"', 'database "x" does not exist', ..."""
    lines = [line.strip(" -\t") for line in str(exc).splitlines() if line.strip()]
    failed = [line for line in lines if "failed:" in line]
    reason = (failed[-1] if failed else lines[0] if lines else type(exc).__name__).rsplit(
        "failed:", 1
    )[-1]
    return " ".join(reason.replace("FATAL:", "").split()) or type(exc).__name__


# pgserver's list of the processes using an embedded server (its "handles"): the last one
# to exit stops the server.
HANDLES_FILE = ".handle_pids.json"


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Drop the handles of processes that ended without releasing theirs (killed), so the
    server stops with the last live process using it; return the dropped PIDs.

    pgserver removes a process's handle at exit (atexit), which a SIGKILL skips: its PID
    would stay in the list, and no later process would ever be the last one to stop it.
    """
    import psutil
    from pgserver.postgres_server import PostgresServer

    handles = pgdata / HANDLES_FILE
    with PostgresServer._lock:
        try:
            pids = [int(pid) for pid in json.loads(handles.read_text())]
        except (FileNotFoundError, ValueError, TypeError):
            return []
        dead = [pid for pid in pids if not _alive(psutil, pid)]
        if dead:
            handles.write_text(json.dumps([pid for pid in pids if pid not in dead]))
    return dead


def _alive(psutil: Any, pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def open_database(url: str | None, data_dir: Path) -> Database:
    """Use `url`, or start (or reuse) the embedded PostgreSQL under `data_dir/postgres`.

    The embedded server lives as long as the processes using it: the last one to exit
    stops it, and the handles of processes that were killed are dropped here first.
    """
    if url:
        return Database(url=url)
    pgdata = (data_dir / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on headless machines; harmless here.
        warnings.simplefilter("ignore")
        import pgserver  # imported here: only the embedded default needs it

        dead = prune_dead_handles(pgdata)
        if dead:
            log.info("embedded PostgreSQL: dropped the handles of ended processes %s", dead)
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
