"""Quality gate: recall@3 of search_policies on both labelled sets, same code, same weights.

Set A: the sandbox company's policies (tools/write_policies.py) and
tests/data/policy_queries.json. Set B: a second collection in another company's hand
(tests/data/policies_b/, bold-paragraph headings, numbered clauses, merged-cell tables,
appendices) and tests/data/policies_b_queries.json. Deterministic: no timing.
Also here: a case is never its own precedent.

The floors are the figures reached today, so a change that loses ground fails. The target
of issue 13 is 0.95 on both; neither is there yet (0.92, 0.61), and the xfail(strict) test
says so until it is, then fails to be removed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings

from services.knowledge.chroma_store import ChromaPolicyStore
from services.knowledge.embeddings import MiniLMEmbedder
from services.sandbox.resolutions import HISTORICAL_RESOLUTIONS
from tools.write_policies import write_policies

DATA = Path(__file__).resolve().parents[1] / "data"
TARGET = 0.95
FLOORS = {"A": 0.92, "B": 0.60}


def _items(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((DATA / name).read_text())["items"]
    return items


@pytest.fixture(scope="module")
def recalls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[float, list[str]]]:
    root = tmp_path_factory.mktemp("recall")
    write_policies(root / "policies")
    embedder = MiniLMEmbedder()
    sets = {
        "A": (root / "policies", _items("policy_queries.json")),
        "B": (DATA / "policies_b", _items("policies_b_queries.json")),
    }

    async def measure() -> dict[str, tuple[float, list[str]]]:
        out = {}
        for name, (directory, items) in sets.items():
            client = chromadb.PersistentClient(
                path=str(root / f"db-{name}"),
                settings=ChromaSettings(anonymized_telemetry=False),
            )
            store = ChromaPolicyStore(client, embedder, cache_size=0)
            await store.ingest_policies(directory=directory)
            missed = []
            for item in items:
                hits = await store.search_policies(query=item["query"], k=3)
                if (item["policy_id"], item["section"]) not in {
                    (h.policy_id, h.section) for h in hits
                }:
                    missed.append(item["query"])
            out[name] = (1 - len(missed) / len(items), missed)
        return out

    return asyncio.run(measure())


def test_labelled_sets_are_large_enough() -> None:
    assert len(_items("policy_queries.json")) >= 50
    assert len(_items("policies_b_queries.json")) >= 30


@pytest.mark.parametrize("name", ["A", "B"])
def test_recall_at_3_holds_its_floor(
    recalls: dict[str, tuple[float, list[str]]], name: str
) -> None:
    recall, missed = recalls[name]
    assert recall >= FLOORS[name], f"set {name}: recall@3 {recall:.3f}; missed: {missed}"


@pytest.mark.xfail(
    strict=True, reason="issue 13 target: A is at 0.92, B at 0.61 (see bench/retrieval.py)"
)
def test_recall_at_3_reaches_the_target_on_both_sets(
    recalls: dict[str, tuple[float, list[str]]],
) -> None:
    assert min(recall for recall, _ in recalls.values()) >= TARGET, {
        name: round(recall, 3) for name, (recall, _) in recalls.items()
    }


def test_a_case_never_retrieves_its_own_earlier_resolution(tmp_path: Path) -> None:
    client = chromadb.PersistentClient(
        path=str(tmp_path), settings=ChromaSettings(anonymized_telemetry=False)
    )
    store = ChromaPolicyStore(client, MiniLMEmbedder())
    own = HISTORICAL_RESOLUTIONS[0]

    async def ask(exclude: str | None) -> list[str]:
        hits = await store.similar_cases(
            query=own.description,
            dispute_type=own.dispute_type,
            amount=own.amount,
            customer_segment=own.customer_segment,
            k=3,
            exclude_case_id=exclude,
        )
        return [h.case_id for h in hits]

    async def scenario() -> tuple[list[str], list[str]]:
        await store.add_resolutions(records=HISTORICAL_RESOLUTIONS)
        return await ask(None), await ask(own.case_id)

    unfiltered, filtered = asyncio.run(scenario())
    assert unfiltered[0] == own.case_id  # its own text is the closest match there is
    assert own.case_id not in filtered
    assert len(filtered) == 3
    assert filtered[:2] == unfiltered[1:3]
