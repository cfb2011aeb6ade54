"""Prompt size and drafting cost per sandbox dispute, at gpt-4o-mini prices.

For every dispute case of the sandbox dataset this builds the drafting context the graph
would build (case, account segment and type, billing, the disputed charge and the
customer's recent charges, 3 policy sections, 3 similar past cases), renders the real
prompt of services/drafting/prompt.py, counts its tokens (messages, chat overhead and the strict
response schema, which the API counts as prompt tokens too) and prices one call with an
answer the size of a real draft.

Retrieval is the real one when services/knowledge/chroma_store.py is there: the policy documents are
rendered (tools/write_policies.py) into a temporary directory, ingested with the historical
resolutions into a temporary embedded Chroma, and queried as generate_resolution does.
Without it, policy sections are written from models/policy_rules.py and past cases are
the sandbox's other cases of the same type. Tokens are exact o200k_base counts
(services/drafting/tokens.py: bpe-openai's offline vocabulary, its sha256 checked first).
The output says which retrieval was used.

Usage: uv run python bench/tokens.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import bpe_openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.domain import CRMCase, DisputeType, PolicyHit, PrecedentHit  # noqa: E402
from models.policy_rules import (
    APPROVAL_LEVELS,
    OUTAGE_MATRIX,
    POLICIES,
    RESOLUTION_RULES,
    governing_policy,
)
from services.drafting.assessment import assess  # noqa: E402
from services.drafting.context import DraftingContext
from services.drafting.costs import PriceTable, call_cost  # noqa: E402
from services.drafting.openai_drafter import DraftOutput, response_format
from services.drafting.prompt import build_prompt, count_prompt_tokens
from services.drafting.rules_drafter import RulesDrafter
from services.drafting.tokens import (
    ENCODING_NAME,
    O200K_BASE_SHA256,
    count_tokens,
    o200k_encoding,
)
from services.knowledge.protocols import PolicyStore  # noqa: E402
from services.sandbox.data import load_dataset  # noqa: E402
from services.sandbox.dataset import SandboxDataset  # noqa: E402
from services.settings import Settings  # noqa: E402


def response_schema() -> str:
    """The strict json_schema the drafter sends, compact, as counted into the prompt."""
    # The name and the schema reach the model; "strict" and the wrapper are API settings.
    schema = response_format()
    return json.dumps({"name": schema["name"], "schema": schema["schema"]}, separators=(",", ":"))


def policy_hits(dispute_type: str) -> list[PolicyHit]:
    """Three policy sections as retrieval would return them, written from policy_rules."""
    try:
        governing = governing_policy(DisputeType(dispute_type))
    except ValueError:
        governing = POLICIES[0]
    rule = RESOLUTION_RULES.get(DisputeType(dispute_type), "")
    if dispute_type == DisputeType.SERVICE_OUTAGE:
        rows = "; ".join(
            f"{band.label}: " + ", ".join(f"{seg} {share:.0%}" for seg, share in band.share.items())
            for band in OUTAGE_MATRIX
        )
        detail = f"Compensation matrix (share of the affected month's charge): {rows}."
    else:
        detail = (
            "Agents verify the claim against the payment record before any refund: the charge "
            "id, its amount, what has already been refunded and the customer it belongs to. "
            "Refunds go to the original payment method of the charge; credits are applied to "
            "the customer's next invoice. Every resolution records the policy it relies on."
        )
    approval = "; ".join(
        f"{level.label}: {level.approvers} approver(s), {level.approver_role}"
        for level in APPROVAL_LEVELS
    )
    approval_policy = next(p for p in POLICIES if p.policy_id == "POL-APR-006")
    return [
        PolicyHit(
            chunk_id=f"{governing.policy_id}-1",
            policy_id=governing.policy_id,
            title=governing.title,
            section="Resolution rule",
            source_file=governing.file_name,
            text=f"{rule} {detail}",
            score=0.71,
        ),
        PolicyHit(
            chunk_id=f"{governing.policy_id}-2",
            policy_id=governing.policy_id,
            title=governing.title,
            section="Scope and evidence",
            source_file=governing.file_name,
            text=(
                f"This policy applies to disputes of type {dispute_type.replace('_', ' ')} "
                "raised within 120 days of the charge. The claim is checked against billing "
                "and payment records; amounts never exceed what was charged and not yet "
                f"refunded. {detail}"
            ),
            score=0.64,
        ),
        PolicyHit(
            chunk_id="POL-APR-006-1",
            policy_id="POL-APR-006",
            title=approval_policy.title,
            section="Approval levels",
            source_file=approval_policy.file_name,
            text=f"Approval authority by amount: {approval}.",
            score=0.52,
        ),
    ]


def context_for(
    case: CRMCase,
    data: SandboxDataset,
    precedents: list[PrecedentHit],
    policies: list[PolicyHit] | None = None,
) -> DraftingContext | None:
    account = data.accounts[case.account_id]
    charge = data.charges.get(case.charge_id or "")
    if charge is None or account.zuora_account_id is None:
        return None
    billing = data.billing[account.zuora_account_id]
    recent = sorted(
        (c for c in data.charges.values() if c.customer_id == account.stripe_customer_id),
        key=lambda c: c.created_at,
        reverse=True,
    )[:5]
    window = case.created_at - timedelta(days=90)
    disputes = sum(
        1
        for c in data.cases.values()
        if c.account_id == account.account_id and c.created_at >= window
    )
    return DraftingContext(
        run_id="bench",
        case=case,
        segment=account.segment,
        account_type=account.type,
        disputes_last_90d=disputes,
        billing=billing,
        disputed_charge=charge,
        recent_charges=recent,
        refundable=charge.refundable,
        policies=policies if policies is not None else policy_hits(case.dispute_type),
        precedents=precedents,
    )


def precedents_for(case: CRMCase, data: SandboxDataset) -> list[PrecedentHit]:
    """Up to 3 other cases of the same type, each with the resolution the rules give it."""
    hits: list[PrecedentHit] = []
    rules = RulesDrafter()
    for other in data.cases.values():
        if other.case_id == case.case_id or other.dispute_type != case.dispute_type:
            continue
        context = context_for(other, data, [])
        if context is None:
            continue
        proposal = rules.propose(context, assess(context))
        text = (
            f"Customer: {other.subject}. {other.description} Resolution: "
            f"{proposal.action.value} {proposal.amount}. Reasoning: {assess(context).basis}."
        )
        hits.append(
            PrecedentHit(
                case_id=other.case_id,
                dispute_type=other.dispute_type,
                amount=other.amount,
                customer_segment=context.segment,
                outcome=proposal.action.value,
                text=text,
                score=0.6,
            )
        )
        if len(hits) == 3:
            break
    return hits


def draft_answer(context: DraftingContext) -> str:
    """A model answer the size of a real draft: the rules' decision, reasoned in full."""
    proposal = RulesDrafter().propose(context, assess(context))
    rule = RESOLUTION_RULES.get(DisputeType(context.case.dispute_type), "")
    answer = DraftOutput(
        action=proposal.action.value,
        amount=float(proposal.amount),
        reason=f"{proposal.reason.removeprefix('[offline rules drafter] ')} {rule}",
        confidence=proposal.confidence,
        supporting_factors=proposal.supporting_factors,
        risk_level=proposal.risk_level,
        policy_ids=proposal.policy_ids,
    )
    return answer.model_dump_json()


async def open_knowledge(workdir: Path) -> PolicyStore | None:
    """A seeded Chroma store over the rendered policy documents, if the modules exist."""
    try:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        from services.knowledge.chroma_store import ChromaPolicyStore
        from services.knowledge.embeddings import MiniLMEmbedder
        from services.sandbox.resolutions import HISTORICAL_RESOLUTIONS
        from tools.write_policies import write_policies
    except ImportError as exc:
        print(f"retrieval: written from policy_rules ({exc.name} not available)")
        return None
    write_policies(workdir / "policies")
    client = chromadb.PersistentClient(
        path=str(workdir / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    store = ChromaPolicyStore(client, MiniLMEmbedder())
    report = await store.ingest_policies(directory=workdir / "policies")
    seeded = await store.add_resolutions(records=HISTORICAL_RESOLUTIONS)
    print(
        f"retrieval: embedded Chroma, {report.chunks_written} chunks of the rendered "
        f"policies/*.docx, {seeded} historical resolutions"
    )
    return store


async def retrieve(
    store: PolicyStore | None, case: CRMCase, data: SandboxDataset
) -> tuple[list[PolicyHit] | None, list[PrecedentHit]]:
    if store is None:
        return None, precedents_for(case, data)
    account = data.accounts[case.account_id]
    query = f"{case.dispute_type.replace('_', ' ')}: {case.subject}. {case.description}"
    policies = await store.search_policies(query=query, k=3)
    precedents = await store.similar_cases(
        query=query,
        dispute_type=case.dispute_type,
        amount=case.amount,
        customer_segment=account.segment,
        k=3,
    )
    return policies, precedents


async def main() -> None:
    o200k_encoding()  # loads and verifies the vocabulary before any case is counted
    method = (
        f"exact {ENCODING_NAME} (bpe-openai {bpe_openai.__version__}, vocabulary sha256 "
        f"{O200K_BASE_SHA256[:12]}... verified)"
    )
    settings = Settings()
    prices = PriceTable.from_settings(settings)
    schema = response_schema()
    data = load_dataset(datetime.now(UTC))
    rows: list[tuple[str, str, int, int, Decimal]] = []
    with tempfile.TemporaryDirectory() as workdir:
        store = await open_knowledge(Path(workdir))
        for case in sorted(data.cases.values(), key=lambda c: c.case_number):
            policies, precedents = await retrieve(store, case, data)
            context = context_for(case, data, precedents, policies)
            if context is None:
                print(f"case {case.case_number}: no charge, skipped")
                continue
            prompt = build_prompt(context, assess(context))
            prompt_tokens = count_prompt_tokens(prompt, response_schema=schema)
            output_tokens = count_tokens(draft_answer(context))
            cost = call_cost(prices, input_tokens=prompt_tokens, output_tokens=output_tokens)
            rows.append((case.case_number, case.dispute_type, prompt_tokens, output_tokens, cost))
            print(
                f"case {case.case_number} {case.dispute_type:<27} prompt {prompt_tokens:>5}  "
                f"output {output_tokens:>4}  cost ${cost}"
            )
    prompt_sizes = [r[2] for r in rows]
    costs = [r[4] for r in rows]
    median_cost = statistics.median(costs)
    print(
        f"{len(rows)} disputes; tokens {method}; "
        f"response schema {count_tokens(schema)} tokens included"
    )
    print(
        f"prompt tokens: median {statistics.median(prompt_sizes):.0f}, "
        f"max {max(prompt_sizes)}; cost per dispute: median ${median_cost:.6f}, "
        f"max ${max(costs)}, at ${prices.input_per_1m}/${prices.output_per_1m} per 1M"
    )
    print(
        f"median_prompt_tokens={round(statistics.median(prompt_sizes))} "
        f"max_prompt_tokens={max(prompt_sizes)} median_cost_usd={median_cost:.6f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
