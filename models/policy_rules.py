"""The company's resolution rules as data: the single source for the policy documents'
matrices (tools/write_policies.py renders them into policies/*.docx) and for the offline
rules drafter and the guardrails. Changing a number here changes both.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from models.domain import DisputeType, ResolutionAction

SEGMENTS = ("standard", "premium", "enterprise")


@dataclass(frozen=True)
class PolicyDocument:
    policy_id: str
    title: str
    file_name: str
    governs: tuple[DisputeType, ...]


POLICIES: tuple[PolicyDocument, ...] = (
    PolicyDocument(
        "POL-REF-001",
        "Refund Policy",
        "refund_policy.docx",
        (DisputeType.REFUND_NOT_PROCESSED,),
    ),
    PolicyDocument(
        "POL-OUT-002",
        "Service Outage Compensation Policy",
        "service_outage_compensation.docx",
        (DisputeType.SERVICE_OUTAGE,),
    ),
    PolicyDocument(
        "POL-CAN-003",
        "Cancellation and Proration Policy",
        "cancellation_and_proration.docx",
        (DisputeType.CANCELLATION_NOT_PROCESSED,),
    ),
    PolicyDocument(
        "POL-BIL-004",
        "Duplicate and Incorrect Charges Policy",
        "duplicate_and_incorrect_charges.docx",
        (DisputeType.DUPLICATE_CHARGE, DisputeType.INCORRECT_AMOUNT),
    ),
    PolicyDocument(
        "POL-FRD-005",
        "Unrecognised Charges and Fraud Policy",
        "unrecognised_charges_and_fraud.docx",
        (DisputeType.UNRECOGNIZED_CHARGE,),
    ),
    PolicyDocument(
        "POL-APR-006",
        "Approval Authority and Dual Control Policy",
        "approval_authority.docx",
        (),
    ),
)

# Actions a resolution may take, by dispute type. Anything else is refused by the guardrails.
ALLOWED_ACTIONS: dict[DisputeType, frozenset[ResolutionAction]] = {
    DisputeType.DUPLICATE_CHARGE: frozenset(
        {
            ResolutionAction.FULL_REFUND,
            ResolutionAction.PARTIAL_REFUND,
            ResolutionAction.DENY_REFUND,
        }
    ),
    DisputeType.SERVICE_OUTAGE: frozenset(
        {
            ResolutionAction.ACCOUNT_CREDIT,
            ResolutionAction.PARTIAL_REFUND,
            ResolutionAction.FULL_REFUND,
            ResolutionAction.DENY_REFUND,
        }
    ),
    DisputeType.CANCELLATION_NOT_PROCESSED: frozenset(
        {
            ResolutionAction.FULL_REFUND,
            ResolutionAction.PARTIAL_REFUND,
            ResolutionAction.ACCOUNT_CREDIT,
            ResolutionAction.DENY_REFUND,
        }
    ),
    DisputeType.UNRECOGNIZED_CHARGE: frozenset(
        {ResolutionAction.FULL_REFUND, ResolutionAction.DENY_REFUND}
    ),
    DisputeType.INCORRECT_AMOUNT: frozenset(
        {
            ResolutionAction.PARTIAL_REFUND,
            ResolutionAction.ACCOUNT_CREDIT,
            ResolutionAction.DENY_REFUND,
        }
    ),
    DisputeType.REFUND_NOT_PROCESSED: frozenset(
        {
            ResolutionAction.FULL_REFUND,
            ResolutionAction.PARTIAL_REFUND,
            ResolutionAction.DENY_REFUND,
        }
    ),
}


@dataclass(frozen=True)
class OutageBand:
    """Outage compensation for one duration band, by segment, as a share of the
    disputed charge (1 = the whole charge). Credits below 1, refunds at 1."""

    label: str
    min_hours: Decimal
    max_hours: Decimal | None  # None: no upper bound
    share: dict[str, Decimal]


OUTAGE_MATRIX: tuple[OutageBand, ...] = (
    OutageBand(
        "Under 1 hour",
        Decimal("0"),
        Decimal("1"),
        {"standard": Decimal("0"), "premium": Decimal("0"), "enterprise": Decimal("0.10")},
    ),
    OutageBand(
        "1-6 hours",
        Decimal("1"),
        Decimal("6"),
        {"standard": Decimal("0.10"), "premium": Decimal("0.25"), "enterprise": Decimal("0.50")},
    ),
    OutageBand(
        "6-12 hours",
        Decimal("6"),
        Decimal("12"),
        {"standard": Decimal("0.25"), "premium": Decimal("1"), "enterprise": Decimal("1")},
    ),
    OutageBand(
        "12-24 hours",
        Decimal("12"),
        Decimal("24"),
        {"standard": Decimal("0.50"), "premium": Decimal("1"), "enterprise": Decimal("1")},
    ),
    OutageBand(
        "Over 24 hours",
        Decimal("24"),
        None,
        {"standard": Decimal("1"), "premium": Decimal("1"), "enterprise": Decimal("1")},
    ),
)


@dataclass(frozen=True)
class ApprovalLevel:
    label: str
    min_amount: Decimal
    max_amount: Decimal | None
    approvers: int
    approver_role: str


APPROVAL_LEVELS: tuple[ApprovalLevel, ...] = (
    ApprovalLevel(
        "Up to $50", Decimal("0"), Decimal("50"), 1, "Support agent (auto-approval eligible)"
    ),
    ApprovalLevel("$50.01-$500", Decimal("50"), Decimal("500"), 1, "Billing specialist"),
    ApprovalLevel(
        "$500.01-$5,000",
        Decimal("500"),
        Decimal("5000"),
        2,
        "Billing specialist and finance manager",
    ),
    ApprovalLevel("Over $5,000", Decimal("5000"), None, 2, "Finance manager and finance director"),
)


def outage_band(hours: Decimal) -> OutageBand:
    """The band an outage of `hours` falls into."""
    for band in OUTAGE_MATRIX:
        if hours >= band.min_hours and (band.max_hours is None or hours < band.max_hours):
            return band
    raise ValueError(f"negative outage duration: {hours}")


def governing_policy(dispute_type: DisputeType) -> PolicyDocument:
    for policy in POLICIES:
        if dispute_type in policy.governs:
            return policy
    raise ValueError(f"no policy governs {dispute_type}")


# Additions used by the drafters and the guardrails (services/drafting/).

# Actions that move money (a refund or a credit); each needs an amount above zero.
MONEY_MOVING_ACTIONS: frozenset[ResolutionAction] = frozenset(
    {
        ResolutionAction.FULL_REFUND,
        ResolutionAction.PARTIAL_REFUND,
        ResolutionAction.ACCOUNT_CREDIT,
    }
)

# A second charge of the same amount within this window is a duplicate, not the next
# billing period (the shortest period billed is a month).
DUPLICATE_WINDOW_DAYS = 7

# Currencies without minor units (Stripe's list); every other currency has two decimals.
ZERO_DECIMAL_CURRENCIES: frozenset[str] = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)

# The resolution rule of each dispute type in one sentence: what the offline rules drafter
# applies, and the ceiling the guardrails hold every draft to.
RESOLUTION_RULES: dict[DisputeType, str] = {
    DisputeType.DUPLICATE_CHARGE: (
        "A charge repeating another charge of the same amount within "
        f"{DUPLICATE_WINDOW_DAYS} days is refunded in full; without such a twin the claim is "
        "denied."
    ),
    DisputeType.SERVICE_OUTAGE: (
        "Compensation is the share of the disputed charge given by the outage matrix for the "
        "outage duration and the customer segment: a credit below the whole charge, a full "
        "refund at the whole charge, nothing under the lowest band."
    ),
    DisputeType.CANCELLATION_NOT_PROCESSED: (
        "A charge made after the customer asked to cancel is refunded in full; a charge made "
        "before the request is due and the claim is denied."
    ),
    DisputeType.INCORRECT_AMOUNT: (
        "The difference between the charge and the price of the customer's plan is refunded; "
        "a charge at or below the plan price is denied."
    ),
    DisputeType.UNRECOGNIZED_CHARGE: (
        "A charge flagged elevated or highest risk is refunded in full as likely fraud; a "
        "charge matching the price of an active subscription is denied as recognisable; any "
        "other charge is refunded in full, subject to review."
    ),
    DisputeType.REFUND_NOT_PROCESSED: (
        "The promised refund still outstanding is paid, up to what remains refundable on the "
        "charge; a charge already refunded in full is denied, so nothing is paid twice."
    ),
}


def outage_share(hours: Decimal, segment: str) -> Decimal:
    """The share of the charge owed for an outage of `hours` to a customer of `segment`."""
    band = outage_band(hours)
    if segment not in band.share:
        raise ValueError(f"unknown customer segment: {segment}")
    return band.share[segment]


def allowed_actions(dispute_type: str) -> frozenset[ResolutionAction]:
    """Actions allowed for `dispute_type`; an unknown type may only be denied."""
    try:
        return ALLOWED_ACTIONS[DisputeType(dispute_type)]
    except ValueError:
        return frozenset({ResolutionAction.DENY_REFUND})


def currency_decimals(currency: str) -> int:
    """Number of decimal places of `currency`'s minor unit."""
    return 0 if currency.lower() in ZERO_DECIMAL_CURRENCIES else 2


def governing_policy_ids(dispute_type: str) -> list[str]:
    """Ids of the policies governing `dispute_type` (none for an unknown type)."""
    return [
        policy.policy_id for policy in POLICIES if dispute_type in {t.value for t in policy.governs}
    ]
