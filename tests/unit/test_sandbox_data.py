"""The built-in sandbox dataset: realistic, deterministic, and consistent with validation."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from models.domain import CRMCase, DisputeType
from services.sandbox.data import build_dataset, salesforce_id
from services.sandbox.dataset import SandboxDataset

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
WINDOW = timedelta(days=120)
SF_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


@pytest.fixture(scope="module")
def data() -> SandboxDataset:
    return build_dataset(NOW)


def violations(data: SandboxDataset, case: CRMCase, now: datetime = NOW) -> set[str]:
    """The validation rules the case breaks, computed from the data."""
    failed: set[str] = set()
    if case.dispute_type not in {t.value for t in DisputeType}:
        failed.add("known_dispute_type")
    charge = data.charges.get(case.charge_id or "")
    if charge is None:
        return failed | {"charge_exists"}
    if charge.customer_id != data.accounts[case.account_id].stripe_customer_id:
        failed.add("charge_belongs_to_customer")
    if not Decimal("0") < case.amount <= charge.amount - charge.amount_refunded:
        failed.add("amount_within_refundable")
    if charge.created_at < now - WINDOW:
        failed.add("within_dispute_window")
    return failed


def valid_open_cases(data: SandboxDataset) -> list[CRMCase]:
    return [c for c in data.open_cases() if c.case_id not in data.expected_invalid]


def disputes_90d(data: SandboxDataset) -> Counter[str]:
    return Counter(c.account_id for c in data.cases.values() if c.created_at >= NOW - timedelta(90))


def test_accounts_span_all_segments(data: SandboxDataset) -> None:
    segments = Counter(a.segment for a in data.accounts.values())
    assert len(data.accounts) >= 20
    assert segments == {"standard": 9, "premium": 7, "enterprise": 5}


def test_ids_look_like_the_real_systems(data: SandboxDataset) -> None:
    def checksum_ok(sf_id: str) -> bool:
        chunks = (sf_id[0:5], sf_id[5:10], sf_id[10:15])
        return sf_id[15:] == "".join(
            SF_SUFFIX[sum(1 << i for i, ch in enumerate(chunk) if ch.isupper())] for chunk in chunks
        )

    for account_id, account in data.accounts.items():
        assert account_id == account.account_id
        assert re.fullmatch(r"001[0-9A-Za-z]{15}", account_id) and checksum_ok(account_id)
        assert re.fullmatch(r"cus_[0-9A-Za-z]{14}", account.stripe_customer_id or "")
        assert re.fullmatch(r"A\d{8}", account.zuora_account_id or "")
        assert account.zuora_account_id in data.billing
        assert account.email and "@" in account.email
    for case_id, case in data.cases.items():
        assert re.fullmatch(r"500[0-9A-Za-z]{15}", case_id) and checksum_ok(case_id)
        assert re.fullmatch(r"\d{8}", case.case_number)
    assert all(re.fullmatch(r"ch_[0-9A-Za-z]{24}", charge_id) for charge_id in data.charges)
    assert len({a.stripe_customer_id for a in data.accounts.values()}) == len(data.accounts)
    assert len(data.billing) == len(data.accounts)
    assert salesforce_id("001", "x") == salesforce_id("001", "x")


def test_every_account_has_six_months_of_charges(data: SandboxDataset) -> None:
    for account in data.accounts.values():
        months = {
            (NOW - c.created_at).days // 30
            for c in data.charges.values()
            if c.customer_id == account.stripe_customer_id
        }
        assert set(range(6)) <= months, account.name
        billing = data.billing[account.zuora_account_id or ""]
        assert 1 <= len(billing.subscriptions) <= 2
        assert any(s.status == "Active" for s in billing.subscriptions)


def test_most_charges_are_low_risk_subscription_renewals(data: SandboxDataset) -> None:
    charges = list(data.charges.values())
    normal = [c for c in charges if c.risk_level == "normal"]
    assert len(normal) > 0.9 * len(charges)
    assert all(c.risk_score is not None and c.risk_score < 40 for c in normal)
    assert {c.risk_level for c in charges} == {"normal", "elevated", "highest"}
    assert all(c.currency == "usd" and c.created_at < NOW for c in charges)
    plan_prices = {s.amount for billing in data.billing.values() for s in billing.subscriptions}
    renewals = [c for c in charges if c.description.startswith("Subscription renewal")]
    assert sum(c.amount in plan_prices for c in renewals) > 0.95 * len(renewals)


def test_refund_flags_agree_with_refunded_amounts(data: SandboxDataset) -> None:
    charges = list(data.charges.values())
    assert all(c.refunded == (c.amount_refunded == c.amount) for c in charges)
    assert any(c.refunded for c in charges)
    assert any(0 < c.amount_refunded < c.amount for c in charges)


def test_at_least_twelve_open_cases(data: SandboxDataset) -> None:
    open_cases = data.open_cases()
    assert len(open_cases) >= 12
    assert all(c.status in ("New", "Working") for c in open_cases)
    assert set(data.expected_invalid) <= {c.case_id for c in open_cases}


def test_every_dispute_type_has_a_valid_open_case(data: SandboxDataset) -> None:
    covered = {c.dispute_type for c in valid_open_cases(data)}
    assert covered == {t.value for t in DisputeType}


def test_expected_invalid_cases_break_exactly_their_rule(data: SandboxDataset) -> None:
    assert sorted(data.expected_invalid.values()) == [
        "amount_within_refundable",
        "amount_within_refundable",
        "charge_belongs_to_customer",
        "within_dispute_window",
    ]
    for case_id, rule in data.expected_invalid.items():
        assert violations(data, data.cases[case_id]) == {rule}, case_id
    refundable_cases = [
        data.charges[data.cases[case_id].charge_id or ""]
        for case_id, rule in data.expected_invalid.items()
        if rule == "amount_within_refundable"
    ]
    assert any(charge.refunded for charge in refundable_cases)
    assert any(not charge.refunded for charge in refundable_cases)


def test_other_open_cases_pass_every_rule(data: SandboxDataset) -> None:
    for case in valid_open_cases(data):
        assert violations(data, case) == set(), case.case_id
        charge = data.charges[case.charge_id or ""]
        assert charge.created_at < case.created_at


def test_open_cases_are_realistic(data: SandboxDataset) -> None:
    contact = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|\(?\d{3,4}\)?[ -]\d{3}[ -]\d{3,4}")
    for case in data.open_cases():
        sentences = len(re.findall(r"[.!?](\s|$)", case.description))
        assert 2 <= sentences <= 4, case.case_number
        assert case.subject and case.priority in ("Low", "Medium", "High")
        assert NOW - timedelta(days=10) < case.created_at < NOW
        is_outage = case.dispute_type == DisputeType.SERVICE_OUTAGE
        assert (case.outage_hours is not None) == is_outage
    assert 1 <= sum(bool(contact.search(c.description)) for c in data.open_cases()) <= 2


def test_amounts_cover_auto_approval_and_dual_control(data: SandboxDataset) -> None:
    valid = valid_open_cases(data)
    assert any(c.amount < 50 for c in valid)
    assert any(50 < c.amount <= 500 for c in valid)
    assert any(c.amount > 500 for c in valid)
    enterprise = {a.account_id for a in data.accounts.values() if a.segment == "enterprise"}
    assert any(c.amount > 1000 and c.account_id in enterprise for c in valid)


def test_one_valid_case_disputes_a_highest_risk_charge(data: SandboxDataset) -> None:
    risky = [
        c for c in valid_open_cases(data) if data.charges[c.charge_id or ""].risk_level == "highest"
    ]
    assert len(risky) == 1
    assert (data.charges[risky[0].charge_id or ""].risk_score or 0) >= 75


def test_cancellation_cases_show_an_unhonoured_request(data: SandboxDataset) -> None:
    by_account = {a.account_id: a for a in data.accounts.values()}
    cases = [
        c
        for c in valid_open_cases(data)
        if c.dispute_type == DisputeType.CANCELLATION_NOT_PROCESSED
    ]
    assert cases
    for case in cases:
        charge = data.charges[case.charge_id or ""]
        billing = data.billing[by_account[case.account_id].zuora_account_id or ""]
        assert any(
            s.status == "Active"
            and s.cancellation_requested_at is not None
            and s.cancellation_requested_at < charge.created_at
            for s in billing.subscriptions
        )


def test_a_customer_with_an_open_case_is_a_serial_disputer(data: SandboxDataset) -> None:
    counts = disputes_90d(data)
    with_open_case = {c.account_id for c in data.open_cases()}
    assert any(counts[account_id] > 3 for account_id in with_open_case)
    assert sum(counts[account_id] <= 1 for account_id in data.accounts) > len(data.accounts) / 2
    closed = [c for c in data.cases.values() if c.status == "Closed"]
    assert closed
    assert all(NOW - timedelta(days=80) <= c.created_at <= NOW - timedelta(10) for c in closed)


def test_build_is_deterministic_and_never_ages_out(data: SandboxDataset) -> None:
    assert build_dataset(NOW) == data
    later = build_dataset(NOW + timedelta(days=400))
    assert later.cases.keys() == data.cases.keys()
    assert later.charges.keys() == data.charges.keys()
    assert later.expected_invalid == data.expected_invalid
    shifted = {k: c.created_at + timedelta(days=400) for k, c in data.charges.items()}
    assert {k: c.created_at for k, c in later.charges.items()} == shifted


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        build_dataset(datetime(2025, 1, 1))


def _values(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _values(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _values(item)]
    return [value]


def test_money_is_decimal_with_cents_and_never_float(data: SandboxDataset) -> None:
    models: list[BaseModel] = [
        *data.accounts.values(),
        *data.cases.values(),
        *data.billing.values(),
        *data.charges.values(),
    ]
    assert not any(isinstance(v, float) for m in models for v in _values(m.model_dump()))
    amounts = [
        *(c.amount for c in data.cases.values()),
        *(c.amount for c in data.charges.values()),
        *(c.amount_refunded for c in data.charges.values()),
        *(b.balance for b in data.billing.values()),
        *(s.amount for b in data.billing.values() for s in b.subscriptions),
    ]
    for amount in amounts:
        assert isinstance(amount, Decimal) and amount.as_tuple().exponent == -2, amount
    hours = [c.outage_hours for c in data.cases.values() if c.outage_hours is not None]
    assert hours and all(isinstance(h, Decimal) for h in hours)
