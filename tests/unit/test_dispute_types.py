"""The CRM's dispute-type labels: real-org variants, canonical values, configured extras."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from models.dispute_types import (
    DEFAULT_DISPUTE_TYPE_LABELS,
    UNKNOWN_DISPUTE_TYPE,
    normalise_label,
)
from models.domain import DisputeType
from services.sandbox.data import build_dataset
from services.settings import Settings

D = DisputeType


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        # unauthorised / fraud / not recognised
        ("Unauthorized Charge", D.UNRECOGNIZED_CHARGE),
        ("Unauthorised charge", D.UNRECOGNIZED_CHARGE),
        ("UNAUTHORIZED", D.UNRECOGNIZED_CHARGE),
        ("Unauthorized Transaction", D.UNRECOGNIZED_CHARGE),
        ("Fraud", D.UNRECOGNIZED_CHARGE),
        ("Fraudulent charge", D.UNRECOGNIZED_CHARGE),
        ("Suspected Fraud", D.UNRECOGNIZED_CHARGE),
        ("Not Recognised", D.UNRECOGNIZED_CHARGE),
        ("Charge not recognized", D.UNRECOGNIZED_CHARGE),
        ("Unrecognised Charge", D.UNRECOGNIZED_CHARGE),
        ("Don't recognize charge", D.UNRECOGNIZED_CHARGE),
        # double / duplicate billing and payment
        ("Duplicate Charge", D.DUPLICATE_CHARGE),
        ("Double Billing", D.DUPLICATE_CHARGE),
        ("Double-Billed", D.DUPLICATE_CHARGE),
        ("Duplicate Payment", D.DUPLICATE_CHARGE),
        ("duplicate_billing", D.DUPLICATE_CHARGE),
        ("Charged twice", D.DUPLICATE_CHARGE),
        # overcharge / wrong amount
        ("Overcharge", D.INCORRECT_AMOUNT),
        ("Over-charged", D.INCORRECT_AMOUNT),
        ("Wrong Amount", D.INCORRECT_AMOUNT),
        ("Incorrect amount", D.INCORRECT_AMOUNT),
        # outage / downtime / service interruption
        ("Outage", D.SERVICE_OUTAGE),
        ("Service Outage", D.SERVICE_OUTAGE),
        ("Downtime", D.SERVICE_OUTAGE),
        ("Service Interruption", D.SERVICE_OUTAGE),
        # cancelled but charged
        ("Cancellation Not Processed", D.CANCELLATION_NOT_PROCESSED),
        ("Cancelation not processed", D.CANCELLATION_NOT_PROCESSED),
        ("Charged after cancellation", D.CANCELLATION_NOT_PROCESSED),
        ("Canceled but charged", D.CANCELLATION_NOT_PROCESSED),
        ("Cancelled - But Charged", D.CANCELLATION_NOT_PROCESSED),
        # refund not received / not processed
        ("Refund Not Received", D.REFUND_NOT_PROCESSED),
        ("Refund not processed", D.REFUND_NOT_PROCESSED),
        ("Missing refund", D.REFUND_NOT_PROCESSED),
        # case, spacing and punctuation
        ("  unauthorized   CHARGE  ", D.UNRECOGNIZED_CHARGE),
        ("Unauthorized_Charge", D.UNRECOGNIZED_CHARGE),
        ("Unauthorized-Charge.", D.UNRECOGNIZED_CHARGE),
        ("Service / Interruption", D.SERVICE_OUTAGE),
        ("Refund \u2013 not received", D.REFUND_NOT_PROCESSED),
    ],
)
def test_real_org_labels_map_to_the_project_type(label: str, expected: DisputeType) -> None:
    assert DEFAULT_DISPUTE_TYPE_LABELS.resolve(label) is expected
    assert DEFAULT_DISPUTE_TYPE_LABELS.dispute_type(label) == expected.value


@pytest.mark.parametrize("dispute_type", list(DisputeType))
def test_canonical_values_map_to_themselves(dispute_type: DisputeType) -> None:
    assert DEFAULT_DISPUTE_TYPE_LABELS.resolve(dispute_type.value) is dispute_type
    assert DEFAULT_DISPUTE_TYPE_LABELS.dispute_type(dispute_type.value) == dispute_type.value


def test_every_sandbox_case_type_maps_to_itself() -> None:
    cases = build_dataset(datetime(2025, 3, 14, 9, 30, tzinfo=UTC)).cases.values()
    assert {c.dispute_type for c in cases} == {t.value for t in DisputeType}
    for case in cases:
        assert DEFAULT_DISPUTE_TYPE_LABELS.dispute_type(case.dispute_type) == case.dispute_type


def test_the_default_vocabulary_covers_every_type_with_variants() -> None:
    by_type = {t: [k for k, v in DEFAULT_DISPUTE_TYPE_LABELS.labels.items() if v is t] for t in D}
    assert all(len(labels) >= 5 for labels in by_type.values()), by_type


@pytest.mark.parametrize("label", ["Chargeback Inquiry", "Billing question", "", None, "   "])
def test_an_unmapped_label_is_unknown_not_guessed(label: str | None) -> None:
    assert DEFAULT_DISPUTE_TYPE_LABELS.resolve(label) is None
    assert DEFAULT_DISPUTE_TYPE_LABELS.dispute_type(label) == UNKNOWN_DISPUTE_TYPE


def test_normalising_folds_case_separators_and_spelling() -> None:
    assert normalise_label("  Unauthorised -- Charge__ ") == "unauthorized_charge"
    assert normalise_label("Cancelled, but Charged!") == "cancelled_but_charged"
    assert normalise_label("Canceled but charged") == "cancelled_but_charged"


def test_a_configured_label_is_understood_and_wins_over_a_default() -> None:
    labels = DEFAULT_DISPUTE_TYPE_LABELS.extended(
        {"Chargeback Inquiry": D.UNRECOGNIZED_CHARGE, "Outage": D.INCORRECT_AMOUNT}
    )
    assert labels.resolve("chargeback-inquiry") is D.UNRECOGNIZED_CHARGE
    assert labels.resolve("OUTAGE") is D.INCORRECT_AMOUNT
    assert labels.resolve("Double Billing") is D.DUPLICATE_CHARGE
    assert DEFAULT_DISPUTE_TYPE_LABELS.resolve("Chargeback Inquiry") is None


def test_dispute_type_labels_setting_reads_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DISPUTE_TYPE_LABELS",
        "Chargeback Inquiry=unrecognized_charge, Plan Mispriced=Incorrect Amount",
    )
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.dispute_type_labels == {
        "Chargeback Inquiry": D.UNRECOGNIZED_CHARGE,
        "Plan Mispriced": D.INCORRECT_AMOUNT,
    }


def test_dispute_type_labels_setting_reads_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPUTE_TYPE_LABELS", '{"Billing, general=misc": "duplicate_charge"}')
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.dispute_type_labels == {"Billing, general=misc": D.DUPLICATE_CHARGE}


def test_dispute_type_labels_default_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPUTE_TYPE_LABELS", raising=False)
    assert Settings(_env_file=None).dispute_type_labels == {}  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "value", ["Chargeback Inquiry=chargeback", "Chargeback Inquiry", '{"a": "nope"}', "{broken"]
)
def test_a_label_for_no_project_type_fails_at_start_up(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DISPUTE_TYPE_LABELS", value)
    with pytest.raises(ValidationError, match="dispute_type_labels"):
        Settings(_env_file=None)  # type: ignore[call-arg]
