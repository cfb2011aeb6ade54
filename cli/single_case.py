"""One case in the foreground, printed step by step; it stops at review."""

from __future__ import annotations

from typing import Any

from cli.compose import describe_database, open_core, open_workflow
from services.settings import Settings


async def run_single(settings: Settings, case_id: str, customer_id: str | None) -> int:
    async with open_core(settings) as core, open_workflow(core) as workflow:
        print(
            f"Case {case_id}: starting a run ({describe_database(core.database)}; drafter "
            f"{core.drafter_status.describe()})"
        )

        def show(step: str, update: dict[str, Any]) -> None:
            print(f"  {step:<20} {describe_update(update)}")

        outcome = await workflow.runner.start(
            case_id=case_id, customer_id=customer_id, actor="cli", on_step=show
        )
        print(f"Run {outcome.run_id}: {outcome.status}")
        if outcome.status == "pending":
            print(
                "Decide it with the API (a running worker, `python app.py`, resumes it):\n"
                f"  curl -X POST {settings.public_base_url}/human-review/decision "
                "-H 'Content-Type: application/json' "
                "-H 'Authorization: Bearer YOUR_REVIEWER_KEY' \\\n"
                f'    -d \'{{"run_id": "{outcome.run_id}", "case_id": "{case_id}", '
                '"decision": "approved", "comments": "checked"}\'\n'
                "Reviewer keys: uv run python utils/manage_reviewers.py create NAME --email E"
            )
        return 0 if outcome.status != "failed" else 1


def describe_update(update: dict[str, Any]) -> str:
    """One readable line for a step's state update."""
    if update.get("error"):
        return f"error: {update['error'].get('message')}"
    validation = update.get("validation")
    if validation:
        return "valid" if validation["valid"] else f"invalid: {validation['reason']}"
    proposal = update.get("proposal")
    if proposal:
        return (
            f"proposal {proposal['action']} {proposal['amount']} {proposal['currency'].upper()}"
            f" (confidence {proposal['confidence']}, {proposal['drafter']})"
        )
    review = update.get("review")
    if review:
        if review["auto_approve"]:
            return f"auto-approved: {review['auto_approve_rule']}"
        flags = ", ".join(review["risk_flags"]) or "none"
        return f"needs {review['required_approvals']} approval(s); risk flags: {flags}"
    if update.get("execution"):
        execution = update["execution"]
        return f"executed {execution['action']} {execution['amount']}"
    if update.get("crm_data"):
        case = update["crm_data"]["case"]
        return f"{case['dispute_type']} {case['amount']} on {case['charge_id']}"
    if update.get("status"):
        return str(update["status"])
    return "done"
