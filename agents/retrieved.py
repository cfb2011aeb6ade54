"""What a run keeps of its retrieval, for the review page and the audit: bounded snippets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from models.domain import PolicyHit, PrecedentHit

# Retrieved text kept in the run for the review page: enough to read, bounded in size.
SNIPPET_CHARS = 600


def retrieved_view(
    policies: Sequence[PolicyHit], precedents: Sequence[PrecedentHit]
) -> dict[str, Any]:
    """The policies and past cases a draft was made from, as the run's `retrieved`."""
    return {
        "policies": [
            {
                "id": p.chunk_id,
                "policy_id": p.policy_id,
                "title": p.title,
                "section": p.section,
                "source_file": p.source_file,
                "score": p.score,
                "text": p.text[:SNIPPET_CHARS],
            }
            for p in policies
        ],
        "precedents": [
            {
                "case_id": p.case_id,
                "dispute_type": p.dispute_type,
                "amount": str(p.amount),
                "outcome": p.outcome,
                "score": p.score,
                "text": p.text[:SNIPPET_CHARS],
            }
            for p in precedents
        ],
    }
