"""Cost queries: one run, or every run of a case summed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends

from api.auth import require_api_reviewer
from api.deps import Services
from api.routes.workflows import parse_run_id
from api.schemas import CaseCosts, WorkflowCosts, error_responses
from services.errors import NotFoundError

router = APIRouter(prefix="/costs", tags=["costs"], dependencies=[Depends(require_api_reviewer)])


def _run_costs(run: dict[str, Any]) -> dict[str, Any]:
    breakdown = run.get("cost_breakdown") or {}
    return {
        "run_id": run["run_id"],
        "status": run["status"],
        "llm_cost_usd": str(run["llm_cost"]),
        "total_cost_usd": str(run["total_cost"]),
        "input_tokens": breakdown.get("input_tokens", 0),
        "cached_tokens": breakdown.get("cached_tokens", 0),
        "output_tokens": breakdown.get("output_tokens", 0),
        "calls": breakdown.get("lines", []),
    }


@router.get("/workflow/{run_id}", response_model=WorkflowCosts, responses=error_responses(401, 404))
async def workflow_costs(run_id: str, services: Services) -> dict[str, Any]:
    """Tokens and dollars of one run, per LLM call."""
    run = await services.store.get_run(parse_run_id(run_id))
    if run is None:
        raise NotFoundError(f"run {run_id} not found")
    return {"case_id": run["case_id"], **_run_costs(run)}


@router.get("/case/{case_id}", response_model=CaseCosts, responses=error_responses(401, 404))
async def case_costs(case_id: str, services: Services) -> dict[str, Any]:
    """Every run of the case with its cost, and the sums."""
    runs = await services.store.case_costs(case_id[:64])
    if not runs:
        raise NotFoundError(f"no runs for case {case_id[:64]}")
    items = [_run_costs(r) for r in runs]
    return {
        "case_id": case_id,
        "runs": len(items),
        "llm_cost_usd": str(sum((Decimal(i["llm_cost_usd"]) for i in items), Decimal("0"))),
        "total_cost_usd": str(sum((Decimal(i["total_cost_usd"]) for i in items), Decimal("0"))),
        "input_tokens": sum(i["input_tokens"] for i in items),
        "cached_tokens": sum(i["cached_tokens"] for i in items),
        "output_tokens": sum(i["output_tokens"] for i in items),
        "items": items,
    }
