"""The drafter the graph calls.

`GuardedDrafter.draft` reads straight: assess the policy once, build the prompt, draft
(with OpenAI when a key is set, else the rules), check the draft against the guardrails,
store it in the draft cache. A draft that fails the guardrails goes back to the model once
with the violations stated, then falls back to the rules (flagged `fallback_used`, so a
human always reviews it); timeouts, 429s and 5xx are retried with backoff before the same
fallback; a cached draft is reused at zero cost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from models.domain import DraftResult, LLMCall, ResolutionAction, ResolutionProposal
from models.policy_rules import governing_policy_ids
from services.drafting.assessment import PolicyAssessment, assess
from services.drafting.context import DraftingContext
from services.drafting.costs import PriceTable
from services.drafting.draft_cache import DraftCache, cache_key
from services.drafting.guardrails import check_proposal, describe
from services.drafting.openai_drafter import MAX_REASON_CHARS, OpenAIDrafter
from services.drafting.prompt import PROMPT_VERSION, build_prompt, clip
from services.drafting.rules_drafter import RULES_LABEL, RulesDrafter
from services.errors import IntegrationError
from services.retry import RetryPolicy, Sleep
from services.settings import Settings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


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

        prompt = build_prompt(context, policy)
        calls: list[LLMCall] = []
        correction: tuple[str, str] | None = None
        errors = ""
        for attempt in (1, 2):
            try:
                completion = await self.model.complete(
                    prompt=prompt,
                    context=context,
                    assessment=policy,
                    calls=calls,
                    correction=correction,
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
                violations = check_proposal(completion.proposal, context, policy)
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
        if check_proposal(proposal, context, policy):
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
        proposal = self.rules.propose(context, policy)
        if fallback is not None:
            proposal = proposal.model_copy(
                update={"fallback_used": True, "fallback_reason": fallback}
            )
        violations = check_proposal(proposal, context, policy)
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


__all__ = ["GuardedDrafter", "build_chat_model", "build_drafter", "safe_denial"]
