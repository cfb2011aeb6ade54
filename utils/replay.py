"""What-if replay: re-draft past resolved disputes under the current (or given) policies.

    uv run python utils/replay.py --since 2026-03-01
    uv run python utils/replay.py --since 2026-03-01 --policies DIR --csv replay.csv

Each run since DATE that ended `completed` or `rejected` with a proposal (CRM disputes;
chargebacks are answered from evidence, not drafted by policy) is drafted again from its
stored facts (crm_data, billing_data, payment_data) by the drafter the settings select,
without the draft cache. Nothing is written: runs are read in a read-only transaction,
no money moves, and the knowledge base is only searched.

With --policies the policy sections come from DIR, ingested into a temporary Chroma
store (the configured collection is not touched; similar cases still come from it). The
offline rules drafter does not read the documents: it applies models/policy_rules.py.
So when DIR holds the outage compensation policy, its matrix table (duration bands,
segments, shares) replaces the rules' OUTAGE_MATRIX for the length of the replay:
"what if the policy said this".

It prints, and writes as CSV with --csv, the runs whose action or amount would change,
the total money difference (replayed minus drafted, refunds and credits alike), and two
override rates against what reviewers decided: how often they modified or rejected the
original drafts, and how often the replayed drafts would still differ from their decision.
Exit status: 0 done, 2 a configuration error (one line on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine  # noqa: E402

import models.policy_rules as policy_rules  # noqa: E402
import services.drafting.assessment as assessment  # noqa: E402
from agents.generate_resolution import MAX_POLICIES, MAX_PRECEDENTS  # noqa: E402
from models.domain import (  # noqa: E402
    BillingData,
    CRMData,
    DisputeType,
    PaymentData,
    PolicyHit,
    PrecedentHit,
    ResolutionProposal,
)
from models.policy_rules import MONEY_MOVING_ACTIONS, SEGMENTS, OutageBand  # noqa: E402
from models.tables import workflow_states  # noqa: E402
from services.drafting.context import DraftingContext, knowledge_query  # noqa: E402
from services.drafting.guarded import build_drafter  # noqa: E402
from services.drafting.protocols import ResolutionDrafter  # noqa: E402
from services.errors import PaymentsAgentError  # noqa: E402
from services.knowledge.policy_docs import (  # noqa: E402
    PolicyDocumentError,
    TableBlock,
    extract_document,
)
from services.knowledge.protocols import PolicyStore  # noqa: E402
from services.persistence.database import to_sqlalchemy_url  # noqa: E402
from services.settings import Settings  # noqa: E402

OUTAGE_POLICY_FILE = policy_rules.governing_policy(DisputeType.SERVICE_OUTAGE).file_name
# The module data the rules read the outage matrix from (by name, in both modules).
MATRIX_MODULES = (policy_rules, assessment)
MATRIX_NAME = "OUTAGE_MATRIX"
CSV_COLUMNS = (
    "run_id",
    "case_id",
    "dispute_type",
    "status",
    "drafted_action",
    "drafted_amount",
    "decided_action",
    "decided_amount",
    "replayed_action",
    "replayed_amount",
    "difference",
    "currency",
)


class ReplayConfigError(Exception):
    """The replay cannot start as asked (a bad date, a missing directory, ...)."""


@dataclass(frozen=True)
class Outcome:
    action: str
    amount: Decimal

    @property
    def money(self) -> Decimal:
        """What the outcome pays the customer (a denial or rejection pays nothing)."""
        return self.amount if self.action in {a.value for a in MONEY_MOVING_ACTIONS} else Decimal(0)


@dataclass(frozen=True)
class ReplayedRun:
    run_id: str
    case_id: str
    dispute_type: str
    status: str
    currency: str
    drafted: Outcome
    decided: Outcome | None  # None: no reviewer decided (auto-approved)
    overridden: bool  # a reviewer modified or rejected the draft
    replayed: Outcome

    @property
    def changed(self) -> bool:
        return self.replayed != self.drafted

    @property
    def difference(self) -> Decimal:
        return self.replayed.money - self.drafted.money

    def csv_row(self) -> dict[str, str]:
        decided = self.decided
        return {
            "run_id": self.run_id,
            "case_id": self.case_id,
            "dispute_type": self.dispute_type,
            "status": self.status,
            "drafted_action": self.drafted.action,
            "drafted_amount": str(self.drafted.amount),
            "decided_action": decided.action if decided else "",
            "decided_amount": str(decided.amount) if decided else "",
            "replayed_action": self.replayed.action,
            "replayed_amount": str(self.replayed.amount),
            "difference": str(self.difference),
            "currency": self.currency,
        }


@dataclass(frozen=True)
class ReplayReport:
    runs: list[ReplayedRun]

    @property
    def changed(self) -> list[ReplayedRun]:
        return [run for run in self.runs if run.changed]

    @property
    def money_difference(self) -> Decimal:
        return sum((run.difference for run in self.runs), Decimal(0))

    @property
    def reviewed(self) -> list[ReplayedRun]:
        return [run for run in self.runs if run.decided is not None]

    def override_rates(self) -> tuple[float, float] | None:
        """Share of reviewed runs whose draft the reviewer overrode, then the share whose
        replayed draft would still differ from the decision; None when none was reviewed."""
        reviewed = self.reviewed
        if not reviewed:
            return None
        before = sum(run.overridden for run in reviewed) / len(reviewed)
        after = sum(_disagrees(run.replayed, run.decided) for run in reviewed) / len(reviewed)
        return before, after


def _disagrees(replayed: Outcome, decided: Outcome | None) -> bool:
    if decided is None:
        return False
    if decided.action == "rejected":  # the reviewer paid nothing
        return replayed.money > 0
    return replayed != decided


# Reading the runs


def _decided(row: dict[str, Any]) -> tuple[Outcome | None, bool]:
    """What reviewers decided, and whether they overrode the draft."""
    decisions = [
        d for d in (row.get("human_review_data") or {}).get("decisions") or []
        if d.get("channel") != "system"
    ]  # fmt: skip
    if not decisions:
        return None, False
    if any(d.get("decision") == "rejected" for d in decisions):
        return Outcome("rejected", Decimal(0)), True
    proposal = row["resolution_proposal"]
    outcome = Outcome(str(proposal["action"]), Decimal(str(proposal["amount"])))
    overridden = False
    for decision in decisions:
        modified = decision.get("modified_resolution")
        if modified:
            outcome = Outcome(str(modified["action"]), Decimal(str(modified["amount"])))
            overridden = True
    return outcome, overridden


async def resolved_runs(engine: AsyncEngine, since: date) -> list[dict[str, Any]]:
    """Runs resolved since `since` with a proposal, oldest first, read in a read-only
    transaction."""
    start = datetime(since.year, since.month, since.day, tzinfo=UTC)
    statement = (
        select(workflow_states)
        .where(
            workflow_states.c.status.in_(("completed", "rejected")),
            workflow_states.c.kind == "dispute",
            workflow_states.c.resolution_proposal.is_not(None),
            func.coalesce(workflow_states.c.completed_at, workflow_states.c.created_at) >= start,
        )
        .order_by(workflow_states.c.created_at, workflow_states.c.id)
    )
    async with engine.connect() as conn:
        readonly = await conn.execution_options(postgresql_readonly=True)
        async with readonly.begin():
            return [dict(row) for row in (await readonly.execute(statement)).mappings()]


# Drafting again


def drafting_context(
    row: dict[str, Any], policies: list[PolicyHit], precedents: list[PrecedentHit]
) -> DraftingContext:
    """The context generate_resolution built for this run, from its stored facts."""
    return DraftingContext.of_dispute(
        str(row["run_id"]),
        CRMData.model_validate(row["crm_data"]),
        BillingData.model_validate(row["billing_data"]),
        PaymentData.model_validate(row["payment_data"]),
        policies=policies[:MAX_POLICIES],
        precedents=precedents[:MAX_PRECEDENTS],
    )


async def redraft(
    row: dict[str, Any], *, policies: PolicyStore, cases: PolicyStore, drafter: ResolutionDrafter
) -> ResolutionProposal:
    """Draft the run's dispute again, as generate_resolution would today."""
    crm = CRMData.model_validate(row["crm_data"])
    case = crm.case
    query = knowledge_query(case)  # what generate_resolution asks the knowledge base
    hits = await policies.search_policies(query=query, k=MAX_POLICIES)
    precedents = await cases.similar_cases(
        query=query,
        dispute_type=case.dispute_type,
        amount=case.amount,
        customer_segment=crm.account.segment,
        k=MAX_PRECEDENTS,
    )
    result = await drafter.draft(context=drafting_context(row, hits, precedents))
    return result.proposal


async def replay_runs(
    rows: Sequence[dict[str, Any]],
    *,
    policies: PolicyStore,
    cases: PolicyStore,
    drafter: ResolutionDrafter,
) -> ReplayReport:
    """Re-draft every run of `rows` and compare with its draft and its decision."""
    replayed: list[ReplayedRun] = []
    for row in rows:
        stored = row["resolution_proposal"]
        proposal = await redraft(row, policies=policies, cases=cases, drafter=drafter)
        decided, overridden = _decided(row)
        replayed.append(
            ReplayedRun(
                run_id=str(row["run_id"]),
                case_id=str(row["case_id"]),
                dispute_type=str(((row["crm_data"] or {}).get("case") or {}).get("dispute_type")),
                status=str(row["status"]),
                currency=str(stored.get("currency") or "usd"),
                drafted=Outcome(str(stored["action"]), Decimal(str(stored["amount"]))),
                decided=decided,
                overridden=overridden,
                replayed=Outcome(proposal.action.value, proposal.amount),
            )
        )
    return ReplayReport(replayed)


# Policies from a directory


_BAND = re.compile(
    r"^(?:under\s+(?P<under>[\d.]+)|over\s+(?P<over>[\d.]+)|(?P<low>[\d.]+)\s*[-\u2013]\s*(?P<high>[\d.]+))\s+hours?$",
    re.IGNORECASE,
)


def outage_matrix_from_docx(path: Path) -> tuple[OutageBand, ...]:
    """The outage compensation matrix as the policy document states it."""
    try:
        document = extract_document(path)
    except PolicyDocumentError as exc:
        raise ReplayConfigError(f"{path}: {exc.reason}") from None
    table = next(
        (
            b for b in document.blocks
            if isinstance(b, TableBlock) and b.header and "duration" in b.header[0].lower()
        ),
        None,
    )  # fmt: skip
    if table is None:
        raise ReplayConfigError(f"{path}: no outage matrix table (Outage duration | ...)")
    bands: dict[str, tuple[Decimal, Decimal | None, dict[str, Decimal]]] = {}
    for label, segment, *rest in table.rows:
        match = _BAND.match(label.strip())
        if match is None or not rest:
            raise ReplayConfigError(f"{path}: unreadable outage matrix row {label!r}")
        if match["under"]:
            low, high = Decimal(0), Decimal(match["under"])
        elif match["over"]:
            low, high = Decimal(match["over"]), None
        else:
            low, high = Decimal(match["low"]), Decimal(match["high"])
        percent = re.search(r"([\d.]+)\s*%", rest[-1])
        share = Decimal(percent[1]) / 100 if percent else Decimal(0)
        bands.setdefault(label, (low, high, {}))[2][segment.strip().lower()] = share
    matrix = tuple(
        OutageBand(label, low, high, shares)
        for label, (low, high, shares) in sorted(bands.items(), key=lambda item: item[1][0])
    )
    missing = [s for band in matrix for s in SEGMENTS if s not in band.share]
    if missing or not matrix or matrix[0].min_hours != 0 or matrix[-1].max_hours is not None:
        raise ReplayConfigError(f"{path}: the outage matrix must cover every duration and segment")
    return matrix


@contextlib.contextmanager
def rules_outage_matrix(matrix: tuple[OutageBand, ...] | None) -> Iterator[None]:
    """Apply `matrix` as the rules' outage matrix for the replay, then restore it.

    The rules read the matrix as module data (models/policy_rules.py, imported by name in
    services/drafting/assessment.py); this process only replays, so swapping it is safe.
    """
    if matrix is None:
        yield
        return
    saved = [getattr(module, MATRIX_NAME) for module in MATRIX_MODULES]
    for module in MATRIX_MODULES:
        setattr(module, MATRIX_NAME, matrix)
    try:
        yield
    finally:
        for module, previous in zip(MATRIX_MODULES, saved, strict=True):
            setattr(module, MATRIX_NAME, previous)


# Output


def print_report(report: ReplayReport, *, out: Any = None) -> None:
    out = out or sys.stdout
    print(f"replayed {len(report.runs)} resolved runs", file=out)
    changed = report.changed
    print(f"would change: {len(changed)}", file=out)
    for run in changed:
        print(
            f"  {run.case_id:12} {run.dispute_type:26} {run.drafted.action} {run.drafted.amount}"
            f" -> {run.replayed.action} {run.replayed.amount} {run.currency.upper()}"
            f" ({run.difference:+})",
            file=out,
        )
    print(f"money difference: {report.money_difference:+}", file=out)
    rates = report.override_rates()
    if rates is None:
        print("override rate: no run was decided by a reviewer", file=out)
    else:
        print(
            f"override rate ({len(report.reviewed)} reviewed): drafts {rates[0]:.0%}, "
            f"replayed drafts {rates[1]:.0%}",
            file=out,
        )


def write_csv(report: ReplayReport, path: Path) -> None:
    """The runs whose action or amount would change, one row each."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for run in report.changed:
            writer.writerow(run.csv_row())


# Entry points


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="replay.py",
        description="Re-draft resolved disputes under the current or given policies; "
        "change nothing.",
    )
    parser.add_argument("--since", required=True, metavar="DATE", help="YYYY-MM-DD (UTC)")
    parser.add_argument("--policies", type=Path, metavar="DIR", help="policy .docx directory")
    parser.add_argument("--csv", type=Path, metavar="PATH", help="write the changes as CSV")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace, settings: Settings) -> date:
    """The start date; raise ReplayConfigError on anything that cannot work."""
    try:
        since = date.fromisoformat(args.since)
    except ValueError:
        raise ReplayConfigError(f"--since {args.since!r} is not a date (YYYY-MM-DD)") from None
    if args.policies is not None and not args.policies.is_dir():
        raise ReplayConfigError(f"--policies {args.policies} is not a directory")
    if args.csv is not None and not args.csv.parent.is_dir():
        raise ReplayConfigError(f"--csv {args.csv}: directory {args.csv.parent} does not exist")
    if settings.postgres_url is None:
        raise ReplayConfigError("POSTGRES_URL is not set: replay reads the runs recorded there")
    return since


async def replay(
    *,
    since: date,
    settings: Settings,
    policies_dir: Path | None = None,
    drafter: ResolutionDrafter | None = None,
) -> ReplayReport:
    """Re-draft the runs resolved since `since`; change nothing anywhere."""
    # Imported here: chromadb takes about 2 s to load.
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from services.knowledge.chroma_store import ChromaPolicyStore, open_policy_store
    from services.knowledge.embeddings import MiniLMEmbedder

    assert settings.postgres_url is not None
    matrix = None
    if policies_dir is not None and (policies_dir / OUTAGE_POLICY_FILE).is_file():
        matrix = outage_matrix_from_docx(policies_dir / OUTAGE_POLICY_FILE)
    engine = create_async_engine(to_sqlalchemy_url(settings.postgres_url.get_secret_value()))
    try:
        rows = await resolved_runs(engine, since)
    finally:
        await engine.dispose()
    # No engine: the drafter runs without the draft cache.
    drafter = drafter or build_drafter(settings, engine=None)
    embedder = MiniLMEmbedder()
    cases = await asyncio.to_thread(open_policy_store, settings, embedder=embedder)
    with contextlib.ExitStack() as stack:
        policies: PolicyStore = cases
        if policies_dir is not None:
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="replay-chroma-"))
            client = chromadb.PersistentClient(
                path=scratch, settings=ChromaSettings(anonymized_telemetry=False)
            )
            given = ChromaPolicyStore(client, embedder, backend="replay")
            await given.ingest_policies(directory=policies_dir)
            policies = given
        with rules_outage_matrix(matrix):
            return await replay_runs(rows, policies=policies, cases=cases, drafter=drafter)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = Settings()
        since = check_args(args, settings)
        report = asyncio.run(replay(since=since, settings=settings, policies_dir=args.policies))
    except ReplayConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PaymentsAgentError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print_report(report)
    if args.csv is not None:
        write_csv(report, args.csv)
        print(f"wrote {len(report.changed)} changed runs to {args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
