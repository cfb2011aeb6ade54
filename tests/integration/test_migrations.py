"""The migrations build exactly the schema the code declares, and can be undone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from models.tables import metadata
from services.persistence.database import alembic_config, schema_status, to_sqlalchemy_url
from tests.conftest import drop_database, empty_database

ROOT = Path(__file__).resolve().parents[2]

SEED_COLUMNS = [
    "id", "run_id", "case_id", "customer_id", "status", "current_step", "crm_data",
    "billing_data", "payment_data", "resolution_proposal", "human_review_data",
    "final_resolution", "llm_cost", "total_cost", "cost_breakdown", "created_at",
    "updated_at", "completed_at",
]  # fmt: skip


def ours(name: str | None, type_: str, parent_names: object) -> bool:
    """Tables of the job library and of LangGraph's checkpointer are theirs to define."""
    if type_ != "table" or name is None:
        return True
    return not name.startswith(("procrastinate", "checkpoint"))


def test_migrated_schema_matches_the_models(postgres_url: str) -> None:
    engine = create_engine(to_sqlalchemy_url(postgres_url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_name": ours})
            diff = compare_metadata(context, metadata)
            columns = [c["name"] for c in inspect(conn).get_columns("workflow_states")]
            indexes = {i["name"] for i in inspect(conn).get_indexes("workflow_states")}
    finally:
        engine.dispose()
    assert diff == []
    assert columns[: len(SEED_COLUMNS)] == SEED_COLUMNS
    assert {
        f"idx_workflow_states_{c}"
        for c in ("run_id", "case_id", "status", "current_step", "created_at")
    } <= indexes


def test_downgrade_and_upgrade_round_trip(postgres_url: str) -> None:
    command.downgrade(alembic_config(postgres_url), "base")
    assert schema_status(postgres_url)[0] is None
    engine = create_engine(to_sqlalchemy_url(postgres_url))
    try:
        with engine.connect() as conn:
            left = [t for t in inspect(conn).get_table_names() if not t.startswith("checkpoint")]
    finally:
        engine.dispose()
    assert left == ["alembic_version"]
    command.upgrade(alembic_config(postgres_url), "head")
    current, head = schema_status(postgres_url)
    assert current == head


def test_the_alembic_command_line_migrates_the_configured_database(
    postgres_server: str,
) -> None:
    url = empty_database(postgres_server)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
            cwd=ROOT.parent,  # any directory: alembic.ini finds the migrations itself
            env={**os.environ, "POSTGRES_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        current, head = schema_status(url)
        assert current == head
    finally:
        drop_database(postgres_server, url)
