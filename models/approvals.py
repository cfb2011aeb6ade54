"""Maker-checker: a resolution's versions, and who approved exactly which one.

Version 1 is the drafted proposal. Every approval that comes with a modification makes the
next version, authored by that reviewer, who counts as one of its approvers. An approval
counts only for the version it was given on, so nobody's approval ever carries over to an
amount or action they were not shown. How many approvals a version needs is worked out
from that version (its amount against the dual-control threshold), never from the draft.

Reviewers are compared by identity (`reviewer_id`), so one person is one approver however
they decide (API key, dashboard session or e-mailed link). The system's auto-approval is
the identity `system`, and only ever approves the draft.

Everything here is a pure function of the proposal, the review plan and the decisions, as
the graph state and the run's row both hold them, so the router, the decision API and the
money step compute the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from models.domain import quantize_money

SYSTEM_IDENTITY = "system"


@dataclass(frozen=True)
class ResolutionVersion:
    """One version of the resolution: what would execute, and who put it there."""

    number: int
    action: str
    amount: Decimal
    currency: str
    reason: str
    author: str  # the drafter ("drafter:rules") or the reviewer who modified it
    author_identity: str | None  # None for the draft
    # A chargeback's evidence (text fields) as this version would submit it; None: none.
    evidence: dict[str, str] | None = None

    def describe(self) -> str:
        return f"v{self.number} {self.action} {self.amount} {self.currency.upper()}"

    def as_dict(self) -> dict[str, Any]:
        found = {
            "version": self.number,
            "action": self.action,
            "amount": str(self.amount),
            "currency": self.currency,
            "reason": self.reason,
            "author": self.author,
        }
        return found | ({"evidence": self.evidence} if self.evidence is not None else {})


@dataclass(frozen=True)
class ApprovalState:
    """Where the review of a resolution stands."""

    versions: tuple[ResolutionVersion, ...]
    required: int
    approvers: frozenset[str]  # identities that approved the current version
    approver_names: tuple[str, ...]
    rejected_by: str | None

    @property
    def current(self) -> ResolutionVersion:
        return self.versions[-1]

    @property
    def satisfied(self) -> bool:
        return self.rejected_by is None and len(self.approvers) >= self.required

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.current.number,
            "current": self.current.as_dict(),
            "versions": [v.as_dict() for v in self.versions],
            "required_approvals": self.required,
            "approved_by": list(self.approver_names),
            "approvals_missing": max(self.required - len(self.approvers), 0),
        }


def identity_of(decision: Mapping[str, Any]) -> str:
    """The identity a decision counts under: the reviewer's id, else the system."""
    reviewer_id = decision.get("reviewer_id")
    if reviewer_id is not None:
        return f"reviewer:{int(reviewer_id)}"
    name = str(decision.get("reviewer") or "")
    if name.casefold() == SYSTEM_IDENTITY:
        return SYSTEM_IDENTITY
    # Decisions recorded before reviewers had ids: the name is the only identity known.
    return f"name:{name.casefold()}"


def resolution_versions(
    proposal: Mapping[str, Any], decisions: Sequence[Mapping[str, Any]]
) -> list[ResolutionVersion]:
    """The draft, then one version per approval that modified the resolution."""
    currency = str(proposal.get("currency") or "usd")
    versions = [
        ResolutionVersion(
            number=1,
            action=str(proposal["action"]),
            amount=quantize_money(Decimal(str(proposal["amount"]))),
            currency=currency,
            reason=str(proposal.get("reason") or ""),
            author=f"drafter:{proposal.get('drafter') or 'unknown'}",
            author_identity=None,
            evidence=dict(proposal["evidence"]) if proposal.get("evidence") is not None else None,
        )
    ]
    for decision in decisions:
        modified = decision.get("modified_resolution")
        if decision.get("decision") == "approved" and modified:
            versions.append(
                ResolutionVersion(
                    number=len(versions) + 1,
                    action=str(modified["action"]),
                    amount=quantize_money(Decimal(str(modified["amount"]))),
                    currency=currency,
                    reason=str(modified.get("reason") or ""),
                    author=str(decision.get("reviewer")),
                    author_identity=identity_of(decision),
                    evidence=(
                        dict(modified["evidence"]) if modified.get("evidence") is not None else None
                    ),
                )
            )
    return versions


def required_approvals(version: ResolutionVersion, plan: Mapping[str, Any] | None) -> int:
    """Approvals a version needs: two above the dual-control threshold, else the plan's."""
    plan = plan or {}
    threshold = plan.get("dual_approval_min_amount")
    planned = int(plan.get("required_approvals") or 1)
    if threshold is None:
        return planned  # a plan made before thresholds were kept: the draft's figure
    return 2 if version.amount > Decimal(str(threshold)) else 1


def approval_state(
    proposal: Mapping[str, Any],
    plan: Mapping[str, Any] | None,
    decisions: Sequence[Mapping[str, Any]],
) -> ApprovalState:
    """Replay the decisions in order: versions made, approvals given per version."""
    versions = resolution_versions(proposal, decisions)
    by_version: dict[int, dict[str, str]] = {}
    rejected_by: str | None = None
    number = 1
    for decision in decisions:
        modified = decision.get("modified_resolution")
        if decision.get("decision") == "rejected":
            rejected_by = str(decision.get("reviewer"))
            continue
        if modified:
            number += 1  # the modifier approves the version they made
        else:
            # A decision names the version it was given on; old ones approved the current.
            given = decision.get("version")
            if given is not None and int(given) != number:
                continue  # an approval of a version that is no longer current counts for none
        by_version.setdefault(number, {})[identity_of(decision)] = str(decision.get("reviewer"))
    current = versions[-1]
    approved = by_version.get(current.number, {})
    if current.number > 1:
        approved.pop(SYSTEM_IDENTITY, None)  # the system only ever approves the draft
    return ApprovalState(
        versions=tuple(versions),
        required=required_approvals(current, plan),
        approvers=frozenset(approved),
        approver_names=tuple(approved.values()),
        rejected_by=rejected_by,
    )


__all__ = [
    "SYSTEM_IDENTITY",
    "ApprovalState",
    "ResolutionVersion",
    "approval_state",
    "identity_of",
    "required_approvals",
    "resolution_versions",
]
