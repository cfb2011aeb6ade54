"""Shared helpers of the server-rendered pages: templates, error pages, sign-in redirects,
links out to the CRM and the payment system, a run's state in words, and the policy rule
that governs a dispute."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from models.domain import DisputeType, ResolutionAction
from models.policy_rules import (
    ALLOWED_ACTIONS,
    POLICIES,
    RESOLUTION_RULES,
    governing_policy_ids,
    outage_band,
)
from services.errors import PaymentsAgentError

templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")

TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Not allowed",
    404: "Not found",
    409: "Already decided",
    422: "Please check your input",
}

# Pages carry decision forms and, for review links, a token in the URL: never framed,
# never cached, never sent on as a referrer.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


def render(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, context, status_code=status_code, headers=PAGE_HEADERS
    )


def error_page(
    request: Request, exc: PaymentsAgentError, *, session: object | None = None
) -> HTMLResponse:
    status = exc.status_code if 400 <= exc.status_code < 600 else 500
    return render(
        request,
        "error.html",
        {
            "title": TITLES.get(status, "Something went wrong"),
            "message": exc.message if status < 500 else "internal error",
            "status": status,
            "session": session,
        },
        status_code=status,
    )


def safe_next(value: str | None) -> str:
    """A local path to go back to after signing in; anything else becomes '/'."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


@dataclass(frozen=True)
class ExternalLinks:
    """Links to the case in the CRM and the charge in the payment system, from the
    operator's URL templates (CRM_CASE_URL_TEMPLATE, PAYMENT_CHARGE_URL_TEMPLATE)."""

    crm_case_template: str | None = None
    payment_charge_template: str | None = None

    @staticmethod
    def _fill(template: str | None, placeholder: str, value: object) -> str | None:
        if template is None or value in (None, ""):
            return None
        # Plain substitution of the one placeholder, the value URL-encoded whole.
        return template.replace(placeholder, quote(str(value), safe=""))

    def case(self, case_id: object) -> str | None:
        return self._fill(self.crm_case_template, "{case_id}", case_id)

    def charge(self, charge_id: object) -> str | None:
        return self._fill(self.payment_charge_template, "{charge_id}", charge_id)


def _money(value: object) -> str:
    try:
        return f"{Decimal(str(value)):.2f}"
    except (InvalidOperation, ValueError):
        return str(value)


def outcome_summary(final: Mapping[str, Any] | None) -> str:
    """The outcome of a finished run in a few words: what moved, where, and its state."""
    final = final or {}
    outcome = final.get("outcome")
    if outcome == "invalid":
        return f"the dispute failed validation ({final.get('failed_rule')}): {final.get('reason')}"
    if outcome == "rejected_by_reviewer":
        return f"rejected by {final.get('reviewer')}" + (
            f": {final['reason']}" if final.get("reason") else ""
        )
    if outcome == "failed":
        error = final.get("error") or {}
        return f"failed in {error.get('step', 'a step')}: {error.get('message', 'unknown error')}"
    if not final.get("action"):
        return "no outcome recorded"
    text = (
        f"{final['action']} {_money(final.get('amount'))} {str(final.get('currency', '')).upper()}"
    )
    payout = (final.get("execution") or {}).get("payout")
    if payout:
        text += f", {payout.get('action')} {payout.get('provider_ref') or ''} {payout.get('state')}"
        text = text.replace("  ", " ")
    return text


def run_state(
    status: str,
    *,
    step: str | None = None,
    unapplied: Sequence[Mapping[str, Any]] = (),
    required: int | None = None,
    approved_by: Sequence[str] = (),
    final: Mapping[str, Any] | None = None,
    error: Mapping[str, Any] | None = None,
) -> str:
    """Where a run stands, in one sentence a reviewer understands."""
    if status == "pending":
        if unapplied:
            last = unapplied[-1]
            return (
                f"Decision recorded: {last['decision']} by {last['reviewer']}. "
                "The run resumes shortly."
            )
        if required and required > 1:
            so_far = f" (approved by {', '.join(approved_by)})" if approved_by else ""
            return f"Awaiting approval {len(approved_by) + 1} of {required}{so_far}."
        return "Awaiting a reviewer's decision."
    if status == "running":
        return f"Running: {step or 'starting'}."
    if status == "completed":
        return f"Completed: {outcome_summary(final)}."
    if status == "rejected":
        return f"Rejected: {outcome_summary(final)}."
    message = (error or {}).get("message") or (
        outcome_summary(final) if final else "no error recorded"
    )
    if status == "failed":
        return f"Failed: {message}. An operator must look at it."
    if status == "needs_attention":
        return f"Needs attention: {message}. An operator can retry it."
    if status == "cancelled":
        return "Cancelled: nothing further runs."
    return status


# How the policy documents name segments, dispute types and resolutions
# (tools/policy_text/common.toml), so that a row reads as it does in the document.
_TYPE_NAMES = {DisputeType.UNRECOGNIZED_CHARGE.value: "Unrecognised charge"}
OUTAGE_COLUMNS = ("Outage duration", "Customer segment", "Compensation", "Amount")
PERMITTED_COLUMNS = ("Dispute type", "Resolution", "Status")


def _name(value: str) -> str:
    return _TYPE_NAMES.get(value) or value.replace("_", " ").capitalize()


def _percent(share: Decimal) -> str:
    return f"{(share * 100).normalize():f}%"


@dataclass(frozen=True)
class GoverningRule:
    """The policy rule a dispute falls under, and the matrix rows that apply to it: the
    outage matrix's row for the outage and segment, the permitted-resolutions row of the
    action that would execute. Worked out from the same rules (models/policy_rules.py)
    that the policy documents, the drafter's assessment and the guardrails use."""

    policy_id: str
    title: str
    rule: str
    cited: bool  # the proposal's policy_ids name this policy
    matrix: str | None = None
    columns: tuple[str, ...] = ()
    row: tuple[str, ...] | None = None
    no_row: str | None = None  # why no matrix row applies
    permitted: tuple[str, ...] | None = None

    def governs(self, line: str) -> bool:
        """Whether one line of a policy excerpt is a row named here."""
        text = " ".join(line.split()).casefold()
        rows = [r for r in (self.row, self.permitted) if r]
        return any(text == " | ".join(r).casefold() for r in rows)


def governing_rule(run: Mapping[str, Any], action: str | None) -> GoverningRule | None:
    """The rule governing the run's dispute, with the rows of the action `action`."""
    crm = run.get("crm_data") or {}
    case = crm.get("case") or {}
    try:
        dispute = DisputeType(str(case.get("dispute_type")))
    except ValueError:
        return None
    ids = governing_policy_ids(dispute.value)
    policy = next(p for p in POLICIES if p.policy_id == ids[0])
    cited = (run.get("resolution_proposal") or {}).get("policy_ids") or []
    permitted = None
    if action in {a.value for a in ResolutionAction}:
        allowed = ResolutionAction(action) in ALLOWED_ACTIONS[dispute]
        permitted = (
            _name(dispute.value),
            _name(str(action)),
            "Permitted" if allowed else "Not permitted",
        )
    rule = GoverningRule(
        policy_id=policy.policy_id,
        title=policy.title,
        rule=RESOLUTION_RULES[dispute],
        cited=policy.policy_id in cited,
        permitted=permitted,
    )
    if dispute != DisputeType.SERVICE_OUTAGE:
        return rule
    matrix = "Compensation by outage duration and customer segment"
    segment = str((crm.get("account") or {}).get("segment") or "")
    try:
        hours = Decimal(str(case.get("outage_hours")))
        band = outage_band(hours)
    except (InvalidOperation, ValueError):
        return replace(
            rule, matrix=matrix, columns=OUTAGE_COLUMNS, no_row="no outage duration on the case"
        )
    share = band.share.get(segment)
    if share is None:
        return replace(
            rule,
            matrix=matrix,
            columns=OUTAGE_COLUMNS,
            no_row=f"segment {segment or 'unknown'} is not in the matrix",
        )
    compensation, amount = (
        ("No compensation", "None")
        if share == 0
        else (
            "Account credit" if share < 1 else "Full refund",
            f"{_percent(share)} of the disputed charge",
        )
    )
    return replace(
        rule,
        matrix=matrix,
        columns=OUTAGE_COLUMNS,
        row=(band.label, segment.capitalize(), compensation, amount),
    )
