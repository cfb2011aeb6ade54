"""The company's resolution rules as data: the single source for the policy documents'
matrices (utils/write_policies.py renders them into policies/*.docx) and for the offline
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
