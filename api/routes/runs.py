"""GET /workflow/runs: every run, filtered, searched and paged on the server; and
GET /workflow/review-metrics: reviewer workload and SLA (reviewer API key required)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.auth import require_api_reviewer
from api.deps import ApiServices, Services
from api.schemas import error_responses
from services.errors import InvalidRequestError
from services.persistence.review_metrics import ReviewMetrics, review_metrics
from services.persistence.store import RunQuery
from services.settings import Settings

router = APIRouter(
    prefix="/workflow", tags=["workflow"], dependencies=[Depends(require_api_reviewer)]
)

MAX_PAGE = 200
# ApiServices.extras key: REVIEW_ESCALATION_HOURS as the composition root read it.
ESCALATION_HOURS = "review_escalation_hours"

RunStatusName = Literal[
    "running", "pending", "completed", "rejected", "failed", "needs_attention", "cancelled"
]
RunSort = Literal["newest", "oldest", "oldest_waiting"]


def escalation_hours(services: ApiServices) -> float:
    """REVIEW_ESCALATION_HOURS in force (its default when the app was built without it)."""
    default = Settings.model_fields["review_escalation_hours"].default
    return float(services.extras.get(ESCALATION_HOURS, default))


class RunSummary(BaseModel):
    """One run in a list: where it is, what it is about and what was proposed."""

    run_id: str
    case_id: str
    customer_id: str | None
    status: str
    current_step: str | None
    dispute_type: str | None = Field(description="From the CRM case; null before it is read.")
    claimed_amount: str | None = Field(description="The amount the case disputes.")
    action: str | None = Field(description="The draft's action; null before drafting.")
    amount: str | None = Field(description="The draft's amount (the amount filters use it).")
    currency: str | None
    drafter: str | None
    risk_flags: list[str]
    auto_approved: bool | None = Field(description="null before the review is planned.")
    awaiting_round: int | None = Field(description="The review round awaited, if pending.")
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class RunPage(BaseModel):
    items: list[RunSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last one."
    )
    total: int | None = Field(description="Runs matching the filters, with `include_total`.")


def _encode_cursor(row: dict[str, Any], *, oldest_first: bool) -> str:
    raw = json.dumps({"at": row["created_at"].isoformat(), "id": row["id"], "asc": oldest_first})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, *, oldest_first: bool) -> tuple[datetime, int]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at, row_id, ascending = datetime.fromisoformat(raw["at"]), int(raw["id"]), raw["asc"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidRequestError("cursor: not a cursor this API returned") from None
    if ascending is not oldest_first:
        raise InvalidRequestError("cursor: it belongs to a list in the other order")
    return at, row_id


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@router.get(
    "/runs",
    response_model=RunPage,
    responses=error_responses(401, 422),
)
async def list_runs(
    services: Services,
    status: Annotated[
        list[RunStatusName] | None, Query(description="One or several statuses.")
    ] = None,
    dispute_type: Annotated[
        list[Annotated[str, Field(max_length=64)]] | None,
        Query(description="One or several dispute types (`duplicate_charge`, ...)."),
    ] = None,
    risk_flag: Annotated[
        list[Annotated[str, Field(max_length=64)]] | None,
        Query(
            description="Runs flagged with any of these; a flag also matches the flags it "
            "prefixes (`radar_risk` matches `radar_risk_elevated`)."
        ),
    ] = None,
    amount_min: Annotated[Decimal | None, Query(ge=0, description="Draft amount, at least.")] = (
        None
    ),
    amount_max: Annotated[Decimal | None, Query(ge=0, description="Draft amount, at most.")] = (
        None
    ),
    created_from: Annotated[datetime | None, Query(description="Created at or after.")] = None,
    created_to: Annotated[datetime | None, Query(description="Created before.")] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            description="A case, customer or run id, exactly or by its beginning.",
        ),
    ] = None,
    sort: Annotated[
        RunSort,
        Query(
            description="`newest` first (default), `oldest` first, or `oldest_waiting`: "
            "pending reviews only, the longest waiting first."
        ),
    ] = "newest",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
    ] = None,
    offset: Annotated[
        int, Query(ge=0, le=100_000, description="Rows to skip (instead of a cursor).")
    ] = 0,
    include_total: Annotated[bool, Query(description="Count the matching runs too.")] = False,
) -> RunPage:
    """Runs matching every given filter, a page at a time (newest first by default)."""
    if cursor is not None and offset:
        raise InvalidRequestError("cursor and offset: give one or the other")
    if amount_min is not None and amount_max is not None and amount_min > amount_max:
        raise InvalidRequestError("amount_min is above amount_max")
    oldest_first = sort != "newest"
    statuses: list[str] | None = list(status) if status else None
    if sort == "oldest_waiting":
        statuses = ["pending"] if statuses is None or "pending" in statuses else statuses[:0]
    query = RunQuery(
        statuses=statuses,
        dispute_types=dispute_type,
        risk_flags=risk_flag,
        amount_min=amount_min,
        amount_max=amount_max,
        created_from=_aware(created_from),
        created_to=_aware(created_to),
        q=q.strip() if q else None,
    )
    if statuses == []:  # oldest_waiting with statuses that exclude pending: nothing waits
        rows: list[dict[str, Any]] = []
    else:
        rows = await services.store.search_runs(
            query,
            oldest_first=oldest_first,
            after=_decode_cursor(cursor, oldest_first=oldest_first) if cursor else None,
            offset=offset,
            limit=limit + 1,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    total = None
    if include_total:
        total = await services.store.count_runs(query) if statuses != [] else 0
    return RunPage(
        items=[RunSummary.model_validate(row) for row in rows],
        next_cursor=_encode_cursor(rows[-1], oldest_first=oldest_first) if more else None,
        total=total,
    )


@router.get(
    "/review-metrics",
    response_model=ReviewMetrics,
    responses=error_responses(401, 422),
)
async def get_review_metrics(
    services: Services,
    since: Annotated[
        datetime | None,
        Query(description="Count decisions, plans and overrides from here (default: all)."),
    ] = None,
) -> ReviewMetrics:
    """Pending reviews and their age, time to decision per reviewer, the auto-approval
    rate and the override rate by dispute type and by drafter."""
    return await review_metrics(
        services.store.engine,
        now=services.clock(),
        escalation_hours=escalation_hours(services),
        since=_aware(since),
    )
