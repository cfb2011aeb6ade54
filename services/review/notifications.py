"""Reviewer notifications: the review request, one reminder and the escalation, by e-mail.

Each approver gets an e-mail of their own, carrying a signed link bound to them and the
run. Sending failures are retried and recorded (services/review/email.py) and never fail the
run: it stays pending and visible on the dashboard and in /human-review/pending.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import ChainableUndefined, Environment, FileSystemLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncEngine

from models.approvals import approval_state
from models.costs import summarise_recorded
from services.review.email import (
    SKIPPED,
    Delivery,
    EmailSender,
    LogOnlySender,
    Mailer,
    NotificationLog,
    OutgoingEmail,
    Sleep,
    SmtpSender,
)
from services.review.links import ReviewLinkSigner
from services.review.reviewers import ReviewerKeys
from services.settings import ConfigurationError, Settings

log = logging.getLogger(__name__)

REVIEW_REQUEST, REMINDER, ESCALATION = "review_request", "reminder", "escalation"
TEMPLATES = Path(__file__).resolve().parent / "email_templates"


@dataclass(frozen=True)
class Recipient:
    """An address to e-mail; `reviewer_id` when it belongs to an active reviewer."""

    address: str
    reviewer_id: int | None


@dataclass(frozen=True)
class ReviewFacts:
    """What a reviewer needs to decide, from the graph state or the run's row."""

    run_id: str
    case_id: str
    case: dict[str, Any]
    account: dict[str, Any]
    disputes_last_90d: int
    charge: dict[str, Any]
    proposal: dict[str, Any]
    required_approvals: int
    risk_flags: list[str]
    policies: list[dict[str, Any]] = field(default_factory=list)
    precedents: list[dict[str, Any]] = field(default_factory=list)
    llm_cost: Decimal = Decimal("0")
    input_tokens: int = 0
    output_tokens: int = 0
    # The version that would execute, every version with its author, who approved the
    # current one (models/approvals.py), and what was paid on the charge before.
    current: dict[str, Any] = field(default_factory=dict)
    versions: list[dict[str, Any]] = field(default_factory=list)
    approved_by: list[str] = field(default_factory=list)
    prior_payouts: list[dict[str, Any]] = field(default_factory=list)
    sandbox_systems: list[str] = field(default_factory=list)

    @property
    def currency(self) -> str:
        return str(self.proposal.get("currency") or self.case.get("currency") or "usd").upper()

    @property
    def dispute_type_label(self) -> str:
        return str(self.case.get("dispute_type") or "dispute").replace("_", " ")

    @property
    def refundable(self) -> str:
        """What is left of the charge: refunds at the provider, and credits and refunds
        this system made that the provider does not show, all count."""
        amount = Decimal(str(self.charge.get("amount", "0")))
        paid = sum(
            Decimal(str(self.charge.get(key) or "0"))
            for key in ("amount_refunded", "credited", "refunds_unreported")
        )
        return str(max(amount - paid, Decimal("0")))

    @classmethod
    def build(
        cls,
        *,
        run_id: str,
        case_id: str,
        crm_data: dict[str, Any] | None,
        payment_data: dict[str, Any] | None,
        proposal: dict[str, Any] | None,
        plan: dict[str, Any] | None,
        retrieved: dict[str, Any] | None,
        llm_cost: Decimal,
        breakdown: dict[str, Any] | None,
        decisions: list[dict[str, Any]] | None = None,
    ) -> ReviewFacts:
        crm = crm_data or {}
        payment = payment_data or {}
        plan = plan or {}
        retrieved = retrieved or {}
        breakdown = breakdown or {}
        approval = (
            approval_state(proposal, plan, decisions or [])
            if proposal and proposal.get("action")
            else None
        )
        return cls(
            run_id=run_id,
            case_id=case_id,
            case=dict(crm.get("case") or {}),
            # Contact data (e-mail, phone, address) is left out: the decision needs none.
            account={k: (crm.get("account") or {}).get(k) for k in ("name", "segment")},
            disputes_last_90d=int(crm.get("disputes_last_90d") or 0),
            charge=dict(payment.get("disputed_charge") or {}),
            proposal={k: v for k, v in (proposal or {}).items() if k != "retrieved"},
            required_approvals=(
                approval.required if approval else int(plan.get("required_approvals") or 1)
            ),
            risk_flags=list(plan.get("risk_flags") or []),
            policies=[_policy(p) for p in retrieved.get("policies") or []],
            precedents=[_precedent(p) for p in retrieved.get("precedents") or []],
            llm_cost=llm_cost,
            input_tokens=int(breakdown.get("input_tokens") or 0),
            output_tokens=int(breakdown.get("output_tokens") or 0),
            current=approval.current.as_dict() if approval else {},
            versions=[v.as_dict() for v in approval.versions] if approval else [],
            approved_by=list(approval.approver_names) if approval else [],
            prior_payouts=list(payment.get("prior_payouts") or []),
            sandbox_systems=list(plan.get("sandbox_systems") or []),
        )

    @classmethod
    def from_summary(cls, run_id: str, case_id: str, summary: dict[str, Any]) -> ReviewFacts:
        """From what send_human_review hands over (the graph state)."""
        llm_cost, breakdown = summarise_recorded(summary.get("costs") or [])
        return cls.build(
            run_id=run_id,
            case_id=case_id,
            crm_data=summary.get("crm_data"),
            payment_data=summary.get("payment_data"),
            proposal=summary.get("proposal"),
            plan=summary.get("review"),
            retrieved=summary.get("retrieved"),
            llm_cost=llm_cost,
            breakdown=breakdown,
            decisions=summary.get("decisions"),
        )

    @classmethod
    def from_run(cls, run: dict[str, Any]) -> ReviewFacts:
        """From a workflow_states row (reminders, escalations, the review page)."""
        proposal = run.get("resolution_proposal") or {}
        return cls.build(
            run_id=str(run["run_id"]),
            case_id=str(run["case_id"]),
            crm_data=run.get("crm_data"),
            payment_data=run.get("payment_data"),
            proposal=proposal,
            plan=(run.get("human_review_data") or {}).get("plan"),
            retrieved=proposal.get("retrieved"),
            llm_cost=Decimal(str(run.get("llm_cost") or "0")),
            breakdown=run.get("cost_breakdown"),
            decisions=(run.get("human_review_data") or {}).get("decisions"),
        )


def _policy(hit: dict[str, Any]) -> dict[str, Any]:
    """A cited policy section; title and text are shown when retrieval recorded them."""
    return {
        "policy_id": hit.get("policy_id") or hit.get("id") or "",
        "section": hit.get("section") or "",
        "score": float(hit.get("score") or 0.0),
        "title": hit.get("title"),
        "text": hit.get("text") or hit.get("snippet"),
    }


def _precedent(hit: dict[str, Any]) -> dict[str, Any]:
    return {
        "case_id": hit.get("case_id") or "",
        "score": float(hit.get("score") or 0.0),
        "outcome": hit.get("outcome"),
        "text": hit.get("text") or hit.get("snippet"),
    }


def _utc_now() -> datetime:
    return datetime.now(UTC)


class EmailNotifier:
    """Review requests, reminders and escalations by e-mail, each with per-reviewer links."""

    def __init__(
        self,
        *,
        mailer: Mailer,
        approvers: Iterable[str],
        escalation_email: str | None,
        public_base_url: str,
        links: ReviewLinkSigner | None,
        keys: ReviewerKeys | None = None,
        escalation_hours: float = 48.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.mailer = mailer
        self.approvers = [a.strip() for a in approvers if a.strip()]
        self.escalation_email = escalation_email
        self.base = public_base_url.rstrip("/")
        self.links = links
        self.keys = keys
        self.escalation_hours = escalation_hours
        self.clock = clock
        self.log = mailer.log
        env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html"]),
            undefined=ChainableUndefined,  # a missing fact renders empty, never fails a mail
            keep_trailing_newline=True,
        )
        self._text = env.get_template("review.txt")
        self._html = env.get_template("review.html")

    @property
    def backend(self) -> str:
        return self.mailer.sender.backend

    def _link(self, run_id: str, reviewer_id: int | None, now: datetime) -> tuple[str, bool]:
        """A signed link for a registered reviewer; for anyone else the page (login)."""
        url = f"{self.base}/review/{run_id}"
        if self.links is None or reviewer_id is None:
            return url, False
        token = self.links.issue(run_id=run_id, reviewer_id=reviewer_id, now=now)
        return f"{url}?token={quote(token, safe='')}", True

    async def _registered(self, run_id: str, kind: str) -> list[Recipient]:
        """The approvers who are registered, active reviewers. Links go to them only; an
        address that is not one is recorded as skipped, with the reason."""
        if self.keys is None:  # no reviewer registry: plain page links (login), no tokens
            return [Recipient(address, None) for address in self.approvers]
        recipients = []
        for address in self.approvers:
            reviewer = await self.keys.reviewer_for_email(address)
            if reviewer is None:
                await self._skip(
                    run_id,
                    kind,
                    f"{address} is not a registered, active reviewer "
                    "(utils/manage_reviewers.py create NAME --email ADDRESS)",
                    recipient=address,
                )
                continue
            recipients.append(Recipient(address, reviewer.reviewer_id))
        return recipients

    def _email(
        self,
        facts: ReviewFacts,
        *,
        kind: str,
        recipient: Recipient,
        now: datetime,
        waited: timedelta | None = None,
    ) -> OutgoingEmail:
        link, signed = self._link(facts.run_id, recipient.reviewer_id, now)
        values = {
            "f": facts,
            "kind": kind,
            "link": link,
            "signed": signed,
            "recipient": recipient.address,
            "expires": (
                (now + self.links.ttl).strftime("%Y-%m-%d %H:%M UTC") if self.links else ""
            ),
            "waited_hours": int(waited.total_seconds() // 3600) if waited else 0,
            "escalation_hours": f"{self.escalation_hours:g}",
        }
        case = facts.case.get("case_number") or facts.case_id
        headline = (
            f"case {case} - {facts.proposal.get('action')} "
            f"{facts.proposal.get('amount')} {facts.currency}"
        )
        risk = "[RISK: " + ", ".join(facts.risk_flags) + "] " if facts.risk_flags else ""
        subject = {
            REVIEW_REQUEST: f"{risk}Review needed: {headline}",
            REMINDER: f"{risk}Reminder - review still needed: {headline}",
            ESCALATION: f"{risk}Escalation - review overdue: {headline}",
        }[kind]
        return OutgoingEmail(
            to=recipient.address,
            subject=subject,
            text=self._text.render(values),
            html=self._html.render(values),
        )

    async def _send_all(
        self,
        facts: ReviewFacts,
        *,
        kind: str,
        recipients: list[Recipient],
        waited: timedelta | None,
    ) -> list[Delivery]:
        now = self.clock()
        deliveries = []
        for recipient in recipients:
            email = self._email(facts, kind=kind, recipient=recipient, now=now, waited=waited)
            deliveries.append(
                await self.mailer.deliver(run_id=facts.run_id, kind=kind, email=email)
            )
        return deliveries

    async def _skip(
        self, run_id: str, kind: str, reason: str, *, recipient: str = ""
    ) -> list[Delivery]:
        level = logging.WARNING if self.mailer.sender.delivers else logging.INFO
        log.log(level, "no %s e-mail sent: %s", kind, reason, extra={"run_id": run_id})
        await self.log.record(
            run_id=run_id, kind=kind, recipient=recipient, status=SKIPPED, error=reason
        )
        return [Delivery(recipient, kind, SKIPPED, 0, reason)]

    async def request_review(self, *, run_id: str, case_id: str, summary: dict[str, Any]) -> None:
        """E-mail every approver once; a re-run after a crash skips those already reached."""
        if not self.approvers:
            await self._skip(run_id, REVIEW_REQUEST, "APPROVER_EMAIL not set")
            return
        reached = await self.log.delivered_to(run_id, REVIEW_REQUEST)
        recipients = [
            r for r in await self._registered(run_id, REVIEW_REQUEST) if r.address not in reached
        ]
        facts = ReviewFacts.from_summary(run_id, case_id, summary)
        await self._send_all(facts, kind=REVIEW_REQUEST, recipients=recipients, waited=None)

    async def send_reminder(
        self, run: dict[str, Any], *, waited: timedelta, decided_by: set[str]
    ) -> list[Delivery]:
        """Remind the approvers who have not decided yet (fresh links). `decided_by` holds
        identities (models/approvals.identity_of)."""
        run_id = str(run["run_id"])
        recipients = [
            r
            for r in await self._registered(run_id, REMINDER)
            if f"reviewer:{r.reviewer_id}" not in decided_by
        ]
        if not recipients:
            return await self._skip(run_id, REMINDER, "no approver left to remind")
        facts = ReviewFacts.from_run(run)
        return await self._send_all(facts, kind=REMINDER, recipients=recipients, waited=waited)

    async def send_escalation(self, run: dict[str, Any], *, waited: timedelta) -> list[Delivery]:
        """E-mail ESCALATION_EMAIL about a review pending too long."""
        run_id = str(run["run_id"])
        if not self.escalation_email:
            return await self._skip(run_id, ESCALATION, "ESCALATION_EMAIL not set")
        facts = ReviewFacts.from_run(run)
        reviewer = await self.keys.reviewer_for_email(self.escalation_email) if self.keys else None
        recipient = Recipient(self.escalation_email, reviewer.reviewer_id if reviewer else None)
        return await self._send_all(facts, kind=ESCALATION, recipients=[recipient], waited=waited)


def build_notifier(
    settings: Settings,
    *,
    engine: AsyncEngine,
    tls_context: ssl.SSLContext | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], datetime] = _utc_now,
) -> EmailNotifier:
    """The notifier the settings ask for: SMTP when SMTP_HOST is set, else log-only."""
    links = build_review_links(settings)
    sender: EmailSender
    if settings.smtp_host:
        settings.require("gmail_email", "approver_email", "review_link_secret")
        if settings.gmail_app_password and not (
            settings.smtp_starttls or settings.smtp_port == 465
        ):
            raise ConfigurationError("SMTP login needs TLS: set SMTP_STARTTLS=true or use port 465")
        assert settings.gmail_email is not None
        sender = SmtpSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.gmail_email,
            username=settings.gmail_email if settings.gmail_app_password else None,
            password=settings.gmail_app_password,
            starttls=settings.smtp_starttls,
            tls_context=tls_context,
        )
    else:
        sender = LogOnlySender()
    return EmailNotifier(
        mailer=Mailer(sender=sender, log_=NotificationLog(engine), sleep=sleep),
        approvers=settings.approver_email,
        escalation_email=settings.escalation_email,
        public_base_url=settings.public_base_url,
        links=links,
        keys=ReviewerKeys(engine),
        escalation_hours=settings.review_escalation_hours,
        clock=clock,
    )


def build_review_links(settings: Settings) -> ReviewLinkSigner | None:
    """The review-link signer, or None when REVIEW_LINK_SECRET is not set."""
    if settings.review_link_secret is None:
        return None
    secret = settings.review_link_secret.get_secret_value().encode()
    if len(secret) < 16:
        raise ConfigurationError("REVIEW_LINK_SECRET must be at least 16 characters")
    return ReviewLinkSigner(secret, ttl=timedelta(hours=settings.review_link_ttl_hours))
