"""LLM cost arithmetic on recorded calls: totals and breakdowns, exact to the micro-dollar.

Each call's cost is rounded half-even to the micro-dollar once, when it is priced
(services/drafting/costs.py); sums here are sums of those recorded costs, so a run's total
always equals the total of its lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from models.domain import LLMCall

MICRO_DOLLAR = Decimal("0.000001")


def to_micro_dollars(amount: Decimal) -> Decimal:
    """Round a dollar amount half-even to the micro-dollar."""
    return amount.quantize(MICRO_DOLLAR, rounding=ROUND_HALF_EVEN)


def total_cost(calls: Iterable[LLMCall]) -> Decimal:
    """Sum of the recorded costs of `calls`."""
    return to_micro_dollars(sum((call.cost_usd for call in calls), Decimal("0")))


def cost_breakdown(calls: Iterable[LLMCall]) -> dict[str, Any]:
    """A JSON-ready summary of `calls`: totals and one line per call (amounts as strings)."""
    lines = list(calls)
    return {
        "total_cost_usd": str(total_cost(lines)),
        "calls": len(lines),
        "cache_hits": sum(1 for call in lines if call.cache_hit),
        "input_tokens": sum(call.input_tokens for call in lines),
        "cached_tokens": sum(call.cached_tokens for call in lines),
        "output_tokens": sum(call.output_tokens for call in lines),
        "lines": [call.model_dump(mode="json") for call in lines],
    }


def summarise_recorded(entries: Iterable[dict[str, Any]]) -> tuple[Decimal, dict[str, Any]]:
    """(total, breakdown) of the LLM calls recorded in a run's state (JSON dicts)."""
    calls = [LLMCall.model_validate(entry) for entry in entries]
    return total_cost(calls), cost_breakdown(calls)


__all__ = ["MICRO_DOLLAR", "cost_breakdown", "summarise_recorded", "to_micro_dollars", "total_cost"]
