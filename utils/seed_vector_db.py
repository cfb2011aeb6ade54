"""Ingest the policy documents and the historical resolutions into ChromaDB.

    uv run python utils/seed_vector_db.py                 ingest policies/, seed precedents
    uv run python utils/seed_vector_db.py --reset         drop both collections first
    uv run python utils/seed_vector_db.py --create-policies-dir
                                                          write the default policies first
    uv run python utils/seed_vector_db.py --policies-dir DIR
    uv run python utils/seed_vector_db.py --query "TEXT" [--json]
                                                          the 3 policy sections the drafter sees

Re-running is safe: unchanged documents are skipped, a changed document replaces its old
chunks, precedents are upserted by case id. Unreadable or non-.docx files are reported by
name and skipped; the exit status is 1 when a .docx could not be read, else 0.
The store is the one the settings select: CHROMA_URL (a Chroma server) or CHROMA_DB_PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.errors import PaymentsAgentError  # noqa: E402
from services.knowledge.chroma_store import (  # noqa: E402
    ChromaPolicyStore,
    IngestReport,
    open_policy_store,
)
from services.persistence.database import (  # noqa: E402
    create_engine,
    open_database,
    upgrade_schema,
)
from services.persistence.policy_versions import PolicyVersionStore  # noqa: E402
from services.sandbox.resolutions import HISTORICAL_RESOLUTIONS  # noqa: E402
from services.settings import Settings  # noqa: E402
from tools.write_policies import write_policies  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="seed_vector_db.py",
        description="Ingest policies/*.docx and the historical resolutions into ChromaDB.",
    )
    parser.add_argument("--reset", action="store_true", help="delete both collections first")
    parser.add_argument(
        "--create-policies-dir",
        action="store_true",
        help="create the policies directory and write the default policies into it "
        "(existing files are kept)",
    )
    parser.add_argument(
        "--policies-dir",
        type=Path,
        default=None,
        help="directory of .docx policies (default: the POLICIES_DIR setting)",
    )
    parser.add_argument("--query", metavar="TEXT", help="print the 3 best policy sections")
    parser.add_argument("--json", action="store_true", help="with --query: print JSON")
    parser.add_argument(
        "--skip-precedents", action="store_true", help="do not seed historical resolutions"
    )
    return parser.parse_args(argv)


def print_report(report: IngestReport, directory: Path) -> None:
    print(f"policies from {directory}:")
    for label, names in (
        ("added", report.added),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
        ("removed", report.removed),
    ):
        for name in names:
            print(f"  {label:9} {name}")
    for skipped in report.skipped:
        print(f"  skipped   {skipped.source_file}: {skipped.reason}")
    print(f"  {report.chunks_written} chunks written")


async def show_query(store: ChromaPolicyStore, text: str, *, as_json: bool) -> None:
    hits = await store.search_policies(query=text, k=3)
    if as_json:
        print(json.dumps([hit.model_dump(mode="json") for hit in hits], indent=2))
        return
    if not hits:
        print("no policy sections stored; run without --query to ingest them first")
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank}. {hit.score:.3f}  {hit.source_file}  {hit.policy_id}  {hit.section}")
        body = hit.text.split("\n", 1)[-1]
        for line in body.splitlines():
            print(f"     {line}")


async def record_policy_versions(store: ChromaPolicyStore, settings: Settings) -> None:
    """Keep every ingested section version in PostgreSQL (policy_versions), for audit."""
    if settings.postgres_url is None:
        print("policy versions: recorded at the next start-up (POSTGRES_URL not set)")
        return
    database = open_database(settings.postgres_url.get_secret_value(), settings.data_dir)
    await asyncio.to_thread(upgrade_schema, database.url)
    engine = create_engine(database)
    try:
        added = await PolicyVersionStore(engine).record(await store.policy_sections())
    finally:
        await engine.dispose()
    print(f"policy versions: {added} new recorded")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    directory: Path = args.policies_dir or settings.policies_dir
    store = await asyncio.to_thread(open_policy_store, settings)
    # With --json, stdout carries only the JSON document.
    print(f"knowledge store: {store.backend}", file=sys.stderr if args.json else sys.stdout)
    if args.query is not None:
        await show_query(store, args.query, as_json=args.json)
        return 0
    if args.reset:
        await store.reset()
        print("collections deleted")
    if args.create_policies_dir:
        written = write_policies(
            directory, overwrite=False, dispute_window_days=settings.dispute_window_days
        )
        print(f"{directory}: wrote {len(written)} default policies")
        for path in written:
            print(f"  {path.name}")
    report = await store.ingest_policies(directory=directory)
    print_report(report, directory)
    await record_policy_versions(store, settings)
    if not args.skip_precedents:
        seeded = await store.add_resolutions(records=HISTORICAL_RESOLUTIONS)
        print(f"historical resolutions: {seeded} upserted")
    counts = await store.counts()
    print(", ".join(f"{name}: {count}" for name, count in counts.items()))
    unreadable = [
        s
        for s in report.skipped
        if s.source_file.lower().endswith(".docx") and not s.source_file.startswith("~$")
    ]
    return 1 if unreadable else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings()
    try:
        return asyncio.run(run(args, settings))
    except PaymentsAgentError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if "policies directory not found" in exc.message:
            print("hint: --create-policies-dir writes the default policies", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
