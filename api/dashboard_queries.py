"""The review desk's reads: filtered, paged runs, the status counts, and the change signature
that the live stream polls.

Filtering, search and paging are the run store's (`WorkflowStore.search_runs`, the same
as GET /workflow/runs), over all runs in PostgreSQL; this module adds what only the desk
needs: the reviews' full rows, the decisions not yet applied, the status counts, the risk
flags to filter by, and a cheap signature of what changed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select, true

from models.domain import DisputeType
from models.tables import review_decisions, workflow_states
from services.persistence.store import RunQuery, WorkflowStore

PAGE_SIZE = 25
STATUSES = ("pending", "running", "needs_attention", "completed", "rejected", "failed", "cancelled")
DISPUTE_TYPES = tuple(t.value for t in DisputeType)
MAX_SEARCH = 100

_runs = workflow_states.c
_risk_flags = _runs.human_review_data[("plan", "risk_flags")]

# What a pending review's row needs (api/routes/reviews.py pending_summary).
_REVIEW_COLUMNS = (
    _runs.run_id,
    _runs.case_id,
    _runs.customer_id,
    _runs.status,
    _runs.crm_data,
    _runs.payment_data,
    _runs.resolution_proposal,
    _runs.human_review_data,
    _runs.llm_cost,
    _runs.created_at,
    _runs.updated_at,
)


class FilterError(ValueError):
    """A filter value the desk cannot use; the message says which and why."""


def _text(value: str | None, *, limit: int = MAX_SEARCH) -> str | None:
    value = (value or "").strip()[:limit]
    return value or None


def _amount(name: str, value: str | None) -> Decimal | None:
    text = _text(value, limit=32)
    if text is None:
        return None
    try:
        amount = Decimal(text.replace(",", ""))
    except InvalidOperation:
        raise FilterError(f"{name} must be an amount such as 50 or 49.99") from None
    if not amount.is_finite() or amount < 0:
        raise FilterError(f"{name} must be an amount of zero or more")
    return amount


def _page_number(value: str | None) -> int:
    text = (value or "").strip()
    return min(int(text), 100_000) if text.isdigit() and int(text) >= 1 else 1


@dataclass(frozen=True)
class RunFilters:
    """The desk's filters: status (runs table only), dispute type, risk flag, claimed amount
    range and a search over case, customer and run ids."""

    status: str | None = None
    dispute_type: str | None = None
    risk_flag: str | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    search: str | None = None
    page: int = 1
    review_page: int = 1
    errors: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> RunFilters:
        """Filters from a query string; unusable values are dropped and named in `errors`."""
        errors: list[str] = []
        status = _text(params.get("status"))
        if status is not None and status not in STATUSES:
            errors.append(f"unknown status {status!r}")
            status = None
        dispute_type = _text(params.get("type"))
        if dispute_type is not None and dispute_type not in DISPUTE_TYPES:
            errors.append(f"unknown dispute type {dispute_type!r}")
            dispute_type = None
        amounts: list[Decimal | None] = []
        for name, key in (("from", "min_amount"), ("to", "max_amount")):
            try:
                amounts.append(_amount(f"amount {name}", params.get(key)))
            except FilterError as exc:
                errors.append(str(exc))
                amounts.append(None)
        return cls(
            status=status,
            dispute_type=dispute_type,
            risk_flag=_text(params.get("flag")),
            min_amount=amounts[0],
            max_amount=amounts[1],
            search=_text(params.get("q")),
            page=_page_number(params.get("page")),
            review_page=_page_number(params.get("rpage")),
            errors=tuple(errors),
        )

    @property
    def active(self) -> bool:
        return any(
            v is not None
            for v in (
                self.status,
                self.dispute_type,
                self.risk_flag,
                self.min_amount,
                self.max_amount,
                self.search,
            )
        )

    def params(self, **changes: Any) -> dict[str, str]:
        """The query parameters that reproduce these filters (with `changes` applied)."""
        filters = replace(self, **changes)
        values = {
            "status": filters.status,
            "type": filters.dispute_type,
            "flag": filters.risk_flag,
            "min_amount": filters.min_amount,
            "max_amount": filters.max_amount,
            "q": filters.search,
            "page": filters.page if filters.page > 1 else None,
            "rpage": filters.review_page if filters.review_page > 1 else None,
        }
        return {k: str(v) for k, v in values.items() if v is not None}

    def query(self, **changes: Any) -> str:
        return urlencode(self.params(**changes))

    def store_filters(self, *, with_status: bool) -> RunQuery:
        """These filters as `WorkflowStore.search_runs` takes them (status only
        `with_status`)."""
        return RunQuery(
            statuses=[self.status] if with_status and self.status else None,
            dispute_types=[self.dispute_type] if self.dispute_type else None,
            risk_flags=[self.risk_flag] if self.risk_flag else None,
            amount_min=self.min_amount,
            amount_max=self.max_amount,
            q=self.search,
        )


@dataclass(frozen=True)
class Page:
    """One page of rows, and where it sits in all of them."""

    rows: list[dict[str, Any]]
    total: int
    number: int
    size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def first(self) -> int:
        return 0 if self.total == 0 else (self.number - 1) * self.size + 1

    @property
    def last(self) -> int:
        return min(self.total, self.number * self.size)


def _row(mapping: Any) -> dict[str, Any]:
    row = dict(mapping._mapping)
    if "run_id" in row:
        row["run_id"] = str(row["run_id"])
    return row


class DeskQueries:
    """The dashboard's reads: the run store's search, and a few statements of its own,
    each in autocommit."""

    def __init__(self, store: WorkflowStore) -> None:
        self.store = store
        self._auto = store.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def chargebacks(self, *, limit: int = 50) -> list[dict[str, Any]]:
        """Chargeback runs, the soonest evidence deadline first, with Stripe's outcome."""
        due = _runs.payment_data["dispute"]["evidence_due_by"].astext
        query = (
            select(
                _runs.run_id,
                _runs.case_id,
                _runs.status,
                _runs.payment_data["dispute"].label("dispute"),
                _runs.resolution_proposal["action"].astext.label("answer"),
                _runs.dispute_outcome,
            )
            .where(_runs.kind == "chargeback")
            .order_by(due.asc().nulls_last())
            .limit(limit)
        )
        async with self._auto.connect() as conn:
            return [_row(r) for r in await conn.execute(query)]

    async def counts(self) -> dict[str, int]:
        """How many runs are in each status, over all runs."""
        query = select(_runs.status, func.count()).group_by(_runs.status)
        async with self._auto.connect() as conn:
            return {status: int(n) for status, n in (await conn.execute(query)).all()}

    async def _search(self, query: RunQuery, *, number: int, size: int, oldest_first: bool) -> Page:
        total = await self.store.count_runs(query)
        number = min(number, max(1, math.ceil(total / size)))
        rows = await self.store.search_runs(
            query, oldest_first=oldest_first, offset=(number - 1) * size, limit=size
        )
        return Page(rows, total, number, size)

    async def runs(self, filters: RunFilters, *, size: int = PAGE_SIZE) -> Page:
        """All runs matching `filters`, newest first."""
        return await self._search(
            filters.store_filters(with_status=True),
            number=filters.page,
            size=size,
            oldest_first=False,
        )

    async def reviews(self, filters: RunFilters, *, size: int = PAGE_SIZE) -> Page:
        """Runs awaiting a decision matching `filters` (status aside), oldest waiting first:
        their full rows, each with the decisions recorded but not yet applied
        (`unapplied`)."""
        found = await self._search(
            replace(filters.store_filters(with_status=False), statuses=["pending"]),
            number=filters.review_page,
            size=size,
            oldest_first=True,
        )
        ids = [str(r["run_id"]) for r in found.rows]
        full = await self._review_rows(ids)
        unapplied = await self.unapplied_decisions(ids)
        rows = [
            full[run_id] | {"unapplied": unapplied.get(run_id, [])}
            for run_id in ids
            if run_id in full
        ]
        return replace(found, rows=rows)

    async def _review_rows(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not run_ids:
            return {}
        query = select(*_REVIEW_COLUMNS).where(_runs.run_id.in_(list(run_ids)))
        async with self._auto.connect() as conn:
            rows = [_row(r) for r in await conn.execute(query)]
        return {row["run_id"]: row for row in rows}

    async def unapplied_decisions(self, run_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Decisions recorded for `run_ids` that no worker has applied yet, by run."""
        if not run_ids:
            return {}
        d = review_decisions.c
        query = (
            select(d.run_id, d.round, d.decision, d.reviewer, d.channel, d.decided_at)
            .where(d.run_id.in_(list(run_ids)), d.applied_at.is_(None))
            .order_by(d.decided_at)
        )
        found: dict[str, list[dict[str, Any]]] = {}
        async with self._auto.connect() as conn:
            for row in await conn.execute(query):
                found.setdefault(str(row.run_id), []).append(_row(row))
        return found

    async def risk_flags(self) -> list[str]:
        """Every risk flag some run carries, for the filter's choices."""
        flag = func.jsonb_array_elements_text(_risk_flags).table_valued("value").alias("flag")
        query = (
            select(flag.c.value)
            .select_from(workflow_states)
            .join(flag, true())
            .where(func.jsonb_typeof(_risk_flags) == "array")
            .distinct()
            .order_by(flag.c.value)
        )
        async with self._auto.connect() as conn:
            return [str(v) for v in (await conn.execute(query)).scalars()]

    async def signature(self, run_id: str | None = None) -> str:
        """A short text that changes whenever what the desk shows may have: a run started,
        moved or was deleted, or a decision was recorded or applied. With `run_id`, of that
        run only."""
        d = review_decisions.c
        runs = select(
            func.count().label("runs"), func.max(_runs.updated_at).label("updated")
        ).select_from(workflow_states)
        decisions = select(
            func.max(d.id).label("last_decision"),
            func.count(d.applied_at).label("applied"),
            func.count().label("decided"),
        ).select_from(review_decisions)
        if run_id is not None:
            runs = runs.where(_runs.run_id == run_id)
            decisions = decisions.where(d.run_id == run_id)
        run_part, decision_part = runs.subquery(), decisions.subquery()
        # One round trip: both aggregates side by side.
        query = select(run_part, decision_part).select_from(run_part.join(decision_part, true()))
        async with self._auto.connect() as conn:
            values = (await conn.execute(query)).one()
        return ".".join(
            v.isoformat() if hasattr(v, "isoformat") else str(v if v is not None else "-")
            for v in values
        )
