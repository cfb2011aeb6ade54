"""The sandbox's CRM, billing and payment backends: the built-in dataset, with every case
update, credit, refund, evidence file, evidence submission and dispute acceptance a durable
row in the sandbox ledger. They implement the Protocols of services/integrations/protocols.py
(the payments also `DisputeGateway`).

The ledger holds one row per idempotency key and never forgets one (Stripe and Zuora do,
after 24 hours): a repeated key here always returns the first refund or credit, and
`find_refund` / `find_credit` read the same rows.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal

from models.domain import (
    BillingData,
    Charge,
    CreditResult,
    CRMAccount,
    CRMCase,
    Dispute,
    EarlyFraudWarning,
    RefundResult,
    quantize_money,
)
from services.errors import ConflictError, InvalidRequestError, NotFoundError
from services.integrations.protocols import (
    EVIDENCE_FILE_MAX_BYTES,
    EVIDENCE_TEXT_MAX_CHARS,
    EVIDENCE_TOTAL_MAX_CHARS,
    FILE_EVIDENCE_FIELDS,
    TEXT_EVIDENCE_FIELDS,
    Backends,
    ChargeDisputedError,
)
from services.sandbox.dataset import SandboxDataset
from services.sandbox.ledger import LedgerEntry, SandboxLedger


class SandboxCRM:
    """The built-in dataset's cases and accounts; outcomes go to the sandbox ledger."""

    backend = "sandbox"

    def __init__(self, *, dataset: SandboxDataset, ledger: SandboxLedger) -> None:
        self._data = dataset
        self._ledger = ledger

    async def get_case(self, *, case_id: str) -> CRMCase:
        """The case, with the status its last recorded outcome set, as Salesforce keeps it."""
        case = self._data.cases.get(case_id)
        if case is None:
            raise NotFoundError(f"case {case_id} not found in CRM")
        updates = await self._ledger.entries(kind="case_update", subject_id=case_id)
        if updates:
            case = case.model_copy(update={"status": str(updates[-1].payload["status"])})
        return case

    async def get_account(self, *, account_id: str) -> CRMAccount:
        account = self._data.accounts.get(account_id)
        if account is None:
            raise NotFoundError(f"account {account_id} not found in CRM")
        return account

    async def find_account_by_stripe_customer(self, *, customer_id: str) -> CRMAccount | None:
        matches = [
            account
            for account in self._data.accounts.values()
            if customer_id and account.stripe_customer_id == customer_id
        ]
        return matches[0] if matches else None

    async def list_account_disputes(self, *, account_id: str, since: datetime) -> list[CRMCase]:
        return [
            case
            for case in self._data.cases.values()
            if case.account_id == account_id and case.created_at >= since
        ]

    async def record_outcome(
        self, *, case_id: str, status: str, summary: str, idempotency_key: str
    ) -> None:
        if case_id not in self._data.cases:
            raise NotFoundError(f"case {case_id} not found in CRM")
        await self._ledger.record(
            idempotency_key=idempotency_key,
            kind="case_update",
            subject_id=case_id,
            payload={"status": status, "summary": summary},
        )


class SandboxBilling:
    backend = "sandbox"

    def __init__(self, *, dataset: SandboxDataset, ledger: SandboxLedger) -> None:
        self._data = dataset
        self._ledger = ledger

    async def get_billing(self, *, account_key: str) -> BillingData:
        billing = self._data.billing.get(account_key)
        if billing is None:
            raise NotFoundError(f"billing account {account_key} not found")
        return billing

    async def create_credit(
        self, *, account_key: str, amount: Decimal, currency: str, reason: str, idempotency_key: str
    ) -> CreditResult:
        if account_key not in self._data.billing:
            raise NotFoundError(f"billing account {account_key} not found")
        if amount <= 0:
            raise InvalidRequestError("credit amount must be positive")
        entry = await self._ledger.record(
            idempotency_key=idempotency_key,
            kind="credit",
            subject_id=account_key,
            payload={"amount": str(quantize_money(amount)), "currency": currency, "reason": reason},
        )
        return _credit(entry, idempotency_key=idempotency_key)

    async def find_credit(self, *, account_key: str, idempotency_key: str) -> CreditResult | None:
        entry = await self._ledger.get(idempotency_key)
        if entry is None or entry.kind != "credit" or entry.subject_id != account_key:
            return None
        return _credit(entry, idempotency_key=idempotency_key)


class SandboxPayments:
    """Charges, disputes and early fraud warnings from the built-in dataset; refunds,
    evidence files, evidence submissions and acceptances are durable rows in the sandbox
    ledger, so a restart sees a dispute as it was answered."""

    backend = "sandbox"

    def __init__(self, *, dataset: SandboxDataset, ledger: SandboxLedger) -> None:
        self._data = dataset
        self._ledger = ledger

    async def _with_refunds(self, charge: Charge) -> Charge:
        refunded = await self._ledger.refunded_total(charge_id=charge.charge_id)
        total = charge.amount_refunded + refunded
        return charge.model_copy(
            update={"amount_refunded": total, "refunded": charge.refunded or total >= charge.amount}
        )

    async def list_charges(self, *, customer_id: str, limit: int) -> list[Charge]:
        charges = sorted(
            (c for c in self._data.charges.values() if c.customer_id == customer_id),
            key=lambda c: c.created_at,
            reverse=True,
        )[:limit]
        return [await self._with_refunds(c) for c in charges]

    async def get_charge(self, *, charge_id: str) -> Charge:
        charge = self._data.charges.get(charge_id)
        if charge is None:
            raise NotFoundError(f"charge {charge_id} not found")
        return await self._with_refunds(charge)

    async def refund(
        self, *, charge_id: str, amount: Decimal, currency: str, reason: str, idempotency_key: str
    ) -> RefundResult:
        replay = await self._ledger.get(idempotency_key)
        if replay is None:
            charge = await self.get_charge(charge_id=charge_id)
            dispute = await self.dispute_of_charge(charge_id=charge_id)
            if dispute is not None and _blocks_refund(dispute):
                raise ChargeDisputedError(
                    f"charge {charge_id} is disputed ({dispute.dispute_id}, {dispute.status}) "
                    "and cannot be refunded; answer the dispute instead"
                )
            if amount <= 0 or amount > charge.refundable:
                raise InvalidRequestError(
                    f"refund of {amount} exceeds the refundable {charge.refundable} on {charge_id}"
                )
        entry = await self._ledger.record(
            idempotency_key=idempotency_key,
            kind="refund",
            subject_id=charge_id,
            payload={"amount": str(quantize_money(amount)), "currency": currency, "reason": reason},
        )
        return _refund(entry, idempotency_key=idempotency_key)

    async def find_refund(self, *, charge_id: str, idempotency_key: str) -> RefundResult | None:
        entry = await self._ledger.get(idempotency_key)
        if entry is None or entry.kind != "refund" or entry.subject_id != charge_id:
            return None
        return _refund(entry, idempotency_key=idempotency_key)

    async def get_refund(self, *, refund_id: str) -> RefundResult:
        number = refund_id.removeprefix(REFUND_ID_PREFIX)
        entry = None
        if refund_id.startswith(REFUND_ID_PREFIX) and number.isdigit():
            entry = await self._ledger.get_entry(int(number))
        if entry is None or entry.kind != "refund":
            raise NotFoundError(f"refund {refund_id} not found")
        return _refund(entry, idempotency_key=entry.idempotency_key)

    async def get_dispute(self, *, dispute_id: str) -> Dispute:
        opened = self._data.disputes.get(dispute_id)
        if opened is None:
            raise NotFoundError(f"dispute {dispute_id} not found")
        return await self._answered(opened)

    async def dispute_of_charge(self, *, charge_id: str) -> Dispute | None:
        disputes = [d for d in self._data.disputes.values() if d.charge_id == charge_id]
        if not disputes:
            return None
        return await self._answered(max(disputes, key=lambda d: d.created_at))

    async def _answered(self, dispute: Dispute) -> Dispute:
        """The dispute with what this system answered applied, as Stripe would show it."""
        inquiry = dispute.status.startswith("warning_")
        update: dict[str, object] = {}
        submissions = await self._ledger.entries(kind=EVIDENCE, subject_id=dispute.dispute_id)
        if submissions:
            update |= {
                "status": "warning_under_review" if inquiry else "under_review",
                "submission_count": dispute.submission_count + len(submissions),
                "has_evidence": True,
                "past_due": bool(submissions[-1].payload["past_due"]),
            }
        if await self._ledger.entries(kind=ACCEPTANCE, subject_id=dispute.dispute_id):
            update["status"] = "warning_closed" if inquiry else "lost"
        return dispute.model_copy(update=update)

    async def upload_evidence_file(
        self, *, filename: str, content: bytes, idempotency_key: str
    ) -> str:
        file_type = evidence_file_type(content)
        if file_type is None:
            raise InvalidRequestError(f"evidence file {filename}: must be a PDF, JPEG or PNG")
        if len(content) > EVIDENCE_FILE_MAX_BYTES:
            raise InvalidRequestError(f"evidence file {filename}: larger than 5 MB")
        digest = hashlib.sha256(content).hexdigest()
        entry = await self._ledger.record(
            idempotency_key=idempotency_key,
            kind=EVIDENCE_FILE,
            subject_id=digest,
            payload={"filename": filename, "size": len(content), "type": file_type},
        )
        _same_request(entry, kind=EVIDENCE_FILE, subject_id=digest)
        return f"{FILE_ID_PREFIX}{entry.entry_id:08d}"

    async def submit_evidence(
        self, *, dispute_id: str, evidence: dict[str, str], idempotency_key: str
    ) -> Dispute:
        replay = await self._ledger.get(idempotency_key)
        if replay is None:
            dispute = await self.get_dispute(dispute_id=dispute_id)
            if not dispute.accepts_response:
                raise ConflictError(
                    f"dispute {dispute_id} is {dispute.status}: it takes no evidence"
                )
            await self._check_evidence(evidence)
            due = dispute.evidence_due_by
            entry = await self._ledger.record(
                idempotency_key=idempotency_key,
                kind=EVIDENCE,
                subject_id=dispute_id,
                payload={
                    "evidence": dict(evidence),
                    "past_due": due is not None and datetime.now(UTC) > due,
                },
            )
        else:
            entry = replay
        _same_request(entry, kind=EVIDENCE, subject_id=dispute_id)
        if entry.payload["evidence"] != evidence:
            raise ConflictError(f"idempotency key {idempotency_key} was used with other evidence")
        return await self.get_dispute(dispute_id=dispute_id)

    async def _check_evidence(self, evidence: dict[str, str]) -> None:
        # Stripe's rules: known fields only, file fields hold uploaded files' ids, text
        # fields within their limits.
        if not evidence:
            raise InvalidRequestError("evidence must name at least one field")
        for name, value in evidence.items():
            if name in FILE_EVIDENCE_FIELDS:
                if not await self._is_evidence_file(value):
                    raise InvalidRequestError(
                        f"evidence[{name}] takes the id of an uploaded evidence file, "
                        f"and {value[:40]!r} is none"
                    )
            elif name not in TEXT_EVIDENCE_FIELDS:
                raise InvalidRequestError(f"evidence[{name}] is not a Stripe evidence field")
            elif len(value) > EVIDENCE_TEXT_MAX_CHARS:
                raise InvalidRequestError(f"evidence[{name}] is longer than 20,000 characters")
        if sum(len(value) for value in evidence.values()) > EVIDENCE_TOTAL_MAX_CHARS:
            raise InvalidRequestError("evidence is longer than 150,000 characters in all")

    async def _is_evidence_file(self, file_id: str) -> bool:
        number = file_id.removeprefix(FILE_ID_PREFIX)
        if not (file_id.startswith(FILE_ID_PREFIX) and number.isdigit()):
            return False
        entry = await self._ledger.get_entry(int(number))
        return entry is not None and entry.kind == EVIDENCE_FILE

    async def accept_dispute(self, *, dispute_id: str, idempotency_key: str) -> Dispute:
        replay = await self._ledger.get(idempotency_key)
        if replay is None:
            dispute = await self.get_dispute(dispute_id=dispute_id)
            if not dispute.accepts_response:
                raise ConflictError(
                    f"dispute {dispute_id} is {dispute.status}: it cannot be closed"
                )
            replay = await self._ledger.record(
                idempotency_key=idempotency_key,
                kind=ACCEPTANCE,
                subject_id=dispute_id,
                payload={"closed_at": datetime.now(UTC).isoformat()},
            )
        _same_request(replay, kind=ACCEPTANCE, subject_id=dispute_id)
        return await self.get_dispute(dispute_id=dispute_id)

    async def get_early_fraud_warning(self, *, warning_id: str) -> EarlyFraudWarning:
        warning = self._data.early_fraud_warnings.get(warning_id)
        if warning is None:
            raise NotFoundError(f"early fraud warning {warning_id} not found")
        # As Stripe: actionable while the charge is neither disputed nor fully refunded.
        charge = await self.get_charge(charge_id=warning.charge_id)
        disputed = await self.dispute_of_charge(charge_id=warning.charge_id) is not None
        return warning.model_copy(
            update={"actionable": warning.actionable and not disputed and not charge.refunded}
        )


# Ledger kinds of the dispute answers.
EVIDENCE_FILE = "evidence_file"
EVIDENCE = "dispute_evidence"
ACCEPTANCE = "dispute_acceptance"
FILE_ID_PREFIX = "file_sandbox_"
REFUND_ID_PREFIX = "re_sandbox_"


def evidence_file_type(content: bytes) -> str | None:
    """`pdf`, `jpg` or `png` from the file's first bytes, or None: what Stripe accepts."""
    if content.startswith(b"%PDF-"):
        return "pdf"
    if content.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    return None


def _blocks_refund(dispute: Dispute) -> bool:
    # Stripe refuses a refund while `is_charge_refundable` is false, and after a lost one.
    return not dispute.is_charge_refundable and dispute.status != "won"


def _same_request(entry: LedgerEntry, *, kind: str, subject_id: str) -> None:
    # A key already used for another request is an error at Stripe (idempotency_error).
    if entry.kind != kind or entry.subject_id != subject_id:
        raise ConflictError(f"idempotency key {entry.idempotency_key} was used for another request")


def _refund(entry: LedgerEntry, *, idempotency_key: str) -> RefundResult:
    # Sandbox refunds settle at once: never pending, never failed.
    return RefundResult(
        refund_id=f"{REFUND_ID_PREFIX}{entry.entry_id:08d}",
        charge_id=entry.subject_id,
        amount=Decimal(entry.payload["amount"]),
        currency=entry.payload["currency"],
        status="succeeded",
        idempotency_key=idempotency_key,
    )


def _credit(entry: LedgerEntry, *, idempotency_key: str) -> CreditResult:
    return CreditResult(
        credit_id=f"CM-{entry.entry_id:08d}",
        account_key=entry.subject_id,
        amount=Decimal(entry.payload["amount"]),
        currency=entry.payload["currency"],
        idempotency_key=idempotency_key,
    )


def sandbox_backends(*, dataset: SandboxDataset, ledger: SandboxLedger) -> Backends:
    """The sandbox's CRM, billing, payments and disputes over one dataset and ledger."""
    payments = SandboxPayments(dataset=dataset, ledger=ledger)
    return Backends(
        crm=SandboxCRM(dataset=dataset, ledger=ledger),
        billing=SandboxBilling(dataset=dataset, ledger=ledger),
        payments=payments,
        disputes=payments,
    )
