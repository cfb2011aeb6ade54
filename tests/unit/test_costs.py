"""Price arithmetic: tokens to dollars, exact to the micro-dollar."""

from __future__ import annotations

from decimal import Decimal

import pytest

from models.costs import cost_breakdown, total_cost
from models.domain import LLMCall
from services.drafting.costs import PriceTable, call_cost
from services.settings import Settings

GPT_4O_MINI = PriceTable(
    input_per_1m=Decimal("0.15"),
    cached_input_per_1m=Decimal("0.075"),
    output_per_1m=Decimal("0.60"),
)


def test_settings_carry_gpt_4o_mini_prices() -> None:
    assert PriceTable.from_settings(Settings(_env_file=None)) == GPT_4O_MINI


def test_prices_come_from_settings() -> None:
    settings = Settings(_env_file=None, llm_price_input_per_1m=Decimal("2.50"))
    prices = PriceTable.from_settings(settings)
    assert call_cost(prices, input_tokens=1_000_000, output_tokens=0) == Decimal("2.500000")


@pytest.mark.parametrize(
    ("input_tokens", "cached", "output", "expected"),
    [
        (1_000_000, 0, 0, "0.150000"),
        (1_000_000, 1_000_000, 0, "0.075000"),
        (0, 0, 1_000_000, "0.600000"),
        # 556 x 0.15 + 256 x 0.075 + 143 x 0.60 = 83.4 + 19.2 + 85.8 = 188.4 micro-dollars
        (812, 256, 143, "0.000188"),
        (900, 0, 150, "0.000225"),
        (0, 0, 0, "0.000000"),
    ],
)
def test_call_cost(input_tokens: int, cached: int, output: int, expected: str) -> None:
    cost = call_cost(
        GPT_4O_MINI, input_tokens=input_tokens, cached_tokens=cached, output_tokens=output
    )
    assert cost == Decimal(expected)
    assert cost.as_tuple().exponent == -6


def test_half_a_micro_dollar_rounds_to_even() -> None:
    # 20 cached tokens cost 1.5 micro-dollars, 60 cost 4.5: half-even gives 2 and 4.
    assert call_cost(GPT_4O_MINI, input_tokens=20, cached_tokens=20, output_tokens=0) == Decimal(
        "0.000002"
    )
    assert call_cost(GPT_4O_MINI, input_tokens=60, cached_tokens=60, output_tokens=0) == Decimal(
        "0.000004"
    )


def test_cached_tokens_cannot_exceed_input() -> None:
    with pytest.raises(ValueError, match="exceed"):
        call_cost(GPT_4O_MINI, input_tokens=10, cached_tokens=11, output_tokens=0)
    with pytest.raises(ValueError, match="negative"):
        call_cost(GPT_4O_MINI, input_tokens=-1, output_tokens=0)


def test_totals_are_sums_of_recorded_lines() -> None:
    calls = [
        LLMCall(model="gpt-4o-mini", input_tokens=812, cached_tokens=256, output_tokens=143,
                cost_usd=Decimal("0.000188")),
        LLMCall(model="gpt-4o-mini", outcome="rate_limited"),
        LLMCall(model="gpt-4o-mini", cache_hit=True, outcome="cache_hit"),
        LLMCall(model="gpt-4o-mini", input_tokens=900, output_tokens=150,
                cost_usd=Decimal("0.000225")),
    ]  # fmt: skip
    assert total_cost(calls) == Decimal("0.000413")
    breakdown = cost_breakdown(calls)
    assert breakdown["total_cost_usd"] == "0.000413"
    assert (breakdown["calls"], breakdown["cache_hits"]) == (4, 1)
    assert (breakdown["input_tokens"], breakdown["cached_tokens"]) == (1712, 256)
    assert breakdown["output_tokens"] == 293
    assert breakdown["lines"][0]["cost_usd"] == "0.000188"
