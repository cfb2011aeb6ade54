"""The payments vocabulary: the same concept found however a customer or a policy says it."""

from __future__ import annotations

import pytest

from services.knowledge.vocabulary import CONCEPT_PREFIX, concept_terms


def concepts(text: str) -> set[str]:
    return {term.removeprefix(CONCEPT_PREFIX) for term in concept_terms(text)}


@pytest.mark.parametrize(
    ("customer", "policy", "concept"),
    [
        ("I was charged twice", "Repeat debits are returned in full", "duplicate"),
        ("a double charge on my card", "Duplicate charges", "duplicate"),
        ("my card was stolen", "Unauthorised debits", "unauthorised"),
        ("I don't recognise this payment", "Unknown debits", "unrecognised"),
        ("the site was down all morning", "Service level credits", "outage"),
        ("I closed my account in May", "Termination and final billing", "cancellation"),
        ("I want my money back", "Reimbursement procedure", "refund"),
        ("the refund has not arrived", "Refunds not received", "refund_missing"),
        ("I asked my bank to reverse it", "Card scheme disputes", "chargeback"),
        ("we were overbilled", "Incorrect amount", "overcharge"),
        ("who has to sign off a refund", "Approval limits", "approval"),
        ("I changed my mind", "Cooling-off period", "cooling_off"),
    ],
)
def test_a_customer_and_a_policy_share_the_concept(
    customer: str, policy: str, concept: str
) -> None:
    assert concept in concepts(customer)
    assert concept in concepts(policy)


def test_every_mention_counts_and_case_does_not_matter() -> None:
    terms = concept_terms("DUPLICATE charge, then a second duplicate; charged twice.")
    assert terms.count(f"{CONCEPT_PREFIX}duplicate") == 3


@pytest.mark.parametrize(
    ("text", "absent"),
    [
        ("Pay by credit card", "credit"),  # a card, not a credit
        ("Repeated failure to stop billing after notice", "duplicate"),
        ("Measured per month, rounded down to the minute", "outage"),
        ("The account holder's plan", "hold"),  # holder is not a hold
        ("The charge was settled on time", "chargeback"),
    ],
)
def test_words_that_only_look_alike_are_not_the_concept(text: str, absent: str) -> None:
    assert absent not in concepts(text)


def test_a_text_without_payments_words_has_no_concepts() -> None:
    assert concept_terms("The weather was lovely on Tuesday.") == []
