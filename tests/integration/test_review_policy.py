"""The review rules through the API: auto-approval, risk escalation and dual control."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, cast

import httpx
import pytest

from api.app import create_app
from api.deps import ApiServices
from models.domain import ResolutionAction
from services.review.reviewers import ReviewerKeys
from tests.fakes.services import FakeDrafter
from tests.integration.conftest import Harness
from workflows.context import ReviewRules

AUTO = ReviewRules(auto_approve_max_amount=Decimal("100"), auto_approve_min_confidence=0.9)


@pytest.fixture
async def keys(harness: Harness) -> dict[str, dict[str, str]]:
    reviewer_keys = ReviewerKeys(harness.store.engine)
    return {
        name: {"Authorization": f"Bearer {(await reviewer_keys.create(name)).key}"}
        for name in ("alice", "bob")
    }


@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ApiServices(store=harness.store, backends={}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def apply_decisions(harness: Harness, postgres_url: str) -> int:
    return await harness.driver.apply_pending_decisions()


async def decide(
    api: httpx.AsyncClient, headers: dict[str, str], run_id: str, verdict: str = "approved"
) -> httpx.Response:
    return await api.post(
        "/human-review/decision",
        json={"run_id": run_id, "decision": verdict, "comments": f"{verdict} after checking"},
        headers=headers,
    )


async def status(api: httpx.AsyncClient, headers: dict[str, str], run_id: str) -> dict[str, Any]:
    response = await api.get(f"/workflow/{run_id}/status", headers=headers)
    assert response.status_code == 200
    return cast(dict[str, Any], response.json())


# Auto-approval


async def test_small_confident_low_risk_draft_executes_without_review(
    harness: Harness, api: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    auto = harness.with_context(review_rules=AUTO)
    outcome = await auto.runner.start(case_id="500A")
    assert outcome.status == "completed"
    assert auto.notifier.sent == []
    assert list(auto.payments.refunds) == [f"{outcome.run_id}:refund"]
    s = await status(api, keys["alice"], outcome.run_id)
    [decision] = s["decisions"]
    assert (decision["reviewer"], decision["channel"], decision["decision"]) == (
        "system",
        "system",
        "approved",
    )
    assert (
        "99.00 <= 100" in decision["comments"] and "confidence 0.95 >= 0.9" in decision["comments"]
    )
    assert s["review"]["plan"]["auto_approve_rule"] == decision["comments"]
    pending = await api.get("/human-review/pending", headers=keys["alice"])
    assert pending.json()["count"] == 0


@pytest.mark.parametrize(
    ("rules", "drafter", "why"),
    [
        (ReviewRules(), FakeDrafter(), "auto-approval is off by default (0)"),
        (ReviewRules(auto_approve_max_amount=Decimal("98.99")), FakeDrafter(), "amount"),
        (AUTO, FakeDrafter(confidence=0.89), "confidence"),
    ],
)
async def test_drafts_outside_the_rule_wait_for_a_human(
    harness: Harness,
    api: httpx.AsyncClient,
    keys: dict[str, dict[str, str]],
    rules: ReviewRules,
    drafter: FakeDrafter,
    why: str,
) -> None:
    h = harness.with_context(review_rules=rules, drafter=drafter)
    outcome = await h.runner.start(case_id="500A")
    assert outcome.status == "pending", why
    assert h.payments.refund_requests == []
    assert len(h.notifier.sent) == 1
    pending = (await api.get("/human-review/pending", headers=keys["alice"])).json()
    assert [i["run_id"] for i in pending["items"]] == [outcome.run_id]


# Risk escalation


async def test_elevated_radar_risk_is_never_auto_approved_and_is_flagged(
    harness: Harness, api: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    harness.world.add_charge("ch_r", "cus_A", "40.00", days_ago=5, risk="elevated")
    harness.world.add_case("500R", "001A", "ch_r", "40.00", dispute_type="duplicate_charge")
    auto = harness.with_context(review_rules=AUTO)
    outcome = await auto.runner.start(case_id="500R")
    assert outcome.status == "pending"
    assert auto.payments.refund_requests == []
    [item] = (await api.get("/human-review/pending", headers=keys["alice"])).json()["items"]
    assert item["risk_flags"] == ["radar_risk_elevated"]
    assert auto.notifier.sent[0]["summary"]["review"]["risk_flags"] == ["radar_risk_elevated"]
    # ... and shown prominently on the review page.
    await api.post("/login", data={"api_key": keys["alice"]["Authorization"][7:]})
    page = await api.get(f"/review/{outcome.run_id}")
    assert page.status_code == 200
    assert 'id="risk-flags"' in page.text and "radar_risk_elevated" in page.text


async def test_frequent_disputer_is_never_auto_approved_and_is_flagged(
    harness: Harness, api: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    for n in range(3):  # 4 disputes by the account in 90 days, above MAX_DISPUTES_90D = 3
        harness.world.add_case(f"500X{n}", "001A", "ch_1", "99.00", dispute_type="duplicate_charge")
    auto = harness.with_context(review_rules=AUTO)
    outcome = await auto.runner.start(case_id="500A")
    assert outcome.status == "pending"
    assert auto.payments.refund_requests == []
    [item] = (await api.get("/human-review/pending", headers=keys["alice"])).json()["items"]
    assert item["risk_flags"] == ["disputes_90d_4>3"]


async def test_an_unknown_dispute_type_goes_to_a_human_flagged_with_its_crm_label(
    harness: Harness, api: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    harness.world.add_case(
        "500U", "001A", "ch_1", "99.00", dispute_type="unknown", dispute_label="Chargeback Inquiry"
    )
    # The canned draft (full refund of 99.00, confidence 0.95, low risk) fits AUTO exactly.
    auto = harness.with_context(review_rules=AUTO)
    outcome = await auto.runner.start(case_id="500U")
    assert outcome.status == "pending"
    assert auto.payments.refund_requests == []
    assert [n["run_id"] for n in auto.notifier.sent] == [outcome.run_id]
    [item] = (await api.get("/human-review/pending", headers=keys["alice"])).json()["items"]
    assert item["risk_flags"] == ["unknown_dispute_type"]
    # The CRM's own label, in the pending list, the run status and the e-mail.
    assert item["dispute_label"] == "Chargeback Inquiry"
    s = await status(api, keys["alice"], outcome.run_id)
    assert s["dispute_label"] == "Chargeback Inquiry"
    assert s["review"]["plan"]["auto_approve"] is False
    assert s["decisions"] == []
    row = await auto.store.get_run(outcome.run_id)
    assert row is not None
    assert row["crm_data"]["case"]["dispute_label"] == "Chargeback Inquiry"
    # The reviewer sees the flag and the CRM's own label beside the type.
    await api.post("/login", data={"api_key": keys["alice"]["Authorization"][7:]})
    page = await api.get(f"/review/{outcome.run_id}")
    assert page.status_code == 200
    assert 'id="risk-flags"' in page.text and "unknown_dispute_type" in page.text
    assert 'id="dispute-label"' in page.text and "Chargeback Inquiry" in page.text


async def test_a_proposal_above_the_claim_is_flagged_with_its_reason_and_waits(
    harness: Harness, api: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    # The customer claims 25.00 of a 99.00 charge; the canned draft refunds all 99.00.
    harness.world.add_case("500C", "001A", "ch_1", "25.00", dispute_type="duplicate_charge")
    auto = harness.with_context(review_rules=AUTO)
    outcome = await auto.runner.start(case_id="500C")
    assert outcome.status == "pending"
    assert auto.payments.refund_requests == []
    flag = "claim_exceeded: proposes 99.00 USD, the customer claimed 25.00 USD"
    [item] = (await api.get("/human-review/pending", headers=keys["alice"])).json()["items"]
    assert item["risk_flags"] == [flag]
    assert auto.notifier.sent[0]["summary"]["review"]["risk_flags"] == [flag]


async def test_a_credit_where_the_customer_asked_for_a_refund_is_flagged_and_waits(
    harness: Harness, api: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    # The case asks to "refund one"; the draft is an account credit within the claim.
    credit = FakeDrafter(action=ResolutionAction.ACCOUNT_CREDIT, amount=Decimal("50.00"))
    auto = harness.with_context(review_rules=AUTO, drafter=credit)
    outcome = await auto.runner.start(case_id="500A")
    assert outcome.status == "pending"
    assert auto.billing.memos == []
    s = await status(api, keys["alice"], outcome.run_id)
    assert s["review"]["plan"]["risk_flags"] == [
        "action_differs: the customer asked for a refund, the proposal is an account credit"
    ]
    assert s["review"]["plan"]["auto_approve"] is False


async def test_at_the_dispute_limit_auto_approval_still_applies(harness: Harness) -> None:
    for n in range(2):  # 3 disputes: not more than MAX_DISPUTES_90D
        harness.world.add_case(f"500X{n}", "001A", "ch_1", "99.00", dispute_type="duplicate_charge")
    outcome = await harness.with_context(review_rules=AUTO).runner.start(case_id="500A")
    assert outcome.status == "completed"


# Dual control


DUAL = ReviewRules(dual_approval_min_amount=Decimal("50"))


async def test_above_the_dual_control_amount_two_different_reviewers_must_approve(
    harness: Harness, api: httpx.AsyncClient, keys: dict[str, dict[str, str]], postgres_url: str
) -> None:
    dual = harness.with_context(review_rules=DUAL)
    started = await dual.runner.start(case_id="500A")
    assert (await decide(api, keys["alice"], started.run_id)).status_code == 202
    assert await apply_decisions(dual, postgres_url) == 1
    s = await status(api, keys["alice"], started.run_id)
    assert s["status"] == "pending" and s["review"]["awaiting_round"] == 2
    assert dual.payments.refund_requests == []

    # The same reviewer cannot give the second approval.
    again = await decide(api, keys["alice"], started.run_id)
    assert again.status_code == 409
    assert "different reviewer" in again.json()["error"]

    assert (await decide(api, keys["bob"], started.run_id)).status_code == 202
    assert await apply_decisions(dual, postgres_url) == 1
    s = await status(api, keys["alice"], started.run_id)
    assert s["status"] == "completed"
    assert [(d["round"], d["reviewer"]) for d in s["decisions"]] == [(1, "alice"), (2, "bob")]
    assert len(dual.payments.refunds) == 1


@pytest.mark.parametrize("rejecter", ["alice", "bob"])
async def test_a_rejection_by_either_reviewer_ends_it(
    harness: Harness,
    api: httpx.AsyncClient,
    keys: dict[str, dict[str, str]],
    postgres_url: str,
    rejecter: str,
) -> None:
    dual = harness.with_context(review_rules=DUAL)
    started = await dual.runner.start(case_id="500A")
    if rejecter == "bob":
        assert (await decide(api, keys["alice"], started.run_id)).status_code == 202
        await apply_decisions(dual, postgres_url)
    rejected = await decide(api, keys[rejecter], started.run_id, "rejected")
    assert rejected.status_code == 202
    await apply_decisions(dual, postgres_url)
    s = await status(api, keys["alice"], started.run_id)
    assert s["status"] == "rejected"
    assert s["decisions"][-1]["reviewer"] == rejecter
    assert dual.payments.refund_requests == []
    late = await decide(api, keys["bob" if rejecter == "alice" else "alice"], started.run_id)
    assert late.status_code == 409


async def test_at_or_below_the_dual_control_amount_one_approval_executes(
    harness: Harness, api: httpx.AsyncClient, keys: dict[str, dict[str, str]], postgres_url: str
) -> None:
    single = harness.with_context(review_rules=ReviewRules(dual_approval_min_amount=Decimal("99")))
    started = await single.runner.start(case_id="500A")
    assert (await decide(api, keys["alice"], started.run_id)).status_code == 202
    await apply_decisions(single, postgres_url)
    assert (await status(api, keys["alice"], started.run_id))["status"] == "completed"
