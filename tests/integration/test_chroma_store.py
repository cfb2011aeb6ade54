"""ChromaPolicyStore on a real embedded Chroma (temporary directory) with the real model."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import chromadb
import pytest
from chromadb.api import ClientAPI
from chromadb.config import Settings as ChromaSettings

from models.domain import PrecedentHit, ResolutionRecord
from services.knowledge.chroma_store import (
    POLICY_COLLECTION,
    ChromaPolicyStore,
    _LexicalIndex,
    _ResultCache,
    amount_closeness,
    open_policy_store,
)
from services.knowledge.embeddings import MiniLMEmbedder
from services.knowledge.protocols import PolicyStore
from services.sandbox.resolutions import HISTORICAL_RESOLUTIONS
from services.settings import Settings
from tools.write_policies import write_policies

ROOT = Path(__file__).resolve().parents[2]
LABELLED = json.loads((ROOT / "tests" / "data" / "policy_queries.json").read_text())["items"]
BROKEN = ROOT / "tests" / "data" / "broken_policies"


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    embedder = MiniLMEmbedder()
    embedder.warm_up()
    return embedder


def _client(path: Path) -> ClientAPI:
    return chromadb.PersistentClient(
        path=str(path), settings=ChromaSettings(anonymized_telemetry=False)
    )


@pytest.fixture(scope="module")
def seeded(
    embedder: MiniLMEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChromaPolicyStore]:
    """A store with the default policies and the historical resolutions."""
    root = tmp_path_factory.mktemp("seeded")
    write_policies(root / "policies")
    store = ChromaPolicyStore(_client(root / "db"), embedder)

    async def seed() -> None:
        await store.ingest_policies(directory=root / "policies")
        await store.add_resolutions(records=HISTORICAL_RESOLUTIONS)

    asyncio.run(seed())
    yield store


def _record(case_id: str, **changes: object) -> ResolutionRecord:
    base = ResolutionRecord(
        case_id=case_id,
        dispute_type="service_outage",
        description="Dashboard unavailable for 9 hours during the regional incident.",
        resolution="Full refund of the March charge.",
        reasoning="6-12 hours band, premium segment: full refund.",
        amount=Decimal("99.00"),
        customer_segment="premium",
        outcome="full_refund",
    )
    return base.model_copy(update=changes)


def test_store_satisfies_the_protocol(seeded: ChromaPolicyStore) -> None:
    store: PolicyStore = seeded
    assert store.backend == "chroma"


async def test_recall_at_3_on_the_labelled_set(seeded: ChromaPolicyStore) -> None:
    assert len(LABELLED) >= 25
    found = []
    for item in LABELLED:
        hits = await seeded.search_policies(query=item["query"], k=3)
        found.append(
            (item["policy_id"], item["section"]) in {(h.policy_id, h.section) for h in hits}
        )
    recall = sum(found) / len(found)
    missed = [item["query"] for item, ok in zip(LABELLED, found, strict=True) if not ok]
    assert recall >= 0.9, f"recall@3 {recall:.2f}; missed: {missed}"


async def test_policy_hits_are_three_distinct_sections_with_scores(
    seeded: ChromaPolicyStore,
) -> None:
    hits = await seeded.search_policies(
        query="Premium customer, the platform was down for 8 hours, wants a refund", k=3
    )
    assert len(hits) == 3
    assert len({(h.source_file, h.section) for h in hits}) == 3
    assert all(0.0 <= h.score <= 1.0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    outage = next(h for h in hits if h.policy_id == "POL-OUT-002")
    assert outage.source_file == "service_outage_compensation.docx"
    assert outage.title == "Service Outage Compensation Policy"


async def test_outage_matrix_row_is_retrieved_with_its_header(seeded: ChromaPolicyStore) -> None:
    hits = await seeded.search_policies(
        query="outage 6-12 hours premium customer full refund compensation matrix", k=3
    )
    table = next(h for h in hits if "6-12 hours | Premium | Full refund" in h.text)
    assert "Outage duration | Customer segment | Compensation | Amount" in table.text


async def test_similar_cases_rank_type_segment_and_amount(seeded: ChromaPolicyStore) -> None:
    hits = await seeded.similar_cases(
        query="Our dashboard was down for nine hours and we are on the premium plan",
        dispute_type="service_outage",
        amount=Decimal("99.00"),
        customer_segment="premium",
        k=3,
    )
    assert len(hits) == 3
    assert hits[0].case_id == "HIST-2001"  # 8-hour premium outage, $99, full refund
    assert all(h.dispute_type == "service_outage" for h in hits)
    assert all(0.0 <= h.score <= 1.0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert "Resolution:" in hits[0].text and hits[0].outcome == "full_refund"
    assert hits[0].amount == Decimal("99.00")


async def test_same_text_ranks_matching_segment_and_amount_first(
    embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    store = ChromaPolicyStore(_client(tmp_path), embedder)
    await store.add_resolutions(
        records=[
            _record("A-enterprise", customer_segment="enterprise", amount=Decimal("2400.00")),
            _record("B-premium", customer_segment="premium", amount=Decimal("99.00")),
            _record("C-other-type", dispute_type="duplicate_charge"),
        ]
    )
    hits = await store.similar_cases(
        query="Dashboard unavailable for 9 hours during the regional incident.",
        dispute_type="service_outage",
        amount=Decimal("95.00"),
        customer_segment="premium",
        k=3,
    )
    assert [h.case_id for h in hits] == ["B-premium", "A-enterprise", "C-other-type"]


async def test_add_resolution_upserts_and_invalidates_the_cache(
    embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    store = ChromaPolicyStore(_client(tmp_path), embedder)
    await store.add_resolutions(records=HISTORICAL_RESOLUTIONS)

    async def ask() -> list[PrecedentHit]:
        return await store.similar_cases(
            query="Charged for an extra seat that was removed before renewal",
            dispute_type="incorrect_amount",
            amount=Decimal("30.00"),
            customer_segment="standard",
            k=3,
        )

    before = await ask()
    assert "LIVE-1" not in {h.case_id for h in before}

    record = _record(
        "LIVE-1",
        dispute_type="incorrect_amount",
        description="Charged for an extra seat that was removed before renewal.",
        customer_segment="standard",
        amount=Decimal("30.00"),
        outcome="partial_refund",
    )
    await store.add_resolution(record=record)
    after = await ask()
    assert after[0].case_id == "LIVE-1"  # not the cached answer from before

    await store.add_resolution(record=record.model_copy(update={"outcome": "account_credit"}))
    again = await ask()
    assert again[0].outcome == "account_credit"
    counts = await store.counts()
    assert counts["dispute_resolutions"] == len(HISTORICAL_RESOLUTIONS) + 1


async def test_reseeding_never_duplicates(embedder: MiniLMEmbedder, tmp_path: Path) -> None:
    store = ChromaPolicyStore(_client(tmp_path), embedder)
    assert (
        await store.add_resolutions(records=HISTORICAL_RESOLUTIONS)
        == len(HISTORICAL_RESOLUTIONS)
        >= 30
    )
    await store.add_resolutions(records=HISTORICAL_RESOLUTIONS)
    assert (await store.counts())["dispute_resolutions"] == len(HISTORICAL_RESOLUTIONS)


async def test_ingestion_lifecycle(embedder: MiniLMEmbedder, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    write_policies(policies)
    store = ChromaPolicyStore(_client(tmp_path / "db"), embedder)
    collection = store._collection(POLICY_COLLECTION)

    first = await store.ingest_policies(directory=policies)
    assert len(first.added) == 6 and not first.skipped
    ids_before = set(collection.get()["ids"])
    assert len(ids_before) == first.chunks_written

    unchanged = await store.ingest_policies(directory=policies)
    assert sorted(unchanged.unchanged) == sorted(first.added)
    assert unchanged.chunks_written == 0 and not unchanged.changed
    assert set(collection.get()["ids"]) == ids_before

    # A changed document replaces its chunks; the others are left alone.
    write_policies(tmp_path / "v2", dispute_window_days=90)
    shutil.copy(tmp_path / "v2" / "refund_policy.docx", policies / "refund_policy.docx")
    changed = await store.ingest_policies(directory=policies)
    assert changed.updated == ["refund_policy.docx"]
    refund = collection.get(where={"source_file": "refund_policy.docx"})
    assert any("90 days" in doc for doc in refund["documents"] or [])
    assert not any("120 days" in doc for doc in refund["documents"] or [])
    hits = await store.search_policies(query="how many days does a customer have to dispute")
    assert any("90 days" in h.text for h in hits)  # the policy cache was invalidated

    # Broken and foreign files are named and skipped; the rest stays ingested.
    for path in BROKEN.iterdir():
        shutil.copy(path, policies / path.name)
    with_broken = await store.ingest_policies(directory=policies)
    assert {s.source_file for s in with_broken.skipped} == {p.name for p in BROKEN.iterdir()}
    assert len(with_broken.unchanged) == 6

    # A document removed from the directory leaves the store.
    (policies / "approval_authority.docx").unlink()
    removed = await store.ingest_policies(directory=policies)
    assert removed.removed == ["approval_authority.docx"]
    assert not collection.get(where={"source_file": "approval_authority.docx"})["ids"]


async def test_open_policy_store_persists_and_keeps_telemetry_off(
    embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    settings = Settings(_env_file=None, chroma_db_path=tmp_path / "chroma", chroma_url=None)
    store = open_policy_store(settings, embedder=embedder)
    assert store.backend == "chroma-embedded"
    assert store._client.get_settings().anonymized_telemetry is False
    await store.add_resolution(record=_record("PERSISTED-1"))

    reopened = ChromaPolicyStore(_client(tmp_path / "chroma"), embedder)
    assert (await reopened.counts())["dispute_resolutions"] == 1

    await reopened.reset()
    assert await reopened.counts() == {"company_policies": 0, "dispute_resolutions": 0}


async def test_reset_by_another_process_is_survived(
    embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    worker = ChromaPolicyStore(_client(tmp_path), embedder, cache_size=0)
    operator = ChromaPolicyStore(_client(tmp_path), embedder)
    await worker.add_resolution(record=_record("BEFORE-RESET"))
    await operator.reset()
    await operator.add_resolution(record=_record("AFTER-RESET"))

    hits = await worker.similar_cases(
        query="Dashboard unavailable for 9 hours",
        dispute_type="service_outage",
        amount=Decimal("99.00"),
        customer_segment="premium",
    )
    assert [h.case_id for h in hits] == ["AFTER-RESET"]


async def test_empty_store_returns_nothing(embedder: MiniLMEmbedder, tmp_path: Path) -> None:
    store = ChromaPolicyStore(_client(tmp_path), embedder)
    assert await store.search_policies(query="refund") == []
    cases = await store.similar_cases(
        query="refund", dispute_type="x", amount=Decimal("1"), customer_segment="standard"
    )
    assert cases == []


def test_result_cache_is_bounded_expires_and_ignores_stale_writes() -> None:
    now = [0.0]
    cache: _ResultCache[int] = _ResultCache(maxsize=2, ttl_seconds=10, clock=lambda: now[0])
    _, generation = cache.get("a")
    cache.put("a", 1, generation)
    cache.put("b", 2, generation)
    assert cache.get("a")[0] == 1  # a is now the most recent
    cache.put("c", 3, generation)
    assert [cache.get(key)[0] for key in "abc"] == [1, None, 3]
    assert len(cache) == 2

    _, started = cache.get("d")
    cache.clear()  # e.g. a resolution was added while a query was running
    cache.put("d", 4, started)
    assert cache.get("d")[0] is None

    _, generation = cache.get("e")
    cache.put("e", 5, generation)
    now[0] = 11.0
    assert cache.get("e")[0] is None

    disabled: _ResultCache[int] = _ResultCache(maxsize=0, ttl_seconds=10, clock=lambda: now[0])
    disabled.put("a", 1, disabled.get("a")[1])
    assert disabled.get("a")[0] is None


def test_keyword_scores_match_word_forms_and_concepts_as_a_share_of_the_query() -> None:
    index = _LexicalIndex(
        ["duplicate", "cancellation", "outage"],
        [
            "Duplicate charges are refunded in full.",
            "A cancelled subscription is not charged again.",
            "Outage credits depend on the customer segment.",
        ],
    )
    scores = index.scores("Charged after cancelling")
    assert scores.keys() == {"duplicate", "cancellation"}  # charges/charged, cancelled/-ing
    assert scores["cancellation"] > scores["duplicate"] > 0.0
    # "billed twice" shares no word with "Duplicate charges": the concept joins them.
    assert "duplicate" in index.scores("I was billed twice")
    # Not scaled to the best match: a chunk holding one word of a query scores little
    # even when no chunk holds more.
    assert 0.0 < max(index.scores("customer wants a partial refund of the fee").values()) < 0.3
    full = index.scores("outage credits customer segment")
    assert 0.3 < full["outage"] < 1.0
    assert index.scores("what is this about") == {}  # stopwords only
    assert _LexicalIndex([], []).scores("refund") == {}


async def test_a_duration_finds_the_table_row_whose_band_holds_it(
    seeded: ChromaPolicyStore,
) -> None:
    hits = await seeded.search_policies(
        query="Your platform was down for nine hours yesterday; we are a premium customer", k=3
    )
    matrix = next(h for h in hits if h.section.startswith("5. Compensation by outage"))
    assert "6-12 hours | Premium | Full refund" in matrix.text  # nine hours: the 6-12 band


def test_amount_closeness() -> None:
    assert amount_closeness(Decimal("99"), Decimal("99")) == 1.0
    assert 0.9 < amount_closeness(Decimal("99"), Decimal("109")) < 1.0
    assert amount_closeness(Decimal("10"), Decimal("2000")) == 0.0


def _seed_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CHROMA_URL", "POLICIES_DIR")}
    env.update(CHROMA_DB_PATH=str(tmp_path / "db"), POLICIES_DIR=str(tmp_path / "policies"))
    return subprocess.run(
        [sys.executable, str(ROOT / "utils" / "seed_vector_db.py"), *args],
        cwd=tmp_path,  # no .env here
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_seed_vector_db_cli(tmp_path: Path) -> None:
    missing = _seed_cli(tmp_path)
    assert missing.returncode == 2 and "--create-policies-dir" in missing.stderr

    created = _seed_cli(tmp_path, "--create-policies-dir")
    assert created.returncode == 0, created.stderr
    assert "wrote 6 default policies" in created.stdout
    assert created.stdout.count("  added ") == 6
    assert f"dispute_resolutions: {len(HISTORICAL_RESOLUTIONS)}" in created.stdout

    shutil.copy(BROKEN / "truncated.docx", tmp_path / "policies" / "truncated.docx")
    again = _seed_cli(tmp_path)
    assert again.returncode == 1  # an unreadable .docx is an error, but the rest stays
    assert again.stdout.count("  unchanged ") == 6
    assert "skipped   truncated.docx: not a Word .docx package" in again.stdout

    query = _seed_cli(tmp_path, "--query", "I cancelled but was charged again", "--json")
    assert query.returncode == 0, query.stderr
    hits = json.loads(query.stdout)
    assert len(hits) == 3
    assert {"source_file", "section", "score"} <= hits[0].keys()
    assert hits[0]["source_file"] == "cancellation_and_proration.docx"

    reset = _seed_cli(tmp_path, "--reset", "--skip-precedents")
    assert "collections deleted" in reset.stdout
    assert "dispute_resolutions: 0" in reset.stdout
