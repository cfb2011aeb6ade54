"""Facts from the case text: outage durations and the remedy asked for, read conservatively."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from models.domain import CRMCase
from services.drafting.facts import (
    find_durations,
    outage_duration,
    outage_hours_unknown,
    requested_remedy,
)


def outage_case(
    description: str = "", *, subject: str = "Outage", outage_hours: str | None = None
) -> CRMCase:
    return CRMCase(
        case_id="500OUT",
        case_number="00002000",
        account_id="001A",
        subject=subject,
        description=description,
        status="New",
        priority="High",
        created_at=datetime(2025, 6, 1, tzinfo=UTC),
        dispute_type="service_outage",
        amount=Decimal("49.00"),
        outage_hours=Decimal(outage_hours) if outage_hours is not None else None,
    )


def hours_in(text: str) -> list[str]:
    return [str(m.hours) for m in find_durations(text)]


@pytest.mark.parametrize(
    ("text", "hours"),
    [
        # minutes
        ("Exports failed for about 90 minutes on the last business day.", "1.50"),
        ("The app was down for 45 mins.", "0.75"),
        ("half an hour of errors", "0.50"),
        ("We lost 2 hours 30 minutes of trading", "2.50"),
        ("offline 2h30 on Friday", "2.50"),
        # hours
        ("Down for about 30 hours", "30.00"),
        ("14 hours during month-end close", "14.00"),
        ("an hour and a half without service", "1.50"),
        ("down for about two and a half hours last Saturday", "2.50"),
        ("twenty-four hours of downtime", "24.00"),
        ("a 14-hour outage", "14.00"),
        ("unavailable for 3.5 hrs", "3.50"),
        ("1½ hours", "1.50"),
        # days and weeks
        ("The platform was down for 2 days.", "48.00"),
        ("a day and a half", "36.00"),
        ("offline for a full day", "24.00"),
        ("1 day and 6 hours", "30.00"),
        ("three consecutive days without access", "72.00"),
        ("down for a week", "168.00"),
        # ranges and bounds: the lower end, or just under an upper bound
        ("between 2 and 3 hours", "2.00"),
        ("it was down 2-3 hours", "2.00"),
        ("errors for 4 to 6 hours", "4.00"),
        ("less than an hour", "0.99"),
        ("nearly 24 hours", "23.99"),
        ("more than 24 hours", "24.00"),
    ],
)
def test_durations_in_minutes_hours_days_words_and_ranges(text: str, hours: str) -> None:
    assert hours_in(text) == [hours]


@pytest.mark.parametrize(
    "text",
    [
        "I paid $30.00 on 2025-05-30 at 3 pm and again on 05/30.",
        "Your 24/7 support promised 99.9% uptime.",
        "It started 3 days ago.",
        "I noticed it 2 days later.",
        "You promise a fix within 24 hours.",
        "Support is there 24 hours a day, 7 days a week.",
        "I am on a 30-day trial.",
        "Our contract has a 4-hour SLA.",
        "Support took 5 hours to answer.",
        "I waited 3 hours on hold.",
        "It happens every 5 minutes.",
        "Check it once a day.",
        "We were down for hours.",
        "It was down for a few hours, several days in a row.",
        "I often lose an extra day of work.",
        "On the eighth day.",
        "We turned over $5m.",
        "It began at 14h30 and ended until 16h.",
        "Customer for 3 weeks now.",
    ],
)
def test_numbers_that_are_not_durations_are_ignored(text: str) -> None:
    assert find_durations(text) == []


def test_the_crm_field_wins_over_the_text() -> None:
    duration = outage_duration(outage_case("down for 2 days", outage_hours="8"))
    assert duration is not None
    assert (duration.hours, duration.source) == (Decimal("8"), "from the CRM field")


def test_a_duration_from_the_text_names_its_field_and_words() -> None:
    duration = outage_duration(outage_case("We were down for about 30 hours, a nightmare."))
    assert duration is not None
    assert duration.hours == Decimal("30")
    assert duration.source == "from description: '…about 30 hours…'"
    assert duration.label == "30 h"
    subject_only = outage_duration(outage_case(subject="14 hours during month-end close"))
    assert subject_only is not None
    assert subject_only.source == "from subject: '…14 hours…'"


def test_of_several_durations_the_shortest_about_the_outage_is_taken() -> None:
    duration = outage_duration(
        outage_case(
            "We have used you for 2 weeks. The app was down for 2 days, and again for "
            "5 hours on Friday."
        )
    )
    assert duration is not None
    assert duration.hours == Decimal("5")
    assert "'…5 hours…'" in duration.source and "shortest of 2" in duration.source


def test_an_outage_without_a_duration_anywhere_is_unknown() -> None:
    case = outage_case("The app didn't load for most of the evening and I lost work.")
    assert outage_duration(case) is None
    assert outage_hours_unknown(case)
    assert not outage_hours_unknown(case.model_copy(update={"outage_hours": Decimal("1")}))
    # Only an outage needs a duration.
    assert not outage_hours_unknown(case.model_copy(update={"dispute_type": "duplicate_charge"}))


@pytest.mark.parametrize(
    ("text", "remedy"),
    [
        ("Please refund the extra charge.", "refund"),
        ("We expect this month's fee to be refunded.", "refund"),
        ("I want my money back.", "refund"),
        ("We request the SLA credit due under our agreement.", "credit"),
        ("I'd like a credit on my account.", "credit"),
        ("I don't want a credit, I want my money back.", "refund"),
        ("Instead of a refund, a service credit is fine.", "credit"),
        ("It was charged to my credit card; please refund it.", "refund"),
        ("A refund or a credit, either is fine.", None),
        ("What is this charge?", None),
    ],
)
def test_the_remedy_asked_for(text: str, remedy: str | None) -> None:
    assert requested_remedy(text) == remedy
