"""LLM price arithmetic: tokens to US dollars, exact to the micro-dollar.

The price table comes from Settings (USD per 1M tokens). OpenAI reports `prompt_tokens`
including the cached ones; `cached_tokens` is the subset billed at the cached price.
Each call's cost is rounded half-even to the micro-dollar once, here, and sums are sums of
those recorded costs, so a run's total always equals the total of its lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from models.costs import to_micro_dollars
from services.settings import Settings

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


__all__ = ["PriceTable", "call_cost"]
