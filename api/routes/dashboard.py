"""The dashboard: sign-in, the live review desk and the run pages, rendered on the server.

The desk (`/`) lists the runs awaiting review, oldest first, and all runs, newest first,
filtered and paged in PostgreSQL. Pages stay current without a reload: `/dashboard/events`
is a Server-Sent Events stream that polls a cheap change signature of the runs and
decisions and says "change" when it moves; the page's script (static/desk.js) then fetches
the HTML fragments of its live regions (`/dashboard/live`, `/runs/{id}/live`,
`/runs/{id}/state`) and swaps them in. The session cookie is the credential throughout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.auth import PageSession, Session, optional_session
from api.dashboard_queries import DISPUTE_TYPES, STATUSES, DeskQueries, RunFilters
from api.deps import ApiServices, Services
from api.pages import (
    ExternalLinks,
    error_page,
    login_redirect,
    outcome_summary,
    render,
    run_state,
    safe_next,
)
from api.routes.reviews import pending_summary
from api.routes.runs import escalation_hours
from api.routes.workflows import parse_run_id, run_status
from api.sessions import SESSION_COOKIE, SESSION_TTL
from services.errors import ForbiddenError, InvalidRequestError, PaymentsAgentError
from services.persistence.review_metrics import review_metrics
from workflows.controls import CANCELLABLE_STATUSES, RETRYABLE_STATUSES, cancel_run, retry_run

log = logging.getLogger(__name__)

router = APIRouter(tags=["dashboard"], include_in_schema=False)

# How often a live stream looks for changes, and how many polls between re-checks of its
# session (a revoked key or an expired cookie ends the stream).
POLL_SECONDS = 1.5
SESSION_CHECK_POLLS = 20
# The flash cookie the review page sets after a decision: the round decided, shown once
# as a confirmation on the run's page.
DECIDED_COOKIE = "pa_decided"


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, session: Session, next: str = "/") -> Response:
    if session is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    services: Services,
    api_key: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Exchange a reviewer API key for a session cookie (the key itself is not kept)."""
    reviewer = await services.reviewer_keys.verify(api_key.strip())
    if reviewer is None:
        return render(
            request,
            "login.html",
            {"next": safe_next(next), "error": "That key is not valid, or it has been revoked."},
            status_code=401,
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        services.sessions.issue(reviewer, now=services.clock()),
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        secure=services.secure_cookies,
        samesite="lax",
        path="/",
    )
    return response


@router.post("/logout")
async def logout() -> RedirectResponse:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _signed_out() -> Response:
    """A live fragment or stream asked for without a session: the page reloads to sign in."""
    return JSONResponse({"error": "sign in to the dashboard", "status": 401}, status_code=401)


def external_links(services: ApiServices) -> ExternalLinks:
    return ExternalLinks(services.crm_case_url_template, services.payment_charge_url_template)


async def _desk(services: ApiServices, request: Request) -> dict[str, Any]:
    """What the desk shows for the request's filters: counts, reviews and runs."""
    filters = RunFilters.parse(request.query_params)
    queries = DeskQueries(services.store)
    reviews = await queries.reviews(filters)
    pending = []
    for row in reviews.rows:
        summary = pending_summary(row)
        summary["unapplied"] = row["unapplied"]
        summary["state"] = run_state(
            "pending",
            unapplied=row["unapplied"],
            required=summary["required_approvals"],
            approved_by=summary["approved_by"],
        )
        pending.append(summary)
    return {
        "filters": filters,
        "counts": await queries.counts(),
        "statuses": STATUSES,
        "pending": pending,
        "reviews": reviews,
        "runs": await queries.runs(filters),
        "chargebacks": await queries.chargebacks(),
        "workload": await review_metrics(
            services.store.engine,
            now=services.clock(),
            escalation_hours=escalation_hours(services),
            since=services.clock() - timedelta(days=30),
        ),
        "drafter_reachable": services.drafter_reachable,
        "drafter": services.backends.get("drafter"),
    }


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, services: Services, session: Session) -> Response:
    """The review desk: counts, reviews oldest first and all runs, filtered and paged."""
    if session is None:
        return login_redirect(request)
    desk = await _desk(services, request)
    queries = DeskQueries(services.store)
    return render(
        request,
        "dashboard.html",
        desk
        | {
            "dispute_types": DISPUTE_TYPES,
            "risk_flags": await queries.risk_flags(),
            "since": await queries.signature(),
            "backends": services.backends,
            "session": session,
        },
    )


@router.get("/dashboard/live", response_class=HTMLResponse)
async def desk_fragment(request: Request, services: Services, session: Session) -> Response:
    """The desk's live region (counts and tables) for the same filters, as HTML."""
    if session is None:
        return _signed_out()
    return render(request, "_desk.html", await _desk(services, request))


@router.get("/dashboard/events")
async def events(
    request: Request, services: Services, session: Session, run: str = "", since: str = ""
) -> Response:
    """Server-Sent Events: `change` whenever the runs (or the one `run`) may have changed.

    Each event's id is the signature it reports; a reconnecting browser sends it back as
    Last-Event-ID, so a change made while it was away is reported at once.
    """
    if session is None:
        return _signed_out()
    run_id = parse_run_id(run) if run else None
    queries = DeskQueries(services.store)
    last = (request.headers.get("last-event-id") or since)[:200]

    async def changes() -> AsyncIterator[ServerSentEvent]:
        nonlocal last
        polls = 0
        try:
            while True:
                polls += 1
                if polls % SESSION_CHECK_POLLS == 0 and not await _still_signed_in(
                    request, services
                ):
                    yield ServerSentEvent(data="", event="signed-out")
                    return
                signature = await queries.signature(run_id)
                if signature != last:
                    last = signature
                    yield ServerSentEvent(data=signature, event="change", id=signature, retry=3000)
                await asyncio.sleep(POLL_SECONDS)
        except SQLAlchemyError as exc:
            # PostgreSQL went away: end this stream; the browser reconnects by itself.
            log.warning("dashboard event stream ended: database unavailable (%s)", type(exc))

    return EventSourceResponse(
        changes(), ping=15, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


async def _still_signed_in(request: Request, services: ApiServices) -> bool:
    return await optional_session(request, services) is not None


async def _run_context(services: ApiServices, run_id: str, session: PageSession) -> dict[str, Any]:
    status = await run_status(parse_run_id(run_id), services)
    approval = status["review"].get("approval") or {}
    unapplied = [
        d for d in status["decisions"] if d["channel"] != "system" and d["applied_at"] is None
    ]
    final = status["final_resolution"] or {}
    return {
        "s": status,
        "state": run_state(
            status["status"],
            step=status["current_step"],
            unapplied=unapplied,
            required=approval.get("required_approvals"),
            approved_by=approval.get("approved_by") or [],
            final=final,
            error=status["last_error"],
        ),
        "outcome": final,
        "outcome_summary": outcome_summary(final) if final else None,
        "execution": final.get("execution") or {},
        "links": external_links(services),
        "session": session,
        "csrf": services.sessions.csrf(session.cookie),
        "can_retry": status["status"] in RETRYABLE_STATUSES,
        "can_cancel": status["status"] in CANCELLABLE_STATUSES,
    }


def _decided_round(request: Request) -> int | None:
    value = request.cookies.get(DECIDED_COOKIE, "")
    return int(value) if value.isdigit() else None


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str, services: Services, session: Session) -> Response:
    """A run: its state, outcome, decisions and audit trail; after a decision, its
    confirmation (once)."""
    if session is None:
        return login_redirect(request)
    try:
        context = await _run_context(services, run_id, session)
    except PaymentsAgentError as exc:
        return error_page(request, exc, session=session)
    status = context["s"]
    decided = _decided_round(request)
    confirmed = next(
        (
            d
            for d in status["decisions"]
            if decided is not None
            and d["round"] == decided
            and d.get("reviewer_id") == session.reviewer.reviewer_id
        ),
        None,
    )
    response = render(
        request,
        "run.html",
        context
        | {
            "confirmed": confirmed,
            "since": await DeskQueries(services.store).signature(status["run_id"]),
        },
    )
    if decided is not None:
        response.delete_cookie(DECIDED_COOKIE, path=f"/runs/{status['run_id']}")
    return response


@router.get("/runs/{run_id}/live", response_class=HTMLResponse)
async def run_fragment(
    request: Request, run_id: str, services: Services, session: Session
) -> Response:
    """The run page's live region, as HTML."""
    return await _run_piece(request, run_id, services, session, "_run_live.html")


@router.get("/runs/{run_id}/state", response_class=HTMLResponse)
async def run_state_fragment(
    request: Request, run_id: str, services: Services, session: Session
) -> Response:
    """The run's status and state line, as HTML (the review page's live region)."""
    return await _run_piece(request, run_id, services, session, "_run_state.html")


async def _run_piece(
    request: Request,
    run_id: str,
    services: ApiServices,
    session: PageSession | None,
    template: str,
) -> Response:
    if session is None:
        return _signed_out()
    try:
        context = await _run_context(services, run_id, session)
    except PaymentsAgentError as exc:
        return error_page(request, exc, session=session)
    return render(request, template, context)


@router.post("/runs/{run_id}/control", response_class=HTMLResponse)
async def run_control(
    request: Request,
    run_id: str,
    services: Services,
    session: Session,
    action: Annotated[str, Form(max_length=16)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Retry a failed or parked run, or cancel one that has not moved money: audited with
    the signed-in reviewer and the reason, as the REST run controls are."""
    if session is None:
        return login_redirect(request)
    try:
        if not services.sessions.check_csrf(session.cookie, csrf):
            raise ForbiddenError("the form has expired; reload the page and try again")
        run_id = parse_run_id(run_id)
        if not reason.strip():
            raise InvalidRequestError("say why: a reason is recorded with the action")
        actor = session.reviewer.name
        if action == "retry":
            if services.store.jobs is None:
                raise PaymentsAgentError("run jobs are not configured in this process")
            await retry_run(
                services.store, services.store.jobs, run_id=run_id, actor=actor, reason=reason
            )
        elif action == "cancel":
            await cancel_run(services.store, run_id=run_id, actor=actor, reason=reason)
        else:
            raise InvalidRequestError("choose retry or cancel")
    except PaymentsAgentError as exc:
        return error_page(request, exc, session=session)
    return RedirectResponse(f"/runs/{run_id}", status_code=303)
