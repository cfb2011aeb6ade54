"""The built-in sandbox dataset: a small SaaS subscription business, relative to `now`.

21 CRM accounts (9 standard, 7 premium, 5 enterprise; people and companies in the US,
Canada, the UK, Australia and Germany), each with a Zuora billing account holding one or
two subscriptions and a Stripe customer with six months of monthly renewal charges at
exactly the plan price (Starter Monthly $29.00 up to Enterprise Plus Monthly $4,900.00;
one Business Annual plan at $1,188.00 a year).

On top of the renewals sit the charges the disputes are about: two same-day duplicates, two
renewals billed above the plan price, two unrecognised charges flagged by Radar
("elevated" and "highest"), a duplicate already refunded in full, a renewal refunded only
in part, and an implementation fee older than the 120-day dispute window.

17 open dispute cases cover every dispute type, from $19.00 to $2,500.00. Four must fail
validation (`expected_invalid`): one claims more than was charged, one asks again for a
refund already made, one cites another customer's charge, one disputes a charge outside
the dispute window. Two descriptions carry an e-mail address or a phone number, which the
product must strip before prompting. Seven closed cases from the last 10-80 days give one
customer (Erik Lindqvist) five disputes in 90 days; every other account has at most one.

Three card chargebacks came in through Stripe, not the CRM, each on a charge no CRM case
refunds, with evidence due in 2 to 9 days: `subscription_canceled` on a storage add-on
renewed after Sofia Rivera asked to cancel it (her subscription shows the cancellation
honoured 30 days late), `fraudulent` on a renewal of a long-standing customer (Summit
Outdoor), and `product_not_received` on additional seats (Helix Biotech). One actionable
early fraud warning (`unauthorized_use_of_card`) sits on an undisputed Radar-flagged charge
of Brightpath Tutoring.

Every id is derived from a stable handle, so ids do not change with `now`; every date is
`now` minus a fixed age, so the dataset never ages out. No randomness is involved.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from models.domain import (
    BillingData,
    Charge,
    CRMAccount,
    CRMCase,
    CustomerSegment,
    Dispute,
    DisputeType,
    EarlyFraudWarning,
    RiskLevel,
    Subscription,
)
from services.sandbox.dataset import SandboxDataset

DIRECT = "Customer - Direct"
CHANNEL = "Customer - Channel"

RENEWAL_MONTHS = 6
MONTH = 30  # days between monthly renewals
YEAR = 365

# code: (plan name, price, billing period)
PLANS: dict[str, tuple[str, str, str]] = {
    "starter": ("Starter Monthly", "29.00", "month"),
    "basic": ("Basic Monthly", "49.00", "month"),
    "team": ("Team Monthly", "99.00", "month"),
    "pro": ("Pro Monthly", "199.00", "month"),
    "business": ("Business Monthly", "399.00", "month"),
    "business-annual": ("Business Annual", "1188.00", "year"),
    "enterprise": ("Enterprise Monthly", "2450.00", "month"),
    "enterprise-plus": ("Enterprise Plus Monthly", "4900.00", "month"),
    "storage": ("Extra Storage Monthly", "19.00", "month"),
    "support": ("Priority Support Monthly", "149.00", "month"),
    "seats": ("Additional Seats Monthly", "240.00", "month"),
}


# Channel-partner accounts; every other account buys direct.
CHANNEL_ACCOUNTS = frozenset({"bluefin", "fernwood", "aurora"})
# Open balances on the billing account (unpaid invoices); every other balance is zero.
BALANCES: dict[str, str] = {"fernwood": "199.00", "tessera": "2450.00"}

# segment: (key, name, e-mail, billing country, billing state, age of the latest renewal)
ACCOUNTS: dict[CustomerSegment, tuple[tuple[str, str, str, str, str | None, int], ...]] = {
    "standard": (
        ("dana", "Dana Whitfield", "dana.whitfield@gmail.com", "US", "OR", 2),
        ("harlow", "Harlow & Finch Bakery", "orders@harlowfinch.com", "US", "VT", 12),
        ("okafor", "Chidi Okafor", "chidi.okafor@outlook.com", "US", "TX", 11),
        ("maple", "Maple Street Dental", "office@maplestreetdental.ca", "CA", "ON", 6),
        ("lindqvist", "Erik Lindqvist", "erik.lindqvist@proton.me", "GB", None, 9),
        ("pinecrest", "Pinecrest Yoga Studio", "hello@pinecrestyoga.com", "US", "CO", 3),
        ("rivera", "Sofia Rivera", "sofia.rivera82@yahoo.com", "US", "FL", 17),
        ("brightpath", "Brightpath Tutoring LLC", "admin@brightpathtutoring.com", "US", "GA", 8),
        ("kowalski", "Marta Kowalski", "marta.kowalski@icloud.com", "US", "IL", 21),
    ),
    "premium": (
        ("northwind", "Northwind Logistics", "ap@northwindlogistics.com", "US", "WA", 5),
        ("vertex", "Vertex Analytics Inc.", "finance@vertexanalytics.io", "US", "MA", 7),
        ("bluefin", "Bluefin Marketing Group", "accounts@bluefinmarketing.com.au", "AU", "NSW", 4),
        ("quarry", "Quarry Lane Architects", "finance@quarrylane.co.uk", "GB", None, 15),
        ("cobalt", "Cobalt Health Partners", "billing@cobalthealth.com", "US", "NY", 10),
        ("summit", "Summit Outdoor Co.", "accounts@summitoutdoor.com", "US", "UT", 19),
        ("fernwood", "Fernwood Property Management", "ops@fernwoodpm.ca", "CA", "BC", 14),
    ),
    "enterprise": (
        ("globex", "Globex Manufacturing", "ap@globexmfg.com", "US", "OH", 5),
        ("helix", "Helix Biotech Corp.", "procurement@helixbio.com", "US", "CA", 13),
        ("meridian", "Meridian Freight Systems", "payables@meridianfreight.com", "US", "TX", 3),
        ("aurora", "Aurora Retail Group GmbH", "kreditoren@aurora-retail.de", "DE", None, 22),
        ("tessera", "Tessera Financial Services", "vendor.billing@tesserafs.com", "US", "NY", 16),
    ),
}
BILLING_DAY = {row[0]: row[5] for rows in ACCOUNTS.values() for row in rows}

# account, plan code, status, started, cancellation requested, cancelled (ages in days)
SUBSCRIPTIONS: tuple[tuple[str, str, str, int, int | None, int | None], ...] = (
    ("dana", "starter", "Active", 412, None, None),
    ("harlow", "basic", "Active", 873, None, None),
    ("okafor", "team", "Active", 301, 38, None),  # cancellation never honoured
    ("maple", "team", "Active", 655, None, None),
    ("lindqvist", "starter", "Active", 540, None, None),
    ("lindqvist", "storage", "Active", 390, None, None),
    ("pinecrest", "basic", "Active", 733, None, None),
    ("pinecrest", "storage", "Cancelled", 400, 131, 130),
    ("rivera", "starter", "Active", 266, None, None),
    ("brightpath", "team", "Active", 1020, None, None),
    ("kowalski", "basic", "Active", 218, None, None),
    ("northwind", "pro", "Active", 1190, None, None),
    ("vertex", "pro", "Active", 780, None, None),
    ("bluefin", "business", "Active", 960, 20, None),  # cancellation never honoured
    ("quarry", "business-annual", "Active", 400, None, None),
    ("quarry", "support", "Active", 400, None, None),
    ("cobalt", "business", "Active", 505, None, None),
    ("summit", "pro", "Active", 612, None, None),
    ("fernwood", "team", "Cancelled", 700, 76, 75),  # upgraded to Pro
    ("fernwood", "pro", "Active", 75, None, None),
    ("globex", "enterprise", "Active", 1460, None, None),
    ("helix", "enterprise", "Active", 1095, None, None),
    ("helix", "seats", "Active", 330, None, None),
    ("meridian", "enterprise-plus", "Active", 845, None, None),
    ("aurora", "enterprise", "Active", 200, None, None),
    ("tessera", "enterprise", "Active", 1280, None, None),
    # Cancellation honoured 30 days late: the renewal 47 days ago came after the request
    # and is the chargeback `subscription_canceled` (CHARGEBACKS).
    ("rivera", "storage", "Cancelled", 200, 50, 20),
)


@dataclass(frozen=True)
class _ChargeSpec:
    handle: str  # renewals: "<account>/<plan code>/<n>", n = 0 for the latest
    account: str
    amount: str
    age: timedelta
    description: str
    refunded: str = "0.00"
    risk_level: RiskLevel = "normal"
    risk_score: int | None = None  # None: a low score derived from the handle


# Renewals that went wrong: handle -> (amount charged, amount refunded).
ADJUSTED_RENEWALS: dict[str, tuple[str, str]] = {
    "vertex/pro/0": ("259.00", "0.00"),  # billed at the old seat count, plan is $199.00
    "meridian/enterprise-plus/0": ("5635.00", "0.00"),  # uplift never agreed, plan $4,900.00
    "cobalt/business/1": ("399.00", "100.00"),  # full refund agreed, only $100.00 paid
    "fernwood/pro/2": ("199.00", "100.00"),  # closed case 1026, partial refund
}

EXTRA_CHARGES: tuple[_ChargeSpec, ...] = (
    # Same-day duplicates, a few minutes after the renewal.
    _ChargeSpec("dana/duplicate", "dana", "29.00", timedelta(days=2, minutes=-3),
                "Subscription renewal: Starter Monthly"),
    _ChargeSpec("globex/duplicate", "globex", "2450.00", timedelta(days=5, minutes=-2),
                "Subscription renewal: Enterprise Monthly"),
    _ChargeSpec("maple/duplicate", "maple", "99.00", timedelta(days=36, minutes=-5),
                "Subscription renewal: Team Monthly", refunded="99.00"),
    # Unrecognised, flagged by Radar.
    _ChargeSpec("kowalski/support", "kowalski", "149.00", timedelta(days=6, hours=7),
                "Priority Support add-on", risk_level="elevated", risk_score=71),
    _ChargeSpec("quarry/workspace", "quarry", "1188.00", timedelta(days=3, hours=20),
                "Business Annual - additional workspace", risk_level="highest", risk_score=91),
    # One-off fee, older than the dispute window.
    _ChargeSpec("aurora/implementation", "aurora", "7500.00", timedelta(days=140),
                "Implementation services - onboarding package"),
    # Flagged by Radar, then reported by the issuer in an early fraud warning.
    _ChargeSpec("brightpath/support", "brightpath", "149.00", timedelta(days=3, hours=4),
                "Priority Support add-on", risk_level="elevated", risk_score=74),
)  # fmt: skip


@dataclass(frozen=True)
class _DisputeSpec:
    charge: str  # a charge handle; never a charge an open CRM case asks to refund
    reason: str
    opened: timedelta  # age of the dispute
    due_in: timedelta  # evidence due this long after `now`


# Chargebacks opened by the issuers, each on a charge no CRM case refunds, so the 17 CRM
# cases stay refundable.
CHARGEBACKS: tuple[_DisputeSpec, ...] = (
    # Storage add-on renewed after the customer asked to cancel it (SUBSCRIPTIONS: rivera).
    _DisputeSpec("rivera/storage/1", "subscription_canceled", timedelta(days=3, hours=2),
                 timedelta(days=6)),
    # A renewal of a 20-month customer who uses the product every week.
    _DisputeSpec("summit/pro/1", "fraudulent", timedelta(days=2, hours=5), timedelta(days=9)),
    # Additional seats the customer says were never provisioned; due in two days.
    _DisputeSpec("helix/seats/0", "product_not_received", timedelta(days=5, hours=1),
                 timedelta(days=2)),
)  # fmt: skip

# charge handle, fraud type, age of the warning
EARLY_FRAUD_WARNINGS: tuple[tuple[str, str, timedelta], ...] = (
    ("brightpath/support", "unauthorized_use_of_card", timedelta(days=1, hours=3)),
)


@dataclass(frozen=True)
class _CaseSpec:
    number: int
    account: str
    dispute_type: DisputeType
    charge: str  # a charge handle
    amount: str
    opened: timedelta  # age of the case
    status: str
    priority: str
    subject: str
    description: str
    outage_hours: str | None = None
    fails: str | None = None  # the validation rule this case must fail


OPEN_CASES: tuple[_CaseSpec, ...] = (
    _CaseSpec(
        1042, "dana", DisputeType.DUPLICATE_CHARGE, "dana/duplicate", "29.00",
        timedelta(days=1, hours=2), "New", "Medium",
        "Charged twice for my Starter plan this month",
        "Hi, I just looked at my card statement and there are two charges of $29.00 from "
        "you on the same day. I only have one account and one Starter plan, so one of them "
        "has to be a mistake. Please refund the extra charge. You can call me on "
        "(503) 555-0148 if you need anything.",
    ),
    _CaseSpec(
        1043, "harlow", DisputeType.SERVICE_OUTAGE, "harlow/basic/0", "49.00",
        timedelta(days=3, hours=5), "New", "Low",
        "Online ordering down during our Saturday rush",
        "Your platform was down for about two and a half hours last Saturday morning and "
        "our customers couldn't place pre-orders. That is our busiest time of the week. I "
        "don't think we should pay full price for a month when the service wasn't there "
        "when we needed it.",
        outage_hours="2.5",
    ),
    _CaseSpec(
        1044, "okafor", DisputeType.CANCELLATION_NOT_PROCESSED, "okafor/team/0", "99.00",
        timedelta(days=5, hours=1), "Working", "Medium",
        "Still billed after I cancelled my subscription",
        "I cancelled my Team subscription over a month ago from the billing page and got a "
        "confirmation on screen. Today I saw another $99.00 charge on my card, and I haven't "
        "logged in since. Please refund it and make sure I'm not charged again.",
    ),
    _CaseSpec(
        1045, "maple", DisputeType.REFUND_NOT_PROCESSED, "maple/duplicate", "99.00",
        timedelta(days=4, hours=3), "New", "Medium",
        "Refund for duplicate charge never arrived",
        "Last month we were charged twice for our Team plan and your support agent told us "
        "the extra $99.00 would be refunded. I've checked our statement several times and "
        "I can't see it. Can you please process the refund or tell me what happened to it?",
        fails="amount_within_refundable",
    ),
    _CaseSpec(
        1046, "lindqvist", DisputeType.REFUND_NOT_PROCESSED, "lindqvist/storage/0", "19.00",
        timedelta(days=2, hours=6), "New", "Low",
        "Promised refund for storage add-on not received",
        "I was told on chat that the Extra Storage add-on would be removed and this month's "
        "$19.00 refunded. The add-on is still on my invoice and no refund has shown up. "
        "This is the fourth time I've had to contact you about billing, which is frustrating.",
    ),
    _CaseSpec(
        1047, "pinecrest", DisputeType.DUPLICATE_CHARGE, "pinecrest/basic/0", "98.00",
        timedelta(days=1, hours=4), "New", "Medium",
        "Double charged for Basic plan",
        "We were billed twice for our Basic plan this month, $98.00 in total, and we only "
        "have one studio account. Our bookkeeper flagged it when reconciling the card. "
        "Please refund the full $98.00.",
        fails="amount_within_refundable",
    ),
    _CaseSpec(
        1048, "kowalski", DisputeType.UNRECOGNIZED_CHARGE, "kowalski/support", "149.00",
        timedelta(days=4, hours=2), "New", "High",
        "Charge I don't recognise - $149.00",
        "There is a $149.00 charge on my card described as Priority Support. I never signed "
        "up for any support add-on, I'm on the Basic plan. I'd like it refunded and to know "
        "who added it to my account.",
    ),
    _CaseSpec(
        1049, "northwind", DisputeType.SERVICE_OUTAGE, "northwind/pro/0", "199.00",
        timedelta(days=3, hours=8), "Working", "High",
        "Route planning unavailable for a full shift",
        "Your API returned errors for roughly 8 hours on Tuesday and our dispatch team "
        "couldn't plan routes for the whole day shift. We had drivers waiting in the yard. "
        "We expect this month's Pro subscription fee to be refunded.",
        outage_hours="8",
    ),
    _CaseSpec(
        1050, "vertex", DisputeType.INCORRECT_AMOUNT, "vertex/pro/0", "60.00",
        timedelta(days=6, hours=1), "New", "Medium",
        "Renewal billed at $259 instead of $199",
        "Our Pro plan is $199.00 a month but this renewal went through at $259.00. We "
        "reduced our seats last month, so the price should not have gone up. Please refund "
        "the $60.00 difference.",
    ),
    _CaseSpec(
        1051, "bluefin", DisputeType.CANCELLATION_NOT_PROCESSED, "bluefin/business/0", "399.00",
        timedelta(days=2, hours=9), "Working", "High",
        "Charged after cancellation request",
        "I emailed our account manager three weeks ago to cancel the Business plan because "
        "we've moved to another tool, and got a reply saying it was done. We were still "
        "charged $399.00 this month. Please refund it - you can reach me at "
        "james.oconnor@bluefinmarketing.com.au or on 0412 555 019.",
    ),
    _CaseSpec(
        1052, "quarry", DisputeType.UNRECOGNIZED_CHARGE, "quarry/workspace", "1188.00",
        timedelta(days=2, hours=3), "New", "High",
        "Unauthorised $1,188 charge for a second workspace",
        "We've been charged $1,188.00 for an additional Business Annual workspace that "
        "nobody here created. The charge went through in the middle of the night and our "
        "finance team has no record of approving it. We're worried someone has access to "
        "our account, please reverse it urgently.",
    ),
    _CaseSpec(
        1053, "cobalt", DisputeType.REFUND_NOT_PROCESSED, "cobalt/business/1", "299.00",
        timedelta(days=6, hours=4), "Working", "Medium",
        "Only part of the agreed refund was paid",
        "Your billing team agreed to refund last month's $399.00 charge in full after the "
        "migration problems we had. Only $100.00 has come back to our card. We are still "
        "owed $299.00.",
    ),
    _CaseSpec(
        1054, "summit", DisputeType.UNRECOGNIZED_CHARGE, "brightpath/team/0", "99.00",
        timedelta(days=2, hours=1), "New", "Medium",
        "Unknown $99.00 charge on company card",
        "Our card statement shows a $99.00 charge from you that doesn't match our Pro "
        "subscription. We don't have any other plans with you. Can you tell us what it is "
        "and refund it if it's an error?",
        fails="charge_belongs_to_customer",
    ),
    _CaseSpec(
        1055, "globex", DisputeType.DUPLICATE_CHARGE, "globex/duplicate", "2450.00",
        timedelta(days=3, hours=6), "Working", "High",
        "Duplicate Enterprise invoice payment",
        "Our AP team noticed the Enterprise Monthly payment of $2,450.00 was taken twice on "
        "the same day, two minutes apart. We have a single contract with you. Please refund "
        "the duplicate payment and confirm once it's done.",
    ),
    _CaseSpec(
        1056, "helix", DisputeType.SERVICE_OUTAGE, "helix/enterprise/0", "1225.00",
        timedelta(days=5, hours=2), "Working", "High",
        "SLA compensation for 3.5 hour outage",
        "The platform was unavailable for about three and a half hours during our "
        "quarter-end close, as your status page confirmed. Under our enterprise agreement "
        "this qualifies for SLA compensation. We are requesting 50% of this month's fee, "
        "$1,225.00.",
        outage_hours="3.5",
    ),
    _CaseSpec(
        1057, "meridian", DisputeType.INCORRECT_AMOUNT, "meridian/enterprise-plus/0", "735.00",
        timedelta(days=1, hours=7), "New", "High",
        "Enterprise Plus invoice overbilled by $735",
        "This month's Enterprise Plus charge was $5,635.00, but our contract rate is "
        "$4,900.00 a month. It looks like a price increase was applied that we never agreed "
        "to. Please refund the $735.00 difference and correct the rate going forward.",
    ),
    _CaseSpec(
        1058, "aurora", DisputeType.INCORRECT_AMOUNT, "aurora/implementation", "2500.00",
        timedelta(days=2, hours=5), "New", "Medium",
        "Implementation fee higher than quoted",
        "We were charged $7,500.00 for the onboarding package, but the quote we signed was "
        "for $5,000.00. Our finance team only spotted it during the audit. Please refund "
        "the $2,500.00 overcharge.",
        fails="within_dispute_window",
    ),
)  # fmt: skip

CLOSED_CASES: tuple[_CaseSpec, ...] = (
    _CaseSpec(
        1017, "lindqvist", DisputeType.UNRECOGNIZED_CHARGE, "lindqvist/storage/3", "19.00",
        timedelta(days=79), "Closed", "Low",
        "What is this $19 charge?",
        "There's a $19.00 charge on my card I don't understand. I only pay for Starter.",
    ),
    _CaseSpec(
        1023, "lindqvist", DisputeType.SERVICE_OUTAGE, "lindqvist/starter/2", "29.00",
        timedelta(days=58), "Closed", "Low",
        "App down all evening",
        "The app didn't load for most of the evening and I lost work. I want this month back.",
        outage_hours="1.5",
    ),
    _CaseSpec(
        1029, "lindqvist", DisputeType.DUPLICATE_CHARGE, "lindqvist/starter/1", "29.00",
        timedelta(days=33), "Closed", "Low",
        "Charged twice?",
        "I think I've been charged twice for Starter this month. Please check and refund.",
    ),
    _CaseSpec(
        1036, "lindqvist", DisputeType.INCORRECT_AMOUNT, "lindqvist/storage/1", "19.00",
        timedelta(days=12), "Closed", "Low",
        "Storage price wrong",
        "I was told storage would be free for the first year, but I'm still paying $19.00.",
    ),
    _CaseSpec(
        1021, "rivera", DisputeType.UNRECOGNIZED_CHARGE, "rivera/starter/2", "29.00",
        timedelta(days=66), "Closed", "Low",
        "Don't recognise this charge",
        "I see a $29.00 charge from your company and I don't remember signing up. "
        "Please explain.",
    ),
    _CaseSpec(
        1026, "fernwood", DisputeType.INCORRECT_AMOUNT, "fernwood/pro/2", "100.00",
        timedelta(days=47), "Closed", "Medium",
        "Upgrade charge not prorated",
        "We upgraded from Team to Pro mid-cycle and were charged the full Pro price with no "
        "credit for the unused Team days. Please correct the difference.",
    ),
    _CaseSpec(
        1031, "tessera", DisputeType.SERVICE_OUTAGE, "tessera/enterprise/1", "245.00",
        timedelta(days=24), "Closed", "Medium",
        "Reporting outage during month-end",
        "Reporting exports failed for about 90 minutes on the last business day of the "
        "month. We request the SLA credit due under our agreement.",
        outage_hours="1.5",
    ),
)  # fmt: skip

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SF_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        chars.append(_BASE62[rest])
    return "".join(reversed(chars))


def salesforce_id(prefix: str, handle: str) -> str:
    """An 18-character Salesforce id: 15 characters plus the case-encoding suffix."""
    base = f"{prefix}Dn0000{_base62(_digest(handle), 6)}"
    suffix = ""
    for start in (0, 5, 10):
        chunk = base[start : start + 5]
        suffix += _SF_SUFFIX[sum(1 << i for i, ch in enumerate(chunk) if ch.isupper())]
    return base + suffix


def _case_id(number: int) -> str:
    return salesforce_id("500", f"case:{number}")


def _charge_id(handle: str) -> str:
    return "ch_" + _base62(_digest(f"charge:{handle}"), 24)


def _dispute_id(handle: str) -> str:
    return "du_" + _base62(_digest(f"dispute:{handle}"), 24)


def _early_fraud_warning_id(handle: str) -> str:
    return "issfr_" + _base62(_digest(f"early_fraud_warning:{handle}"), 24)


def _stripe_customer_id(key: str) -> str:
    return "cus_" + _base62(_digest(f"customer:{key}"), 14)


def _renewals(index: int) -> list[_ChargeSpec]:
    """The subscription's renewals of the last six months, at the plan price."""
    key, code, _, started, _, cancelled = SUBSCRIPTIONS[index]
    name, price, period = PLANS[code]
    latest = BILLING_DAY[key]
    horizon = latest + MONTH * (RENEWAL_MONTHS - 1)
    if period == "month":
        ages = [latest + MONTH * n for n in range(RENEWAL_MONTHS)]
    else:
        ages = list(range(started % YEAR, started + 1, YEAR))
    return [
        _ChargeSpec(
            f"{key}/{code}/{n}", key, price, timedelta(days=age), f"Subscription renewal: {name}"
        )
        for n, age in enumerate(ages)
        if age <= min(started, horizon) and (cancelled is None or age > cancelled)
    ]


def _charge_specs() -> list[_ChargeSpec]:
    renewals = {
        spec.handle: spec for index in range(len(SUBSCRIPTIONS)) for spec in _renewals(index)
    }
    for handle, (amount, refunded) in ADJUSTED_RENEWALS.items():
        renewals[handle] = replace(renewals[handle], amount=amount, refunded=refunded)
    return [*renewals.values(), *EXTRA_CHARGES]


def build_dataset(now: datetime) -> SandboxDataset:
    """Build the sandbox dataset with every date relative to `now` (timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")

    def days_ago(days: int | None) -> datetime | None:
        return None if days is None else now - timedelta(days=days)

    accounts: dict[str, CRMAccount] = {}
    zuora_ids: dict[str, str] = {}
    for segment, rows in ACCOUNTS.items():
        for key, name, email, country, state, _ in rows:
            zuora_ids[key] = f"A{10_000 + 1_237 * len(zuora_ids):08d}"
            accounts[key] = CRMAccount(
                account_id=salesforce_id("001", f"account:{key}"),
                name=name,
                type=CHANNEL if key in CHANNEL_ACCOUNTS else DIRECT,
                segment=segment,
                email=email,
                billing_country=country,
                billing_state=state,
                stripe_customer_id=_stripe_customer_id(key),
                zuora_account_id=zuora_ids[key],
            )

    subscriptions: dict[str, list[Subscription]] = {key: [] for key in accounts}
    for index, (key, code, status, started, requested, cancelled) in enumerate(SUBSCRIPTIONS):
        name, price, period = PLANS[code]
        subscriptions[key].append(
            Subscription(
                subscription_id=f"A-S{20_000 + 311 * index:08d}",
                plan=name,
                status=status,
                amount=Decimal(price),
                billing_period=period,
                start_date=now - timedelta(days=started),
                cancellation_requested_at=days_ago(requested),
                cancelled_at=days_ago(cancelled),
            )
        )
    billing = {
        zuora_ids[key]: BillingData(
            account_key=zuora_ids[key],
            balance=Decimal(BALANCES.get(key, "0.00")),
            subscriptions=subscriptions[key],
        )
        for key in accounts
    }

    charges: dict[str, Charge] = {}
    for spec in _charge_specs():
        amount, refunded = Decimal(spec.amount), Decimal(spec.refunded)
        charge = Charge(
            charge_id=_charge_id(spec.handle),
            customer_id=_stripe_customer_id(spec.account),
            amount=amount,
            amount_refunded=refunded,
            refunded=refunded == amount,
            description=spec.description,
            created_at=now - spec.age,
            risk_level=spec.risk_level,
            risk_score=(
                spec.risk_score if spec.risk_score is not None else 3 + _digest(spec.handle) % 30
            ),
        )
        charges[charge.charge_id] = charge

    cases: dict[str, CRMCase] = {}
    for case_spec in (*CLOSED_CASES, *OPEN_CASES):
        case = CRMCase(
            case_id=_case_id(case_spec.number),
            case_number=f"{case_spec.number:08d}",
            account_id=accounts[case_spec.account].account_id,
            subject=case_spec.subject,
            description=case_spec.description,
            status=case_spec.status,
            priority=case_spec.priority,
            created_at=now - case_spec.opened,
            dispute_type=case_spec.dispute_type.value,
            amount=Decimal(case_spec.amount),
            charge_id=_charge_id(case_spec.charge),
            outage_hours=(
                None if case_spec.outage_hours is None else Decimal(case_spec.outage_hours)
            ),
        )
        cases[case.case_id] = case

    disputes: dict[str, Dispute] = {}
    for dispute_spec in CHARGEBACKS:
        disputed = charges[_charge_id(dispute_spec.charge)]
        dispute = Dispute(
            dispute_id=_dispute_id(dispute_spec.charge),
            charge_id=disputed.charge_id,
            amount=disputed.amount,
            currency=disputed.currency,
            reason=dispute_spec.reason,
            status="needs_response",
            evidence_due_by=now + dispute_spec.due_in,
            is_charge_refundable=False,
            created_at=now - dispute_spec.opened,
        )
        disputes[dispute.dispute_id] = dispute
    warnings = {
        warning.warning_id: warning
        for warning in (
            EarlyFraudWarning(
                warning_id=_early_fraud_warning_id(handle),
                charge_id=_charge_id(handle),
                actionable=True,
                fraud_type=fraud_type,
                created_at=now - age,
            )
            for handle, fraud_type, age in EARLY_FRAUD_WARNINGS
        )
    }
    # As Stripe shows it: a charge with a dispute is `disputed`.
    under_dispute = {d.charge_id for d in disputes.values()}
    charges = {
        charge_id: charge.model_copy(update={"disputed": charge_id in under_dispute})
        for charge_id, charge in charges.items()
    }

    return SandboxDataset(
        accounts={account.account_id: account for account in accounts.values()},
        cases=cases,
        billing=billing,
        charges=charges,
        expected_invalid={
            _case_id(spec.number): spec.fails for spec in OPEN_CASES if spec.fails is not None
        },
        disputes=disputes,
        early_fraud_warnings=warnings,
    )


def load_dataset(now: datetime) -> SandboxDataset:
    """Build the built-in dataset with dates relative to `now`."""
    return build_dataset(now)


__all__ = ["ACCOUNTS", "PLANS", "build_dataset", "load_dataset", "salesforce_id"]
