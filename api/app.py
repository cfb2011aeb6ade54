"""The FastAPI application: review API, costs, status and the dashboard."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import ApiServices
from api.routes import (
    costs,
    dashboard,
    health,
    metrics,
    review_page,
    reviews,
    runs,
    webhooks,
    workflows,
)
from services.errors import PaymentsAgentError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
STATIC_DIR = Path(__file__).resolve().parent / "static"


class PayloadTooLargeError(PaymentsAgentError):
    status_code = 413


class BodyLimit:
    """Refuse request bodies above MAX_BODY_BYTES with 413 before they are read whole."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            response = JSONResponse(
                {"error": f"request body above {MAX_BODY_BYTES} bytes", "status": 413},
                status_code=413,
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> dict[str, object]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body) if isinstance(body, bytes) else 0
                if received > MAX_BODY_BYTES:
                    raise PayloadTooLargeError(f"request body above {MAX_BODY_BYTES} bytes")
            return dict(message)

        await self.app(scope, limited, send)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{location or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(services: ApiServices) -> FastAPI:
    """Build the API around already-composed services."""
    # /docs and /redoc load Swagger UI and ReDoc from this app (/static-offline-docs), not
    # a CDN, so they work offline; "Authorize" keeps the key across reloads of /docs.
    app = FastAPIOffline(
        title="PaymentsAgent",
        version="0.1.0",
        swagger_ui_parameters={"persistAuthorization": True},
    )
    app.state.services = services

    @app.exception_handler(PaymentsAgentError)
    async def domain_error(request: Request, exc: PaymentsAgentError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(
            {"error": exc.message, "status": exc.status_code},
            status_code=exc.status_code,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(exc), "status": 422}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(exc.detail), "status": exc.status_code},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": "internal error", "status": 500}, status_code=500)

    for module in (health, reviews, workflows, costs, dashboard, review_page, webhooks):
        app.include_router(module.router)
    app.include_router(runs.router)  # GET /workflow/runs, /workflow/review-metrics
    app.include_router(metrics.router)  # GET /metrics (Prometheus, no key)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(BodyLimit)
    return app
