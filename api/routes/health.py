"""GET /health: is the service up (PostgreSQL answers); GET /health/backends: which kind
of backend each system uses, for reviewers only.

/health is open, so it says nothing an outsider could use: no URLs, no backend names, no
account ids, no error details. /health/backends needs a reviewer key and still gives
only kinds (`salesforce`, `sandbox`, ...), never URLs, tokens or account ids.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.auth import require_api_reviewer
from api.deps import Services

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

INTEGRATION_SYSTEMS = ("crm", "billing", "payments")


@router.get("/health")
async def health(services: Services) -> JSONResponse:
    """`{"status": "ok"}`; 503 when PostgreSQL does not answer."""
    try:
        async with services.store.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # a health check reports failures, it does not raise them
        log.warning("health check: database unavailable: %s", type(exc).__name__)
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/health/backends", dependencies=[Depends(require_api_reviewer)])
async def health_backends(services: Services) -> dict[str, Any]:
    """The kind of each backend, and which of CRM, billing and payments are sandbox."""
    backends = dict(services.backends)
    return {
        "backends": backends,
        "sandbox_systems": [s for s in INTEGRATION_SYSTEMS if backends.get(s) == "sandbox"],
    }
