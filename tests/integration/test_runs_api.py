"""GET /workflow/runs: filters, search, paging and sorting over runs in several states."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.deps import ApiServices
from models.domain import ReviewDecision
from services.review.reviewers import ReviewerKeys
from tests.fakes.services import NOW
from tests.integration.conftest import Harness


@dataclass
class Runs:
    """Four runs, created in this order: A pending ($99), B rejected, C pending with a
    Radar flag ($300), D completed ($40)."""

    ids: dict[str, str]
    created: dict[str, datetime]

    def names(self, items: list[dict[str, Any]]) -> list[str]:
        by_id = {run_id: name for name, run_id in self.ids.items()}
        return [by_id[item["run_id"]] for item in items]


@pytest.fixture
async def runs(harness: Harness) -> Runs:
    world = harness.world
    world.add_customer("001B", "cus_B", "B0001", segment="standard")
    world.add_charge("ch_2", "cus_B", "300.00", days_ago=5, risk="elevated")
    world.add_charge("ch_3", "cus_A", "40.00", days_ago=3)
    world.add_case("500B", "001A", "ch_1", "150.00", dispute_type="duplicate_charge")
    world.add_case("500C", "001B", "ch_2", "300.00", dispute_type="unrecognized_charge")
    world.add_case("500D", "001A", "ch_3", "40.00", dispute_type="duplicate_charge")
    statuses = {"A": "pending", "B": "rejected", "C": "pending", "D": "pending"}
    customers = {"A": "cus_A", "B": "cus_A", "C": "cus_B", "D": "cus_A"}
    ids: dict[str, str] = {}
    for name, status in statuses.items():
        outcome = await harness.runner.start(case_id=f"500{name}", customer_id=customers[name])
        assert outcome.status == status, (name, outcome)
        ids[name] = outcome.run_id
    approval = ReviewDecision(
        decision="approved", reviewer="alice", decided_at=datetime.now(NOW.tzinfo), version=1
    )
    done = await harness.runner.resume(run_id=ids["D"], decision=approval)
    assert done.status == "completed"
    created = {}
    for name, run_id in ids.items():
        row = await harness.store.get_run(run_id)
        assert row is not None
        created[name] = row["created_at"]
    return Runs(ids, created)


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


async def listed(api: httpx.AsyncClient, runs: Runs, **params: Any) -> list[str]:
    response = await api.get("/workflow/runs", params=params)
    assert response.status_code == 200, response.text
    return runs.names(response.json()["items"])


async def test_a_key_is_required(api: httpx.AsyncClient) -> None:
    response = await api.get("/workflow/runs", headers={"Authorization": ""})
    assert response.status_code == 401


async def test_newest_first_with_typed_summaries(api: httpx.AsyncClient, runs: Runs) -> None:
    response = await api.get("/workflow/runs")
    body = response.json()
    assert runs.names(body["items"]) == ["D", "C", "B", "A"]
    assert body["next_cursor"] is None and body["total"] is None
    c = body["items"][1]
    assert c["case_id"] == "500C" and c["customer_id"] == "cus_B"
    assert (c["status"], c["current_step"], c["awaiting_round"]) == (
        "pending",
        "wait_human_review",
        1,
    )
    assert (c["dispute_type"], c["action"], c["amount"]) == (
        "unrecognized_charge",
        "full_refund",
        "300.00",
    )
    assert c["risk_flags"] == ["radar_risk_elevated"]
    b = body["items"][2]
    assert (b["status"], b["amount"], b["risk_flags"]) == ("rejected", None, [])


async def test_filters(api: httpx.AsyncClient, runs: Runs) -> None:
    assert await listed(api, runs, status=["pending", "rejected"]) == ["C", "B", "A"]
    assert await listed(api, runs, status="completed") == ["D"]
    assert await listed(api, runs, dispute_type="unrecognized_charge") == ["C"]
    assert await listed(api, runs, dispute_type=["duplicate_charge"]) == ["D", "B", "A"]
    # A flag matches itself and the flags it prefixes.
    assert await listed(api, runs, risk_flag="radar_risk_elevated") == ["C"]
    assert await listed(api, runs, risk_flag="radar_risk") == ["C"]
    assert await listed(api, runs, risk_flag="radar_ri") == []  # whole words only
    assert await listed(api, runs, risk_flag=["charge_paid_before", "radar_risk"]) == ["C"]
    # The draft's amount; a rejected run has none.
    assert await listed(api, runs, amount_min="50", amount_max="150") == ["A"]
    assert await listed(api, runs, amount_min="40") == ["D", "C", "A"]
    assert await listed(api, runs, amount_max="40.00") == ["D"]
    assert await listed(api, runs, created_from=runs.created["C"].isoformat()) == ["D", "C"]
    assert await listed(
        api,
        runs,
        created_from=runs.created["B"].isoformat(),
        created_to=runs.created["D"].isoformat(),
    ) == ["C", "B"]
    assert await listed(api, runs, status="pending", dispute_type="duplicate_charge") == ["A"]


async def test_search_by_case_customer_or_run_id(api: httpx.AsyncClient, runs: Runs) -> None:
    assert await listed(api, runs, q="500C") == ["C"]
    assert await listed(api, runs, q="500") == ["D", "C", "B", "A"]
    assert await listed(api, runs, q="cus_B") == ["C"]
    assert await listed(api, runs, q=runs.ids["B"]) == ["B"]
    assert await listed(api, runs, q=runs.ids["A"][:8]) == ["A"]
    assert await listed(api, runs, q=runs.ids["A"][:8].upper()) == ["A"]
    # LIKE's wildcards are searched for, not obeyed.
    assert await listed(api, runs, q="50%") == []
    assert await listed(api, runs, q="cus__") == []


async def test_cursor_and_offset_paging(api: httpx.AsyncClient, runs: Runs) -> None:
    first = (await api.get("/workflow/runs", params={"limit": 3, "include_total": True})).json()
    assert runs.names(first["items"]) == ["D", "C", "B"]
    assert first["total"] == 4 and first["next_cursor"]
    second = (
        await api.get("/workflow/runs", params={"limit": 3, "cursor": first["next_cursor"]})
    ).json()
    assert runs.names(second["items"]) == ["A"] and second["next_cursor"] is None
    assert await listed(api, runs, limit=2, offset=2) == ["B", "A"]
    pending = (await api.get("/workflow/runs", params={"status": "pending", "limit": 1})).json()
    assert runs.names(pending["items"]) == ["C"]
    rest = await listed(api, runs, status="pending", limit=1, cursor=pending["next_cursor"])
    assert rest == ["A"]


async def test_oldest_waiting_lists_pending_reviews_longest_waiting_first(
    api: httpx.AsyncClient, runs: Runs
) -> None:
    assert await listed(api, runs, sort="oldest_waiting") == ["A", "C"]
    assert await listed(api, runs, sort="oldest_waiting", status="completed") == []
    assert await listed(api, runs, sort="oldest") == ["A", "B", "C", "D"]
    page = (await api.get("/workflow/runs", params={"sort": "oldest", "limit": 2})).json()
    assert await listed(api, runs, sort="oldest", cursor=page["next_cursor"]) == ["C", "D"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": 201}, "limit"),
        ({"limit": 0}, "limit"),
        ({"status": "paused"}, "status"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ({"cursor": "x", "offset": 2}, "cursor and offset"),
        ({"amount_min": "10", "amount_max": "5"}, "amount_min"),
        ({"amount_min": "-1"}, "amount_min"),
        ({"q": "x" * 65}, "q"),
    ],
)
async def test_bad_requests_are_422_with_a_message(
    api: httpx.AsyncClient, params: dict[str, Any], message: str
) -> None:
    response = await api.get("/workflow/runs", params=params)
    assert response.status_code == 422
    assert message in response.json()["error"]


async def test_a_cursor_is_bound_to_its_order(api: httpx.AsyncClient, runs: Runs) -> None:
    page = (await api.get("/workflow/runs", params={"limit": 1})).json()
    response = await api.get(
        "/workflow/runs", params={"sort": "oldest", "cursor": page["next_cursor"]}
    )
    assert response.status_code == 422
