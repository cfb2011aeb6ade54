"""POST /webhooks/stripe: verified, recorded once, put on the dispute queue; and the
intake turning the queued event into a chargeback run (issue 14)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from api.deps import ApiServices, StripeWebhook
from services.integrations.stripe_webhooks import sign_payload
from services.persistence.jobs import RunJobs
from services.persistence.store import WorkflowStore
from workflows.intake import DisputeIntake, IntakeSettings

SECRET = "whsec_test_0123456789abcdef"


def event(event_id: str, type_: str = "charge.dispute.created", **obj: object) -> bytes:
    body = {
        "id": event_id,
        "object": "event",
        "type": type_,
        "created": int(time.time()),
        "livemode": False,
        "data": {
            "object": {
                "id": "dp_wh1",
                "object": "dispute",
                "charge": "ch_1",
                "status": "needs_response",
                "amount": 9900,
                "currency": "usd",
                **obj,
            }
        },
    }
    return json.dumps(body).encode()


class Queue:
    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.down = False

    async def send(self, body: str) -> None:
        if self.down:
            raise ConnectionError("queue unavailable")
        self.bodies.append(body)


@pytest.fixture
async def client(engine, jobs: RunJobs) -> AsyncIterator[tuple[httpx.AsyncClient, Queue]]:  # type: ignore[no-untyped-def]
    queue = Queue()
    services = ApiServices(
        store=WorkflowStore(engine, jobs=jobs),
        backends={},
        stripe_webhook=StripeWebhook(SECRET, queue.send),
    )
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http, queue


def signed(payload: bytes, *, age: int = 0, secret: str = SECRET) -> dict[str, str]:
    header = sign_payload(payload, secret, timestamp=int(time.time()) - age)
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


async def test_a_signed_event_is_enqueued_once(
    client: tuple[httpx.AsyncClient, Queue],
) -> None:
    http, queue = client
    payload = event("evt_1")
    first = await http.post("/webhooks/stripe", content=payload, headers=signed(payload))
    assert first.status_code == 200 and first.json()["handled"] is True
    [body] = queue.bodies
    message = json.loads(body)
    assert message == {
        "type": "stripe.event",
        "event_id": "evt_1",
        "event_type": "charge.dispute.created",
        "object_id": "dp_wh1",
        "charge_id": "ch_1",
        "status": "needs_response",
        "amount": 9900,
        "currency": "usd",
    }
    again = await http.post("/webhooks/stripe", content=payload, headers=signed(payload))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert len(queue.bodies) == 1


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"Stripe-Signature": "t=1,v1=00"}, None),
        ("stale", None),
        ("wrong-secret", None),
    ],
)
async def test_a_bad_signature_is_400_and_enqueues_nothing(
    client: tuple[httpx.AsyncClient, Queue], headers: object, reason: str | None
) -> None:
    http, queue = client
    payload = event("evt_bad")
    if headers == "stale":
        headers = signed(payload, age=301)
    elif headers == "wrong-secret":
        headers = signed(payload, secret="whsec_someone_else_000000")
    response = await http.post("/webhooks/stripe", content=payload, headers=headers)  # type: ignore[arg-type]
    assert response.status_code == 400
    if reason:
        assert reason in response.json()["error"]
    assert queue.bodies == []


async def test_unknown_types_are_acknowledged_and_ignored(
    client: tuple[httpx.AsyncClient, Queue],
) -> None:
    http, queue = client
    payload = event("evt_other", type_="customer.updated")
    response = await http.post("/webhooks/stripe", content=payload, headers=signed(payload))
    assert response.status_code == 200 and response.json()["handled"] is False
    assert queue.bodies == []


async def test_a_queue_outage_is_503_and_stripes_retry_is_taken(
    client: tuple[httpx.AsyncClient, Queue],
) -> None:
    http, queue = client
    payload = event("evt_retry")
    queue.down = True
    failed = await http.post("/webhooks/stripe", content=payload, headers=signed(payload))
    assert failed.status_code == 503
    queue.down = False
    retried = await http.post("/webhooks/stripe", content=payload, headers=signed(payload))
    assert retried.status_code == 200 and len(queue.bodies) == 1


async def test_without_a_secret_the_webhook_is_off(engine, jobs: RunJobs) -> None:  # type: ignore[no-untyped-def]
    services = ApiServices(store=WorkflowStore(engine, jobs=jobs), backends={})
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post("/webhooks/stripe", content=b"{}")
    assert response.status_code == 404 and "STRIPE_WEBHOOK_SECRET" in response.json()["error"]


async def test_the_intake_starts_one_chargeback_run_and_records_its_closing(
    client: tuple[httpx.AsyncClient, Queue],
    engine,
    jobs: RunJobs,  # type: ignore[no-untyped-def]
) -> None:
    http, queue = client
    created = event("evt_c1")
    closed = event("evt_c2", type_="charge.dispute.closed", status="lost")
    for payload in (created, closed):
        response = await http.post("/webhooks/stripe", content=payload, headers=signed(payload))
        assert response.status_code == 200
    store = WorkflowStore(engine, jobs=jobs)
    intake = DisputeIntake(queue=None, store=store, jobs=jobs, settings=IntakeSettings())  # type: ignore[arg-type]
    for index, body in enumerate(queue.bodies * 2):  # each delivered twice
        assert await intake.process_message({"MessageId": f"m{index}", "Body": body})
    [run] = await store.runs_for_case("dp_wh1")
    assert (run["kind"], run["status"]) == ("chargeback", "running")
    assert run["dispute_outcome"]["won"] is False
    assert run["dispute_outcome"]["funds"] == "withdrawn"
    trail = [a["event"] for a in await store.audit_trail(str(run["run_id"]))]
    assert trail.count("dispute_closed") == 1
