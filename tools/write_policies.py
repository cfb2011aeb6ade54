"""Write the sandbox company's policy documents to `policies/*.docx`.

The prose lives here; every matrix (outage compensation, approval levels, permitted
resolutions) is rendered from `models/policy_rules.py`, so the documents and the rules
the drafter and guardrails apply cannot drift apart. Regenerate after changing either:

    uv run python tools/write_policies.py [--out DIR] [--keep-existing]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from docx import Document  # noqa: E402
from docx.document import Document as DocxDocument  # noqa: E402
from docx.shared import Pt  # noqa: E402
from docx.text.paragraph import Paragraph  # noqa: E402

from models.domain import DisputeType, ResolutionAction  # noqa: E402
from models.policy_rules import (
    ALLOWED_ACTIONS,
    APPROVAL_LEVELS,
    OUTAGE_MATRIX,
    POLICIES,
    SEGMENTS,
    PolicyDocument,
)
from services.settings import Settings  # noqa: E402

DEFAULT_DISPUTE_WINDOW_DAYS: int = Settings.model_fields["dispute_window_days"].default
EFFECTIVE_DATE = "1 March 2026"
_FIXED_TIMESTAMP = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OWNER = "Finance Operations - Billing and Disputes"


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 1


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Numbered:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


Block = Heading | Para | Bullets | Numbered | Table

_ACTION_LABELS = {
    ResolutionAction.FULL_REFUND: "Full refund",
    ResolutionAction.PARTIAL_REFUND: "Partial refund",
    ResolutionAction.ACCOUNT_CREDIT: "Account credit",
    ResolutionAction.DENY_REFUND: "Deny refund",
}
_ACTION_ORDER = tuple(_ACTION_LABELS)
_DISPUTE_LABELS = {
    DisputeType.DUPLICATE_CHARGE: "Duplicate charge",
    DisputeType.SERVICE_OUTAGE: "Service outage",
    DisputeType.CANCELLATION_NOT_PROCESSED: "Cancellation not processed",
    DisputeType.UNRECOGNIZED_CHARGE: "Unrecognised charge",
    DisputeType.INCORRECT_AMOUNT: "Incorrect amount",
    DisputeType.REFUND_NOT_PROCESSED: "Refund not processed",
}


def _money(amount: Decimal) -> str:
    return f"${amount:,.0f}" if amount == amount.to_integral_value() else f"${amount:,.2f}"


def _dual_control_threshold() -> Decimal:
    """The amount above which two approvals are needed (from APPROVAL_LEVELS)."""
    return min(level.min_amount for level in APPROVAL_LEVELS if level.approvers >= 2)


def _auto_approval_cap() -> Decimal:
    """The top of the auto-approval eligible band (from APPROVAL_LEVELS)."""
    eligible = [lvl.max_amount for lvl in APPROVAL_LEVELS if "auto-approval" in lvl.approver_role]
    return max(amount for amount in eligible if amount is not None)


def _setting_default(name: str) -> Any:
    # The review thresholds the service applies by default (services/settings.py).
    return Settings.model_fields[name].default


def _hours(value: float) -> str:
    return f"{value:g} hours"


def _percent(share: Decimal) -> str:
    return f"{(share * 100).normalize():f}%"


def outage_matrix_table() -> Table:
    """The outage compensation matrix, one row per duration band and segment."""
    rows = []
    for band in OUTAGE_MATRIX:
        for segment in SEGMENTS:
            share = band.share[segment]
            if share == 0:
                compensation, amount = "No compensation", "None"
            elif share < 1:
                compensation = "Account credit"
                amount = f"{_percent(share)} of the disputed charge"
            else:
                compensation, amount = "Full refund", "100% of the disputed charge"
            rows.append((band.label, segment.capitalize(), compensation, amount))
    return Table(
        ("Outage duration", "Customer segment", "Compensation", "Amount"),
        tuple(rows),
    )


def approval_levels_table() -> Table:
    """Approval authority by resolution amount."""
    return Table(
        ("Resolution amount", "Approvals required", "Approver role"),
        tuple(
            (level.label, str(level.approvers), level.approver_role) for level in APPROVAL_LEVELS
        ),
    )


def permitted_resolutions_table(dispute_types: Sequence[DisputeType]) -> Table:
    """Resolutions allowed for each dispute type, one row per type and action."""
    rows = []
    for dispute_type in dispute_types:
        allowed = ALLOWED_ACTIONS[dispute_type]
        for action in _ACTION_ORDER:
            rows.append(
                (
                    _DISPUTE_LABELS[dispute_type],
                    _ACTION_LABELS[action],
                    "Permitted" if action in allowed else "Not permitted",
                )
            )
    return Table(("Dispute type", "Resolution", "Status"), tuple(rows))


def _permitted_resolutions(policy: PolicyDocument, *, number: int) -> list[Block]:
    """The section listing the resolutions allowed for the disputes the policy governs."""
    return [
        Heading(f"{number}. Permitted resolutions"),
        Para(
            "Only the resolutions marked permitted may be proposed or approved for the "
            "disputes this policy governs; the dispute resolution service refuses any other."
        ),
        permitted_resolutions_table(policy.governs),
    ]


def _document_control(
    policy: PolicyDocument, version: str, history: Sequence[tuple[str, str]]
) -> list[Block]:
    return [
        Heading("Document control"),
        Table(
            ("Field", "Value"),
            (
                ("Policy ID", policy.policy_id),
                ("Title", policy.title),
                ("Version", version),
                ("Owner", OWNER),
                ("Approved by", "Chief Financial Officer"),
                ("Effective date", EFFECTIVE_DATE),
                ("Review cycle", "Annually, or sooner after a material change"),
            ),
        ),
        Table(
            ("Version", "Change"),
            tuple(history),
        ),
    ]


def _refund_policy(policy: PolicyDocument, window_days: int) -> list[Block]:
    return [
        Para(
            "This policy sets out when the Company refunds a customer, how refunds are paid, "
            "and what Billing Operations does when a customer reports that a refund has not "
            "arrived."
        ),
        Heading("1. Purpose"),
        Para(
            "To make refund decisions consistent, fair to the customer and defensible to "
            "auditors, and to make sure money is returned once, to the right payment method, "
            "with a record of who approved it."
        ),
        Heading("2. Scope"),
        Para(
            "Applies to every refund of a subscription charge made to a standard, premium or "
            "enterprise customer, whoever initiates it: support agents, billing specialists, "
            "finance managers and the automated dispute resolution service. Compensation for "
            "outages, cancellations, duplicate charges and unrecognised charges follows the "
            "specific policies listed in section 12; this policy governs how any refund is "
            "paid and what happens when a refund is late or missing."
        ),
        Heading("3. Definitions"),
        Bullets(
            (
                "Refund: money returned to the original payment method of a charge.",
                "Full refund: the whole refundable amount of the charge, that is the amount "
                "charged less anything already refunded.",
                "Partial refund: part of the refundable amount, stated in the currency of the "
                "charge.",
                "Account credit: an amount applied to the customer's next invoices instead of "
                "money returned; it is not a refund.",
                "Refund reference (ARN): the acquirer reference number the card network "
                "assigns to a refund, which the customer's bank can trace.",
            )
        ),
        Heading("4. Refund eligibility"),
        Para("A charge is eligible for a refund when all of the following hold:"),
        Numbered(
            (
                "The charge succeeded and has not already been refunded in full.",
                f"The customer raised the dispute within {window_days} days of the charge "
                "date (see section 5).",
                "The governing policy for the dispute type permits a refund.",
                "No chargeback is open on the charge; the card network returns those funds "
                "itself and a refund on top would pay the customer twice.",
                "The refund amount is above zero and does not exceed the refundable amount.",
            )
        ),
        Heading("5. Dispute window"),
        Para(
            f"Customers may dispute a charge for up to {window_days} days after the charge "
            "date. Disputes raised later are declined unless a finance manager grants an "
            "exception in writing, recorded on the case."
        ),
        Table(
            ("Dispute raised", "Handling"),
            (
                (f"Within {window_days} days of the charge", "Assessed under this policy"),
                (
                    f"More than {window_days} days after the charge",
                    "Declined unless a finance manager approves an exception",
                ),
            ),
        ),
        Heading("6. Refund method and timelines"),
        Para(
            "Refunds are always paid to the original payment method of the charge, never to "
            "a different card, bank account or person. Refunds are issued within two business "
            "days of approval; the time to reach the customer then depends on the method."
        ),
        Table(
            ("Payment method", "Time for the refund to reach the customer"),
            (
                ("Credit or debit card", "5-10 business days"),
                ("ACH bank debit", "3-5 business days"),
                ("SEPA direct debit", "Up to 5 business days"),
                (
                    "Invoice paid by bank transfer",
                    "Returned by bank transfer within 10 business days",
                ),
            ),
        ),
        Heading("7. Refunds not received"),
        Para(
            "When a customer reports that a refund they were promised or told about has not "
            "arrived, the reviewer follows this procedure:"
        ),
        Numbered(
            (
                "Find the refund in the payment system by case, charge or refund id.",
                "If the refund succeeded and the timeline in section 6 has passed, give the "
                "customer the refund reference (ARN) so their bank can trace it. Do not issue "
                "a second refund; resolve the dispute as deny refund with that explanation.",
                "If the refund succeeded but is still within the timeline, tell the customer "
                "when to expect it and deny a second refund.",
                "If the refund failed or was reversed (closed card, bank rejection), reissue "
                "it for the same amount, as a full or partial refund matching what was "
                "approved.",
                "If a refund was approved on the case but never issued, issue it now for the "
                "approved amount.",
                "If no refund was ever approved, assess the original complaint under the "
                "governing policy instead.",
            )
        ),
        Heading("8. Partial refunds"),
        Para(
            "A partial refund is used when only part of a charge is owed: an overcharge, a "
            "prorated period, or compensation set by a matrix in a specific policy. The "
            "amount is calculated to the cent, rounded half-even, and the calculation is "
            "written in the resolution reason."
        ),
        Heading("9. Exclusions"),
        Bullets(
            (
                "Charges already refunded in full, or with an open chargeback.",
                "Usage-based overage charges that match metered usage.",
                "Professional services already delivered.",
                "Requests to refund to a payment method other than the original one.",
                "Disputes raised outside the dispute window without an approved exception.",
            )
        ),
        Heading("10. Evidence required"),
        Bullets(
            (
                "The charge id, amount, date and refundable amount from the payment system.",
                "For missing refunds: the refund id, its status and the refund reference.",
                "The customer's statement of the problem, as recorded on the CRM case.",
                "The approval record for the refund (see the Approval Authority and Dual "
                "Control Policy).",
            )
        ),
        *_permitted_resolutions(policy, number=11),
        Heading("12. Related policies"),
        Bullets(tuple(f"{other.policy_id} {other.title}" for other in POLICIES if other != policy)),
        *_document_control(
            policy,
            "3.2",
            (
                ("3.0", "Rewritten for the automated dispute resolution service"),
                ("3.1", "Refund timelines by payment method added"),
                ("3.2", "Procedure for refunds not received clarified"),
            ),
        ),
    ]


def _outage_policy(policy: PolicyDocument, window_days: int) -> list[Block]:
    return [
        Para(
            "This policy sets how the Company compensates customers for unplanned service "
            "outages, by outage duration and customer segment."
        ),
        Heading("1. Purpose"),
        Para(
            "Customers pay for a service that is available. When it is not, they receive "
            "compensation that grows with the length of the outage and with the service "
            "level their plan promises, applied the same way to every customer."
        ),
        Heading("2. Scope"),
        Para(
            "Applies to unplanned outages of the Company's hosted platform, API and "
            "dashboard that the Company's status page confirms, for standard, premium and "
            "enterprise customers. Service credits negotiated in an enterprise contract "
            "apply instead where they are more generous."
        ),
        Heading("3. Definitions"),
        Bullets(
            (
                "Outage: a period in which the customer could not use a core function of the "
                "service, as recorded on the status page incident.",
                "Outage duration: time from the incident start to its resolution on the "
                "status page, in hours, summed over incidents in the same billing period.",
                "Degraded performance: slower service that still worked; compensated as an "
                "outage only when the incident is classed as major.",
                "Scheduled maintenance: work announced at least 72 hours in advance.",
                "Disputed charge: the subscription charge for the billing period in which "
                "the outage happened.",
            )
        ),
        Heading("4. Eligibility"),
        Numbered(
            (
                "The outage is confirmed by a status page incident or by Engineering.",
                "The customer's account was affected (region and product match the incident).",
                f"The customer raised the claim within {window_days} days of the charge.",
                "The outage duration is measured from the incident record, not estimated "
                "from the customer's description alone.",
            )
        ),
        Heading("5. Compensation by outage duration and customer segment"),
        Para(
            "Compensation is a share of the disputed charge, set by the outage duration and "
            "the customer segment. Each duration band includes its lower bound and excludes "
            "its upper bound: an outage of exactly 6 hours falls in the 6-12 hours band."
        ),
        outage_matrix_table(),
        Heading("6. Applying the matrix"),
        Numbered(
            (
                "Take the outage duration from the incident record and find its band.",
                "Find the customer segment on the CRM account.",
                "Read the compensation and the share of the disputed charge from the matrix.",
                "Compensation below the full charge is given as account credit on the next "
                "invoice; if the customer has cancelled and has no future invoice, pay the "
                "same amount as a partial refund.",
                "Compensation of the full charge is paid as a full refund of the disputed charge.",
                "Where the matrix gives no compensation, deny the claim and explain the "
                "outage duration the records show.",
            )
        ),
        Heading("7. Exclusions"),
        Bullets(
            (
                "Scheduled maintenance announced at least 72 hours in advance.",
                "Outages caused by the customer's own network, integrations or misuse.",
                "Third-party outages outside the Company's control, such as the customer's "
                "internet provider.",
                "Outages the status page does not confirm and Engineering cannot verify.",
                "A second claim for the same outage once compensation has been paid.",
            )
        ),
        Heading("8. Evidence required"),
        Bullets(
            (
                "Status page incident id, start and resolution times, affected products.",
                "The customer's segment and plan on the CRM account.",
                "The charge for the billing period in which the outage happened.",
            )
        ),
        *_permitted_resolutions(policy, number=9),
        *_document_control(
            policy,
            "2.4",
            (
                ("2.0", "Matrix by customer segment introduced"),
                ("2.3", "Enterprise compensation for outages under 1 hour"),
                ("2.4", "Partial refunds for customers with no future invoice"),
            ),
        ),
    ]


def _cancellation_policy(policy: PolicyDocument, window_days: int) -> list[Block]:
    return [
        Para(
            "This policy covers how cancellations take effect and what the Company does when "
            "a customer is charged after asking to cancel."
        ),
        Heading("1. Purpose"),
        Para(
            "A customer who has asked to cancel must not keep paying. This policy states "
            "when a cancellation takes effect, when charges after it are refunded and how "
            "unused time is prorated."
        ),
        Heading("2. Scope"),
        Para(
            "Monthly and annual subscriptions of standard, premium and enterprise customers, "
            "cancelled through the dashboard, by e-mail to support, or through an account "
            "manager."
        ),
        Heading("3. Definitions"),
        Bullets(
            (
                "Cancellation request: the customer's instruction to end the subscription, "
                "dated when the Company received it (dashboard timestamp or e-mail receipt).",
                "Effective date: the end of the billing period in which the request was made, "
                "unless the customer asked for an immediate cancellation.",
                "Proration: a refund or credit for the unused part of a paid period.",
                "Cooling-off period: the first 14 days of a new subscription.",
            )
        ),
        Heading("4. When a cancellation takes effect"),
        Para(
            "Cancellations take effect at the end of the current billing period; the "
            "customer keeps access until then and is not charged again. A customer may ask "
            "for immediate cancellation, in which case access ends at once and section 6 "
            "applies."
        ),
        Heading("5. Charges after a cancellation request"),
        Para(
            "When the customer was charged for a billing period that starts after the "
            "effective date of a cancellation request the Company received, the charge is "
            "the Company's error:"
        ),
        Numbered(
            (
                "Confirm the cancellation request date from the subscription record, the "
                "dashboard log or the support e-mail.",
                "Confirm the charge is for a period starting after the effective date.",
                "Issue a full refund of that charge and make sure the subscription is "
                "cancelled so no further charge is taken.",
                "If the customer used the service during the charged period (logins, API "
                "calls), refund the unused days as a partial refund instead and record the "
                "usage evidence.",
                "If no cancellation request can be found, deny the refund, explain how to "
                "cancel, and offer to cancel now.",
            )
        ),
        Heading("6. Cooling-off period and proration of unused time"),
        Para(
            "A new subscription cancelled within 14 days of sign-up gets its first charge "
            "refunded in full. After the cooling-off period, monthly plans run to the end of "
            "the paid month, and annual plans are refunded for the unused whole months."
        ),
        Table(
            ("Plan", "Cancelled", "Treatment"),
            (
                ("Monthly", "Within the cooling-off period", "Full refund of the first charge"),
                ("Monthly", "After the cooling-off period", "No proration; access to period end"),
                ("Annual", "Within the cooling-off period", "Full refund of the annual charge"),
                (
                    "Annual",
                    "After the cooling-off period",
                    "Partial refund of unused whole months, or account credit if preferred",
                ),
            ),
        ),
        Heading("7. Exclusions"),
        Bullets(
            (
                "Requests made only by uninstalling an app or stopping use, without a "
                "cancellation request.",
                "Charges for periods that started before the cancellation request.",
                "Minimum terms agreed in an enterprise contract.",
                f"Disputes raised more than {window_days} days after the charge.",
            )
        ),
        Heading("8. Evidence required"),
        Bullets(
            (
                "The cancellation request with its date and channel.",
                "The subscription record: status, cancellation requested and cancelled dates.",
                "The disputed charge and the period it covers.",
                "Usage during the disputed period, when a partial refund is considered.",
            )
        ),
        *_permitted_resolutions(policy, number=9),
        *_document_control(
            policy,
            "1.6",
            (
                ("1.4", "Cooling-off period of 14 days"),
                ("1.5", "Proration by unused whole months for annual plans"),
                ("1.6", "Usage evidence for partial refunds after cancellation"),
            ),
        ),
    ]


def _billing_errors_policy(policy: PolicyDocument, window_days: int) -> list[Block]:
    return [
        Para(
            "This policy covers charges taken twice and charges for the wrong amount, the "
            "two billing errors the Company is most often asked to correct."
        ),
        Heading("1. Purpose"),
        Para(
            "To correct the Company's billing errors quickly and completely, while telling "
            "real errors apart from pending authorisations, taxes and bank currency "
            "conversion."
        ),
        Heading("2. Scope"),
        Para(
            "All subscription and invoice charges of standard, premium and enterprise "
            "customers, by card, bank debit or invoice."
        ),
        Heading("3. Definitions"),
        Bullets(
            (
                "Duplicate charge: two or more successful charges for the same invoice or "
                "the same billing period of the same subscription.",
                "Authorisation hold: a pending amount the customer's bank shows before "
                "capture; it is not a charge and drops off within 7 days.",
                "Incorrect amount: a successful charge that differs from the price of the "
                "customer's plan, quantity and taxes for that period.",
                "Overcharge: the charged amount minus the correct amount.",
            )
        ),
        Heading("4. Duplicate charges"),
        Para(
            "A customer charged twice for the same invoice or billing period gets the "
            "duplicate charge back in full. Duplicates usually come from a payment retried "
            "after a timeout, or from a subscription charged on both an old and a new card. "
            "Before refunding, the reviewer confirms that both charges really succeeded:"
        ),
        Numbered(
            (
                "List the customer's successful charges for the period in the payment system.",
                "Confirm that two succeeded for the same invoice or period. Pending "
                "authorisations and failed attempts are not duplicates.",
                "Refund the later duplicate in full; keep the earlier charge.",
                "If part of the duplicate was already refunded, refund the remainder as a "
                "partial refund.",
                "If only one charge succeeded, deny the refund and explain the authorisation "
                "hold or failed attempt the customer saw.",
            )
        ),
        Heading("5. Incorrect amounts"),
        Para(
            "A customer charged more than the price of their plan gets the difference back; "
            "a charge that matches the plan, seats and taxes is correct even when it is "
            "higher than the customer expected."
        ),
        Numbered(
            (
                "Recalculate the correct amount from the plan price, quantity, discounts and "
                "taxes for the period.",
                "If the customer was overcharged, refund the overcharge as a partial refund, "
                "or as account credit when the customer prefers it or pays by invoice.",
                "Never refund more than the overcharge under this policy; a full refund of an "
                "incorrect charge is not a permitted resolution.",
                "If the amount is correct (for example after a price change notified 30 days "
                "in advance, a plan upgrade or a change in seats), deny the refund and "
                "explain the calculation.",
            )
        ),
        Heading("6. Taxes and currency conversion"),
        Para(
            "Sales tax and VAT are charged as the law of the customer's billing address "
            "requires and are not an incorrect amount. Differences caused by the customer's "
            "bank converting currency, or by foreign transaction fees, are outside the "
            "Company's control and are not refunded."
        ),
        Heading("7. Exclusions"),
        Bullets(
            (
                "Pending authorisations that were never captured.",
                "Price changes notified at least 30 days before the charge.",
                "Bank currency conversion differences and foreign transaction fees.",
                f"Disputes raised more than {window_days} days after the charge.",
            )
        ),
        Heading("8. Evidence required"),
        Bullets(
            (
                "Every charge for the period with its status, amount and invoice.",
                "The plan, price, quantity and tax applied, for incorrect amounts.",
                "Any refund already made on the charges concerned.",
            )
        ),
        *_permitted_resolutions(policy, number=9),
        *_document_control(
            policy,
            "2.1",
            (
                ("2.0", "Duplicate and incorrect charge policies merged"),
                ("2.1", "Authorisation holds distinguished from duplicates"),
            ),
        ),
    ]


def _fraud_policy(policy: PolicyDocument, window_days: int) -> list[Block]:
    return [
        Para(
            "This policy covers charges a customer says they do not recognise, including "
            "suspected fraud on a stolen card."
        ),
        Heading("1. Purpose"),
        Para(
            "To protect cardholders whose card was misused, to avoid paying twice when a "
            "chargeback is already under way, and to recognise charges that are genuine but "
            "unfamiliar to the customer."
        ),
        Heading("2. Scope"),
        Para(
            "Every charge reported as unrecognised, unauthorised or fraudulent by a customer "
            "or cardholder, on any plan."
        ),
        Heading("3. Definitions"),
        Bullets(
            (
                "Unrecognised charge: a charge the customer does not recognise on their statement.",
                "Unauthorised charge: a charge the cardholder did not permit, such as one "
                "made with a stolen card.",
                "Friendly fraud: a genuine charge disputed by mistake, often made by a "
                "colleague or family member, or shown under an unfamiliar descriptor.",
                "Payment risk level: the payment processor's fraud assessment of a charge: "
                "normal, elevated or highest.",
                "Chargeback: a dispute the cardholder raised with their bank.",
            )
        ),
        Heading("4. Investigating and deciding unrecognised charges"),
        Numbered(
            (
                "Check the statement descriptor and tell the customer how the Company's "
                "charges appear on card statements.",
                "Check whether the charge belongs to a subscription on the customer's "
                "account, including seats added by colleagues.",
                "Check the payment risk level and recent sign-ins to the account.",
                "Check whether a chargeback is already open on the charge.",
                "Decide with the table below.",
            )
        ),
        Table(
            ("Finding", "Resolution"),
            (
                ("Charge is genuine and matches the account's subscription", "Deny refund"),
                ("Chargeback already open on the charge", "Deny refund"),
                ("Charge not linked to any use or subscription of the customer", "Full refund"),
                ("Card reported stolen and charge not made by the customer", "Full refund"),
            ),
        ),
        Heading("5. Payment risk levels"),
        Table(
            ("Payment risk level", "Handling"),
            (
                ("Normal", "Decide under section 4"),
                ("Elevated", "Decide under section 4; a billing specialist reviews every refund"),
                (
                    "Highest",
                    "No automatic approval; finance manager review and account security check",
                ),
            ),
        ),
        Heading("6. Account security"),
        Para(
            "When a card appears to have been misused, the reviewer asks the customer to "
            "remove the card and reset their password, and the subscription is paused until "
            "the customer confirms the account is secure."
        ),
        Heading("7. Exclusions"),
        Bullets(
            (
                "Charges with an open chargeback; the bank returns those funds.",
                "Genuine subscription charges made by another user of the same account.",
                f"Disputes raised more than {window_days} days after the charge.",
            )
        ),
        Heading("8. Evidence required"),
        Bullets(
            (
                "The charge with its descriptor, risk level and risk score.",
                "The account's subscriptions, seats and recent sign-ins.",
                "Chargeback status of the charge.",
            )
        ),
        *_permitted_resolutions(policy, number=9),
        *_document_control(
            policy,
            "1.3",
            (
                ("1.2", "Payment risk levels added"),
                ("1.3", "No refund while a chargeback is open"),
            ),
        ),
    ]


def _approval_policy(policy: PolicyDocument, window_days: int) -> list[Block]:
    del window_days
    return [
        Para(
            "This policy says who may approve a refund or credit, when two people must "
            "approve, and when a resolution may be approved automatically."
        ),
        Heading("1. Purpose"),
        Para(
            "To make every money-moving decision proportionate to its size, separate the "
            "person who proposes from the people who approve, and leave an audit trail."
        ),
        Heading("2. Scope"),
        Para(
            "Every refund, partial refund and account credit resolving a customer dispute, "
            "whether drafted by a person or by the automated dispute resolution service."
        ),
        Heading("3. Approval levels by amount"),
        Para(
            "Who may approve a refund, partial refund or account credit depends on its "
            "amount: the money or credit the resolution gives the customer. Larger amounts "
            f"need more senior approvers, and above {_money(_dual_control_threshold())} two "
            "of them."
        ),
        approval_levels_table(),
        Heading("4. Dual control"),
        Numbered(
            (
                f"Resolutions above {_money(_dual_control_threshold())} need two approvals "
                "from two different people.",
                "The same person may not give both approvals, and the person who drafted a "
                "resolution may not approve it.",
                "The second approver sees the first decision and its comments.",
                "If either approver rejects, the resolution is rejected.",
            )
        ),
        Heading("5. Automatic approval"),
        Para(
            "A resolution may be approved without a human reviewer only when every "
            "condition below holds; otherwise it goes to review."
        ),
        Bullets(
            (
                "Finance Operations has enabled automatic approval, and the amount is within "
                "the automatic approval limit it set (never above "
                f"{_money(_auto_approval_cap())}).",
                "The drafted resolution's confidence is at least "
                f"{_setting_default('auto_approve_min_confidence'):.0%}.",
                "The customer has raised no more than "
                f"{_setting_default('max_disputes_90d')} disputes in the last 90 days.",
                "The payment risk level is not highest.",
            )
        ),
        Heading("6. Reviewer modifications"),
        Para(
            "A reviewer may change the action or the amount of a drafted resolution. A "
            "modified amount may not exceed what was charged and not yet refunded, may not "
            "be zero or negative, and must state the reason; the approval level is taken "
            "from the modified amount."
        ),
        Heading("7. Review timelines and escalation"),
        Table(
            ("Time since review requested", "Action"),
            (
                (
                    _hours(_setting_default("review_reminder_hours")),
                    "Reminder sent to the approvers",
                ),
                (
                    _hours(_setting_default("review_escalation_hours")),
                    "Escalated to the finance manager on duty",
                ),
            ),
        ),
        Heading("8. Records and audit"),
        Para(
            "Every decision records who decided, when, through which channel, the comments "
            "and any modification. Records are kept for seven years and are never edited; "
            "corrections are new entries."
        ),
        *_document_control(
            policy,
            "4.0",
            (
                ("3.5", f"Dual control above {_money(_dual_control_threshold())}"),
                ("4.0", "Automatic approval conditions for the dispute resolution service"),
            ),
        ),
    ]


_BODIES = {
    "POL-REF-001": _refund_policy,
    "POL-OUT-002": _outage_policy,
    "POL-CAN-003": _cancellation_policy,
    "POL-BIL-004": _billing_errors_policy,
    "POL-FRD-005": _fraud_policy,
    "POL-APR-006": _approval_policy,
}


def policy_blocks(
    policy: PolicyDocument, *, dispute_window_days: int = DEFAULT_DISPUTE_WINDOW_DAYS
) -> list[Block]:
    """The content of one policy document, in order."""
    return _BODIES[policy.policy_id](policy, dispute_window_days)


def _restart_numbering(document: DocxDocument, paragraph: Paragraph) -> int:
    # Each numbered list gets its own w:num with a start override, so it counts from 1
    # instead of continuing the previous list of the document.
    numbering = document.part.numbering_part.numbering_definitions._numbering
    style_num_id = document.styles["List Number"]._element.pPr.numPr.numId.val
    abstract_id = numbering.num_having_numId(style_num_id).abstractNumId.val
    num = numbering.add_num(abstract_id)
    num.add_lvlOverride(ilvl=0).add_startOverride(1)
    return int(num.numId)


def _set_num_id(paragraph: Paragraph, num_id: int) -> None:
    num_pr = paragraph._p.get_or_add_pPr().get_or_add_numPr()
    num_pr.get_or_add_ilvl().val = 0
    num_pr.get_or_add_numId().val = num_id


def render_policy(
    policy: PolicyDocument, *, dispute_window_days: int = DEFAULT_DISPUTE_WINDOW_DAYS
) -> DocxDocument:
    """Build the .docx document of one policy."""
    document = Document()
    document.styles["Normal"].font.name = "Calibri"
    document.styles["Normal"].font.size = Pt(11)
    core = document.core_properties
    core.title = policy.title
    core.identifier = policy.policy_id
    core.subject = "Billing dispute resolution"
    core.author = OWNER
    core.last_modified_by = OWNER
    core.created = _FIXED_TIMESTAMP
    core.modified = _FIXED_TIMESTAMP
    core.revision = 1
    core.keywords = ", ".join(_DISPUTE_LABELS[t] for t in policy.governs)

    document.add_paragraph(policy.title, style="Title")
    document.add_paragraph(
        f"{policy.policy_id} - effective {EFFECTIVE_DATE} - owner: {OWNER}", style="Subtitle"
    )
    for block in policy_blocks(policy, dispute_window_days=dispute_window_days):
        if isinstance(block, Heading):
            document.add_heading(block.text, level=block.level)
        elif isinstance(block, Para):
            document.add_paragraph(block.text)
        elif isinstance(block, Bullets):
            for item in block.items:
                document.add_paragraph(item, style="List Bullet")
        elif isinstance(block, Numbered):
            num_id: int | None = None
            for item in block.items:
                paragraph = document.add_paragraph(item, style="List Number")
                if num_id is None:
                    num_id = _restart_numbering(document, paragraph)
                _set_num_id(paragraph, num_id)
        else:
            table = document.add_table(rows=1, cols=len(block.header))
            table.style = "Table Grid"
            for cell, text in zip(table.rows[0].cells, block.header, strict=True):
                cell.text = text
                for run in cell.paragraphs[0].runs:
                    run.bold = True
            for row in block.rows:
                for cell, text in zip(table.add_row().cells, row, strict=True):
                    cell.text = text
            document.add_paragraph()
    return document


def write_policies(
    directory: Path,
    *,
    overwrite: bool = True,
    dispute_window_days: int = DEFAULT_DISPUTE_WINDOW_DAYS,
) -> list[Path]:
    """Write every policy of POLICIES into `directory`; return the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for policy in POLICIES:
        path = directory / policy.file_name
        if path.exists() and not overwrite:
            continue
        render_policy(policy, dispute_window_days=dispute_window_days).save(str(path))
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "policies"
    )
    parser.add_argument(
        "--keep-existing", action="store_true", help="do not overwrite files that exist"
    )
    args = parser.parse_args(argv)
    written = write_policies(args.out, overwrite=not args.keep_existing)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
