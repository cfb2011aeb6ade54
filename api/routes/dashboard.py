"""The dashboard: pending reviews and recent runs, rendered on the server."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.deps import Services
from api.routes.reviews import pending_summary
from api.routes.workflows import parse_run_id, run_status

router = APIRouter(tags=["dashboard"], include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, services: Services) -> HTMLResponse:
    runs = await services.store.list_runs(limit=200)
    pending = [pending_summary(r) for r in runs if r["status"] == "pending"]
    counts = Counter(r["status"] for r in runs)
    return templates.TemplateResponse(
        request,
        "dashboard.html",
        {"pending": pending, "runs": runs, "counts": counts, "backends": services.backends},
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str, services: Services) -> HTMLResponse:
    status = await run_status(parse_run_id(run_id), services)
    run = await services.store.get_run(status["run_id"])
    return templates.TemplateResponse(request, "run.html", {"s": status, "run": run})
