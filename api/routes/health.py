"""GET /health: is the service up (PostgreSQL answers); GET /health/backends: which kind
of backend each system uses, for reviewers only; GET /health/ready: PostgreSQL answers, and
the drafter in use with the result of its start-up check, for reviewers only.

/health is open, so it says nothing an outsider could use: no URLs, no backend names, no
account ids, no error details. /health/backends needs a reviewer key and still gives
only kinds (`salesforce`, `sandbox`, ...), never URLs, tokens or account ids.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from api.auth import require_api_reviewer
from api.deps import Services
from api.schemas import BackendsHealth, HealthStatus, error_responses

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

INTEGRATION_SYSTEMS = ("crm", "billing", "payments")


@router.get(
    "/health",
    response_model=HealthStatus,
    responses={503: {"model": HealthStatus, "description": "PostgreSQL does not answer."}},
)
async def health(services: Services) -> JSONResponse:
    """`{"status": "ok"}`; 503 when PostgreSQL does not answer."""
    try:
        async with services.store.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # a health check reports failures, it does not raise them
        log.warning("health check: database unavailable: %s", type(exc).__name__)
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get(
    "/health/backends",
    dependencies=[Depends(require_api_reviewer)],
    response_model=BackendsHealth,
    responses=error_responses(401),
)
async def health_backends(services: Services) -> dict[str, Any]:
    """The kind of each backend, and which of CRM, billing and payments are sandbox."""
    backends = dict(services.backends)
    return {
        "backends": backends,
        "sandbox_systems": [s for s in INTEGRATION_SYSTEMS if backends.get(s) == "sandbox"],
    }


class ReadyHealth(BaseModel):
    status: Literal["ready", "unavailable"] = Field(
        description="`ready` when PostgreSQL answers (a drafter that does not is a warning)."
    )
    database: Literal["ok", "unavailable"]
    drafter: str = Field(description="`rules`, or `openai:<model>`; never a URL or a key.")
    drafter_reachable: bool | None = Field(
        description="Whether the drafter answered the start-up check (null: not checked). "
        "When false, drafts fall back to the rules drafter, flagged for review."
    )


@router.get(
    "/health/ready",
    dependencies=[Depends(require_api_reviewer)],
    response_model=ReadyHealth,
    responses={
        **error_responses(401),
        503: {"model": ReadyHealth, "description": "PostgreSQL does not answer."},
    },
)
async def health_ready(services: Services) -> JSONResponse:
    """Ready to work: PostgreSQL answers; and the drafter in use, and whether it answered
    its start-up check. For reviewers, as /health/backends: it names the drafter."""
    try:
        async with services.store.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:  # a health check reports failures, it does not raise them
        log.warning("readiness check: database unavailable: %s", type(exc).__name__)
        database = "unavailable"
    body = {
        "status": "ready" if database == "ok" else "unavailable",
        "database": database,
        "drafter": services.backends.get("drafter", "rules"),
        "drafter_reachable": services.drafter_reachable,
    }
    return JSONResponse(body, status_code=200 if database == "ok" else 503)
