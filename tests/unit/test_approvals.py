"""Maker-checker as a pure function: versions, and approvals bound to exactly one version."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from models.approvals import approval_state, identity_of, resolution_versions

DRAFT = {"action": "full_refund", "amount": "200.00", "currency": "usd", "drafter": "rules"}
PLAN = {"required_approvals": 1, "dual_approval_min_amount": "500"}


def approve(
    rid: int, name: str, *, version: int | None = None, to: str | None = None
) -> dict[str, Any]:
    decision: dict[str, Any] = {"decision": "approved", "reviewer": name, "reviewer_id": rid}
    if version is not None:
        decision["version"] = version
    if to is not None:
        decision["modified_resolution"] = {"action": "partial_refund", "amount": to, "reason": "r"}
    return decision


def test_the_draft_needs_what_its_amount_needs() -> None:
    state = approval_state(DRAFT, PLAN, [])
    assert (state.current.number, state.required, state.satisfied) == (1, 1, False)
    assert approval_state(DRAFT, PLAN, [approve(1, "alice", version=1)]).satisfied


def test_a_modification_is_a_new_version_its_author_approves() -> None:
    decisions = [approve(1, "alice", to="2450.00")]
    [draft, raised] = resolution_versions(DRAFT, decisions)
    assert (draft.amount, raised.amount, raised.author) == (
        Decimal("200.00"),
        Decimal("2450.00"),
        "alice",
    )
    state = approval_state(DRAFT, PLAN, decisions)
    # 2,450 is above the dual-control threshold: two approvals of version 2, alice is one.
    assert (state.current.number, state.required, state.approver_names) == (2, 2, ("alice",))
    assert not state.satisfied
    state = approval_state(DRAFT, PLAN, [*decisions, approve(2, "bob", version=2)])
    assert state.satisfied and set(state.approver_names) == {"alice", "bob"}


def test_an_approval_of_an_older_version_counts_for_none() -> None:
    decisions = [approve(1, "alice", to="900.00"), approve(2, "bob", version=1)]
    state = approval_state(DRAFT, PLAN, decisions)
    assert state.approver_names == ("alice",) and not state.satisfied


def test_a_lower_amount_can_need_fewer_approvals_than_the_draft() -> None:
    big = {**DRAFT, "amount": "2450.00"}
    plan = {"required_approvals": 2, "dual_approval_min_amount": "500"}
    state = approval_state(big, plan, [approve(1, "alice", to="100.00")])
    assert (state.current.amount, state.required, state.satisfied) == (Decimal("100.00"), 1, True)


def test_the_same_person_counts_once_whatever_name_they_used() -> None:
    decisions = [approve(3, "carol", version=1), approve(3, "carol@example.com", version=1)]
    big = {**DRAFT, "amount": "1188.00"}
    state = approval_state(big, PLAN, decisions)
    assert (len(state.approvers), state.required, state.satisfied) == (1, 2, False)


def test_the_system_only_ever_approves_the_draft() -> None:
    system = {"decision": "approved", "reviewer": "system", "reviewer_id": None, "version": 1}
    assert identity_of(system) == "system"
    assert approval_state(DRAFT, PLAN, [system]).satisfied
    modified = [system, approve(1, "alice", to="150.00")]
    state = approval_state(DRAFT, PLAN, modified)
    assert state.approver_names == ("alice",)


def test_a_rejection_stops_everything() -> None:
    decisions = [approve(1, "alice"), {"decision": "rejected", "reviewer": "bob", "reviewer_id": 2}]
    state = approval_state(DRAFT, PLAN, decisions)
    assert state.rejected_by == "bob" and not state.satisfied


def test_a_plan_without_a_threshold_keeps_its_own_count() -> None:
    old_plan = {"required_approvals": 2}
    state = approval_state(DRAFT, old_plan, [approve(1, "alice")])
    assert (state.required, state.satisfied) == (2, False)
