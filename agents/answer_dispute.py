"""answer_dispute: contest a chargeback with its evidence, or accept it, exactly once.

Runs only after the required reviewers approved exactly the version about to be sent
(agents/move_money.authorized). Before anything is sent the dispute is read again: one that
no longer takes evidence (a submission landed before a crash, or it closed) is recorded as
it stands and nothing is sent twice; one past its deadline parks the run for a person.
File evidence (policy sections) is rendered as PDF and uploaded through Stripe's Files API
first; the evidence then goes in one `submit=true` call. Every call carries an
Idempotency-Key derived from the run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.runtime import Runtime

from agents.draft_chargeback import ACCEPT
from agents.move_money import authorized
from agents.validate_stripe import AWAITING_RESPONSE
from models.state import DisputeState
from services.errors import AttentionRequired
from services.integrations.protocols import DisputeGateway
from workflows.context import WorkflowContext


async def answer_dispute(state: DisputeState, runtime: Runtime[WorkflowContext]) -> dict[str, Any]:
    """Send the approved answer to Stripe."""
    ctx = runtime.context
    disputes = ctx.disputes
    assert disputes is not None, "chargebacks need the dispute gateway"
    approval = authorized(state)
    version = approval.current
    run_id, dispute_id = state["run_id"], state["case_id"]
    proposal = state.get("proposal") or {}
    current = await ctx.retry(
        lambda: disputes.get_dispute(dispute_id=dispute_id), operation="stripe.dispute"
    )
    resolution = {
        "action": version.action,
        "amount": str(version.amount),
        "currency": version.currency,
        "reason": version.reason,
        "version": version.number,
        "approved_by": list(approval.approver_names),
    }
    if current.status not in AWAITING_RESPONSE:
        # Answered already (the submission landed before a crash) or closed: never again.
        settled: dict[str, Any] = {
            "dispute_response": version.action,
            "dispute_status": current.status,
        }
        return {"final_resolution": resolution, "execution": settled}
    due = current.evidence_due_by
    if due is not None and due <= ctx.clock():
        raise AttentionRequired(
            f"the evidence deadline of {dispute_id} ({due.isoformat()}) has passed; "
            "Stripe no longer takes an answer"
        )
    if version.action == ACCEPT:
        answered = await ctx.retry(
            lambda: disputes.accept_dispute(
                dispute_id=dispute_id, idempotency_key=f"{run_id}:dispute:accept"
            ),
            operation="stripe.dispute.close",
        )
        event, files = "dispute_accepted", {}
    else:
        drafted = version.evidence if version.evidence is not None else proposal.get("evidence")
        evidence = {k: str(v) for k, v in (drafted or {}).items()}
        files = await _upload_files(ctx, state, proposal)
        evidence.update(files)
        answered = await ctx.retry(
            lambda: disputes.submit_evidence(
                dispute_id=dispute_id,
                evidence=evidence,
                idempotency_key=f"{run_id}:dispute:evidence",
            ),
            operation="stripe.dispute.submit",
        )
        event = "dispute_contested"
    execution: dict[str, Any] = {
        "dispute_response": version.action,
        "dispute_status": answered.status,
        "evidence_files": files,
    }
    await ctx.store.audit(
        run_id=run_id,
        case_id=dispute_id,
        step="answer_dispute",
        actor="system",
        event=event,
        detail=execution,
    )
    return {"final_resolution": resolution, "execution": execution}


async def _upload_files(
    ctx: WorkflowContext, state: DisputeState, proposal: dict[str, Any]
) -> dict[str, str]:
    """Render each file field's policy sections as a PDF and upload it; field -> file id."""
    disputes = ctx.disputes
    assert disputes is not None
    from services.integrations.evidence_files import render_evidence_pdf  # fpdf2: when needed

    retrieved = {p["id"]: p for p in (state.get("retrieved") or {}).get("policies", [])}
    uploaded: dict[str, str] = {}
    for field, chunk_ids in (proposal.get("evidence_files") or {}).items():
        sections = [
            (f"{retrieved[c]['policy_id']} {retrieved[c]['section']}", str(retrieved[c]["text"]))
            for c in chunk_ids
            if c in retrieved
        ]
        if not sections:
            continue
        content = render_evidence_pdf(field.replace("_", " ").capitalize(), sections)
        uploaded[field] = await ctx.retry(
            _uploader(disputes, field, content, f"{state['run_id']}:file:{field}"),
            operation="stripe.file.upload",
        )
    return uploaded


def _uploader(
    disputes: DisputeGateway, field: str, content: bytes, key: str
) -> Callable[[], Awaitable[str]]:
    async def upload() -> str:
        return await disputes.upload_evidence_file(
            filename=f"{field}.pdf", content=content, idempotency_key=key
        )

    return upload
