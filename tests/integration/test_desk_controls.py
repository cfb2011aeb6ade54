"""Run controls on the dashboard: retry and cancel, with the session's CSRF token,
audited with the signed-in reviewer and the reason (issue 12)."""

from __future__ import annotations

import re

import httpx

from api.app import create_app
from api.deps import ApiServices
from services.review.reviewers import ReviewerKeys
from tests.integration.conftest import Harness


async def test_a_reviewer_retries_and_cancels_runs_from_the_run_page(harness: Harness) -> None:
    parked = await harness.runner.start(case_id="500A")
    await harness.store.update_run(parked.run_id, status="needs_attention")
    harness.world.add_charge("ch_2", "cus_A", "50.00", days_ago=5)
    harness.world.add_case("500B", "001A", "ch_2", "50.00", dispute_type="duplicate_charge")
    pending = await harness.runner.start(case_id="500B")
    key = (await ReviewerKeys(harness.store.engine).create("olivia")).key
    transport = httpx.ASGITransport(app=create_app(ApiServices(store=harness.store, backends={})))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        await http.post("/login", data={"api_key": key, "next": "/"})
        page = await http.get(f"/runs/{parked.run_id}")
        assert 'id="retry-run"' in page.text and 'id="cancel-run"' in page.text
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert match is not None
        csrf = match.group(1)

        forged = await http.post(
            f"/runs/{parked.run_id}/control",
            data={"action": "retry", "reason": "x", "csrf": "forged"},
        )
        assert forged.status_code == 403
        no_reason = await http.post(
            f"/runs/{parked.run_id}/control", data={"action": "retry", "reason": "", "csrf": csrf}
        )
        assert no_reason.status_code == 422
        retried = await http.post(
            f"/runs/{parked.run_id}/control",
            data={"action": "retry", "reason": "CRM is back", "csrf": csrf},
        )
        assert retried.status_code == 303
        cancelled = await http.post(
            f"/runs/{pending.run_id}/control",
            data={"action": "cancel", "reason": "duplicate of 500A", "csrf": csrf},
        )
        assert cancelled.status_code == 303
    assert (await harness.store.get_run(parked.run_id) or {})["status"] == "running"
    assert (await harness.store.get_run(pending.run_id) or {})["status"] == "cancelled"
    retry_audit = [
        a for a in await harness.store.audit_trail(parked.run_id) if a["event"] == "run_retried"
    ]
    assert [(a["actor"], a["detail"]["reason"]) for a in retry_audit] == [("olivia", "CRM is back")]
    cancel_audit = [
        a for a in await harness.store.audit_trail(pending.run_id) if a["event"] == "run_cancelled"
    ]
    assert [(a["actor"], a["detail"]["reason"]) for a in cancel_audit] == [
        ("olivia", "duplicate of 500A")
    ]
