"""The offline rules drafter: deterministic, policy-driven, labelled, always in bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from models.domain import ResolutionAction, ResolutionProposal
from services.drafting.assessment import assess
from services.drafting.context import DraftingContext
from services.drafting.guarded import GuardedDrafter, build_drafter
from services.drafting.guardrails import check_proposal
from services.drafting.rules_drafter import RulesDrafter
from services.sandbox.data import load_dataset
from services.sandbox.dataset import SandboxDataset
from services.settings import Settings
from tests.unit.test_guardrails import make_charge, make_context, make_subscription

SANDBOX_NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def propose(context: DraftingContext) -> ResolutionProposal:
    """The rules drafter's proposal, as the guarded drafter asks for it."""
    return RulesDrafter().propose(context, assess(context))


def sandbox_context(
    case_number: int, *, data: SandboxDataset | None = None, run_id: str = "run-1"
) -> DraftingContext:
    """The drafting context the graph builds for a sandbox case (no retrieval hits)."""
    data = data or load_dataset(SANDBOX_NOW)
    case = next(c for c in data.cases.values() if int(c.case_number) == case_number)
    account = data.accounts[case.account_id]
    assert case.charge_id is not None and account.zuora_account_id is not None
    charge = data.charges[case.charge_id]
    recent = sorted(
        (c for c in data.charges.values() if c.customer_id == account.stripe_customer_id),
        key=lambda c: c.created_at,
        reverse=True,
    )[:5]
    window = case.created_at - timedelta(days=90)
    disputes = sum(
        1
        for c in data.cases.values()
        if c.account_id == account.account_id and c.created_at >= window
    )
    return DraftingContext(
        run_id=run_id,
        case=case,
        segment=account.segment,
        account_type=account.type,
        disputes_last_90d=disputes,
        billing=data.billing[account.zuora_account_id],
        disputed_charge=charge,
        recent_charges=recent,
        refundable=charge.refundable,
        policies=[],
        precedents=[],
    )


FULL = ResolutionAction.FULL_REFUND
PARTIAL = ResolutionAction.PARTIAL_REFUND
CREDIT = ResolutionAction.ACCOUNT_CREDIT
DENY = ResolutionAction.DENY_REFUND


@pytest.mark.parametrize(
    ("case_number", "action", "amount", "policy_id"),
    [
        (1042, FULL, "29.00", "POL-BIL-004"),  # same-day duplicate
        (1043, CREDIT, "4.90", "POL-OUT-002"),  # 2.5 h, standard: 10% of 49.00
        (1044, FULL, "99.00", "POL-CAN-003"),  # charged after the cancellation request
        (1046, FULL, "19.00", "POL-REF-001"),  # promised refund never paid
        (1048, FULL, "149.00", "POL-FRD-005"),  # Radar "elevated"
        (1049, FULL, "199.00", "POL-OUT-002"),  # 8 h, premium: 100%
        (1050, PARTIAL, "60.00", "POL-BIL-004"),  # 259.00 billed, plan 199.00
        (1051, FULL, "399.00", "POL-CAN-003"),
        (1052, FULL, "1188.00", "POL-FRD-005"),  # Radar "highest"
        (1053, FULL, "299.00", "POL-REF-001"),  # 100.00 of 399.00 already refunded
        (1055, FULL, "2450.00", "POL-BIL-004"),
        (1056, CREDIT, "1225.00", "POL-OUT-002"),  # 3.5 h, enterprise: 50% of 2450.00
        (1057, PARTIAL, "735.00", "POL-BIL-004"),  # 5635.00 billed, plan 4900.00
    ],
)
def test_sandbox_disputes_get_the_policy_resolution(
    case_number: int, action: ResolutionAction, amount: str, policy_id: str
) -> None:
    context = sandbox_context(case_number)
    proposal = propose(context)
    assert (proposal.action, proposal.amount) == (action, Decimal(amount))
    assert proposal.reason.startswith("[offline rules drafter] ")
    assert proposal.policy_ids == [policy_id]
    assert proposal.drafter == "rules"
    assert not proposal.fallback_used
    assert check_proposal(proposal, context, assess(context)) == []


def test_the_rules_drafter_is_deterministic() -> None:
    first = propose(sandbox_context(1056))
    assert propose(sandbox_context(1056)) == first
    # The dataset rebuilt 40 days later: same facts, same decision and reasoning.
    later = propose(sandbox_context(1056, data=load_dataset(SANDBOX_NOW + timedelta(days=40))))
    assert (later.action, later.amount, later.reason) == (first.action, first.amount, first.reason)


def test_risk_reflects_the_processor_and_the_dispute_history() -> None:
    assert propose(sandbox_context(1052)).risk_level == "high"  # Radar highest
    assert propose(sandbox_context(1046)).risk_level == "high"  # 5 in 90 days
    assert propose(sandbox_context(1042)).risk_level == "low"


def test_a_duplicate_claim_without_a_twin_is_denied() -> None:
    context = make_context("duplicate_charge", others=[make_charge("ch_prev", days_ago=33)])
    proposal = propose(context)
    assert (proposal.action, proposal.amount) == (DENY, Decimal("0"))
    assert proposal.confidence < 0.7


def test_a_charge_before_the_cancellation_request_is_denied() -> None:
    context = make_context(
        "cancellation_not_processed",
        charge=make_charge(days_ago=20),
        subscriptions=[make_subscription(cancellation_requested_days_ago=10)],
    )
    assert propose(context).action == DENY


def test_an_amount_at_the_plan_price_is_denied() -> None:
    context = make_context("incorrect_amount", subscriptions=[make_subscription(amount="49.00")])
    assert propose(context).action == DENY


def test_an_unrecognised_charge_matching_a_subscription_is_denied_unless_risky() -> None:
    matching = make_context("unrecognized_charge")
    assert propose(matching).action == DENY
    risky = make_context("unrecognized_charge", charge=make_charge(risk="elevated"))
    assert propose(risky).action == FULL
    unmatched = make_context("unrecognized_charge", charge=make_charge(amount="77.00"))
    proposal = propose(unmatched)
    assert proposal.action == FULL and proposal.confidence < 0.7


@pytest.mark.parametrize(
    ("hours", "segment", "action", "amount"),
    [
        ("0.5", "standard", DENY, "0"),
        ("0.5", "enterprise", CREDIT, "4.90"),
        ("6", "standard", CREDIT, "12.25"),
        ("12", "standard", CREDIT, "24.50"),
        ("30", "standard", FULL, "49.00"),
    ],
)
def test_the_outage_matrix_decides_outage_compensation(
    hours: str, segment: str, action: ResolutionAction, amount: str
) -> None:
    context = make_context("service_outage", outage_hours=hours, segment=segment)
    proposal = propose(context)
    assert (proposal.action, proposal.amount) == (action, Decimal(amount))


@pytest.mark.parametrize(
    ("segment", "amount", "row"),
    [
        ("standard", "4.90", "1-6 hours"),  # 0% under an hour: the first row that pays
        ("premium", "12.25", "1-6 hours"),
        ("enterprise", "4.90", "Under 1 hour"),
    ],
)
def test_an_outage_without_a_duration_gets_the_lowest_row_and_the_matrix_not_a_denial(
    segment: str, amount: str, row: str
) -> None:
    context = make_context(
        "service_outage",
        segment=segment,
        description="The app didn't load for most of the evening and I lost work.",
    )
    proposal = propose(context)
    assert (proposal.action, proposal.amount) == (CREDIT, Decimal(amount))
    assert proposal.confidence < 0.5
    assert f"lowest compensating row {row}" in proposal.reason
    assert "for a reviewer to confirm" in proposal.reason
    # The reviewer sees the whole matrix for the segment.
    [matrix] = [f for f in proposal.supporting_factors if f.startswith("outage matrix")]
    assert matrix.startswith(f"outage matrix, {segment}: Under 1 hour ")
    assert "Over 24 hours 100%" in matrix
    # The guardrails hold any draft to that row.
    assert assess(context).ceiling == Decimal(amount)


@pytest.mark.parametrize(
    ("segment", "text", "action", "amount", "quote"),
    [
        ("premium", "Down for about 30 hours during our launch.", FULL, "49.00", "about 30 hours"),
        ("standard", "14 hours during month-end close", CREDIT, "24.50", "14 hours"),
        ("standard", "Exports failed for about 90 minutes.", CREDIT, "4.90", "about 90 minutes"),
        ("standard", "The site was down for 2 days.", FULL, "49.00", "2 days"),
    ],
)
def test_an_outage_duration_missing_from_the_field_is_read_from_the_text(
    segment: str, text: str, action: ResolutionAction, amount: str, quote: str
) -> None:
    proposal = propose(make_context("service_outage", segment=segment, description=text))
    assert (proposal.action, proposal.amount) == (action, Decimal(amount))
    source = f"from description: '…{quote}…'"
    assert source in proposal.reason
    assert any(source in f for f in proposal.supporting_factors)
    # Read from the text: less sure than the CRM's own figure.
    assert 0.5 < proposal.confidence < 0.85


def test_the_crm_field_is_named_as_the_source() -> None:
    proposal = propose(make_context("service_outage", outage_hours="8", segment="premium"))
    assert "outage 8 h from the CRM field" in proposal.reason
    assert proposal.confidence == 0.85


def test_an_unknown_dispute_type_is_denied_with_low_confidence() -> None:
    proposal = propose(make_context("chargeback_threat"))
    assert (proposal.action, proposal.policy_ids) == (DENY, [])
    assert proposal.confidence < 0.5


async def test_without_an_api_key_the_guarded_drafter_uses_the_rules() -> None:
    drafter = build_drafter(Settings(_env_file=None, openai_api_key=None), engine=None)
    assert isinstance(drafter, GuardedDrafter) and drafter.name == "rules"
    result = await drafter.draft(context=sandbox_context(1050))
    assert result.calls == []
    assert result.proposal.reason.startswith("[offline rules drafter]")
    assert (result.proposal.action, result.proposal.amount) == (PARTIAL, Decimal("60.00"))


async def test_a_rules_proposal_out_of_bounds_becomes_a_safe_denial() -> None:
    # A yen charge with decimals: the rules' full refund has more places than yen allows.
    charge = make_charge("ch_jpy", amount="4900.50", currency="jpy")
    context = make_context(
        "duplicate_charge",
        charge=charge,
        others=[make_charge("ch_jpy_twin", amount="4900.50", currency="jpy", days_ago=3.001)],
    )
    result = await GuardedDrafter(rules=RulesDrafter()).draft(context=context)
    assert result.proposal.action == DENY and result.proposal.amount == 0
    assert result.proposal.fallback_used
    assert "decimal places" in (result.proposal.fallback_reason or "")
