"""The CRM's dispute-type labels and the project's dispute types they mean.

Real CRM orgs name dispute types in their own words ("Unauthorized Charge", "Double
Billing", "Charged after cancellation"). A label is normalised (case-folded, punctuation
and runs of spaces, underscores and hyphens collapsed to one `_`, British spellings made
one) and looked up in `DEFAULT_LABELS`, extended by the DISPUTE_TYPE_LABELS setting. A
label that maps to no type becomes `UNKNOWN_DISPUTE_TYPE`: the run goes to a human with
the raw label shown, and is never rejected or auto-approved for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from models.domain import DisputeType

# The dispute type of a case whose CRM label maps to none of the project's types.
UNKNOWN_DISPUTE_TYPE = "unknown"
# The risk flag route_review raises for such a case.
UNKNOWN_DISPUTE_TYPE_FLAG = "unknown_dispute_type"

# One spelling per word, so "Unauthorised" and "Unauthorized" are one label.
_SPELLINGS = {
    "authorised": "authorized",
    "unauthorised": "unauthorized",
    "recognised": "recognized",
    "recognise": "recognize",
    "unrecognised": "unrecognized",
    "canceled": "cancelled",
    "cancelation": "cancellation",
    "canceling": "cancelling",
    "honoured": "honored",
    "honour": "honor",
    "dont": "do_not",
    "didnt": "did_not",
}
_APOSTROPHES = re.compile(r"['\u2019`]")
_SEPARATORS = re.compile(r"[^0-9a-z]+")

_DEFAULTS: dict[DisputeType, tuple[str, ...]] = {
    DisputeType.UNRECOGNIZED_CHARGE: (
        "Unrecognized",
        "Unrecognized Charge",
        "Unrecognized Transaction",
        "Unrecognized Payment",
        "Not Recognized",
        "Charge Not Recognized",
        "Transaction Not Recognized",
        "Payment Not Recognized",
        "Do Not Recognize Charge",
        "Unauthorized",
        "Unauthorized Charge",
        "Unauthorized Transaction",
        "Unauthorized Payment",
        "Unauthorized Use",
        "Fraud",
        "Fraudulent",
        "Fraudulent Charge",
        "Fraudulent Transaction",
        "Suspected Fraud",
        "Fraud Suspected",
    ),
    DisputeType.DUPLICATE_CHARGE: (
        "Duplicate",
        "Duplicate Charge",
        "Duplicate Billing",
        "Duplicate Payment",
        "Duplicate Transaction",
        "Double Charge",
        "Double Charged",
        "Double Billing",
        "Double Billed",
        "Double Payment",
        "Charged Twice",
        "Billed Twice",
    ),
    DisputeType.INCORRECT_AMOUNT: (
        "Incorrect Amount",
        "Wrong Amount",
        "Amount Incorrect",
        "Incorrect Charge Amount",
        "Wrong Charge Amount",
        "Incorrect Billing Amount",
        "Overcharge",
        "Overcharged",
        "Over Charge",
        "Over Charged",
        "Overbilled",
        "Overbilling",
        "Over Billed",
    ),
    DisputeType.SERVICE_OUTAGE: (
        "Outage",
        "Service Outage",
        "Downtime",
        "Service Downtime",
        "Service Interruption",
        "Interruption of Service",
        "Service Disruption",
        "Service Unavailable",
    ),
    DisputeType.CANCELLATION_NOT_PROCESSED: (
        "Cancellation Not Processed",
        "Cancellation Not Honored",
        "Cancelled But Charged",
        "Canceled but still charged",
        "Charged After Cancellation",
        "Billed After Cancellation",
        "Charged After Cancelling",
        "Cancelled Subscription Charged",
    ),
    DisputeType.REFUND_NOT_PROCESSED: (
        "Refund Not Processed",
        "Refund Not Received",
        "Refund Not Issued",
        "Refund Never Received",
        "Missing Refund",
        "Refund Missing",
        "Refund Pending",
        "Delayed Refund",
        "Refund Delayed",
    ),
}


def normalise_label(label: str) -> str:
    """Reduce a CRM label to its lookup key: `"Unauthorised  Charge"` -> `unauthorized_charge`."""
    text = _APOSTROPHES.sub("", label.casefold())
    words = [w for w in _SEPARATORS.split(text) if w]
    return "_".join(_SPELLINGS.get(word, word) for word in words)


@dataclass(frozen=True)
class DisputeTypeLabels:
    """The CRM labels the project understands, by normalised label."""

    labels: Mapping[str, DisputeType]

    @classmethod
    def default(cls) -> DisputeTypeLabels:
        """The common labels of real CRM orgs, and every project type's own value."""
        pairs = [(t.value, t) for t in DisputeType]
        pairs += [(label, t) for t, labels in _DEFAULTS.items() for label in labels]
        return cls.of(pairs)

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, DisputeType]]) -> DisputeTypeLabels:
        """Index `(label, type)` pairs by normalised label; later pairs win."""
        return cls(MappingProxyType({normalise_label(label): t for label, t in pairs}))

    def extended(self, extra: Mapping[str, DisputeType]) -> DisputeTypeLabels:
        """These labels plus `extra` (an org's own), which win over the defaults."""
        return DisputeTypeLabels.of([*self.labels.items(), *extra.items()])

    def resolve(self, label: str | None) -> DisputeType | None:
        """The type a CRM label means, or None when it means none the project knows."""
        if not label:
            return None
        return self.labels.get(normalise_label(label))

    def dispute_type(self, label: str | None) -> str:
        """The type value a CRM label means, or UNKNOWN_DISPUTE_TYPE."""
        known = self.resolve(label)
        return known.value if known is not None else UNKNOWN_DISPUTE_TYPE


DEFAULT_DISPUTE_TYPE_LABELS = DisputeTypeLabels.default()


def is_known_dispute_type(value: str) -> bool:
    """Whether `value` is one of the project's dispute types."""
    return value in {t.value for t in DisputeType}


def parse_dispute_type(value: str) -> DisputeType:
    """Read a project type as written in configuration ("Duplicate Charge" or its value)."""
    try:
        return DisputeType(normalise_label(value))
    except ValueError:
        names = ", ".join(t.value for t in DisputeType)
        raise ValueError(f"unknown dispute type {value!r} (one of: {names})") from None


__all__ = [
    "DEFAULT_DISPUTE_TYPE_LABELS",
    "UNKNOWN_DISPUTE_TYPE",
    "UNKNOWN_DISPUTE_TYPE_FLAG",
    "DisputeTypeLabels",
    "is_known_dispute_type",
    "normalise_label",
    "parse_dispute_type",
]
