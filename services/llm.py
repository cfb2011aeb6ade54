"""Resolution drafting: the contract, the offline rules drafter, the OpenAI drafter, and the
guarded drafter the graph calls.

`build_drafter` returns a `GuardedDrafter`: it drafts with OpenAI when a key is set, else
with the rules; holds every draft, whatever made it, to the guardrails; gives the model one
retry with the violations stated, then falls back to the rules (flagged `fallback_used`,
so a human always reviews it); retries timeouts, 429s and 5xx with backoff before the same
fallback; and reuses drafts from the PostgreSQL draft cache at zero cost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal, Protocol

import openai
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from models.domain import (
    BillingData,
    Charge,
    CRMCase,
    DraftResult,
    LLMCall,
    PolicyHit,
    PrecedentHit,
    ResolutionAction,
    ResolutionProposal,
)
from services.costs import PriceTable, call_cost
from services.draft_cache import DraftCache, cache_key
from services.errors import DraftError, IntegrationError
from services.guardrails import (
    PolicyAssessment,
    assess,
    check_proposal,
    describe,
    proposal_risk_level,
)
from services.policy_rules import POLICIES, governing_policy_ids
from services.prompt import PROMPT_VERSION, build_prompt, clip, retry_instruction
from services.retry import RetryPolicy, Sleep, parse_retry_after
from services.settings import Settings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.runnables import Runnable
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

RULES_LABEL = "[offline rules drafter]"
MAX_REASON_CHARS = 2000
MAX_FACTORS = 5
RISK_ORDER = {"low": 0, "medium": 1, "high": 2}


class DraftingContext(BaseModel):
    """Everything a drafter may see. Contact data (e-mail, phone, address) is not in it."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    case: CRMCase
    segment: str
    account_type: str
    disputes_last_90d: int
    billing: BillingData
    disputed_charge: Charge
    recent_charges: list[Charge]
    refundable: Decimal
    policies: list[PolicyHit]
    precedents: list[PrecedentHit]


class ResolutionDrafter(Protocol):
    @property
    def name(self) -> str: ...

    async def draft(self, *, context: DraftingContext) -> DraftResult: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


class RulesDrafter:
    """Deterministic offline drafter applying services/policy_rules.py through the
    guardrails' assessment; every proposal's reason starts with "[offline rules drafter]".

    Per dispute type: a duplicate (same amount within 7 days) is refunded in full; an outage
    earns the outage matrix's share of the charge (credit below the whole, refund at it); a
    charge after the cancellation request is refunded in full; an incorrect amount earns the
    difference to the plan price; an unrecognised charge is refunded in full when the
    processor rates it elevated or highest risk or it matches no subscription, and denied
    when it matches an active subscription's price; a promised refund not processed is paid
    (the case amount, up to what remains refundable). Where the facts cannot decide (no
    twin, no outage duration, no plan price, no cancellation request), it denies with low
    confidence and a reviewer decides.
    """

    name = "rules"

    async def draft(self, *, context: DraftingContext) -> DraftResult:
        return DraftResult(proposal=self.propose(context))

    def propose(
        self, context: DraftingContext, *, assessment: PolicyAssessment | None = None
    ) -> ResolutionProposal:
        """The rules' proposal for `context`."""
        policy = assessment or assess(context)
        return ResolutionProposal(
            action=policy.action,
            amount=policy.amount,
            currency=context.disputed_charge.currency,
            reason=f"{RULES_LABEL} {policy.basis}.",
            confidence=policy.confidence,
            supporting_factors=list(policy.facts[:MAX_FACTORS]),
            risk_level=proposal_risk_level(context, policy.amount),
            policy_ids=governing_policy_ids(context.case.dispute_type),
            drafter=self.name,
        )


class DraftOutput(BaseModel):
    """The model's answer on the wire (strict json_schema). JSON has no decimal type, so
    `amount` is a number here and becomes a Decimal through its shortest repr at once."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["full_refund", "partial_refund", "account_credit", "deny_refund"]
    amount: float
    reason: str
    confidence: float
    supporting_factors: list[str]
    risk_level: Literal["low", "medium", "high"]
    policy_ids: list[str]


def _without_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_titles(v) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [_without_titles(item) for item in schema]
    return schema


def response_format() -> dict[str, Any]:
    """The strict json_schema of `DraftOutput`, without titles or docstring (they would
    cost prompt tokens on every call). Passed as a dict, so the SDK does not parse the
    answer itself: an invalid answer then still reports its usage, and is paid for."""
    schema = _without_titles(DraftOutput.model_json_schema())
    schema.pop("description", None)
    return {"name": "resolution_draft", "strict": True, "schema": schema}


@dataclass
class Completion:
    """One model answer: a proposal, or why there is none, and the raw text."""

    proposal: ResolutionProposal | None
    error: str | None
    raw: str


def _usage(message: Any) -> tuple[int, int, int]:
    usage = getattr(message, "usage_metadata", None) or {}
    details = usage.get("input_token_details") or {}
    return (
        int(usage.get("input_tokens") or 0),
        int(details.get("cache_read") or 0),
        int(usage.get("output_tokens") or 0),
    )


def usage_of_completion(usage: Any) -> tuple[int, int, int]:
    """(input, cached, output) tokens from an OpenAI SDK `CompletionUsage`, if any."""
    if usage is None:
        return 0, 0, 0
    details = getattr(usage, "prompt_tokens_details", None)
    return (
        int(getattr(usage, "prompt_tokens", 0) or 0),
        int(getattr(details, "cached_tokens", 0) or 0),
        int(getattr(usage, "completion_tokens", 0) or 0),
    )


def _validation_message(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or 'output'}: {item['msg']}"
        for item in error.errors()
    )


class OpenAIDrafter:
    """Drafts with an OpenAI chat model (langchain-openai) into `DraftOutput`.

    Transport failures (timeouts, 429, 5xx, connection errors) are retried under `retry`;
    every attempt, failed or not, is appended to the `calls` the caller passes in, so the
    cost of a run counts what was billed even when the draft is discarded.
    """

    def __init__(
        self,
        *,
        chat_model: BaseChatModel,
        model_name: str,
        prices: PriceTable,
        retry: RetryPolicy,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = f"openai:{model_name}"
        self.model_name = model_name
        self._prices = prices
        self._retry = retry
        self._monotonic = monotonic
        self._structured: Runnable[Any, Any] = chat_model.with_structured_output(
            response_format(), method="json_schema", include_raw=True
        )

    async def draft(self, *, context: DraftingContext) -> DraftResult:
        """One unguarded draft; raises DraftError when the answer is unusable."""
        calls: list[LLMCall] = []
        completion = await self.complete(context=context, calls=calls)
        if completion.proposal is None:
            raise DraftError(f"unusable model output: {completion.error}")
        return DraftResult(proposal=completion.proposal, calls=calls)

    async def complete(
        self,
        *,
        context: DraftingContext,
        calls: list[LLMCall],
        assessment: PolicyAssessment | None = None,
        correction: tuple[str, str] | None = None,
    ) -> Completion:
        """Ask the model once (with transport retries); `correction` is (previous raw
        answer, violations) for the retry that states the error."""
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        policy = assessment or assess(context)
        prompt = build_prompt(context, assessment=policy)
        messages: list[Any] = [SystemMessage(prompt.system), HumanMessage(prompt.user)]
        if correction is not None:
            previous, errors = correction
            messages += [
                AIMessage(clip(previous, MAX_REASON_CHARS) or "(no answer)"),
                HumanMessage(retry_instruction(errors)),
            ]

        async def attempt() -> tuple[dict[str, Any], int]:
            started = self._monotonic()
            try:
                result: dict[str, Any] = await self._structured.ainvoke(messages)
            except (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError) as exc:
                # Not a transport failure: the model answered, was cut off or filtered, and
                # was billed for it.
                return {"cut_off": exc}, self._elapsed_ms(started)
            except openai.APIError as exc:
                error, outcome = self._translate(exc)
                calls.append(
                    LLMCall(
                        model=self.model_name,
                        latency_ms=self._elapsed_ms(started),
                        outcome=outcome,
                    )
                )
                raise error from exc
            return result, self._elapsed_ms(started)

        result, latency_ms = await self._retry(attempt, operation="openai draft")
        cut_off = result.get("cut_off")
        if cut_off is not None:
            usage = getattr(getattr(cut_off, "completion", None), "usage", None)
            calls.append(self._call(usage_of_completion(usage), latency_ms, "cut_off", None))
            return Completion(None, f"the answer was cut off or filtered ({cut_off})", "")
        raw = result.get("raw")
        parsed = result.get("parsed")
        metadata = getattr(raw, "response_metadata", None) or {}
        calls.append(
            self._call(
                _usage(raw),
                latency_ms,
                "ok" if parsed is not None else "invalid_output",
                metadata.get("model_name"),
            )
        )
        raw_text = str(getattr(raw, "content", "") or "")
        if parsed is None:
            reason = result.get("parsing_error")
            return Completion(None, f"the answer is not the required JSON ({reason})", raw_text)
        try:
            output = DraftOutput.model_validate(parsed)
        except ValidationError as exc:
            calls[-1] = calls[-1].model_copy(update={"outcome": "invalid_output"})
            return Completion(None, _validation_message(exc), raw_text)
        return self._to_proposal(output, context, policy, raw_text)

    def _to_proposal(
        self,
        parsed: DraftOutput,
        context: DraftingContext,
        policy: PolicyAssessment,
        raw_text: str,
    ) -> Completion:
        try:
            amount = Decimal(repr(parsed.amount))
        except InvalidOperation:
            return Completion(None, f"amount {parsed.amount!r} is not a number", raw_text)
        if not amount.is_finite():
            return Completion(None, f"amount {parsed.amount!r} is not a finite number", raw_text)
        known = {p.policy_id for p in POLICIES} | {hit.policy_id for hit in context.policies}
        # The model may raise the risk rating, never lower it below the facts' rating.
        floor = proposal_risk_level(context, policy.amount)
        risk = max(parsed.risk_level, floor, key=RISK_ORDER.__getitem__)
        try:
            proposal = ResolutionProposal(
                action=ResolutionAction(parsed.action),
                amount=amount,
                currency=context.disputed_charge.currency,
                reason=clip(parsed.reason, MAX_REASON_CHARS),
                confidence=parsed.confidence,
                supporting_factors=[clip(f, 200) for f in parsed.supporting_factors][:MAX_FACTORS],
                risk_level=risk,
                policy_ids=[pid for pid in dict.fromkeys(parsed.policy_ids) if pid in known],
                drafter=self.name,
            )
        except ValidationError as exc:
            return Completion(None, _validation_message(exc), raw_text)
        return Completion(proposal, None, raw_text)

    def _elapsed_ms(self, started: float) -> int:
        return max(0, round((self._monotonic() - started) * 1000))

    def _call(
        self, usage: tuple[int, int, int], latency_ms: int, outcome: str, model: object
    ) -> LLMCall:
        input_tokens, cached_tokens, output_tokens = usage
        cached_tokens = min(cached_tokens, input_tokens)
        return LLMCall(
            model=str(model or self.model_name),
            input_tokens=input_tokens,
            cached_tokens=cached_tokens,
            output_tokens=output_tokens,
            cost_usd=call_cost(
                self._prices,
                input_tokens=input_tokens,
                cached_tokens=cached_tokens,
                output_tokens=output_tokens,
            ),
            latency_ms=latency_ms,
            outcome=outcome,
        )

    @staticmethod
    def _translate(exc: openai.APIError) -> tuple[IntegrationError, str]:
        """The project's error for an OpenAI failure, and the outcome to record."""
        if isinstance(exc, openai.APITimeoutError):
            error = IntegrationError("request timed out", system="openai", retryable=True)
            return error, "timeout"
        if isinstance(exc, openai.APIConnectionError):
            error = IntegrationError("connection failed", system="openai", retryable=True)
            return error, "connection_error"
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
            retryable = status == 429 or status >= 500 or status in (408, 409)
            # The body of a 401 may echo part of the key: state the status only.
            detail = "credentials rejected" if status in (401, 403) else type(exc).__name__
            error = IntegrationError(
                f"HTTP {status} {detail}",
                system="openai",
                retryable=retryable,
                retry_after=retry_after,
                status=status,
            )
            if status == 429:
                return error, "rate_limited"
            return error, "server_error" if status >= 500 else f"http_{status}"
        # A response the SDK could not read: not worth repeating.
        error = IntegrationError(
            f"unreadable response ({type(exc).__name__})", system="openai", retryable=False
        )
        return error, "error"


@dataclass
class GuardedDrafter:
    """The drafter the graph calls: guardrails on every draft, retry, fallback, cache."""

    rules: RulesDrafter
    model: OpenAIDrafter | None = None
    cache: DraftCache | None = None
    monotonic: Callable[[], float] = field(default=time.monotonic)

    @property
    def name(self) -> str:
        return self.model.name if self.model is not None else self.rules.name

    async def draft(self, *, context: DraftingContext) -> DraftResult:
        """Draft a proposal for `context` that passes the guardrails."""
        policy = assess(context)
        if self.model is None:
            return DraftResult(proposal=self._checked_rules(context, policy, fallback=None))

        key = cache_key(context, drafter=self.model.name, prompt_version=PROMPT_VERSION)
        cached = await self._cached(key, context, policy)
        if cached is not None:
            return cached

        calls: list[LLMCall] = []
        correction: tuple[str, str] | None = None
        errors = ""
        for attempt in (1, 2):
            try:
                completion = await self.model.complete(
                    context=context, calls=calls, assessment=policy, correction=correction
                )
            except IntegrationError as exc:
                log.warning("run %s: drafting model unavailable: %s", context.run_id, exc.message)
                reason = f"model unavailable after retries ({exc.message})"
                if errors:
                    reason = f"{reason}; earlier answer rejected: {errors}"
                return DraftResult(
                    proposal=self._checked_rules(context, policy, fallback=reason), calls=calls
                )
            if completion.proposal is not None:
                violations = check_proposal(completion.proposal, context, assessment=policy)
                if not violations:
                    await self._store(key, context, completion.proposal)
                    return DraftResult(proposal=completion.proposal, calls=calls)
                errors = describe(violations)
                calls[-1] = calls[-1].model_copy(update={"outcome": "rejected"})
            else:
                errors = completion.error or "no answer"
            log.info("run %s: draft attempt %d rejected: %s", context.run_id, attempt, errors)
            correction = (completion.raw, errors)
        reason = f"model answer rejected twice: {errors}"
        return DraftResult(
            proposal=self._checked_rules(context, policy, fallback=reason), calls=calls
        )

    async def _cached(
        self, key: str, context: DraftingContext, policy: PolicyAssessment
    ) -> DraftResult | None:
        if self.cache is None or self.model is None:
            return None
        started = self.monotonic()
        try:
            proposal = await self.cache.get(key)
        except SQLAlchemyError as exc:  # the cache saves money; its failure costs a call
            log.warning("run %s: draft cache lookup failed: %s", context.run_id, exc)
            return None
        if proposal is None:
            return None
        if check_proposal(proposal, context, assessment=policy):
            await self.cache.discard(key)
            return None
        call = LLMCall(
            model=self.model.model_name,
            latency_ms=max(0, round((self.monotonic() - started) * 1000)),
            cache_hit=True,
            outcome="cache_hit",
        )
        return DraftResult(proposal=proposal, calls=[call])

    async def _store(
        self, key: str, context: DraftingContext, proposal: ResolutionProposal
    ) -> None:
        if self.cache is None:
            return
        try:
            await self.cache.put(
                key,
                case_id=context.case.case_id,
                dispute_type=context.case.dispute_type,
                proposal=proposal,
            )
        except SQLAlchemyError as exc:
            log.warning("run %s: draft cache store failed: %s", context.run_id, exc)

    def _checked_rules(
        self, context: DraftingContext, policy: PolicyAssessment, *, fallback: str | None
    ) -> ResolutionProposal:
        proposal = self.rules.propose(context, assessment=policy)
        if fallback is not None:
            proposal = proposal.model_copy(
                update={"fallback_used": True, "fallback_reason": fallback}
            )
        violations = check_proposal(proposal, context, assessment=policy)
        if not violations:
            return proposal
        return safe_denial(context, f"{fallback + '; ' if fallback else ''}{describe(violations)}")

    async def invalidate(self, *, dispute_type: str) -> int:
        """Drop cached drafts of `dispute_type` (a resolution of that type was stored)."""
        return 0 if self.cache is None else await self.cache.invalidate(dispute_type=dispute_type)


def safe_denial(context: DraftingContext, why: str) -> ResolutionProposal:
    """The proposal of last resort, inside every bound: deny, zero, for a human to decide."""
    return ResolutionProposal(
        action=ResolutionAction.DENY_REFUND,
        amount=Decimal("0"),
        currency=context.disputed_charge.currency,
        reason=f"{RULES_LABEL} no proposal within bounds could be drafted; a reviewer decides.",
        confidence=0.0,
        supporting_factors=[clip(why, 200)],
        risk_level="high",
        policy_ids=governing_policy_ids(context.case.dispute_type),
        drafter=RulesDrafter.name,
        fallback_used=True,
        fallback_reason=clip(why, MAX_REASON_CHARS),
    )


def build_chat_model(settings: Settings) -> BaseChatModel:
    """ChatOpenAI from Settings: no SDK retries (ours apply), output capped, temperature 0."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=settings.openai_model,
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key,
        max_tokens=settings.llm_max_output_tokens,
        timeout=settings.openai_timeout_seconds,
        max_retries=0,
        temperature=0,
    )


def build_drafter(
    settings: Settings,
    *,
    engine: AsyncEngine | None,
    clock: Callable[[], datetime] = utc_now,
    sleep: Sleep = asyncio.sleep,
    retry_base_delay: float = 0.5,
    chat_model: BaseChatModel | None = None,
) -> GuardedDrafter:
    """The guarded drafter: OpenAI when OPENAI_API_KEY is set, else the rules; with the
    draft cache when `engine` is given (and the TTL is above zero)."""
    rules = RulesDrafter()
    if settings.openai_api_key is None and chat_model is None:
        log.info("drafting with the offline rules drafter (OPENAI_API_KEY not set)")
        return GuardedDrafter(rules=rules)
    retry = RetryPolicy(
        max_attempts=settings.openai_max_attempts,
        base_delay=retry_base_delay,
        max_delay=max(retry_base_delay, 8.0),
        sleep=sleep,
    )
    model = OpenAIDrafter(
        chat_model=chat_model or build_chat_model(settings),
        model_name=settings.openai_model,
        prices=PriceTable.from_settings(settings),
        retry=retry,
    )
    cache = None
    if engine is not None and settings.draft_cache_ttl_hours > 0:
        cache = DraftCache(engine, ttl=timedelta(hours=settings.draft_cache_ttl_hours), clock=clock)
    return GuardedDrafter(rules=rules, model=model, cache=cache)


__all__ = [
    "DraftOutput",
    "DraftingContext",
    "GuardedDrafter",
    "OpenAIDrafter",
    "ResolutionDrafter",
    "RulesDrafter",
    "build_chat_model",
    "build_drafter",
    "safe_denial",
]
