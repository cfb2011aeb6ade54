"""GET /health: liveness, database reachability and which backend each integration uses."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import Services

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(services: Services) -> JSONResponse:
    """Report status; 503 when PostgreSQL does not answer."""
    database = "ok"
    try:
        async with services.store.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # a health check reports failures, it does not raise them
        database = f"unavailable: {type(exc).__name__}"
    body: dict[str, Any] = {
        "status": "ok" if database == "ok" else "degraded",
        "database": database,
        "integrations": services.backends,
    }
    return JSONResponse(body, status_code=200 if database == "ok" else 503)
