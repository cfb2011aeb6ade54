"""The review API: decisions, status, costs and the errors a client can provoke.

Every endpoint but /health needs a reviewer API key; the client here sends alice's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from api.deps import ApiServices
from services.review.reviewers import ReviewerKeys
from tests.integration.conftest import Harness


@pytest.fixture
async def keys(harness: Harness) -> dict[str, str]:
    """API keys of two reviewers, alice and bob."""
    reviewer_keys = ReviewerKeys(harness.store.engine)
    return {name: (await reviewer_keys.create(name)).key for name in ("alice", "bob")}


@pytest.fixture
async def api(harness: Harness, keys: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ApiServices(store=harness.store, backends={"crm": "fake"}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://test",
        headers={"Authorization": f"Bearer {keys['alice']}"},
    ) as client:
        yield client


def body(run_id: str, **overrides: object) -> dict[str, object]:
    return {
        "run_id": run_id,
        "case_id": "500A",
        "decision": "approved",
        "reviewer_name": "alice",
        "comments": "ok",
        **overrides,
    }


async def test_health_is_open_and_backends_need_a_key(api: httpx.AsyncClient) -> None:
    response = await api.get("/health", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert (await api.get("/health/backends", headers={"Authorization": ""})).status_code == 401
    backends = await api.get("/health/backends")
    assert backends.json() == {"backends": {"crm": "fake"}, "sandbox_systems": []}


async def test_pending_lists_the_paused_run(api: httpx.AsyncClient, harness: Harness) -> None:
    started = await harness.runner.start(case_id="500A")
    response = await api.get("/human-review/pending")
    items = response.json()["items"]
    assert [i["run_id"] for i in items] == [started.run_id]
    assert items[0]["proposal"]["amount"] == "99.00"


async def test_decision_is_recorded_and_second_one_conflicts(
    api: httpx.AsyncClient, harness: Harness, keys: dict[str, str]
) -> None:
    started = await harness.runner.start(case_id="500A")
    first = await api.post("/human-review/decision", json=body(started.run_id))
    assert first.status_code == 202, first.text
    stored = await harness.store.unapplied_decisions(run_id=started.run_id)
    assert [d.decision.reviewer for d in stored] == ["alice"]
    second = await api.post(
        "/human-review/decision",
        json=body(started.run_id, reviewer_name="bob"),
        headers={"Authorization": f"Bearer {keys['bob']}"},
    )
    assert second.status_code == 409
    assert "already" in second.json()["error"]


async def test_decision_on_a_run_not_awaiting_one_is_409(
    api: httpx.AsyncClient, harness: Harness
) -> None:
    harness.world.add_case("500B", "001A", "ch_1", "150.00", dispute_type="duplicate_charge")
    rejected = await harness.runner.start(case_id="500B")
    response = await api.post("/human-review/decision", json=body(rejected.run_id, case_id="500B"))
    assert response.status_code == 409
    assert "rejected" in response.json()["error"]


async def test_unknown_run_is_404(api: httpx.AsyncClient) -> None:
    unknown = "0b7f6a3e-4a7e-4d55-9a45-1c8a2d1f0c11"
    assert (await api.post("/human-review/decision", json=body(unknown))).status_code == 404
    assert (await api.get(f"/workflow/{unknown}/status")).status_code == 404
    assert (await api.get("/workflow/not-a-uuid/status")).status_code == 404
    assert (await api.get(f"/costs/workflow/{unknown}")).status_code == 404
    assert (await api.get("/costs/case/500-none")).status_code == 404


@pytest.mark.parametrize(
    "payload",
    [
        {"run_id": "x"},
        {"run_id": "x", "decision": "maybe", "reviewer_name": "a"},
        {"run_id": "x", "decision": "approved", "reviewer_name": ""},
        {"run_id": "x", "decision": "approved", "reviewer_name": "a", "admin": True},
        {
            "run_id": "x",
            "decision": "approved",
            "reviewer_name": "a",
            "modified_resolution": {"action": "partial_refund", "amount": "1e9", "reason": "r"},
        },
        ["not", "an", "object"],
    ],
)
async def test_invalid_bodies_are_422_with_a_message(
    api: httpx.AsyncClient, payload: object
) -> None:
    response = await api.post("/human-review/decision", json=payload)
    assert response.status_code == 422
    assert response.json()["error"]


async def test_hostile_bodies_get_clear_errors(api: httpx.AsyncClient) -> None:
    not_json = await api.post(
        "/human-review/decision",
        content=b"{'run_id': 1",
        headers={"content-type": "application/json"},
    )
    assert not_json.status_code == 422
    huge = await api.post(
        "/human-review/decision",
        content=b'{"comments": "' + b"x" * 200_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413


async def test_absurd_modification_is_422(api: httpx.AsyncClient, harness: Harness) -> None:
    started = await harness.runner.start(case_id="500A")
    for amount in ["1e9", "45.001", "NaN", "Infinity"]:
        absurd = {"action": "partial_refund", "amount": amount, "reason": "r"}
        response = await api.post(
            "/human-review/decision", json=body(started.run_id, modified_resolution=absurd)
        )
        assert response.status_code == 422, (amount, response.text)


async def test_modification_above_refundable_is_422(
    api: httpx.AsyncClient, harness: Harness
) -> None:
    started = await harness.runner.start(case_id="500A")
    too_much = {"action": "partial_refund", "amount": "120.00", "reason": "goodwill"}
    response = await api.post(
        "/human-review/decision", json=body(started.run_id, modified_resolution=too_much)
    )
    assert response.status_code == 422
    assert "120.00" in response.json()["error"]
    negative = {"action": "partial_refund", "amount": "-5", "reason": "x"}
    response = await api.post(
        "/human-review/decision", json=body(started.run_id, modified_resolution=negative)
    )
    assert response.status_code == 422
    assert await harness.store.unapplied_decisions(run_id=started.run_id) == []


async def test_status_and_costs_after_completion(api: httpx.AsyncClient, harness: Harness) -> None:
    started = await harness.runner.start(case_id="500A")
    await api.post("/human-review/decision", json=body(started.run_id))
    [stored] = await harness.store.unapplied_decisions(run_id=started.run_id)
    await harness.runner.resume(run_id=started.run_id, decision=stored.decision)
    status = (await api.get(f"/workflow/{started.run_id}/status")).json()
    assert status["status"] == "completed"
    assert status["decisions"][0]["reviewer"] == "alice"
    assert status["decisions"][0]["channel"] == "api"
    assert any(a["event"] == "refund_executed" for a in status["audit"])
    costs = (await api.get(f"/costs/workflow/{started.run_id}")).json()
    assert costs["llm_cost_usd"] == "0.000027"
    case = (await api.get("/costs/case/500A")).json()
    assert case["runs"] == 1 and case["llm_cost_usd"] == "0.000027"


async def test_case_costs_sum_every_run_of_the_case(
    api: httpx.AsyncClient, harness: Harness
) -> None:
    first = await harness.runner.start(case_id="500A")
    await api.post("/human-review/decision", json=body(first.run_id, decision="rejected"))
    [stored] = await harness.store.unapplied_decisions(run_id=first.run_id)
    await harness.runner.resume(run_id=first.run_id, decision=stored.decision)
    second = await harness.runner.start(case_id="500A")  # the case is disputed again
    assert second.status == "pending"
    case = (await api.get("/costs/case/500A")).json()
    assert case["runs"] == 2
    assert [item["run_id"] for item in case["items"]] == [first.run_id, second.run_id]
    assert case["llm_cost_usd"] == "0.000054"
    assert case["input_tokens"] == 200 and case["output_tokens"] == 40


async def test_an_operator_retries_a_parked_run_and_cancels_a_pending_one(
    api: httpx.AsyncClient, harness: Harness
) -> None:
    parked = await harness.runner.start(case_id="500A")
    await harness.store.schedule_attempt(
        parked.run_id, attempts=8, at=None, status="needs_attention"
    )
    status = (await api.get(f"/workflow/{parked.run_id}/status")).json()
    assert (status["status"], status["attempts"]) == ("needs_attention", 8)

    assert (await api.post(f"/workflow/{parked.run_id}/retry", json={})).status_code == 422
    unauthorised = await api.post(
        f"/workflow/{parked.run_id}/retry", json={"reason": "x"}, headers={"Authorization": ""}
    )
    assert unauthorised.status_code == 401
    retried = await api.post(f"/workflow/{parked.run_id}/retry", json={"reason": "CRM is back"})
    assert retried.status_code == 200
    row = await harness.store.get_run(parked.run_id)
    assert row is not None and (row["status"], row["attempts"]) == ("running", 0)
    assert await harness.store.runs_owed_a_driver() == []  # it has a job: a worker takes it
    again = await api.post(f"/workflow/{parked.run_id}/retry", json={"reason": "twice"})
    assert again.status_code == 409
    [event] = [
        e for e in await harness.store.audit_trail(parked.run_id) if e["event"] == "run_retried"
    ]
    assert (event["actor"], event["detail"]["reason"]) == ("alice", "CRM is back")

    # The retried run settles back to pending; then an operator cancels it.
    assert (await harness.driver.advance(parked.run_id)).status == "pending"  # type: ignore[union-attr]
    cancelled = await api.post(f"/workflow/{parked.run_id}/cancel", json={"reason": "duplicate"})
    assert cancelled.status_code == 200
    decided = await api.post("/human-review/decision", json=body(parked.run_id))
    assert decided.status_code == 409
    assert (
        await api.post(f"/workflow/{parked.run_id}/cancel", json={"reason": "x"})
    ).status_code == 409
    missing = await api.post(
        "/workflow/00000000-0000-0000-0000-000000000000/retry", json={"reason": "x"}
    )
    assert missing.status_code == 404
    assert harness.payments.refunds == {}
