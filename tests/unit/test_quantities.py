"""Durations and amounts in dispute descriptions, and the bands of policy tables."""

from __future__ import annotations

import math

import pytest

from services.knowledge.quantities import (
    Band,
    Quantity,
    cell_band,
    decode_bands,
    encode_bands,
    quantities,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("down for nine hours yesterday", [Quantity("duration", 540)]),
        ("offline for 40 minutes", [Quantity("duration", 40)]),
        ("unusable for most of a day", [Quantity("duration", 1440)]),
        ("2 days straight", [Quantity("duration", 2880)]),
        ("half an hour", [Quantity("duration", 30)]),
        ("a 2,500 pound refund", [Quantity("money", 2500)]),
        ("refund $1,200.50 now", [Quantity("money", 1200.5)]),
        ("credit GBP 75", [Quantity("money", 75)]),
    ],
)
def test_durations_and_amounts_are_read_from_words_and_digits(
    text: str, expected: list[Quantity]
) -> None:
    assert quantities(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "I cancelled two weeks ago",  # a point in time, not a duration
        "you added 20% VAT",
        "invoice 2024-17 for March",
    ],
)
def test_points_in_time_percentages_and_references_are_not_quantities(text: str) -> None:
    assert quantities(text) == []


@pytest.mark.parametrize(
    ("cell", "header", "band"),
    [
        ("6-12 hours", "Outage duration", Band("duration", 360, 720)),
        ("1 to 4 hours", "", Band("duration", 60, 240)),
        ("Under 1 hour", "", Band("duration", 0, 60)),
        ("Over 24 hours", "", Band("duration", 1440, math.inf)),
        ("5 to 10 working days", "", Band("duration", 7200, 14400)),
        ("$50.01-$500", "Resolution amount", Band("money", 50.01, 500)),
        ("Over $5,000", "Resolution amount", Band("money", 5000, math.inf)),
        ("Up to 100", "Amount per case (GBP)", Band("money", 0, 100)),
        ("100 to 1,000", "Amount per case (GBP)", Band("money", 100, 1000)),
    ],
)
def test_a_cell_states_its_band_in_the_unit_of_its_header(
    cell: str, header: str, band: Band
) -> None:
    assert cell_band(cell, header) == band


@pytest.mark.parametrize(
    ("cell", "header"),
    [
        ("24 hours", "Time since review requested"),  # a single value is not a band
        ("1", "Approvals required"),
        ("25%", "Credit - Business plan"),
        ("100 to 1,000", "Seats"),  # no unit, no amount: not known to be money
        ("Login and IP history, 3-D Secure result", "Evidence to submit"),
    ],
)
def test_cells_that_state_no_band(cell: str, header: str) -> None:
    assert cell_band(cell, header) is None


def test_a_band_holds_values_of_its_kind_ends_included() -> None:
    band = Band("duration", 360, 720)
    assert band.holds(Quantity("duration", 360))
    assert band.holds(Quantity("duration", 720))
    assert not band.holds(Quantity("duration", 721))
    assert not band.holds(Quantity("money", 500))


def test_bands_survive_flat_metadata() -> None:
    bands = (Band("duration", 1440, math.inf), Band("money", 50.01, 500))
    assert decode_bands(encode_bands(bands)) == bands
    assert decode_bands("") == ()
