"""The OpenAI drafter: one structured-output call to a chat model, with its cost."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

import openai
from pydantic import BaseModel, ConfigDict, ValidationError

from models.domain import LLMCall, ResolutionAction, ResolutionProposal
from models.policy_rules import POLICIES
from services.drafting.assessment import PolicyAssessment, proposal_risk_level
from services.drafting.context import DraftingContext
from services.drafting.costs import PriceTable, call_cost
from services.drafting.facts import format_hours
from services.drafting.prompt import Prompt, clip, retry_instruction
from services.errors import IntegrationError
from services.retry import RetryPolicy, parse_retry_after

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.runnables import Runnable

MAX_REASON_CHARS = 2000
MAX_FACTORS = 5
RISK_ORDER = {"low": 0, "medium": 1, "high": 2}


class DraftOutput(BaseModel):
    """The model's answer on the wire (strict json_schema). JSON has no decimal type, so
    `amount` is a number here and becomes a Decimal through its shortest repr at once.

    `outage_hours` and `outage_hours_source` are the outage duration the model read and
    where: shown to the reviewer beside the rules' own reading, never a bound (the
    guardrails hold the draft to the policy's ceiling). The schema sent requires them;
    they default here only so an answer without them is still read."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["full_refund", "partial_refund", "account_credit", "deny_refund"]
    amount: float
    reason: str
    confidence: float
    supporting_factors: list[str]
    risk_level: Literal["low", "medium", "high"]
    policy_ids: list[str]
    outage_hours: float | None = None
    outage_hours_source: str | None = None


def _without_titles(schema: Any) -> Any:
    """The schema without titles or `default`s (strict mode has none), a nullable type
    written `{"type": [t, "null"]}`: fewer prompt tokens than pydantic's `anyOf`."""
    if isinstance(schema, dict):
        branches = schema.get("anyOf")
        if (
            isinstance(branches, list)
            and len(branches) == 2
            and {"type": "null"} in branches
            and all(set(b) == {"type"} and isinstance(b["type"], str) for b in branches)
        ):
            return {"type": [*(b["type"] for b in branches if b["type"] != "null"), "null"]}
        return {k: _without_titles(v) for k, v in schema.items() if k not in ("title", "default")}
    if isinstance(schema, list):
        return [_without_titles(item) for item in schema]
    return schema


def response_format() -> dict[str, Any]:
    """The strict json_schema of `DraftOutput`, without titles or docstring (they would
    cost prompt tokens on every call), every property required as strict mode wants.
    Passed as a dict, so the SDK does not parse the answer itself: an invalid answer then
    still reports its usage, and is paid for."""
    schema = _without_titles(DraftOutput.model_json_schema())
    schema.pop("description", None)
    schema["required"] = list(schema["properties"])
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


def _factors(parsed: DraftOutput, policy: PolicyAssessment) -> list[str]:
    """The model's factors, capped; then what the reviewer must see whoever drafts (where
    the rules read a fact, the matrix when it is missing) and the duration the model read."""
    factors = [clip(f, 200) for f in parsed.supporting_factors][:MAX_FACTORS]
    factors += [note for note in policy.reviewer_notes if note not in factors]
    hours = parsed.outage_hours
    if hours is not None and math.isfinite(hours) and hours >= 0:
        source = clip(parsed.outage_hours_source or "no source given", 120)
        read = format_hours(Decimal(repr(hours)))
        factors.append(f"outage duration read by the model: {read} h ({source})")
    return factors


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

    async def complete(
        self,
        *,
        prompt: Prompt,
        context: DraftingContext,
        assessment: PolicyAssessment,
        calls: list[LLMCall],
        correction: tuple[str, str] | None = None,
    ) -> Completion:
        """Ask the model once (with transport retries); `correction` is (previous raw
        answer, violations) for the retry that states the error."""
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

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
        return self._to_proposal(output, context, assessment, raw_text)

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
                supporting_factors=_factors(parsed, policy),
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
