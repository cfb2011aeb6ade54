"""Versioned policies: every ingested section version is kept by its content hash, a
proposal records the hashes it cited, and they stay readable after the policy changes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import chromadb
import httpx
import pytest
from chromadb.config import Settings as ChromaSettings
from docx import Document

from api.app import create_app
from api.deps import ApiServices
from services.drafting.prompt import PROMPT_VERSION
from services.knowledge.chroma_store import ChromaPolicyStore, policy_text_hash
from services.knowledge.embeddings import MiniLMEmbedder
from services.persistence.policy_versions import PolicyVersionStore
from services.review.reviewers import ReviewerKeys
from tests.integration.conftest import Harness
from tools.write_policies import write_policies


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    key = (await ReviewerKeys(harness.store.engine).create("alice")).key
    app = create_app(ApiServices(store=harness.store, backends={"crm": "fake"}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        yield client


def revise(directory: Path) -> None:
    """Change the wording of every body paragraph of every policy."""
    for path in directory.glob("*.docx"):
        document = Document(str(path))
        for paragraph in document.paragraphs:
            style = paragraph.style.name if paragraph.style is not None else ""
            if paragraph.text.strip() and not style.startswith(("Heading", "Title", "Subtitle")):
                paragraph.add_run(" (Revised.)")
        document.save(str(path))


async def test_proposal_hashes_stay_readable_after_the_policy_changes(
    harness: Harness, api: httpx.AsyncClient, embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    write_policies(policies)
    knowledge = ChromaPolicyStore(
        chromadb.PersistentClient(
            path=str(tmp_path / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
        ),
        embedder,
    )
    versions = PolicyVersionStore(harness.store.engine)
    await knowledge.ingest_policies(directory=policies)
    first = await knowledge.policy_sections()
    assert await versions.record(first) == len({(s.section, s.content_hash) for s in first})
    assert await versions.record(first) == 0  # recording again adds nothing

    run = harness.with_context(knowledge=knowledge)
    outcome = await run.runner.start(case_id="500A")
    row = await run.store.get_run(outcome.run_id)
    assert row is not None
    provenance = row["resolution_proposal"]["provenance"]
    assert provenance["prompt_version"] == PROMPT_VERSION
    assert provenance["drafter"] == row["resolution_proposal"]["drafter"]
    assert provenance["review_thresholds"]["dual_approval_min_amount"] == "500"
    cited = provenance["policies"]
    assert len(cited) == 3
    assert all(re.fullmatch(r"[0-9a-f]{64}", c["content_hash"]) for c in cited)
    assert {c["policy_version"] for c in cited} == {1}

    revise(policies)
    report = await knowledge.ingest_policies(directory=policies)
    assert report.updated and not report.added
    current = await knowledge.policy_sections()
    assert await versions.record(current) > 0
    current_hashes = {s.content_hash for s in current}
    assert {s.policy_version for s in current} == {2}
    for citation in cited:
        # The collection holds the current version only; the cited one is in PostgreSQL.
        assert citation["content_hash"] not in current_hashes
        [stored] = await versions.by_hash(citation["content_hash"])
        assert stored.policy_id == citation["policy_id"]
        assert stored.section == citation["section"]
        assert stored.version == 1
        assert policy_text_hash(stored.text) == citation["content_hash"]
        assert "(Revised.)" not in stored.text
        history = await versions.history(policy_id=stored.policy_id, section=stored.section)
        assert {v.version for v in history} == {1, 2}
        assert any("(Revised.)" in v.text for v in history)

    status = (await api.get(f"/workflow/{outcome.run_id}/status")).json()
    assert status["provenance"] == provenance
    await api.post("/login", data={"api_key": api.headers["Authorization"][7:]})
    page = await api.get(f"/review/{outcome.run_id}")
    assert page.status_code == 200
    assert 'id="provenance"' in page.text
    assert all(c["content_hash"][:12] in page.text for c in cited)
