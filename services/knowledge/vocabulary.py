"""A small payments vocabulary: the words customers and policies use for the same thing.

A customer is "charged twice", a policy speaks of "repeat debits"; a customer "closed the
account", a policy of "termination"; a customer wants "money back", a policy sets out a
"reimbursement". Keyword search cannot see that these are the same, and the embedder
sees it only weakly. Each concept below lists the ordinary ways of saying one thing in
billing disputes; `concept_terms` tags a text with the concepts it mentions, and the
keyword index (`chroma_store.lexical_terms`) indexes those tags beside the words, on
both the policy side and the query side.

Where it comes from: the dispute categories of the card networks (Visa and Mastercard
reason-code groups: fraud, authorisation, processing errors such as duplicate processing,
incorrect amount and currency, and consumer disputes such as cancelled recurring
transactions and credit not processed), the dispute reasons of Stripe's API (`duplicate`,
`fraudulent`, `unrecognized`, `subscription_canceled`, `credit_not_processed`), and the
common terms of subscription billing (plans and tiers, seats, service credits and SLAs,
proration, the consumer cooling-off period, tax, approval limits). It is deliberately
general and small: no term is here because a labelled query in tests/data uses it, and
no company's own jargon (a policy's defined terms) is needed for it to work.

Patterns are regular expressions matched case-insensitively on word boundaries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

CONCEPT_PREFIX = "concept:"

CONCEPTS: Mapping[str, tuple[str, ...]] = {
    # Processing error: one purchase collected more than once (Stripe `duplicate`).
    "duplicate": (
        r"duplicat\w*",
        r"twice",
        r"two times",
        r"double[- ]?(?:charg|bill|pa[iy]|debit)\w*",
        r"charged double",
        r"repeat(?:ed)? (?:charge|debit|payment|collection|billing)s?",
        r"(?:charged|billed|debited) again",
    ),
    # Fraud: a payment the account holder did not make or allow (Stripe `fraudulent`).
    "unauthorised": (
        r"fraud\w*",
        r"unauthori[sz]ed",
        r"not authori[sz]ed",
        r"never authori[sz]ed",
        r"(?:did not|didn't|never) (?:make|made|authori[sz]e)",
        r"without (?:my |our )?permission",
        r"stolen",
        r"hack(?:ed|er)?",
        r"compromised?",
        r"identity theft",
        r"account takeover",
    ),
    # A charge the cardholder cannot place (Stripe `unrecognized`).
    "unrecognised": (
        r"(?:do not|don't|does not|doesn't|did not|didn't) recogni[sz]e",
        r"unrecogni[sz]ed",
        r"not recogni[sz]ed",
        r"unknown (?:charge|debit|payment|transaction)s?",
        r"unfamiliar",
        r"(?:statement|billing) descriptor",
    ),
    # Service availability, the subject of SLA credits.
    "outage": (
        r"outages?",
        r"down ?time",
        r"unavailab\w*",
        r"availability",
        r"offline",
        r"not available",
        r"service level",
        r"sla",
        r"incidents?",
        r"disruption",
        r"interruption",
        r"uptime",
        r"(?:was|went|is|were|been) down",
    ),
    "maintenance": (r"maintenance", r"(?:planned|scheduled) (?:downtime|work)"),
    # Cancelled recurring transaction (Stripe `subscription_canceled`).
    "cancellation": (
        r"cancel\w*",
        r"terminat\w*",
        r"unsubscrib\w*",
        r"(?:end|ended|ending|stop|stopped|close|closed|closing) (?:my |our |the )?"
        r"(?:subscription|plan|account|contract)",
    ),
    # The consumer's right to withdraw from a new contract without reason.
    "cooling_off": (
        r"cooling[- ]off",
        r"withdrawal period",
        r"right of withdrawal",
        r"right to cancel",
        r"change of mind",
        r"chang(?:e|ed) (?:my|our|their|his|her) mind",
    ),
    "refund": (
        r"refund\w*",
        r"reimburs\w*",
        r"money back",
        r"repa(?:y|id|yment)",
        r"pa(?:y|id) back",
        r"return(?:ed|s|ing)?",
    ),
    # Credit not processed: a refund promised that has not reached the customer.
    "refund_missing": (
        r"not (?:yet )?(?:received|arrived)",
        r"never (?:received|arrived|came)",
        r"(?:hasn't|has not|haven't|have not) (?:received|arrived)",
        r"still waiting",
    ),
    "credit": (r"credit(?:s|ed)?(?! card)", r"compensat\w*", r"goodwill"),
    # A dispute raised through the card issuer rather than with the merchant.
    "chargeback": (
        r"charge-?backs?",
        r"charge backs?",
        r"revers(?:e|ed|al)\w*",
        r"card scheme",
        r"(?:bank|issuer|card) disputes?",
        r"disput\w* (?:with|through) (?:my |our |the |their )?(?:bank|card issuer|issuer)",
        r"retrieval request",
    ),
    # Incorrect transaction amount.
    "overcharge": (
        r"overcharg\w*",
        r"over-?bill\w*",
        r"(?:wrong|incorrect) (?:amount|price|rate|plan|tier)s?",
        r"charged (?:too much|more)",
        r"price variance",
    ),
    "seats": (r"seats?", r"licen[cs]es?", r"users?"),
    "plan": (r"plans?", r"tiers?", r"packages?", r"editions?"),
    "price": (r"pric\w*", r"tariffs?", r"price list", r"list price", r"fees?"),
    "currency": (
        r"currenc\w*",
        r"exchange rate",
        r"foreign exchange",
        r"fx",
        r"conver(?:sion|t|ted)",
    ),
    "tax": (r"tax\w*", r"vat", r"gst", r"exempt\w*"),
    "approval": (r"approv\w*", r"sign[- ]?off", r"signs? off", r"authority"),
    # An authorisation not (yet) captured: shown by the bank, never collected.
    "hold": (r"authori[sz]ation holds?", r"pre-?authori[sz]ation\w*", r"pending", r"holds?"),
    "proration": (r"prorat\w*", r"pro[- ]rata", r"unused"),
    "customer": (r"customers?", r"clients?", r"account holders?", r"cardholders?"),
}

_PATTERNS = {
    concept: re.compile(r"\b(?:" + "|".join(patterns) + r")\b", re.IGNORECASE)
    for concept, patterns in CONCEPTS.items()
}


def concept_terms(text: str) -> list[str]:
    """One `concept:<name>` term per mention of a concept in `text`, in concept order."""
    terms: list[str] = []
    for concept, pattern in _PATTERNS.items():
        terms.extend([f"{CONCEPT_PREFIX}{concept}"] * len(pattern.findall(text)))
    return terms


__all__ = ["CONCEPTS", "CONCEPT_PREFIX", "concept_terms"]
