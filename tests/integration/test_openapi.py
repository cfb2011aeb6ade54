"""/openapi.json, /docs and /redoc as a client developer meets them.

The schema names the key schemes and every error a route can answer, with the body the
API really sends; every JSON route has a typed response, and the typed models pass each
route's JSON through unchanged. /docs and /redoc load their assets from the app itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.deps import ApiServices
from api.routes import costs, reviews, workflows
from api.schemas import LLMCallCost
from models.domain import LLMCall
from services.review.reviewers import ReviewerKeys
from tests.integration.conftest import Harness
from workflows.context import ReviewRules

SCHEMES: list[dict[str, list[str]]] = [{"ReviewerKeyBearer": []}, {"ReviewerKeyHeader": []}]
ERROR_REF = "#/components/schemas/ErrorBody"
UNKNOWN_RUN = "0b7f6a3e-4a7e-4d55-9a45-1c8a2d1f0c11"


@pytest.fixture
async def keys(harness: Harness) -> dict[str, str]:
    reviewer_keys = ReviewerKeys(harness.store.engine)
    return {name: (await reviewer_keys.create(name)).key for name in ("alice", "bob")}


@pytest.fixture
def services(harness: Harness) -> ApiServices:
    return ApiServices(store=harness.store, backends={"crm": "fake"})


@pytest.fixture
async def client(services: ApiServices) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture
async def schema(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def auth_headers(scheme: dict[str, Any], key: str) -> dict[str, str]:
    """The header Swagger UI's "Authorize" sends for this security scheme."""
    if scheme["type"] == "http" and scheme["scheme"] == "bearer":
        return {"Authorization": f"Bearer {key}"}
    if scheme["type"] == "apiKey" and scheme["in"] == "header":
        return {scheme["name"]: key}
    raise AssertionError(f"a scheme Swagger UI cannot fill from a key: {scheme}")


PROTECTED = {
    ("GET", "/health/backends"),
    ("GET", "/human-review/pending"),
    ("POST", "/human-review/decision"),
    ("GET", "/workflow/{run_id}/status"),
    ("POST", "/workflow/{run_id}/retry"),
    ("POST", "/workflow/{run_id}/cancel"),
    ("GET", "/costs/workflow/{run_id}"),
    ("GET", "/costs/case/{case_id}"),
}


async def test_the_key_schemes_are_declared_and_every_protected_route_requires_one(
    schema: dict[str, Any],
) -> None:
    schemes = schema["components"]["securitySchemes"]
    bearer, header = schemes["ReviewerKeyBearer"], schemes["ReviewerKeyHeader"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    assert (header["type"], header["in"], header["name"]) == ("apiKey", "header", "X-API-Key")
    secured = set()
    for method, path, operation in operations(schema):
        if "security" in operation:
            assert operation["security"] == SCHEMES, (method, path)  # either key will do
            assert "401" in operation["responses"], (method, path)
            secured.add((method, path))
        else:
            assert "401" not in operation["responses"], (method, path)
    assert secured >= PROTECTED
    assert ("GET", "/health") not in secured  # open: a load balancer calls it


async def test_authorize_with_either_scheme_opens_every_protected_route(
    client: httpx.AsyncClient, schema: dict[str, Any], keys: dict[str, str]
) -> None:
    secured = [
        (method, path.replace("{run_id}", UNKNOWN_RUN).replace("{case_id}", "500-none"))
        for method, path, operation in operations(schema)
        if operation.get("security")
    ]
    assert len(secured) >= len(PROTECTED)
    for method, path in secured:
        body: dict[str, Any] | None = {} if method != "GET" else None
        refused = await client.request(method, path, json=body)
        assert refused.status_code == 401, (method, path, refused.text)
        assert refused.headers["www-authenticate"] == "Bearer"
    for name, scheme in schema["components"]["securitySchemes"].items():
        headers = auth_headers(scheme, keys["alice"])
        for method, path in secured:
            if method == "GET":
                answered = await client.get(path, headers=headers)
                assert answered.status_code in (200, 404), (name, path, answered.text)
                if answered.status_code == 404:
                    assert (
                        "not found" in answered.json()["error"]
                        or "no runs" in (answered.json()["error"])
                    )


async def test_the_errors_each_route_can_answer_are_documented_with_the_real_body(
    schema: dict[str, Any],
) -> None:
    def documented(method: str, path: str) -> dict[str, Any]:
        responses: dict[str, Any] = schema["paths"][path][method]["responses"]
        return responses

    expected = {
        ("post", "/human-review/decision"): {"401", "403", "404", "409", "422"},
        ("get", "/workflow/{run_id}/status"): {"401", "404"},
        ("post", "/workflow/{run_id}/retry"): {"401", "404", "409", "422"},
        ("post", "/workflow/{run_id}/cancel"): {"401", "404", "409", "422"},
        ("get", "/human-review/pending"): {"401"},
        ("get", "/costs/workflow/{run_id}"): {"401", "404"},
        ("get", "/costs/case/{case_id}"): {"401", "404"},
        ("get", "/health/backends"): {"401"},
    }
    for (method, path), codes in expected.items():
        responses = documented(method, path)
        assert codes <= set(responses), (method, path, sorted(responses))
        for code in codes:
            body = responses[code]["content"]["application/json"]["schema"]
            assert body == {"$ref": ERROR_REF}, (method, path, code)
            assert responses[code]["description"]
    error = schema["components"]["schemas"]["ErrorBody"]
    assert set(error["properties"]) == {"error", "status"}
    assert set(error["required"]) == {"error", "status"}
    # The run_id in the path is a string: no 422 is possible, and none is documented.
    assert "422" not in documented("get", "/workflow/{run_id}/status")
    # FastAPI's own `{"detail": [...]}` validation body is never sent, so never documented.
    assert "HTTPValidationError" not in json.dumps(schema)


async def test_every_documented_error_status_is_answered_with_that_body(
    client: httpx.AsyncClient, schema: dict[str, Any], harness: Harness, keys: dict[str, str]
) -> None:
    alice = {"Authorization": f"Bearer {keys['alice']}"}
    started = await harness.runner.start(case_id="500A")
    decision = {"run_id": started.run_id, "case_id": "500A", "decision": "approved"}
    answers = {
        401: await client.post("/human-review/decision", json=decision),
        403: await client.post(
            "/human-review/decision", json=decision | {"reviewer_name": "bob"}, headers=alice
        ),
        404: await client.post(
            "/human-review/decision", json=decision | {"run_id": UNKNOWN_RUN}, headers=alice
        ),
        422: await client.post(
            "/human-review/decision", json=decision | {"decision": "maybe"}, headers=alice
        ),
    }
    assert (await client.post("/human-review/decision", json=decision, headers=alice)).is_success
    answers[409] = await client.post(
        "/human-review/decision",
        json=decision,
        headers={"Authorization": f"Bearer {keys['bob']}"},
    )
    documented = resolve(schema, {"$ref": ERROR_REF})
    for status, response in answers.items():
        assert response.status_code == status, (status, response.text)
        body = response.json()
        assert set(body) == set(documented["properties"]), (status, body)
        assert isinstance(body["error"], str) and body["status"] == status


async def test_every_json_response_is_typed(schema: dict[str, Any]) -> None:
    checked, untyped = 0, []
    for method, path, operation in operations(schema):
        success = [r for code, r in operation["responses"].items() if code.startswith("2")]
        if not any("application/json" in (r.get("content") or {}) for r in success):
            continue  # not a JSON route (Prometheus text, say)
        for code, response in operation["responses"].items():
            body = (response.get("content") or {}).get("application/json", {}).get("schema")
            if not (body and resolve(schema, body).get("properties")):
                untyped.append(f"{method} {path} {code}")
            checked += 1
    assert untyped == []
    assert checked >= 30


def same_json(served: Any, direct: Any) -> bool:
    """Equal as JSON, and with the top-level keys in the route's order."""
    return bool(served == json.loads(json.dumps(direct)) and list(served) == list(direct))


async def test_typed_responses_pass_each_routes_json_through_unchanged(
    client: httpx.AsyncClient, services: ApiServices, harness: Harness, keys: dict[str, str]
) -> None:
    """No field dropped, added or reformatted by the response models."""
    alice = {"Authorization": f"Bearer {keys['alice']}"}
    pending = await harness.runner.start(case_id="500A")
    harness.world.add_case("500B", "001A", "ch_1", "150.00", dispute_type="duplicate_charge")
    rejected = await harness.runner.start(case_id="500B")  # fails validation: no proposal
    auto = harness.with_context(review_rules=ReviewRules(auto_approve_max_amount=Decimal("100")))
    harness.world.add_charge("ch_3", "cus_A", "40.00", days_ago=5)
    harness.world.add_case("500C", "001A", "ch_3", "40.00", dispute_type="duplicate_charge")
    approved = await auto.runner.start(case_id="500C")  # the system's decision, a payout
    assert (pending.status, rejected.status, approved.status) == (
        "pending",
        "rejected",
        "completed",
    )
    modified = {"action": "partial_refund", "amount": "45.00", "reason": "prorated"}
    decided = await client.post(
        "/human-review/decision",
        json={"run_id": pending.run_id, "decision": "approved", "modified_resolution": modified},
        headers=alice,
    )
    assert decided.status_code == 202, decided.text

    seen_system_decision = False
    for run in (pending, rejected, approved):
        direct = await workflows.run_status(run.run_id, services)
        served = (await client.get(f"/workflow/{run.run_id}/status", headers=alice)).json()
        assert same_json(served, direct)
        seen_system_decision |= any(d["reviewer"] == "system" for d in served["decisions"])
        direct_costs = await costs.workflow_costs(run.run_id, services)
        served_costs = await client.get(f"/costs/workflow/{run.run_id}", headers=alice)
        assert same_json(served_costs.json(), direct_costs)
    assert seen_system_decision
    approved_status = await client.get(f"/workflow/{approved.run_id}/status", headers=alice)
    assert approved_status.json()["payouts"], "the auto-approved run paid out"
    assert "reviewer_id" not in approved_status.json()["decisions"][0]

    for case_id in ("500A", "500C"):
        direct_case = await costs.case_costs(case_id, services)
        served_case = await client.get(f"/costs/case/{case_id}", headers=alice)
        assert same_json(served_case.json(), direct_case)
    assert direct_case["items"][0]["calls"], "a drafting call's cost line was compared"

    served_pending = (await client.get("/human-review/pending", headers=alice)).json()
    assert served_pending["count"] >= 1
    assert same_json(served_pending, await reviews.pending(services))
    served_decision = decided.json()
    assert list(served_decision) == ["run_id", "decision", "round", "version", "reviewer", "status"]


def test_the_cost_line_model_names_every_field_of_a_recorded_call() -> None:
    assert list(LLMCallCost.model_fields) == list(LLMCall.model_fields)


ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_every_asset_from_the_app_itself(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "http://" not in html and "https://" not in html  # no CDN, no web fonts
    assets = ASSET.findall(html)
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts, html
    for url in assets:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        [expected] = [t for suffix, t in CONTENT_TYPES.items() if url.endswith(suffix)]
        assert expected in asset.headers["content-type"], (url, asset.headers["content-type"])
        assert len(asset.content) > 1000, url
    spec = re.search(r"""(?:url:\s*|spec-url=)["']([^"']+)["']""", html)
    assert spec is not None and spec.group(1) == "/openapi.json"
    if page == "/docs":
        assert '"persistAuthorization": true' in html
