"""The live review desk (issue 12), in a real browser: Debian's Chromium driven by Playwright.

The API runs in-process (uvicorn on loopback, composed with `build_api_services` as app.py
does) over a fresh PostgreSQL database; the graph runs on fake adapters, and a decision is
applied the way a worker applies it. What a reviewer would notice:

1. a decision made in one tab shows in the other open tabs (the desk and the run's page)
   without a reload, and so does the run completing;
2. filters, search and paging over all runs, reviews oldest first;
3. after a decision, a confirmation and the run's new state, then its readable outcome;
4. on a 1440x900 window the decision form is in view without scrolling, nothing chosen;
5. the review page's governing matrix row, the customer's recent charges and the links
   to the CRM and the payment system; the live endpoints need a session.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import ValidationError

from agents import NODES
from api.app import create_app
from api.deps import build_api_services
from api.pages import ExternalLinks
from services.persistence.database import Database, create_engine
from services.persistence.store import WorkflowStore
from services.review.reviewers import ReviewerKeys
from services.settings import Settings
from tests.e2e.conftest import free_port
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
VIEWPORT = {"width": 1440, "height": 900}
CRM_TEMPLATE = "https://crm.example.test/lightning/r/Case/{case_id}/view"
CHARGE_TEMPLATE = "https://pay.example.test/payments/{charge_id}"
# The desk polls every 1.5 s; a change shows within a few seconds.
LIVE_TIMEOUT_MS = 10_000

pytestmark = pytest.mark.slow
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's Chromium is not installed at /usr/bin/chromium "
    "(as root: apt-get update && apt-get install -y chromium)",
)


def dataset() -> FakeWorld:
    """Three customers, three disputes: a $99 duplicate (premium), a risky $80 duplicate
    (standard) and an 8-hour outage on a $199 charge (premium)."""
    world = FakeWorld.default()  # case 500A, account 001A, customer cus_A, charge ch_1
    world.add_customer("001B", "cus_B", "B0001", segment="standard")
    world.add_charge("ch_r", "cus_B", "80.00", days_ago=5, risk="elevated")
    world.add_case("500R", "001B", "ch_r", "80.00", dispute_type="duplicate_charge")
    world.add_customer("001C", "cus_C", "C0001", segment="premium")
    world.add_charge("ch_o", "cus_C", "199.00", days_ago=3)
    world.add_charge("ch_o_prev", "cus_C", "199.00", days_ago=33)
    world.add_case("500O", "001C", "ch_o", "199.00", dispute_type="service_outage")
    world.cases["500O"] = world.cases["500O"].model_copy(
        update={"outage_hours": Decimal("8"), "subject": "API down for a whole shift"}
    )
    return world


@dataclass
class Desk:
    base: str
    runner: WorkflowRunner
    store: WorkflowStore
    payments: FakePayments
    keys: dict[str, str]

    async def start(self, *case_ids: str) -> list[str]:
        """Start a run per case, one after the other; each pauses for review."""
        run_ids = []
        for case_id in case_ids:
            outcome = await self.runner.start(case_id=case_id)
            assert outcome.status == "pending", outcome
            run_ids.append(outcome.run_id)
        return run_ids

    async def apply_decisions(self) -> None:
        """What a worker does with recorded decisions: resume each run with its own."""
        for stored in await self.store.unapplied_decisions():
            await self.runner.resume(run_id=stored.run_id, decision=stored.decision)
            await self.store.mark_decision_applied(stored.id)


@asynccontextmanager
async def open_desk(postgres_url: str) -> AsyncIterator[Desk]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    world = dataset()
    engine = create_engine(Database(url=postgres_url))
    store = WorkflowStore(engine)
    payments = FakePayments(world)
    context = WorkflowContext(
        crm=FakeCRM(world),
        billing=FakeBilling(world),
        payments=payments,
        knowledge=FakeKnowledge(),
        drafter=FakeDrafter(),
        notifier=FakeNotifications(),
        store=store,
        review_rules=ReviewRules(),
        clock=lambda: NOW,
    )
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        public_base_url=base,
        crm_case_url_template=CRM_TEMPLATE,
        payment_charge_url_template=CHARGE_TEMPLATE,
    )
    services = build_api_services(settings, store=store, backends={"crm": "fake"})
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(services), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    keys = {name: (await ReviewerKeys(engine).create(name)).key for name in ("alice", "bob")}
    serving = asyncio.create_task(server.serve())
    try:
        async with open_checkpointer(postgres_url, max_size=2) as saver:
            runner = WorkflowRunner(graph=build_graph(NODES, saver), context=context, store=store)
            while not server.started:
                await asyncio.sleep(0.05)
            yield Desk(base, runner, store, payments, keys)
    finally:
        server.should_exit = True
        await serving
        await engine.dispose()


@pytest.fixture
async def desk(postgres_url: str) -> AsyncIterator[Desk]:
    async with open_desk(postgres_url) as opened:
        yield opened


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        yield launched
        await launched.close()


async def signed_in(browser: Any, desk: Desk, name: str = "alice") -> Any:
    """A browser context (its tabs share the cookie) signed in as `name`, 1440x900."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    await page.goto(f"{desk.base}/login")
    await page.fill("#api_key", desk.keys[name])
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{desk.base}/")
    await page.close()
    return context


async def mark_no_reload(page: Any) -> None:
    """Leave a mark in the page's window: a reload would wipe it."""
    await page.evaluate("window.__sameDocument = true")


async def still_same_document(page: Any) -> bool:
    return bool(await page.evaluate("window.__sameDocument === true"))


@needs_chromium
async def test_a_decision_in_one_tab_shows_in_the_other_tabs_without_a_reload(
    desk: Desk, browser: Any
) -> None:
    from playwright.async_api import expect

    first, second = await desk.start("500A", "500R")
    context = await signed_in(browser, desk)
    board = await context.new_page()
    await board.goto(f"{desk.base}/")
    run_tab = await context.new_page()
    await run_tab.goto(f"{desk.base}/runs/{first}")
    row = board.locator(f"#pending tr[data-run='{first}']")
    await expect(row).to_contain_text("Awaiting a reviewer's decision")
    await expect(board.locator("#count-pending b")).to_have_text("2")
    await expect(run_tab.locator("#run-state")).to_contain_text("Awaiting a reviewer's decision")
    for page in (board, run_tab):
        await expect(page.locator("#live-status")).to_contain_text("live")
        await mark_no_reload(page)

    decider = await context.new_page()
    await decider.goto(f"{desk.base}/review/{first}")
    await decider.check("input[name=decision][value=approve]")
    await decider.click("#submit-decision")
    await decider.wait_for_url(f"{desk.base}/runs/{first}")

    # Recorded: both open tabs say so, without a reload.
    await expect(row).to_contain_text(
        "Decision recorded: approved by alice", timeout=LIVE_TIMEOUT_MS
    )
    await expect(row).to_have_class(re.compile("decided"))
    await expect(run_tab.locator("#run-state")).to_contain_text(
        "Decision recorded: approved by alice", timeout=LIVE_TIMEOUT_MS
    )

    # Applied by the worker: the run leaves the queue, the counts and the run's tab follow.
    await desk.apply_decisions()
    await expect(row).to_have_count(0, timeout=LIVE_TIMEOUT_MS)
    await expect(board.locator(f"#pending tr[data-run='{second}']")).to_have_count(1)
    await expect(board.locator("#count-pending b")).to_have_text("1")
    await expect(board.locator("#count-completed b")).to_have_text("1")
    await expect(board.locator(f"#runs tr[data-run='{first}'] .status")).to_have_text("completed")
    await expect(run_tab.locator("h1")).to_contain_text("completed", timeout=LIVE_TIMEOUT_MS)
    await expect(run_tab.locator("#outcome-payout")).to_contain_text("succeeded")
    assert await still_same_document(board) and await still_same_document(run_tab)
    await context.close()


async def add_finished_runs(store: WorkflowStore, count: int) -> None:
    """`count` completed incorrect-amount runs refunding $10, $11, ... (customers cus_S0, ...)."""
    for n in range(count):
        run_id = str(uuid.uuid4())
        await store.create_run(
            run_id=run_id, case_id=f"900{n:02d}", customer_id=f"cus_S{n}", actor="test"
        )
        amount = f"{10 + n}.00"
        await store.update_run(
            run_id,
            status="completed",
            crm_data={"case": {"dispute_type": "incorrect_amount", "amount": amount}},
            resolution_proposal={"action": "partial_refund", "amount": amount, "currency": "usd"},
        )


@needs_chromium
async def test_filters_search_and_paging_over_all_runs(desk: Desk, browser: Any) -> None:
    from playwright.async_api import expect

    duplicate, risky, outage = await desk.start("500A", "500R", "500O")
    await add_finished_runs(desk.store, 30)
    context = await signed_in(browser, desk)
    page = await context.new_page()
    await page.goto(f"{desk.base}/")

    # Reviews oldest first; all 33 runs paged, 25 a page, newest first.
    reviews = page.locator("#pending tbody tr")
    assert await reviews.evaluate_all("rows => rows.map(r => r.dataset.run)") == [
        duplicate,
        risky,
        outage,
    ]
    await expect(page.locator("#all-runs h2")).to_contain_text("1–25 of 33")
    await expect(page.locator("#runs tbody tr")).to_have_count(25)
    await page.click("#runs-pager a[rel=next]")
    await page.wait_for_url(re.compile(r"page=2"))
    await expect(page.locator("#all-runs h2")).to_contain_text("26–33 of 33")
    await expect(page.locator("#runs tbody tr")).to_have_count(8)
    # The oldest runs are on the last page.
    await expect(page.locator(f"#runs tr[data-run='{duplicate}']")).to_have_count(1)

    async def apply(**fields: str) -> None:
        await page.goto(f"{desk.base}/")
        for selector, value in fields.items():
            element = page.locator(f"#filter-{selector}")
            if await element.evaluate("e => e.tagName") == "SELECT":
                await element.select_option(value)
            else:
                await element.fill(value)
        await page.click("#apply-filters")
        await page.wait_for_load_state()

    async def shown() -> tuple[list[str], list[str]]:
        pending = await page.locator("#pending tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.run)"
        )
        runs = await page.locator("#runs tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.run)"
        )
        return pending, runs

    await apply(type="service_outage")
    assert "type=service_outage" in page.url
    assert await shown() == ([outage], [outage])

    await apply(flag="radar_risk_elevated")
    assert await shown() == ([risky], [risky])

    await apply(min="90", max="100")
    assert await shown() == ([duplicate], [duplicate])
    await apply(min="30", max="35")
    pending, runs = await shown()
    assert pending == [] and len(runs) == 6  # $30 .. $35, all completed
    await expect(page.locator("#pending")).to_contain_text("No review matches these filters")

    await apply(q=risky[:8])
    assert await shown() == ([risky], [risky])
    await apply(q="cus_C")
    assert await shown() == ([outage], [outage])
    await apply(q="500A")
    assert await shown() == ([duplicate], [duplicate])

    # Status narrows the runs table; the review queue stays the runs awaiting review.
    await apply(status="completed")
    await expect(page.locator("#all-runs h2")).to_contain_text("of 30")
    pending, runs = await shown()
    assert pending == [duplicate, risky, outage] and len(runs) == 25
    await page.click("#runs-pager a[rel=next]")
    await page.wait_for_url(re.compile(r"status=completed.*page=2|page=2.*status=completed"))
    assert len((await shown())[1]) == 5

    await apply(min="ten")
    await expect(page.locator("#filter-error")).to_contain_text("amount from must be an amount")
    await context.close()


@needs_chromium
async def test_after_a_decision_a_confirmation_then_the_outcome_in_words(
    desk: Desk, browser: Any
) -> None:
    from playwright.async_api import expect

    [run_id] = await desk.start("500R")
    context = await signed_in(browser, desk)
    page = await context.new_page()
    await page.goto(f"{desk.base}/review/{run_id}")

    # Nothing is chosen for the reviewer; submitting without a choice says what is missing.
    assert await page.locator("input[name=decision]:checked").count() == 0
    await page.click("#submit-decision")
    await expect(page.locator("#form-error")).to_have_text("choose approve, modify or reject")
    assert await desk.store.decisions_for_run(run_id) == []

    await page.check("input[name=decision][value=modify]")
    await page.select_option("#action", "partial_refund")
    await page.fill("#amount", "45.00")
    await page.fill("#reason", "only one of the two charges was a duplicate")
    await page.click("#submit-decision")
    await page.wait_for_url(f"{desk.base}/runs/{run_id}")
    confirmation = page.locator("#decision-confirmation")
    await expect(confirmation).to_contain_text("Decision recorded")
    await expect(confirmation).to_contain_text("partial_refund 45.00")
    await expect(page.locator("#run-state")).to_have_text(
        "Decision recorded: approved by alice. The run resumes shortly."
    )
    await mark_no_reload(page)

    await desk.apply_decisions()
    await expect(page.locator("h1")).to_contain_text("completed", timeout=LIVE_TIMEOUT_MS)
    await expect(page.locator("#run-state")).to_contain_text(
        "Completed: partial_refund 45.00 USD, refund re_1 succeeded"
    )
    await expect(page.locator("#outcome-action")).to_have_text("partial refund")
    await expect(page.locator("#outcome-amount")).to_have_text("45.00 USD")
    await expect(page.locator("#outcome-version")).to_contain_text("2")
    await expect(page.locator("#outcome-approved-by")).to_have_text("alice")
    await expect(page.locator("#outcome-payout")).to_contain_text("succeeded")
    await expect(page.locator("#outcome-provider-ref")).to_contain_text("re_1")
    await expect(page.locator("#outcome-case-updated")).to_contain_text("yes")
    assert await page.locator("#outcome pre").count() == 0  # no raw JSON
    assert await still_same_document(page)
    # The confirmation is shown once; the run's page keeps the decision in its table.
    await page.reload()
    await expect(page.locator("#decision-confirmation")).to_have_count(0)
    await expect(page.locator("#decisions")).to_contain_text("partial_refund 45.00")
    await context.close()


@needs_chromium
async def test_the_decision_form_is_in_view_on_a_1440_by_900_window(
    desk: Desk, browser: Any
) -> None:
    risky, outage = await desk.start("500R", "500O")
    context = await signed_in(browser, desk)
    page = await context.new_page()
    for run_id in (risky, outage):
        await page.goto(f"{desk.base}/review/{run_id}")
        assert await page.evaluate("window.scrollY") == 0
        assert await page.evaluate("window.innerHeight") == VIEWPORT["height"]
        for selector in ("#decision-form", "#submit-decision", "input[value=approve]"):
            box = await page.locator(selector).bounding_box()
            assert box is not None, selector
            assert box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"], (selector, box)
            assert box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"], (selector, box)
        assert await page.locator("input[name=decision]:checked").count() == 0
    # The risk flags are shown beside it.
    await page.goto(f"{desk.base}/review/{risky}")
    flags = await page.locator("#risk-flags").bounding_box()
    assert flags is not None and flags["y"] + flags["height"] <= VIEWPORT["height"]
    await context.close()


@asynccontextmanager
async def session_client(desk: Desk, name: str = "alice") -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client holding `name`'s dashboard session cookie."""
    async with httpx.AsyncClient(base_url=desk.base, timeout=10) as client:
        signed = await client.post("/login", data={"api_key": desk.keys[name], "next": "/"})
        assert signed.status_code == 303
        yield client


async def test_review_page_shows_the_governing_row_recent_charges_and_links(desk: Desk) -> None:
    outage, duplicate = await desk.start("500O", "500A")
    async with session_client(desk) as client:
        page = (await client.get(f"/review/{outage}")).text
        governing = page.split('id="governing-rule"')[1].split("</div>")[0]
        assert "POL-OUT-002" in governing
        assert re.search(
            r"<td>6-12 hours</td><td>Premium</td><td>Full refund</td>"
            r"<td>100% of the disputed charge</td>",
            governing,
        ), governing
        assert re.search(
            r"<td>Service outage</td><td>Full refund</td><td>Permitted</td>", governing
        )
        charges = page.split('id="recent-charges"')[1].split("</section>")[0]
        assert charges.index("ch_o") < charges.index("ch_o_prev")  # newest first
        assert 'class="disputed"' in charges and "199.00" in charges
        assert 'href="https://pay.example.test/payments/ch_o_prev"' in charges
        assert 'href="https://crm.example.test/lightning/r/Case/500O/view"' in page
        assert 'id="charge-link"' in page

        # Another dispute type: its rule, and the permitted row of what would execute.
        page = (await client.get(f"/review/{duplicate}")).text
        governing = page.split('id="governing-rule"')[1].split("</div>")[0]
        assert "POL-BIL-004" in governing and "repeating another charge" in governing
        assert re.search(
            r"<td>Duplicate charge</td><td>Full refund</td><td>Permitted</td>", governing
        )
        assert 'id="governing-row"' not in governing  # no outage matrix for a duplicate


async def test_live_endpoints_need_a_session_and_report_changes(desk: Desk) -> None:
    [run_id] = await desk.start("500A")
    async with httpx.AsyncClient(base_url=desk.base, timeout=10) as anonymous:
        for path in ("/dashboard/events", "/dashboard/live", f"/runs/{run_id}/live"):
            response = await anonymous.get(path)
            assert response.status_code == 401, path
            assert "500A" not in response.text
    async with session_client(desk) as client:
        # A stale signature: the first event reports the change at once.
        async with client.stream("GET", "/dashboard/events?since=stale") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            first = [await anext(lines) for _ in range(4)]
        assert "event: change" in first, first
        fragment = await client.get("/dashboard/live?type=duplicate_charge")
        assert fragment.status_code == 200 and f'data-run="{run_id}"' in fragment.text
        assert "<html" not in fragment.text
        filtered = await client.get("/dashboard/live?type=service_outage")
        assert f'data-run="{run_id}"' not in filtered.text


def test_link_templates_are_checked_and_ids_are_encoded_into_them() -> None:
    with pytest.raises(ValidationError, match="containing {case_id}"):
        Settings(_env_file=None, crm_case_url_template="https://crm.example.test/case")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="http"):
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            payment_charge_url_template="javascript:alert(1)//{charge_id}",
        )
    unset = Settings(_env_file=None, crm_case_url_template=" ")  # type: ignore[call-arg]
    assert unset.crm_case_url_template is None
    links = ExternalLinks(CRM_TEMPLATE, None)
    assert links.case("500 A/../x?y") == (
        "https://crm.example.test/lightning/r/Case/500%20A%2F..%2Fx%3Fy/view"
    )
    assert links.charge("ch_1") is None and links.case("") is None
