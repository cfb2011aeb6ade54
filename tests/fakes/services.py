"""One fake per service Protocol, recording what was asked of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from models.domain import (
    BillingData,
    Charge,
    CreditResult,
    CRMAccount,
    CRMCase,
    Dispute,
    DraftResult,
    EarlyFraudWarning,
    LLMCall,
    PolicyHit,
    PrecedentHit,
    RefundResult,
    ResolutionAction,
    ResolutionProposal,
    ResolutionRecord,
    Subscription,
)
from services.drafting.context import DraftingContext
from services.errors import ConflictError, IntegrationError, InvalidRequestError, NotFoundError

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeWorld:
    """A tiny consistent dataset: one account, one charge, one open case."""

    cases: dict[str, CRMCase] = field(default_factory=dict)
    accounts: dict[str, CRMAccount] = field(default_factory=dict)
    charges: dict[str, Charge] = field(default_factory=dict)
    billing: dict[str, BillingData] = field(default_factory=dict)
    disputes: dict[str, Dispute] = field(default_factory=dict)
    warnings: dict[str, EarlyFraudWarning] = field(default_factory=dict)

    def add_dispute(
        self,
        dispute_id: str,
        charge_id: str,
        *,
        reason: str = "subscription_canceled",
        status: str = "needs_response",
        due_in: timedelta = timedelta(days=7),
    ) -> Dispute:
        charge = self.charges[charge_id]
        self.charges[charge_id] = charge.model_copy(update={"disputed": True})  # as Stripe
        self.disputes[dispute_id] = Dispute(
            dispute_id=dispute_id,
            charge_id=charge_id,
            amount=charge.amount,
            currency=charge.currency,
            reason=reason,
            status=status,
            evidence_due_by=NOW + due_in,
            is_charge_refundable=False,
            created_at=NOW - timedelta(hours=1),
        )
        return self.disputes[dispute_id]

    def add_warning(self, warning_id: str, charge_id: str, *, actionable: bool = True) -> None:
        self.warnings[warning_id] = EarlyFraudWarning(
            warning_id=warning_id,
            charge_id=charge_id,
            actionable=actionable,
            fraud_type="unauthorized_use_of_card",
            created_at=NOW - timedelta(hours=1),
        )

    @classmethod
    def default(cls, *, amount: str = "99.00", claimed: str = "99.00") -> FakeWorld:
        world = cls()
        world.add_customer("001A", "cus_A", "A0001", segment="premium")
        world.add_charge("ch_1", "cus_A", amount, days_ago=10)
        world.add_case("500A", "001A", "ch_1", claimed, dispute_type="duplicate_charge")
        return world

    def add_customer(self, account_id: str, customer: str, zuora: str, *, segment: str) -> None:
        self.accounts[account_id] = CRMAccount(
            account_id=account_id,
            name=f"Account {account_id}",
            type="Customer - Direct",
            segment=segment,  # type: ignore[arg-type]
            email="billing@example.com",
            stripe_customer_id=customer,
            zuora_account_id=zuora,
        )
        self.billing[zuora] = BillingData(
            account_key=zuora,
            balance=Decimal("0.00"),
            subscriptions=[
                Subscription(
                    subscription_id=f"S-{zuora}",
                    plan="Team Monthly",
                    status="Active",
                    amount=Decimal("99.00"),
                    start_date=NOW - timedelta(days=400),
                )
            ],
        )

    def add_charge(
        self, charge_id: str, customer: str, amount: str, *, days_ago: int, risk: str = "normal"
    ) -> None:
        self.charges[charge_id] = Charge(
            charge_id=charge_id,
            customer_id=customer,
            amount=Decimal(amount),
            created_at=NOW - timedelta(days=days_ago),
            risk_level=risk,  # type: ignore[arg-type]
            disputed=False,
        )

    def add_case(
        self,
        case_id: str,
        account_id: str,
        charge_id: str,
        amount: str,
        *,
        dispute_type: str,
        dispute_label: str | None = None,
    ) -> None:
        self.cases[case_id] = CRMCase(
            case_id=case_id,
            case_number=f"000{len(self.cases) + 1}",
            account_id=account_id,
            subject="Charged twice",
            description="I was charged twice this month, please refund one.",
            status="New",
            priority="Medium",
            created_at=NOW - timedelta(days=1),
            dispute_type=dispute_type,
            dispute_label=dispute_label,
            amount=Decimal(amount),
            charge_id=charge_id,
        )


class FakeCRM:
    """Cases as Salesforce keeps them: recording an outcome sets the case's status."""

    backend = "fake"

    def __init__(self, world: FakeWorld) -> None:
        self.world = world
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.fail_outcomes_with: Exception | None = None
        self.outcome_requests = 0

    async def get_case(self, *, case_id: str) -> CRMCase:
        if case_id not in self.world.cases:
            raise NotFoundError(f"case {case_id} not found in CRM")
        return self.world.cases[case_id]

    async def get_account(self, *, account_id: str) -> CRMAccount:
        return self.world.accounts[account_id]

    async def find_account_by_stripe_customer(self, *, customer_id: str) -> CRMAccount | None:
        return next(
            (a for a in self.world.accounts.values() if a.stripe_customer_id == customer_id),
            None,
        )

    async def list_account_disputes(self, *, account_id: str, since: datetime) -> list[CRMCase]:
        return [c for c in self.world.cases.values() if c.account_id == account_id]

    async def record_outcome(
        self, *, case_id: str, status: str, summary: str, idempotency_key: str
    ) -> None:
        self.outcome_requests += 1
        if self.fail_outcomes_with is not None:
            raise self.fail_outcomes_with
        self.outcomes[idempotency_key] = {"case_id": case_id, "status": status, "summary": summary}
        case = self.world.cases[case_id]
        self.world.cases[case_id] = case.model_copy(update={"status": status})


@dataclass
class _Keyed:
    """A provider's idempotency record: the first result, until the key expires."""

    result: Any
    at: datetime


class FakeBilling:
    """Zuora-like credits: a key replays its memo until it expires; memos are listed by
    account with the key in their reference field, forever."""

    backend = "fake"

    def __init__(self, world: FakeWorld, *, key_ttl: timedelta = timedelta(hours=24)) -> None:
        self.world = world
        self.key_ttl = key_ttl
        self.clock = lambda: NOW
        self.memos: list[CreditResult] = []
        self._keys: dict[str, _Keyed] = {}
        self.fail_credits_with: Exception | None = None

    @property
    def credits(self) -> dict[str, CreditResult]:
        return {m.idempotency_key: m for m in self.memos}

    async def get_billing(self, *, account_key: str) -> BillingData:
        return self.world.billing[account_key]

    async def create_credit(
        self, *, account_key: str, amount: Decimal, currency: str, reason: str, idempotency_key: str
    ) -> CreditResult:
        if self.fail_credits_with is not None:
            raise self.fail_credits_with
        keyed = self._keys.get(idempotency_key)
        if keyed is not None and self.clock() - keyed.at < self.key_ttl:
            return keyed.result  # type: ignore[no-any-return]
        memo = CreditResult(
            credit_id=f"CM{len(self.memos) + 1}",
            account_key=account_key,
            amount=amount,
            currency=currency,
            idempotency_key=idempotency_key,
        )
        self.memos.append(memo)
        self._keys[idempotency_key] = _Keyed(memo, self.clock())
        return memo

    async def find_credit(self, *, account_key: str, idempotency_key: str) -> CreditResult | None:
        for memo in self.memos:
            if memo.account_key == account_key and memo.idempotency_key == idempotency_key:
                return memo
        return None


class FakePayments:
    """Stripe-like refunds: each shrinks what is refundable on its charge; a key replays
    its refund only until it expires (24 h by default, as Stripe's); refunds can be made
    `pending` (`next_status`) and settled later (`settle`); every refund is listed on its
    charge with the key in its metadata, forever."""

    backend = "fake"

    def __init__(self, world: FakeWorld, *, key_ttl: timedelta = timedelta(hours=24)) -> None:
        self.world = world
        self.key_ttl = key_ttl
        self.clock = lambda: NOW
        self.made: list[RefundResult] = []
        self._keys: dict[str, _Keyed] = {}
        self.refund_requests: list[str] = []
        self.dispute_lookups: list[str] = []  # charge ids asked `dispute_of_charge`
        self.fail_refunds_with: Exception | None = None
        self.next_status = "succeeded"
        self.files: dict[str, str] = {}
        self.submissions: list[tuple[str, dict[str, str]]] = []
        self.closures: list[str] = []

    @property
    def refunds(self) -> dict[str, RefundResult]:
        """The latest refund made under each key."""
        return {r.idempotency_key: r for r in self.made}

    async def list_charges(self, *, customer_id: str, limit: int) -> list[Charge]:
        return [c for c in self.world.charges.values() if c.customer_id == customer_id][:limit]

    async def get_charge(self, *, charge_id: str) -> Charge:
        if charge_id not in self.world.charges:
            raise NotFoundError(f"charge {charge_id} not found")
        return self.world.charges[charge_id]

    async def refund(
        self, *, charge_id: str, amount: Decimal, currency: str, reason: str, idempotency_key: str
    ) -> RefundResult:
        self.refund_requests.append(idempotency_key)
        if self.fail_refunds_with is not None:
            raise self.fail_refunds_with
        keyed = self._keys.get(idempotency_key)
        if keyed is not None and self.clock() - keyed.at < self.key_ttl:
            return keyed.result  # type: ignore[no-any-return]
        charge = await self.get_charge(charge_id=charge_id)
        disputed = await self.dispute_of_charge(charge_id=charge_id)
        if disputed is not None and disputed.status not in ("won", "warning_closed"):
            raise ConflictError(f"charge {charge_id} has been charged back")
        if amount > charge.amount - charge.amount_refunded:
            raise InvalidRequestError(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                f"({charge.amount - charge.amount_refunded})"
            )
        self._refunded(charge_id, amount)
        refund = RefundResult(
            refund_id=f"re_{len(self.made) + 1}",
            charge_id=charge_id,
            amount=amount,
            currency=currency,
            status=self.next_status,
            idempotency_key=idempotency_key,
        )
        self.made.append(refund)
        self._keys[idempotency_key] = _Keyed(refund, self.clock())
        return refund

    def _refunded(self, charge_id: str, amount: Decimal) -> None:
        charge = self.world.charges[charge_id]
        self.world.charges[charge_id] = charge.model_copy(
            update={"amount_refunded": charge.amount_refunded + amount}
        )

    def settle(self, refund_id: str, status: str, *, failure_reason: str | None = None) -> None:
        """Settle a pending refund; a failed one gives its amount back to the charge."""
        for index, refund in enumerate(self.made):
            if refund.refund_id == refund_id:
                self.made[index] = refund.model_copy(
                    update={"status": status, "failure_reason": failure_reason}
                )
                if status == "failed":
                    self._refunded(refund.charge_id, -refund.amount)
                return
        raise KeyError(refund_id)

    async def find_refund(self, *, charge_id: str, idempotency_key: str) -> RefundResult | None:
        for refund in self.made:
            if refund.charge_id == charge_id and refund.idempotency_key == idempotency_key:
                return refund
        return None

    async def get_refund(self, *, refund_id: str) -> RefundResult:
        for refund in self.made:
            if refund.refund_id == refund_id:
                return refund
        raise NotFoundError(f"refund {refund_id} not found")

    # Disputes (chargebacks) and early fraud warnings, as Stripe keeps them.

    async def get_dispute(self, *, dispute_id: str) -> Dispute:
        if dispute_id not in self.world.disputes:
            raise NotFoundError(f"dispute {dispute_id} not found")
        return self.world.disputes[dispute_id]

    async def dispute_of_charge(self, *, charge_id: str) -> Dispute | None:
        self.dispute_lookups.append(charge_id)
        found = [d for d in self.world.disputes.values() if d.charge_id == charge_id]
        return max(found, key=lambda d: d.created_at) if found else None

    async def upload_evidence_file(
        self, *, filename: str, content: bytes, idempotency_key: str
    ) -> str:
        if idempotency_key not in self.files:
            assert content.startswith(b"%PDF"), "evidence files are PDFs"
            self.files[idempotency_key] = f"file_{len(self.files) + 1}"
        return self.files[idempotency_key]

    async def submit_evidence(
        self, *, dispute_id: str, evidence: dict[str, str], idempotency_key: str
    ) -> Dispute:
        self.submissions.append((idempotency_key, dict(evidence)))
        dispute = await self.get_dispute(dispute_id=dispute_id)
        dispute = dispute.model_copy(update={"status": "under_review"})
        self.world.disputes[dispute_id] = dispute
        return dispute

    async def accept_dispute(self, *, dispute_id: str, idempotency_key: str) -> Dispute:
        self.closures.append(idempotency_key)
        dispute = (await self.get_dispute(dispute_id=dispute_id)).model_copy(
            update={"status": "lost"}
        )
        self.world.disputes[dispute_id] = dispute
        return dispute

    async def get_early_fraud_warning(self, *, warning_id: str) -> EarlyFraudWarning:
        if warning_id not in self.world.warnings:
            raise NotFoundError(f"early fraud warning {warning_id} not found")
        return self.world.warnings[warning_id]


class FakeKnowledge:
    backend = "fake"

    def __init__(self) -> None:
        self.stored: dict[str, ResolutionRecord] = {}

    async def search_policies(self, *, query: str, k: int = 3) -> list[PolicyHit]:
        return [
            PolicyHit(
                chunk_id="POL-BIL-004#1",
                policy_id="POL-BIL-004",
                title="Duplicate and Incorrect Charges Policy",
                section="Duplicate charges",
                source_file="duplicate_and_incorrect_charges.docx",
                text="A verified duplicate charge is refunded in full.",
                score=0.82,
            )
        ][:k]

    async def similar_cases(
        self,
        *,
        query: str,
        dispute_type: str,
        amount: Decimal,
        customer_segment: str,
        k: int = 3,
        exclude_case_id: str | None = None,
    ) -> list[PrecedentHit]:
        return [
            PrecedentHit(
                case_id=r.case_id,
                dispute_type=r.dispute_type,
                amount=r.amount,
                customer_segment=r.customer_segment,
                outcome=r.outcome,
                text=r.description,
                score=0.9,
            )
            for r in self.stored.values()
            if r.case_id != exclude_case_id
        ][:k]

    async def add_resolution(self, *, record: ResolutionRecord) -> None:
        self.stored[record.case_id] = record


class FakeDrafter:
    """Returns a canned proposal (full refund of the refundable amount unless told)."""

    name = "fake"

    def __init__(
        self,
        *,
        action: ResolutionAction = ResolutionAction.FULL_REFUND,
        amount: Decimal | None = None,
        confidence: float = 0.95,
    ) -> None:
        self.action = action
        self.amount = amount
        self.confidence = confidence
        self.contexts: list[DraftingContext] = []

    async def draft(self, *, context: DraftingContext) -> DraftResult:
        self.contexts.append(context)
        proposal = ResolutionProposal(
            action=self.action,
            amount=self.amount if self.amount is not None else context.refundable,
            reason="canned proposal",
            confidence=self.confidence,
            risk_level="low",
            policy_ids=[p.policy_id for p in context.policies],
            drafter=self.name,
        )
        call = LLMCall(
            model="fake", input_tokens=100, output_tokens=20, cost_usd=Decimal("0.000027")
        )
        return DraftResult(proposal=proposal, calls=[call])


class FakeNotifications:
    backend = "fake"

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def request_review(self, *, run_id: str, case_id: str, summary: dict[str, Any]) -> None:
        self.sent.append({"run_id": run_id, "case_id": case_id, "summary": summary})


def outage(system: str = "payments") -> IntegrationError:
    return IntegrationError("service unavailable", system=system, retryable=True, status=503)
