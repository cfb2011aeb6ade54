"""The dashboard: sign-in, pending reviews and recent runs, rendered on the server."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import Session
from api.deps import Services
from api.pages import error_page, login_redirect, render, safe_next
from api.routes.reviews import pending_summary
from api.routes.workflows import parse_run_id, run_status
from api.sessions import SESSION_COOKIE, SESSION_TTL
from services.errors import PaymentsAgentError

router = APIRouter(tags=["dashboard"], include_in_schema=False)


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


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, services: Services, session: Session) -> Response:
    if session is None:
        return login_redirect(request)
    runs = await services.store.list_runs(limit=200)
    pending = [pending_summary(r) for r in runs if r["status"] == "pending"]
    counts = Counter(r["status"] for r in runs)
    return render(
        request,
        "dashboard.html",
        {
            "pending": pending,
            "runs": runs,
            "counts": counts,
            "backends": services.backends,
            "session": session,
        },
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str, services: Services, session: Session) -> Response:
    if session is None:
        return login_redirect(request)
    try:
        status = await run_status(parse_run_id(run_id), services)
    except PaymentsAgentError as exc:
        return error_page(request, exc, session=session)
    return render(request, "run.html", {"s": status, "session": session})
