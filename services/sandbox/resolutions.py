"""Historical resolutions: decided disputes the knowledge base starts with.

Each one was decided under the policies in `policies/` (the outage cases follow
`policy_rules.OUTAGE_MATRIX`, the approvals `policy_rules.APPROVAL_LEVELS`). `outcome` is
the resolution action that was executed. Ids are `HIST-…` so they never collide with live
CRM case ids.
"""

from __future__ import annotations

from decimal import Decimal

from models.domain import ResolutionRecord


def _r(
    case_id: str,
    dispute_type: str,
    segment: str,
    amount: str,
    outcome: str,
    description: str,
    resolution: str,
    reasoning: str,
) -> ResolutionRecord:
    return ResolutionRecord(
        case_id=case_id,
        dispute_type=dispute_type,
        description=description,
        resolution=resolution,
        reasoning=reasoning,
        amount=Decimal(amount),
        customer_segment=segment,
        outcome=outcome,
    )


HISTORICAL_RESOLUTIONS: tuple[ResolutionRecord, ...] = (
    # Duplicate charges (POL-BIL-004 section 4)
    _r(
        "HIST-1001",
        "duplicate_charge",
        "standard",
        "29.00",
        "full_refund",
        "Customer sees two identical $29.00 charges on 3 May for the Starter plan and asks "
        "for one to be returned.",
        "Full refund of the second $29.00 charge.",
        "Both charges succeeded for the same May invoice; the later duplicate was refunded "
        "in full under POL-BIL-004 section 4. Under $50, auto-approval eligible.",
    ),
    _r(
        "HIST-1002",
        "duplicate_charge",
        "premium",
        "99.00",
        "full_refund",
        "Premium customer charged $99 twice after the card was retried during a payment "
        "page timeout.",
        "Full refund of the duplicate $99.00 charge.",
        "Payment system shows two captured charges for invoice INV-20931; the retry created "
        "a second capture. Refunded the later one; one billing specialist approval.",
    ),
    _r(
        "HIST-1003",
        "duplicate_charge",
        "standard",
        "49.00",
        "deny_refund",
        "Customer says they were charged twice for the Growth plan; their banking app shows "
        "two $49.00 entries.",
        "Refund denied; explained the pending authorisation hold.",
        "Only one charge succeeded. The second entry was an authorisation hold from a "
        "failed card update, which drops off within 7 days (POL-BIL-004 section 3).",
    ),
    _r(
        "HIST-1004",
        "duplicate_charge",
        "enterprise",
        "1200.00",
        "partial_refund",
        "Enterprise account billed twice for the monthly platform fee of $1,200; support "
        "had already refunded $200 as goodwill.",
        "Partial refund of the remaining $1,000.00 on the duplicate charge.",
        "Duplicate confirmed on the same invoice. $200 was already refunded, so the "
        "remainder was refunded. Above $500: billing specialist and finance manager approved.",
    ),
    _r(
        "HIST-1005",
        "duplicate_charge",
        "premium",
        "199.00",
        "full_refund",
        "Annual add-on charged on both the old and the new card after the customer changed "
        "payment method.",
        "Full refund of the $199.00 charge on the old card.",
        "Two successful captures for the same add-on period; refunded the later charge to "
        "its original payment method as the refund policy requires.",
    ),
    _r(
        "HIST-1006",
        "duplicate_charge",
        "standard",
        "15.00",
        "deny_refund",
        "Customer claims a duplicate $15 charge, but the second charge is for an extra seat "
        "they added mid-month.",
        "Refund denied; explained the seat charge.",
        "The two charges are for different items: the monthly plan and a seat added by an "
        "admin on the account. Not a duplicate under POL-BIL-004.",
    ),
    # Service outages (POL-OUT-002, compensation matrix)
    _r(
        "HIST-2001",
        "service_outage",
        "premium",
        "99.00",
        "full_refund",
        "Premium customer could not access the dashboard for 8 hours during the 12 March "
        "incident and asks for the month's fee back.",
        "Full refund of the $99.00 March charge.",
        "Status page incident INC-311 lasted 8 hours; the 6-12 hours band gives premium "
        "customers a full refund of the disputed charge.",
    ),
    _r(
        "HIST-2002",
        "service_outage",
        "standard",
        "49.00",
        "account_credit",
        "API unavailable for about 3 hours; standard customer wants compensation.",
        "Account credit of $4.90 on the next invoice.",
        "Incident confirmed at 3 hours: 1-6 hours band, standard segment, 10% of the "
        "disputed charge as account credit.",
    ),
    _r(
        "HIST-2003",
        "service_outage",
        "enterprise",
        "2500.00",
        "account_credit",
        "Enterprise customer reports a 4-hour outage of the reporting API in the EU region.",
        "Account credit of $1,250.00 on the next invoice.",
        "1-6 hours band, enterprise segment: 50% of the disputed charge as credit. Above "
        "$500, so two approvals (billing specialist and finance manager).",
    ),
    _r(
        "HIST-2004",
        "service_outage",
        "standard",
        "29.00",
        "deny_refund",
        "Customer says the service was down most of the weekend and wants a refund.",
        "Compensation denied; explained the outage records.",
        "The only incident that weekend lasted 40 minutes. Under 1 hour gives standard "
        "customers no compensation; the rest of the downtime was the customer's own "
        "network (excluded by section 7).",
    ),
    _r(
        "HIST-2005",
        "service_outage",
        "premium",
        "149.00",
        "full_refund",
        "Premium customer affected by the 30-hour data sync outage in June.",
        "Full refund of the $149.00 June charge.",
        "Over 24 hours: every segment receives a full refund of the disputed charge.",
    ),
    _r(
        "HIST-2006",
        "service_outage",
        "standard",
        "79.00",
        "account_credit",
        "Standard customer lost access for 14 hours during the database failover incident.",
        "Account credit of $39.50 on the next invoice.",
        "12-24 hours band, standard segment: 50% of the disputed charge, given as credit.",
    ),
    _r(
        "HIST-2007",
        "service_outage",
        "standard",
        "49.00",
        "partial_refund",
        "Customer who has since cancelled asks for compensation for a 7-hour outage last month.",
        "Partial refund of $12.25.",
        "6-12 hours band, standard segment: 25% of the charge. The customer has no future "
        "invoice, so the credit was paid as a partial refund (section 6).",
    ),
    _r(
        "HIST-2008",
        "service_outage",
        "enterprise",
        "900.00",
        "deny_refund",
        "Enterprise customer requests compensation for the scheduled maintenance window on "
        "Sunday night.",
        "Compensation denied.",
        "The maintenance was announced 5 days in advance; scheduled maintenance is excluded "
        "by POL-OUT-002 section 7.",
    ),
    # Cancellations (POL-CAN-003)
    _r(
        "HIST-3001",
        "cancellation_not_processed",
        "standard",
        "49.00",
        "full_refund",
        "Customer cancelled on the dashboard on 2 April but was charged $49 on 15 April.",
        "Full refund of the $49.00 April charge; subscription cancelled.",
        "Cancellation request dated 2 April in the dashboard log; the charge covers a "
        "period after the effective date, so it is refunded in full (section 5).",
    ),
    _r(
        "HIST-3002",
        "cancellation_not_processed",
        "premium",
        "1188.00",
        "partial_refund",
        "Annual premium plan renewed although the customer e-mailed support to cancel; the "
        "customer logged in twice after renewal.",
        "Partial refund of $1,089.00 for eleven unused months.",
        "E-mail cancellation received before renewal. Usage after renewal, so the unused "
        "whole months were refunded. Two approvals as the amount exceeds $500.",
    ),
    _r(
        "HIST-3003",
        "cancellation_not_processed",
        "standard",
        "29.00",
        "deny_refund",
        "Customer says they cancelled by deleting the mobile app and wants the latest charge back.",
        "Refund denied; subscription cancelled at the customer's request now.",
        "No cancellation request on record; uninstalling the app is not a cancellation "
        "(section 7). Cancelled now so no further charges.",
    ),
    _r(
        "HIST-3004",
        "cancellation_not_processed",
        "standard",
        "19.00",
        "full_refund",
        "New customer cancelled 5 days after signing up and asks for the first month back.",
        "Full refund of the $19.00 first charge.",
        "Within the 14-day cooling-off period: monthly plans get a full refund of the first "
        "charge (section 6).",
    ),
    _r(
        "HIST-3005",
        "cancellation_not_processed",
        "enterprise",
        "3000.00",
        "deny_refund",
        "Enterprise customer cancelled mid-term and asks to stop paying the remaining "
        "monthly fees.",
        "Refund denied; contract minimum term applies.",
        "The enterprise contract has a 12-month minimum term, excluded from this policy "
        "(section 7). Account manager informed.",
    ),
    _r(
        "HIST-3006",
        "cancellation_not_processed",
        "premium",
        "99.00",
        "account_credit",
        "Customer downgraded instead of cancelling and was charged the premium rate once "
        "more; prefers credit.",
        "Account credit of $99.00.",
        "Downgrade requested before the renewal but processed late; the customer asked for "
        "credit rather than a refund.",
    ),
    # Unrecognised charges (POL-FRD-005)
    _r(
        "HIST-4001",
        "unrecognized_charge",
        "standard",
        "49.00",
        "deny_refund",
        "Customer does not recognise a $49 charge from 'PAYAPP*SUBSCR' on their statement.",
        "Refund denied; explained the statement descriptor.",
        "The descriptor is the Company's; the charge matches the customer's own Growth "
        "subscription (POL-FRD-005 section 5, genuine charge).",
    ),
    _r(
        "HIST-4002",
        "unrecognized_charge",
        "premium",
        "249.00",
        "full_refund",
        "Cardholder reports a $249 charge made with their stolen card on an account they "
        "never opened.",
        "Full refund of $249.00; account closed and card removed.",
        "Charge not linked to any use by the cardholder, payment risk level elevated, no "
        "chargeback open: full refund under section 5.",
    ),
    _r(
        "HIST-4003",
        "unrecognized_charge",
        "standard",
        "99.00",
        "deny_refund",
        "Customer disputes a charge they do not recognise but has already filed a "
        "chargeback with their bank.",
        "Refund denied; chargeback in progress.",
        "A chargeback is open on the charge; refunding as well would pay twice (section 5).",
    ),
    _r(
        "HIST-4004",
        "unrecognized_charge",
        "enterprise",
        "450.00",
        "deny_refund",
        "Finance team of an enterprise customer does not recognise a $450 seat charge.",
        "Refund denied; seats added by their own admin explained.",
        "Nine seats were added by an admin of the same account; genuine charge made by "
        "another user of the account (section 8).",
    ),
    _r(
        "HIST-4005",
        "unrecognized_charge",
        "standard",
        "19.00",
        "full_refund",
        "Customer found a $19 monthly charge they never signed up for; no login on the "
        "account since creation.",
        "Full refund of $19.00; account closed.",
        "No usage and no sign-in from the customer; likely card testing. Full refund and "
        "the card was removed.",
    ),
    _r(
        "HIST-4006",
        "unrecognized_charge",
        "premium",
        "599.00",
        "full_refund",
        "Premium customer reports an unfamiliar $599 annual charge; risk level highest.",
        "Full refund of $599.00 after verification.",
        "Risk level highest: no automatic approval; finance manager verified the card was "
        "misused and approved with a billing specialist (two approvals above $500).",
    ),
    # Incorrect amounts (POL-BIL-004 section 5)
    _r(
        "HIST-5001",
        "incorrect_amount",
        "standard",
        "120.00",
        "partial_refund",
        "Invoice shows $120 although the plan is $99 a month; no change was requested.",
        "Partial refund of the $21.00 overcharge.",
        "Recalculated price $99.00 for the plan with no extra seats; refunded the "
        "difference only (section 5).",
    ),
    _r(
        "HIST-5002",
        "incorrect_amount",
        "premium",
        "179.00",
        "deny_refund",
        "Customer says the $179 charge is wrong because the plan used to be $149.",
        "Refund denied; price change explained.",
        "The price change was notified 45 days before the charge; correct amount (section "
        "5 and exclusions).",
    ),
    _r(
        "HIST-5003",
        "incorrect_amount",
        "enterprise",
        "5400.00",
        "account_credit",
        "Enterprise invoice billed 60 seats instead of the contracted 50.",
        "Account credit of $900.00 for the 10 extra seats.",
        "Overcharge of 10 seats at $90; enterprise customer pays by invoice, so credit was "
        "applied. Two approvals (billing specialist and finance manager).",
    ),
    _r(
        "HIST-5004",
        "incorrect_amount",
        "standard",
        "52.43",
        "deny_refund",
        "Customer charged $52.43 instead of $49.00 and thinks it is an error.",
        "Refund denied; sales tax explained.",
        "The difference is 7% sales tax required for the billing address; taxes are not an "
        "incorrect amount (section 6).",
    ),
    _r(
        "HIST-5005",
        "incorrect_amount",
        "premium",
        "249.00",
        "partial_refund",
        "Discount code for 20% off was accepted at checkout but not applied to the charge.",
        "Partial refund of $49.80.",
        "Correct amount with the discount is $199.20; overcharge refunded.",
    ),
    _r(
        "HIST-5006",
        "incorrect_amount",
        "standard",
        "61.20",
        "deny_refund",
        "Customer in Canada charged more than the USD price shown.",
        "Refund denied; bank currency conversion.",
        "The Company charged the USD price; the difference is the bank's conversion and "
        "foreign transaction fee, outside the Company's control (section 6).",
    ),
    # Refunds not processed (POL-REF-001 section 7)
    _r(
        "HIST-6001",
        "refund_not_processed",
        "standard",
        "49.00",
        "deny_refund",
        "Customer was promised a refund 5 days ago and it has not appeared on the card.",
        "No second refund; refund reference provided.",
        "Refund succeeded 5 days ago; card refunds take 5-10 business days. Gave the ARN "
        "and the expected date (section 7, step 3).",
    ),
    _r(
        "HIST-6002",
        "refund_not_processed",
        "premium",
        "149.00",
        "full_refund",
        "Refund approved last month never arrived; the card it was sent to had been closed.",
        "Refund of $149.00 reissued.",
        "The refund to the closed card failed and was returned; reissued for the same "
        "amount (section 7, step 4).",
    ),
    _r(
        "HIST-6003",
        "refund_not_processed",
        "standard",
        "35.00",
        "partial_refund",
        "Support agreed a $35 partial refund for a late cancellation but it was never issued.",
        "Partial refund of $35.00 issued.",
        "Approval on the case but no refund in the payment system; issued for the approved "
        "amount (section 7, step 5).",
    ),
    _r(
        "HIST-6004",
        "refund_not_processed",
        "enterprise",
        "1500.00",
        "deny_refund",
        "Enterprise customer says the $1,500 refund from three weeks ago is missing.",
        "No second refund; ARN sent to the customer's bank.",
        "The refund succeeded 15 business days ago; the bank traced it with the ARN. A "
        "second refund would pay twice.",
    ),
    _r(
        "HIST-6005",
        "refund_not_processed",
        "premium",
        "99.00",
        "full_refund",
        "Customer was told a duplicate charge would be refunded, but nothing was ever sent.",
        "Full refund of the $99.00 duplicate charge.",
        "The duplicate refund had been approved but never issued; issued now for the "
        "approved amount.",
    ),
)
