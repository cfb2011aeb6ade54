"""LLM price arithmetic: tokens to US dollars, exact to the micro-dollar.

The price table comes from Settings (USD per 1M tokens). OpenAI reports `prompt_tokens`
including the cached ones; `cached_tokens` is the subset billed at the cached price.
Each call's cost is rounded half-even to the micro-dollar once, here, and sums are sums of
those recorded costs, so a run's total always equals the total of its lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from models.domain import LLMCall
from services.settings import Settings

MICRO_DOLLAR = Decimal("0.000001")
PER_TOKENS = Decimal(1_000_000)


@dataclass(frozen=True)
class PriceTable:
    """USD per 1M tokens: uncached input, cached input, output."""

    input_per_1m: Decimal
    cached_input_per_1m: Decimal
    output_per_1m: Decimal

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceTable:
        """Read the price table from Settings' `llm_price_*` fields."""
        return cls(
            input_per_1m=Decimal(settings.llm_price_input_per_1m),
            cached_input_per_1m=Decimal(settings.llm_price_cached_input_per_1m),
            output_per_1m=Decimal(settings.llm_price_output_per_1m),
        )


def to_micro_dollars(amount: Decimal) -> Decimal:
    """Round a dollar amount half-even to the micro-dollar."""
    return amount.quantize(MICRO_DOLLAR, rounding=ROUND_HALF_EVEN)


def call_cost(
    prices: PriceTable, *, input_tokens: int, cached_tokens: int = 0, output_tokens: int
) -> Decimal:
    """Cost in USD of one call; `input_tokens` includes the `cached_tokens`."""
    if min(input_tokens, cached_tokens, output_tokens) < 0:
        raise ValueError("token counts cannot be negative")
    if cached_tokens > input_tokens:
        raise ValueError(f"cached tokens {cached_tokens} exceed input tokens {input_tokens}")
    raw = (
        Decimal(input_tokens - cached_tokens) * prices.input_per_1m
        + Decimal(cached_tokens) * prices.cached_input_per_1m
        + Decimal(output_tokens) * prices.output_per_1m
    ) / PER_TOKENS
    return to_micro_dollars(raw)


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


__all__ = [
    "MICRO_DOLLAR",
    "PriceTable",
    "call_cost",
    "cost_breakdown",
    "summarise_recorded",
    "to_micro_dollars",
    "total_cost",
]
