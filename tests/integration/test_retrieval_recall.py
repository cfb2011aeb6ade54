"""Quality gate: recall@3 of search_policies on both labelled sets, same code, same weights.

Set A: the sandbox company's policies (tools/write_policies.py) and
tests/data/policy_queries.json. Set B: a second collection in another company's hand
(tests/data/policies_b/, bold-paragraph headings, numbered clauses, merged-cell tables,
appendices) and tests/data/policies_b_queries.json. B held out: more descriptions against
the second collection (tests/data/policies_b_holdout.json), written before the ranking of
issue 13 was chosen and used to choose none of it: its figure, lower than B's, is the
honest estimate of how the ranking does on descriptions nobody tuned for.
Deterministic: no timing. Also here: a case is never its own precedent.

The floors are the figures reached today (issue 13's target, 0.95 on A and B, is met), so
a change that loses ground fails.
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
FLOORS = {"A": 0.98, "B": 0.95, "B held out": 0.82}


def _items(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((DATA / name).read_text())["items"]
    return items


@pytest.fixture(scope="module")
def recalls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[float, list[str]]]:
    root = tmp_path_factory.mktemp("recall")
    write_policies(root / "policies")
    embedder = MiniLMEmbedder()
    sets = {
        "A": (root / "policies", {"A": _items("policy_queries.json")}),
        "B": (
            DATA / "policies_b",
            {
                "B": _items("policies_b_queries.json"),
                "B held out": _items("policies_b_holdout.json"),
            },
        ),
    }

    async def measure() -> dict[str, tuple[float, list[str]]]:
        out = {}
        for collection, (directory, labelled) in sets.items():
            client = chromadb.PersistentClient(
                path=str(root / f"db-{collection}"),
                settings=ChromaSettings(anonymized_telemetry=False),
            )
            store = ChromaPolicyStore(client, embedder, cache_size=0)
            await store.ingest_policies(directory=directory)
            for name, items in labelled.items():
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
    assert len(_items("policies_b_holdout.json")) >= 20


@pytest.mark.parametrize("name", list(FLOORS))
def test_recall_at_3_holds_its_floor(
    recalls: dict[str, tuple[float, list[str]]], name: str
) -> None:
    recall, missed = recalls[name]
    assert recall >= FLOORS[name], f"set {name}: recall@3 {recall:.3f}; missed: {missed}"


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
