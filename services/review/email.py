"""E-mail: an SMTP sender (STARTTLS + login), a log-only sender, and the delivery log.

Every e-mail about a run is one row in `notifications` (kind, recipient, status, attempts,
last error), written before the first attempt and updated after each one, so an operator
sees what was sent, what is failing and why. Temporary failures (connection, timeouts,
4xx replies) are retried a bounded number of times with a small backoff; permanent ones
(5xx, rejected login) are not. A failure never propagates to the caller's run.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from models.tables import notifications
from services.errors import PaymentsAgentError

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

# Statuses of a notifications row.
SENDING, SENT, FAILED, LOGGED, SKIPPED = "sending", "sent", "failed", "logged", "skipped"


class EmailError(PaymentsAgentError):
    """Sending an e-mail failed; `retryable` for temporary failures."""

    status_code = 502


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    subject: str
    text: str
    html: str | None = None


class EmailSender(Protocol):
    backend: str
    delivers: bool  # False for the log-only sender: nothing leaves the process

    async def send(self, email: OutgoingEmail) -> None:
        """Send one e-mail or raise EmailError."""
        ...


def _smtp_error(exc: Exception) -> EmailError:
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return EmailError(f"SMTP login rejected ({exc.smtp_code})", retryable=False)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        return EmailError(f"recipient refused ({codes})", retryable=all(c < 500 for c in codes))
    if isinstance(exc, smtplib.SMTPResponseException):
        raw = exc.smtp_error
        reply = (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw))[:200]
        return EmailError(f"SMTP {exc.smtp_code} {reply}".strip(), retryable=exc.smtp_code < 500)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return EmailError(f"SMTP server lacks a required feature: {exc}", retryable=False)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return EmailError(f"SMTP TLS certificate rejected: {exc.verify_message}", retryable=False)
    # Disconnects, refused connections, timeouts, TLS resets: worth another attempt.
    return EmailError(f"SMTP unavailable: {type(exc).__name__}: {exc}"[:300], retryable=True)


class SmtpSender:
    """SMTP with STARTTLS (or implicit TLS on port 465) and login, via smtplib in a thread."""

    backend = "smtp"
    delivers = True

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: SecretStr | None = None,
        starttls: bool = True,
        timeout: float = 20.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self._password = password
        self.starttls = starttls
        self.timeout = timeout
        self.tls_context = tls_context or ssl.create_default_context()

    def _message(self, email: OutgoingEmail) -> EmailMessage:
        # Headers fold at 200 rather than 78 characters: Python folds a long subject with
        # an unbreakable first word onto a continuation line, which clients show indented.
        message = EmailMessage(policy=email_policy.default.clone(max_line_length=200))
        message["From"] = self.sender
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        message.set_content(email.text)
        if email.html is not None:
            message.add_alternative(email.html, subtype="html")
        return message

    def _send_blocking(self, message: EmailMessage) -> None:
        smtp: smtplib.SMTP
        if self.port == 465:
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self.tls_context
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            smtp.ehlo()
            if self.starttls and self.port != 465:
                smtp.starttls(context=self.tls_context)
                smtp.ehlo()
            if self.username and self._password is not None:
                smtp.login(self.username, self._password.get_secret_value())
            smtp.send_message(message)

    async def send(self, email: OutgoingEmail) -> None:
        message = self._message(email)
        try:
            await asyncio.to_thread(self._send_blocking, message)
        except (smtplib.SMTPException, OSError) as exc:
            raise _smtp_error(exc) from None


class LogOnlySender:
    """No SMTP server configured: say that an e-mail would have gone out, send nothing.

    Only the recipient and subject are logged: bodies carry signed review links.
    """

    backend = "log-only (SMTP_HOST not set)"
    delivers = False

    async def send(self, email: OutgoingEmail) -> None:
        log.info("e-mail not sent (SMTP_HOST not set) to %s: %s", email.to, email.subject)


@dataclass(frozen=True)
class Delivery:
    """The outcome of delivering one e-mail."""

    recipient: str
    kind: str
    status: str
    attempts: int
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status in (SENT, LOGGED)


class NotificationLog:
    """Rows of `notifications`: what was e-mailed about which run, and how it went."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def start(self, *, run_id: str, kind: str, recipient: str) -> int:
        async with self.engine.begin() as conn:
            return int(
                (
                    await conn.execute(
                        notifications.insert()
                        .values(run_id=run_id, kind=kind, recipient=recipient, status=SENDING)
                        .returning(notifications.c.id)
                    )
                ).scalar_one()
            )

    async def attempt(self, row_id: int, *, attempts: int, status: str, error: str | None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(notifications)
                .where(notifications.c.id == row_id)
                .values(attempts=attempts, status=status, error=error)
            )

    async def record(
        self, *, run_id: str, kind: str, recipient: str, status: str, error: str | None
    ) -> None:
        """A notification that involved no sending attempt (e.g. skipped: no recipient)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                notifications.insert().values(
                    run_id=run_id,
                    kind=kind,
                    recipient=recipient,
                    status=status,
                    attempts=0,
                    error=error,
                )
            )

    async def for_run(self, run_id: str) -> list[dict[str, object]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(notifications)
                .where(notifications.c.run_id == run_id)
                .order_by(notifications.c.id)
            )
            return [dict(r._mapping) for r in rows]

    async def delivered_to(self, run_id: str, kind: str) -> set[str]:
        """Recipients to whom an e-mail of this kind about the run has been delivered."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(notifications.c.recipient).where(
                    notifications.c.run_id == run_id,
                    notifications.c.kind == kind,
                    notifications.c.status.in_((SENT, LOGGED)),
                )
            )
            return {r.recipient for r in rows}

    async def kinds(self, run_id: str) -> set[str]:
        """Every kind of notification recorded for the run, whatever its outcome."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(notifications.c.kind).where(notifications.c.run_id == run_id).distinct()
            )
            return {r.kind for r in rows}


class Mailer:
    """Delivers e-mails with bounded retries, recording every attempt."""

    def __init__(
        self,
        *,
        sender: EmailSender,
        log_: NotificationLog,
        attempts: int = 3,
        base_delay: float = 0.5,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.sender = sender
        self.log = log_
        self.attempts = max(attempts, 1)
        self.base_delay = base_delay
        self.sleep = sleep

    async def deliver(self, *, run_id: str, kind: str, email: OutgoingEmail) -> Delivery:
        """Send `email` about `run_id`; never raises for a sending failure."""
        row_id = await self.log.start(run_id=run_id, kind=kind, recipient=email.to)
        error: str | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                await self.sender.send(email)
            except EmailError as exc:
                error = exc.message
                last = attempt == self.attempts or not exc.retryable
                await self.log.attempt(
                    row_id, attempts=attempt, status=FAILED if last else SENDING, error=error
                )
                if last:
                    log.warning(
                        "%s e-mail to %s failed after %d attempt(s): %s",
                        kind,
                        email.to,
                        attempt,
                        error,
                        extra={"run_id": run_id},
                    )
                    return Delivery(email.to, kind, FAILED, attempt, error)
                await self.sleep(self.base_delay * 2 ** (attempt - 1))
                continue
            status = SENT if self.sender.delivers else LOGGED
            await self.log.attempt(row_id, attempts=attempt, status=status, error=error)
            return Delivery(email.to, kind, status, attempt, error)
        raise AssertionError("unreachable: the loop returns on its last attempt")
