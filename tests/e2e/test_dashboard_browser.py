"""A reviewer in a real browser (Debian's Chromium driven by Playwright).

1. As an operator and a reviewer would: a key from `utils/manage_reviewers.py`, the API
   started with `app.py --api`, sign-in, the pending list, the review page with its risk
   flags, a modified approval — recorded with channel "page" and applied by the worker.
2. An e-mailed review link opened in the browser: the page, one click to approve, and the
   same link refused (409) the second time. This API runs in-process (uvicorn on loopback)
   composed with `build_api_services`, as app.py does once review links are wired.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from agents import NODES
from api.app import create_app
from api.deps import build_api_services
from services.persistence.database import Database, create_engine
from services.persistence.store import WorkflowStore
from services.review.email import Mailer, NotificationLog
from services.review.links import ReviewLinkSigner
from services.review.notifications import EmailNotifier
from services.review.reviewers import ReviewerKeys
from services.settings import Settings
from tests.e2e.conftest import ROOT, Processes, free_port, wait_for
from tests.fakes.email import RecordingSender
from tests.fakes.services import (
    NOW,
    FakeBilling,
    FakeCRM,
    FakeDrafter,
    FakeKnowledge,
    FakeNotifications,
    FakePayments,
    FakeWorld,
)
from workflows.checkpointing import open_checkpointer
from workflows.context import ReviewRules, WorkflowContext
from workflows.dispute_workflow import build_graph
from workflows.runner import WorkflowRunner

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu"]
SECRET = "browser-test-review-link-secret"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's Chromium is not installed at /usr/bin/chromium "
        "(as root: apt-get update && apt-get install -y chromium)",
    ),
]


@dataclass
class Runs:
    runner: WorkflowRunner
    world: FakeWorld
    payments: FakePayments


@asynccontextmanager
async def runs(postgres_url: str, notifier: Any) -> AsyncIterator[Runs]:
    """The graph on the test database with fake adapters: a risky $80 duplicate charge."""
    world = FakeWorld.default()
    world.add_charge("ch_r", "cus_A", "80.00", days_ago=5, risk="elevated")
    world.add_case("500R", "001A", "ch_r", "80.00", dispute_type="duplicate_charge")
    engine = create_engine(Database(url=postgres_url))
    payments = FakePayments(world)
    context = WorkflowContext(
        crm=FakeCRM(world),
        billing=FakeBilling(world),
        payments=payments,
        knowledge=FakeKnowledge(),
        drafter=FakeDrafter(),
        notifier=notifier,
        store=WorkflowStore(engine),
        review_rules=ReviewRules(),
        clock=lambda: NOW,
    )
    try:
        async with open_checkpointer(postgres_url, max_size=2) as saver:
            runner = WorkflowRunner(
                graph=build_graph(NODES, saver), context=context, store=context.store
            )
            yield Runs(runner, world, payments)
    finally:
        await engine.dispose()


async def apply_decisions(runs: Runs) -> None:
    store = runs.runner.store
    for stored in await store.unapplied_decisions():
        await runs.runner.resume(run_id=stored.run_id, decision=stored.decision)
        await store.mark_decision_applied(stored.id)


def create_key(postgres_url: str, workdir: Path, name: str) -> str:
    created = subprocess.run(
        [sys.executable, str(ROOT / "utils" / "manage_reviewers.py"), "create", name],
        capture_output=True,
        text=True,
        env={**os.environ, "POSTGRES_URL": postgres_url, "DATA_DIR": str(workdir / "data")},
        cwd=workdir,
        timeout=120,
        check=True,
    )
    [key] = [line for line in created.stdout.splitlines() if line.startswith("pa_")]
    return key


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def test_reviewer_signs_in_and_modifies_a_risky_proposal(
    processes: Processes, postgres_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.start("--api", name="api", API_PORT=str(port), PUBLIC_BASE_URL=base)
    key = create_key(postgres_url, tmp_path, "alice")
    async with runs(postgres_url, FakeNotifications()) as r:
        run = await r.runner.start(case_id="500R")
        assert run.status == "pending"
        await asyncio.to_thread(
            wait_for, lambda: answers(f"{base}/health"), timeout=60, what="the API"
        )

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
            )
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(f"{base}/")
            assert "/login" in page.url
            await page.fill("#api_key", key)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{base}/")
            assert await page.inner_text("#signed-in") == "alice"
            pending = await page.inner_text("#pending")
            assert "500R" in pending and "radar_risk_elevated" in pending

            # The session cookie is HttpOnly: page scripts cannot read it.
            [cookie] = [c for c in await context.cookies() if c["name"] == "pa_session"]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
            assert "pa_session" not in await page.evaluate("document.cookie")

            await page.click(f"#pending a[href='/review/{run.run_id}']")
            await page.wait_for_url(f"{base}/review/{run.run_id}")
            assert await page.is_visible("#risk-flags")
            assert "radar_risk_elevated" in await page.inner_text("#risk-flags")
            assert "full_refund" in await page.inner_text("#proposal")
            assert "relevance 0.82" in await page.inner_text("#policies")

            await page.check("input[name=decision][value=modify]")
            await page.select_option("#action", "partial_refund")
            await page.fill("#amount", "45.00")
            await page.fill("#reason", "only one of the two charges was a duplicate")
            await page.fill("#comments", "checked the statement")
            await page.click("#submit-decision")
            await page.wait_for_url(f"{base}/runs/{run.run_id}")
            decisions = await page.inner_text("#decisions")
            assert "alice" in decisions and "page" in decisions
            assert "full_refund 80.00" in decisions and "partial_refund 45.00" in decisions

            await apply_decisions(r)
            await page.reload()
            assert "completed" in await page.inner_text("h1")
            await browser.close()
        refund = r.payments.refunds[f"{run.run_id}:refund"]
        assert str(refund.amount) == "45.00"


@asynccontextmanager
async def serve_api(postgres_url: str, port: int) -> AsyncIterator[str]:
    base = f"http://127.0.0.1:{port}"
    settings = Settings(_env_file=None, review_link_secret=SECRET, public_base_url=base)
    engine = create_engine(Database(url=postgres_url))
    services = build_api_services(settings, store=WorkflowStore(engine), backends={})
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(services), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        await serving
        await engine.dispose()


async def test_emailed_link_opens_in_the_browser_and_works_once(
    postgres_url: str,
) -> None:
    from playwright.async_api import async_playwright

    port = free_port()
    sender = RecordingSender()
    engine = create_engine(Database(url=postgres_url))
    notifier = EmailNotifier(
        mailer=Mailer(sender=sender, log_=NotificationLog(engine)),
        approvers=["bob@example.com"],
        escalation_email=None,
        public_base_url=f"http://127.0.0.1:{port}",
        links=ReviewLinkSigner(SECRET.encode(), ttl=timedelta(hours=72)),
        keys=ReviewerKeys(engine),
    )
    try:
        async with runs(postgres_url, notifier) as r, serve_api(postgres_url, port) as base:
            # Links go only to registered, active reviewers.
            await ReviewerKeys(engine).create("bob", email="bob@example.com")
            run = await r.runner.start(case_id="500R")
            [mail] = sender.sent
            match = re.search(rf"{re.escape(base)}/review/\S+", mail.text)
            assert match is not None
            link = match.group(0)

            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
                )
                page = await browser.new_page()
                opened = await page.goto(link)
                assert opened is not None and opened.status == 200
                assert await page.inner_text("#reviewer") == "bob"
                assert "radar_risk_elevated" in await page.inner_text("#risk-flags")
                await page.check("input[name=decision][value=approve]")
                await page.fill("#comments", "duplicate confirmed")
                await page.click("#submit-decision")
                await page.wait_for_selector("#decision-recorded")
                assert "approved" in await page.inner_text("#decision-recorded")

                again = await page.goto(link)
                assert again is not None and again.status == 409
                assert "already been used" in await page.inner_text("#error-message")
                await browser.close()

            [decision] = await r.runner.store.decisions_for_run(run.run_id)
            assert (decision["reviewer"], decision["channel"]) == ("bob", "link")
            await apply_decisions(r)
            row = await r.runner.store.get_run(run.run_id)
            assert row is not None and row["status"] == "completed"
            assert str(r.payments.refunds[f"{run.run_id}:refund"].amount) == "80.00"
    finally:
        await engine.dispose()
