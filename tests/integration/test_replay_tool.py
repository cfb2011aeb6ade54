"""utils/replay.py re-drafts resolved runs, reports what a policy change would change,
and changes nothing in the database."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pytest
from docx import Document
from pydantic import SecretStr
from sqlalchemy import text

from models.domain import ModifiedResolution, ResolutionAction, ReviewDecision
from services.drafting.guarded import GuardedDrafter
from services.drafting.rules_drafter import RulesDrafter
from services.settings import Settings
from tests.fakes.services import NOW
from tests.integration.conftest import Harness
from tools.write_policies import write_policies
from utils.replay import main, outage_matrix_from_docx, replay, write_csv

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("workflow_states", "payouts", "audit_events", "review_decisions")


def decision(
    verdict: Literal["approved", "rejected"] = "approved",
    modified: ModifiedResolution | None = None,
) -> ReviewDecision:
    return ReviewDecision(
        decision=verdict,
        reviewer="alice",
        comments="checked",
        modified_resolution=modified,
        decided_at=datetime.now(NOW.tzinfo),
    )


async def snapshot(harness: Harness) -> dict[str, tuple[int, str]]:
    """Row count and a checksum of every row of the tables a replay must not touch."""
    state = {}
    async with harness.store.engine.connect() as conn:
        for table in TABLES:
            rows = (await conn.execute(text(f"SELECT t::text FROM {table} t ORDER BY 1"))).all()
            digest = hashlib.sha256("\n".join(r[0] for r in rows).encode()).hexdigest()
            state[table] = (len(rows), digest)
    return state


@pytest.fixture
async def resolved(harness: Harness) -> Harness:
    """Three resolved runs drafted by the rules: approved as drafted, modified, rejected."""
    rules = harness.with_context(drafter=GuardedDrafter(rules=RulesDrafter()))
    world = rules.world
    world.add_charge("ch_o", "cus_A", "80.00", days_ago=5)
    world.add_case("500O", "001A", "ch_o", "80.00", dispute_type="service_outage")
    world.cases["500O"] = world.cases["500O"].model_copy(
        update={"subject": "Outage", "description": "The dashboard was down for 5 hours."}
    )
    world.add_charge("ch_p", "cus_A", "30.00", days_ago=3)
    world.add_case("500P", "001A", "ch_p", "30.00", dispute_type="service_outage")
    world.cases["500P"] = world.cases["500P"].model_copy(
        update={"subject": "Outage", "description": "We could not log in for 2 hours."}
    )
    approved = await rules.runner.start(case_id="500A")
    await rules.runner.resume(run_id=approved.run_id, decision=decision())
    outage = await rules.runner.start(case_id="500O")
    modified = ModifiedResolution(
        action=ResolutionAction.FULL_REFUND, amount=Decimal("80.00"), reason="long outage"
    )
    await rules.runner.resume(run_id=outage.run_id, decision=decision(modified=modified))
    short = await rules.runner.start(case_id="500P")
    await rules.runner.resume(run_id=short.run_id, decision=decision("rejected"))
    return rules


def settings_for(postgres_url: str, tmp_path: Path) -> Settings:
    return Settings(
        postgres_url=SecretStr(postgres_url),
        chroma_db_path=tmp_path / "chroma",
        data_dir=tmp_path / "data",
        openai_api_key=None,
        _env_file=None,
    )


def longer_middle_band(policies: Path) -> None:
    """The outage policy with the 6-12 hours band starting at 4 hours."""
    path = policies / "service_outage_compensation.docx"
    document = Document(str(path))
    for table in document.tables:
        for row in table.rows:
            for cell in row.cells:
                for label, new in (("1-6 hours", "1-4 hours"), ("6-12 hours", "4-12 hours")):
                    if cell.text == label:
                        cell.paragraphs[0].runs[0].text = new
    document.save(str(path))


async def test_replay_reports_a_policy_change_and_changes_nothing(
    resolved: Harness, postgres_url: str, tmp_path: Path
) -> None:
    settings = settings_for(postgres_url, tmp_path)
    before = await snapshot(resolved)
    assert before["workflow_states"][0] == 3

    current = await replay(since=date(2000, 1, 1), settings=settings)
    assert {r.case_id for r in current.runs} == {"500A", "500O", "500P"}
    assert current.changed == []  # same rules, same drafter: same drafts
    assert current.money_difference == 0
    # Reviewers overrode two of three drafts (a modification and a rejection).
    assert current.override_rates() == pytest.approx((2 / 3, 2 / 3))

    policies = tmp_path / "policies"
    write_policies(policies)
    longer_middle_band(policies)
    assert [
        b.label for b in outage_matrix_from_docx(policies / "service_outage_compensation.docx")
    ][1:3] == ["1-4 hours", "4-12 hours"]
    changed = await replay(since=date(2000, 1, 1), settings=settings, policies_dir=policies)
    [run] = changed.changed
    assert run.case_id == "500O"
    assert (run.drafted.action, run.drafted.amount) == ("account_credit", Decimal("20.00"))
    assert (run.replayed.action, run.replayed.amount) == ("full_refund", Decimal("80.00"))
    assert changed.money_difference == Decimal("60.00")
    # The replayed outage draft is what the reviewer decided: one override left of three.
    assert changed.override_rates() == pytest.approx((2 / 3, 1 / 3))
    write_csv(changed, tmp_path / "changes.csv")
    [row] = list(csv.DictReader((tmp_path / "changes.csv").open()))
    assert row["case_id"] == "500O" and row["difference"] == "60.00"

    assert await replay(since=date(2999, 1, 1), settings=settings) == type(current)([])
    assert await snapshot(resolved) == before


async def test_replay_as_a_command(resolved: Harness, postgres_url: str, tmp_path: Path) -> None:
    before = await snapshot(resolved)
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    longer_middle_band(policies)
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"} | {
        "POSTGRES_URL": postgres_url,
        "CHROMA_DB_PATH": str(tmp_path / "chroma"),
        "DATA_DIR": str(tmp_path / "data"),
    }
    command = [sys.executable, str(ROOT / "utils" / "replay.py"), "--since", "2000-01-01"]
    done = subprocess.run(
        [*command, "--policies", str(policies), "--csv", str(tmp_path / "out.csv")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    print(done.stdout)
    assert "replayed 3 resolved runs" in done.stdout
    assert "would change: 1" in done.stdout
    assert "account_credit 20.00 -> full_refund 80.00 USD (+60.00)" in done.stdout
    assert "money difference: +60.00" in done.stdout
    assert (tmp_path / "out.csv").read_text().count("\n") == 2
    assert await snapshot(resolved) == before

    bad = subprocess.run(
        [*command[:-1], "last tuesday"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: --since 'last tuesday' is not a date (YYYY-MM-DD)"
    ]


def test_configuration_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--since", "2026-01-01", "--policies", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip().endswith("is not a directory")
