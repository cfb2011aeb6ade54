"""Review by e-mail, end to end on loopback: a real SMTP server with STARTTLS and AUTH.

The run pauses → every approver gets an e-mail with their own signed link → the link opens
the review page → submitting it records the decision (channel "link") → the worker applies
it and the refund executes → the same link again is 409; a tampered or expired one is 403.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword
from aiosmtpd.smtp import Session as SmtpSession
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from api.app import create_app
from api.deps import ApiServices, build_api_services
from services.review.email import Mailer, NotificationLog, SmtpSender
from services.review.notifications import EmailNotifier, build_notifier
from services.review.reviewers import ReviewerKeys
from services.settings import Settings
from tests.integration.conftest import Harness

LOGIN = "payments-agent@example.com"
PASSWORD = "app-password-123"
APPROVERS = ["alice@example.com", "bob@example.com"]
BASE = "http://testserver"
LINK = re.compile(r"http://testserver/review/([0-9a-f-]{36})\?token=([A-Za-z0-9_.\-%]+)")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost, made for this test run."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Inbox:
    """The SMTP server's handler: what arrived, over TLS or not, after which AUTH."""

    messages: list[EmailMessage] = field(default_factory=list)
    tls: list[bool] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    temporary_failures: int = 0

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        if self.temporary_failures > 0:
            self.temporary_failures -= 1
            return "451 4.3.0 mailbox busy, try again later"
        content = envelope.content
        assert isinstance(content, bytes)
        self.messages.append(message_from_bytes(content, policy=default_policy))
        self.tls.append(session.ssl is not None)
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: SmtpSession, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            LOGIN.encode(),
            PASSWORD.encode(),
        )
        if ok:
            self.logins.append((mechanism, data.login.decode()))
        return AuthResult(success=ok, handled=False)

    def to(self, recipient: str) -> EmailMessage:
        [message] = [m for m in self.messages if m["To"] == recipient]
        return message


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpServer:
    port: int
    inbox: Inbox
    client_tls: ssl.SSLContext


@pytest.fixture
def start_smtp(tls_files: tuple[Path, Path]) -> Iterator[Callable[..., SmtpServer]]:
    cert, key = tls_files
    controllers: list[Controller] = []

    def start(*, exclude: tuple[str, ...] = ()) -> SmtpServer:
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(cert, key)
        inbox = Inbox()
        port = free_port()
        controller = Controller(
            inbox,
            hostname="127.0.0.1",
            port=port,
            tls_context=server_tls,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            auth_exclude_mechanism=list(exclude),
            authenticator=inbox.authenticate,
        )
        controller.start()
        controllers.append(controller)
        return SmtpServer(port, inbox, ssl.create_default_context(cafile=str(cert)))

    yield start
    for controller in controllers:
        controller.stop()


def settings_for(port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_starttls": True,
        "gmail_email": LOGIN,
        "gmail_app_password": PASSWORD,
        "approver_email": ",".join(APPROVERS),
        "escalation_email": "finance-lead@example.com",
        "review_link_secret": "a-long-enough-review-link-secret",
        "review_link_ttl_hours": 72,
        "public_base_url": BASE,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture(autouse=True)
async def reviewer_keys(harness: Harness) -> ReviewerKeys:
    """Links go only to registered, active reviewers: both approvers are registered."""
    keys = ReviewerKeys(harness.store.engine)
    await keys.create("alice", email="alice@example.com")
    await keys.create("bob", email="bob@example.com")
    return keys


async def client_for(services: ApiServices) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


@pytest.fixture
async def web(harness: Harness) -> AsyncIterator[tuple[ApiServices, httpx.AsyncClient]]:
    services = build_api_services(settings_for(25), store=harness.store, backends={"email": "smtp"})
    async for client in client_for(services):
        yield services, client


def links_in(message: EmailMessage) -> list[tuple[str, str]]:
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    return LINK.findall(text.get_content())


async def test_emailed_link_approves_and_the_run_resumes_and_executes(
    harness: Harness,
    start_smtp: Callable[..., SmtpServer],
    web: tuple[ApiServices, httpx.AsyncClient],
    reviewer_keys: ReviewerKeys,
    postgres_url: str,
) -> None:
    smtp = start_smtp()
    await reviewer_keys.create("alice", email="alice@example.com")
    notifier = build_notifier(
        settings_for(smtp.port), engine=harness.store.engine, tls_context=smtp.client_tls
    )
    run = await harness.with_context(notifier=notifier).runner.start(case_id="500A")
    assert run.status == "pending"

    # Every approver got their own e-mail, over STARTTLS, after AUTH.
    assert sorted(m["To"] for m in smtp.inbox.messages) == APPROVERS
    assert smtp.inbox.tls == [True, True]
    assert [m for m, _ in smtp.inbox.logins] == ["PLAIN", "PLAIN"]
    mail = smtp.inbox.to("alice@example.com")
    assert mail["From"] == LOGIN
    assert "Review needed" in mail["Subject"] and "99.00" in mail["Subject"]
    text = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    for fact in ("500A", "duplicate charge", "full_refund 99.00 USD", "canned proposal"):
        assert fact in text, fact
    assert "Cost so far: $0.000027" in text
    assert "POL-BIL-004" in text and "Duplicate charges" in text
    assert "billing@example.com" not in text  # no customer contact data
    html = mail.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert "canned proposal" in html
    [(link_run, alice_token)] = links_in(mail)
    [(_, bob_token)] = links_in(smtp.inbox.to("bob@example.com"))
    assert link_run == run.run_id and alice_token != bob_token
    rows = await NotificationLog(harness.store.engine).for_run(run.run_id)
    assert sorted((r["recipient"], r["status"], r["attempts"]) for r in rows) == [
        ("alice@example.com", "sent", 1),
        ("bob@example.com", "sent", 1),
    ]

    # The link opens the review page: facts, proposal, evidence with scores, costs, form.
    services, client = web
    page = await client.get(f"/review/{run.run_id}?token={alice_token}")
    assert page.status_code == 200, page.text
    for fact in (
        "Charged twice", "canned proposal", "POL-BIL-004", "Duplicate charges",
        "relevance 0.82", "0.000027", 'name="token"', ">alice<",
    ):  # fmt: skip
        assert fact in page.text, fact
    assert page.headers["referrer-policy"] == "no-referrer"

    # Submitting it records alice's approval, by link; the worker resumes the run.
    decided = await client.post(
        f"/review/{run.run_id}",
        data={"token": alice_token, "decision": "approve", "comments": "statement checked"},
    )
    assert decided.status_code == 200, decided.text
    assert "Decision recorded" in decided.text
    [stored] = await harness.store.unapplied_decisions(run_id=run.run_id)
    assert (stored.decision.reviewer, stored.decision.channel) == ("alice", "link")
    assert await harness.driver.apply_pending_decisions() == 1
    row = await harness.store.get_run(run.run_id)
    assert row is not None and row["status"] == "completed"
    refund = harness.payments.refunds[f"{run.run_id}:refund"]
    assert str(refund.amount) == "99.00"

    # The audit shows who decided, when, and by which channel.
    key = await reviewer_keys.create("auditor")
    status = (
        await client.get(
            f"/workflow/{run.run_id}/status", headers={"Authorization": f"Bearer {key.key}"}
        )
    ).json()
    [decision] = status["decisions"]
    assert decision["reviewer"] == "alice" and decision["channel"] == "link"
    assert decision["comments"] == "statement checked" and decision["decided_at"]
    assert any(a["event"] == "decision_approved" and a["actor"] == "alice" for a in status["audit"])

    # The same link again: 409, whether opened or submitted.
    again = await client.get(f"/review/{run.run_id}?token={alice_token}")
    assert again.status_code == 409
    assert "already been used" in again.text
    resubmitted = await client.post(
        f"/review/{run.run_id}", data={"token": alice_token, "decision": "reject"}
    )
    assert resubmitted.status_code == 409
    assert len(harness.payments.refunds) == 1


async def test_tampered_expired_or_foreign_links_are_403(
    harness: Harness,
    start_smtp: Callable[..., SmtpServer],
    web: tuple[ApiServices, httpx.AsyncClient],
) -> None:
    smtp = start_smtp()
    notifier = build_notifier(
        settings_for(smtp.port), engine=harness.store.engine, tls_context=smtp.client_tls
    )
    run = await harness.with_context(notifier=notifier).runner.start(case_id="500A")
    [(_, token)] = links_in(smtp.inbox.to("bob@example.com"))
    services, client = web

    tampered = token[:-3] + ("x" if token[-3] != "x" else "y") + token[-2:]
    for attempt in (
        client.get(f"/review/{run.run_id}?token={tampered}"),
        client.post(f"/review/{run.run_id}", data={"token": tampered, "decision": "approve"}),
        client.get(f"/review/0b7f6a3e-4a7e-4d55-9a45-1c8a2d1f0c11?token={token}"),
    ):
        response = await attempt
        assert response.status_code == 403, response.text

    real_now = services.clock
    services.clock = lambda: real_now() + timedelta(hours=73)
    expired = await client.post(
        f"/review/{run.run_id}", data={"token": token, "decision": "approve"}
    )
    assert expired.status_code == 403
    assert "expired" in expired.text
    services.clock = real_now

    # None of that recorded anything, and the genuine link still works.
    assert await harness.store.decisions_for_run(run.run_id) == []
    ok = await client.post(f"/review/{run.run_id}", data={"token": token, "decision": "reject"})
    assert ok.status_code == 200
    [decision] = await harness.store.decisions_for_run(run.run_id)
    assert (decision["reviewer"], decision["decision"]) == ("bob", "rejected")


async def test_refused_modification_by_link_keeps_the_link_usable(
    harness: Harness,
    start_smtp: Callable[..., SmtpServer],
    web: tuple[ApiServices, httpx.AsyncClient],
) -> None:
    smtp = start_smtp()
    notifier = build_notifier(
        settings_for(smtp.port), engine=harness.store.engine, tls_context=smtp.client_tls
    )
    run = await harness.with_context(notifier=notifier).runner.start(case_id="500A")
    [(_, token)] = links_in(smtp.inbox.to("alice@example.com"))
    _, client = web
    too_much = {
        "token": token, "decision": "modify", "action": "partial_refund",
        "amount": "120.00", "reason": "goodwill",
    }  # fmt: skip
    refused = await client.post(f"/review/{run.run_id}", data=too_much)
    assert refused.status_code == 422
    assert "120.00" in refused.text
    modified = {**too_much, "amount": "45.00", "comments": "prorated"}
    accepted = await client.post(f"/review/{run.run_id}", data=modified)
    assert accepted.status_code == 200, accepted.text
    [decision] = await harness.store.decisions_for_run(run.run_id)
    assert decision["modified_resolution"]["amount"] == "45.00"
    assert decision["proposal_before"]["amount"] == "99.00"


async def test_links_sent_before_a_secret_rotation_still_work_after_it(
    harness: Harness, start_smtp: Callable[..., SmtpServer]
) -> None:
    smtp = start_smtp()
    old, new = "review-link-secret-before-rotation", "review-link-secret-after-rotation"
    notifier = build_notifier(
        settings_for(smtp.port, review_link_secret=old),
        engine=harness.store.engine,
        tls_context=smtp.client_tls,
    )
    run = await harness.with_context(notifier=notifier).runner.start(case_id="500A")
    [(_, alice_token)] = links_in(smtp.inbox.to("alice@example.com"))
    [(_, bob_token)] = links_in(smtp.inbox.to("bob@example.com"))

    # A server that does not know the old secret refuses its links.
    forgetful = build_api_services(
        settings_for(smtp.port, review_link_secret=new), store=harness.store, backends={}
    )
    async for client in client_for(forgetful):
        for token in (alice_token, bob_token):
            refused = await client.get(f"/review/{run.run_id}?token={token}")
            assert refused.status_code == 403
            assert "invalid" in refused.text

    # After the rotation (the old secret kept as a previous one) they open and decide once.
    rotated = build_api_services(
        settings_for(smtp.port, review_link_secret=new, review_link_previous_secrets=old),
        store=harness.store,
        backends={},
    )
    async for client in client_for(rotated):
        page = await client.get(f"/review/{run.run_id}?token={alice_token}")
        assert page.status_code == 200, page.text
        decided = await client.post(
            f"/review/{run.run_id}", data={"token": alice_token, "decision": "approve"}
        )
        assert decided.status_code == 200, decided.text
        again = await client.post(
            f"/review/{run.run_id}", data={"token": alice_token, "decision": "approve"}
        )
        assert again.status_code == 409
    [decision] = await harness.store.decisions_for_run(run.run_id)
    assert (decision["reviewer"], decision["channel"]) == ("alice", "link")


async def test_auth_login_mechanism_is_used_when_the_server_offers_only_login(
    harness: Harness, start_smtp: Callable[..., SmtpServer]
) -> None:
    smtp = start_smtp(exclude=("PLAIN",))
    notifier = build_notifier(
        settings_for(smtp.port), engine=harness.store.engine, tls_context=smtp.client_tls
    )
    await harness.with_context(notifier=notifier).runner.start(case_id="500A")
    assert [m for m, _ in smtp.inbox.logins] == ["LOGIN", "LOGIN"]
    assert len(smtp.inbox.messages) == 2


async def test_temporary_smtp_failure_is_retried_and_recorded(
    harness: Harness, start_smtp: Callable[..., SmtpServer]
) -> None:
    smtp = start_smtp()
    smtp.inbox.temporary_failures = 1
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    notifier = build_notifier(
        settings_for(smtp.port, approver_email="alice@example.com"),
        engine=harness.store.engine,
        tls_context=smtp.client_tls,
        sleep=no_wait,
    )
    run = await harness.with_context(notifier=notifier).runner.start(case_id="500A")
    assert [m["To"] for m in smtp.inbox.messages] == ["alice@example.com"]
    [row] = await NotificationLog(harness.store.engine).for_run(run.run_id)
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert waits == [0.5]


async def test_smtp_down_leaves_the_run_pending_and_visible(
    harness: Harness, web: tuple[ApiServices, httpx.AsyncClient], reviewer_keys: ReviewerKeys
) -> None:
    closed_port = free_port()  # nothing listens there: connection refused

    async def no_wait(seconds: float) -> None:
        return None

    notifier = build_notifier(settings_for(closed_port), engine=harness.store.engine, sleep=no_wait)
    run = await harness.with_context(notifier=notifier).runner.start(case_id="500A")
    assert run.status == "pending"
    rows = await NotificationLog(harness.store.engine).for_run(run.run_id)
    assert sorted((r["recipient"], r["status"], r["attempts"]) for r in rows) == [
        ("alice@example.com", "failed", 3),
        ("bob@example.com", "failed", 3),
    ]
    assert all("unavailable" in str(r["error"]) for r in rows)
    _, client = web
    key = await reviewer_keys.create("carol")
    pending = await client.get("/human-review/pending", headers={"X-API-Key": key.key})
    assert [i["run_id"] for i in pending.json()["items"]] == [run.run_id]


async def test_rejected_login_is_not_retried(
    harness: Harness, start_smtp: Callable[..., SmtpServer]
) -> None:
    smtp = start_smtp()
    sender = SmtpSender(
        host="127.0.0.1",
        port=smtp.port,
        sender=LOGIN,
        username=LOGIN,
        password=SecretStr("wrong-password"),
        tls_context=smtp.client_tls,
    )
    log = NotificationLog(harness.store.engine)

    async def no_wait(seconds: float) -> None:
        raise AssertionError("a permanent failure is not retried")

    notifier = EmailNotifier(
        mailer=Mailer(sender=sender, log_=log, sleep=no_wait),
        approvers=["alice@example.com"],
        escalation_email=None,
        public_base_url=BASE,
        links=None,
    )
    run = await harness.with_context(notifier=notifier).runner.start(case_id="500A")
    assert run.status == "pending"
    [row] = await log.for_run(run.run_id)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert "login rejected" in str(row["error"])
    assert PASSWORD not in str(row["error"]) and "wrong-password" not in str(row["error"])
    assert smtp.inbox.messages == []


async def test_risk_flags_lead_the_email(
    harness: Harness, start_smtp: Callable[..., SmtpServer]
) -> None:
    harness.world.add_charge("ch_r", "cus_A", "80.00", days_ago=5, risk="elevated")
    harness.world.add_case("500R", "001A", "ch_r", "80.00", dispute_type="duplicate_charge")
    smtp = start_smtp()
    notifier = build_notifier(
        settings_for(smtp.port, approver_email="alice@example.com"),
        engine=harness.store.engine,
        tls_context=smtp.client_tls,
    )
    await harness.with_context(notifier=notifier).runner.start(case_id="500R")
    [mail] = smtp.inbox.messages
    assert mail["Subject"].startswith("[RISK: radar_risk_elevated]")
    text = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert text.lstrip().startswith("!! RISK FLAGS: radar_risk_elevated")


async def test_the_crm_label_is_shown_beside_the_dispute_type(
    harness: Harness, start_smtp: Callable[..., SmtpServer]
) -> None:
    harness.world.add_case(
        "500U", "001A", "ch_1", "99.00", dispute_type="unknown", dispute_label="Chargeback Inquiry"
    )
    smtp = start_smtp()
    notifier = build_notifier(
        settings_for(smtp.port, approver_email="alice@example.com"),
        engine=harness.store.engine,
        tls_context=smtp.client_tls,
    )
    await harness.with_context(notifier=notifier).runner.start(case_id="500U")
    [mail] = smtp.inbox.messages
    text = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "CRM label:    Chargeback Inquiry\r\n" in text
    html = mail.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert '<p id="dispute-label">CRM label: &ldquo;Chargeback Inquiry&rdquo;</p>' in html


async def test_a_rerun_of_the_send_step_does_not_mail_twice(
    harness: Harness, start_smtp: Callable[..., SmtpServer]
) -> None:
    smtp = start_smtp()
    notifier = build_notifier(
        settings_for(smtp.port), engine=harness.store.engine, tls_context=smtp.client_tls
    )
    summary: dict[str, Any] = {"proposal": {"action": "full_refund", "amount": "1.00"}}
    run = await harness.runner.start(case_id="500A")  # a run row for the notifications
    await notifier.request_review(run_id=run.run_id, case_id="500A", summary=summary)
    await notifier.request_review(run_id=run.run_id, case_id="500A", summary=summary)
    await asyncio.sleep(0)
    assert sorted(m["To"] for m in smtp.inbox.messages) == APPROVERS


async def test_a_revoked_reviewers_outstanding_link_decides_nothing(
    harness: Harness, web: tuple[ApiServices, httpx.AsyncClient], reviewer_keys: ReviewerKeys
) -> None:
    services, client = web
    run = await harness.runner.start(case_id="500A")
    bob = await reviewer_keys.reviewer_for_email("bob@example.com")
    assert bob is not None and services.review_links is not None
    token = services.review_links.issue(
        run_id=run.run_id, reviewer_id=bob.reviewer_id, now=services.clock()
    )
    assert (await client.get(f"/review/{run.run_id}?token={token}")).status_code == 200
    await reviewer_keys.revoke("bob")
    opened = await client.get(f"/review/{run.run_id}?token={token}")
    assert opened.status_code == 403 and "no longer active" in opened.text
    posted = await client.post(
        f"/review/{run.run_id}", data={"token": token, "decision": "approve"}
    )
    assert posted.status_code == 403
    assert await harness.store.decisions_for_run(run.run_id) == []


async def test_one_person_is_one_reviewer_by_key_and_by_link(
    harness: Harness, web: tuple[ApiServices, httpx.AsyncClient], reviewer_keys: ReviewerKeys
) -> None:
    from decimal import Decimal

    from workflows.context import ReviewRules

    services, client = web
    dual = harness.with_context(review_rules=ReviewRules(dual_approval_min_amount=Decimal("50")))
    run = await dual.runner.start(case_id="500A")
    issued = await reviewer_keys.create("carol", email="carol@example.com")
    by_key = await client.post(
        "/human-review/decision",
        json={"run_id": run.run_id, "decision": "approved"},
        headers={"Authorization": f"Bearer {issued.key}"},
    )
    assert by_key.status_code == 202, by_key.text
    [stored] = await dual.store.unapplied_decisions(run_id=run.run_id)
    await dual.runner.resume(run_id=run.run_id, decision=stored.decision)
    await dual.store.mark_decision_applied(stored.id)
    carol = await reviewer_keys.reviewer_for_email("carol@example.com")
    assert carol is not None and services.review_links is not None
    token = services.review_links.issue(
        run_id=run.run_id, reviewer_id=carol.reviewer_id, now=services.clock()
    )
    by_link = await client.post(
        f"/review/{run.run_id}", data={"token": token, "decision": "approve"}
    )
    assert by_link.status_code == 409 and "different reviewer" in by_link.text
    assert len(await dual.store.decisions_for_run(run.run_id)) == 1
    assert dual.payments.made == []
