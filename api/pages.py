"""Shared helpers of the server-rendered pages: templates, error pages, sign-in redirects."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from services.errors import PaymentsAgentError

templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")

TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Not allowed",
    404: "Not found",
    409: "Already decided",
    422: "Please check your input",
}

# Pages carry decision forms and, for review links, a token in the URL: never framed,
# never cached, never sent on as a referrer.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


def render(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, context, status_code=status_code, headers=PAGE_HEADERS
    )


def error_page(
    request: Request, exc: PaymentsAgentError, *, session: object | None = None
) -> HTMLResponse:
    status = exc.status_code if 400 <= exc.status_code < 600 else 500
    return render(
        request,
        "error.html",
        {
            "title": TITLES.get(status, "Something went wrong"),
            "message": exc.message if status < 500 else "internal error",
            "status": status,
            "session": session,
        },
        status_code=status,
    )


def safe_next(value: str | None) -> str:
    """A local path to go back to after signing in; anything else becomes '/'."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
