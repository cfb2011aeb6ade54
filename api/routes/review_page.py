"""The review page: reached from an e-mailed link (channel "link") or the dashboard ("page").

With `?token=…` the signed link is the credential: it names the run and the reviewer,
expires, and works once (403 when forged, expired or for another run; 409 once used).
Without a token the dashboard session is the credential, and forms carry a CSRF token.
Either way the decision goes through workflows.decisions.record_decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from api.auth import PageSession, Session
from api.dashboard_queries import DeskQueries
from api.deps import ApiServices, Services
from api.pages import (
    PERMITTED_COLUMNS,
    error_page,
    governing_rule,
    login_redirect,
    render,
    run_state,
)
from api.routes.dashboard import DECIDED_COOKIE, external_links
from api.routes.workflows import parse_run_id
from models.domain import ChargebackAnswer, ModifiedResolution, ResolutionAction, ReviewChannel
from services.errors import ForbiddenError, InvalidRequestError, NotFoundError, PaymentsAgentError
from services.review.links import InvalidTokenError, ReviewClaims
from services.review.notifications import ReviewFacts
from services.review.reviewers import Reviewer
from workflows.decisions import pending_review, record_decision

router = APIRouter(tags=["review-page"], include_in_schema=False)

MAX_COMMENTS = 4000


@dataclass(frozen=True)
class DecisionForm:
    decision: str = ""
    action: str = ""
    amount: str = ""
    reason: str = ""
    comments: str = ""
    version: str = ""
    # A chargeback's evidence text fields, from the form's `evidence_<field>` inputs.
    evidence: dict[str, str] = field(default_factory=dict)

    def shown_version(self) -> int | None:
        """The version the page showed (a hidden field); None from an older page."""
        return int(self.version) if self.version.strip().isdigit() else None

    def parse(
        self, *, chargeback: bool = False
    ) -> tuple[str, ModifiedResolution | ChargebackAnswer | None]:
        """(decision, modification) from the form; InvalidRequestError (422) when unusable."""
        if len(self.comments) > MAX_COMMENTS:
            raise InvalidRequestError(f"comments are limited to {MAX_COMMENTS} characters")
        if self.decision == "approve":
            return "approved", None
        if self.decision == "reject":
            return "rejected", None
        if self.decision != "modify":
            raise InvalidRequestError("choose approve, modify or reject")
        if chargeback:
            try:
                answer = ChargebackAnswer.model_validate(
                    {
                        "action": self.action,
                        "reason": self.reason.strip() or self.comments.strip(),
                        "evidence": self.evidence,
                    }
                )
            except ValidationError as exc:
                raise InvalidRequestError(f"modification refused: {_problems(exc)}") from None
            return "approved", answer
        try:
            modified = ModifiedResolution.model_validate(
                {
                    "action": self.action,
                    "amount": self.amount.strip(),
                    "reason": self.reason.strip() or self.comments.strip(),
                }
            )
        except ValidationError as exc:
            raise InvalidRequestError(f"modification refused: {_problems(exc)}") from None
        return "approved", modified


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}" for e in exc.errors()
    )


async def _is_chargeback(services: ApiServices, run_id: str) -> bool:
    head = await services.store.run_head(run_id)
    return head is not None and head.get("kind") == "chargeback"


def _verify_link(services: ApiServices, token: str, run_id: str) -> ReviewClaims:
    if services.review_links is None:
        raise InvalidTokenError("review links are not enabled on this server")
    return services.review_links.verify(token, run_id=run_id, now=services.clock())


async def _link_reviewer(services: ApiServices, claims: ReviewClaims) -> Reviewer:
    """The reviewer a link was issued to, while still active (revocation ends links)."""
    reviewer = await services.reviewer_keys.reviewer(claims.reviewer_id)
    if reviewer is None:
        raise ForbiddenError("this review link's reviewer is no longer active")
    return reviewer


async def _page(
    request: Request,
    services: ApiServices,
    run: dict[str, Any],
    *,
    channel: ReviewChannel,
    reviewer: str,
    session: PageSession | None,
    token: str | None = None,
    form: DecisionForm | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    review = run.get("human_review_data") or {}
    awaiting = review.get("awaiting_round")
    facts = ReviewFacts.from_run(run)
    decisions = await services.store.decisions_for_run(facts.run_id)
    # Live updates of the run's state follow the dashboard session (not an e-mailed link).
    live = session is not None and token is None
    return render(
        request,
        "review.html",
        {
            "f": facts,
            "run": run,
            "awaiting_round": awaiting,
            "can_decide": run["status"] == "pending" and awaiting is not None,
            "decisions": decisions,
            "state": run_state(
                run["status"],
                step=run.get("current_step"),
                unapplied=[d for d in decisions if d["applied_at"] is None],
                required=facts.required_approvals,
                approved_by=facts.approved_by,
                final=run.get("final_resolution"),
                error=run.get("last_error"),
            ),
            "rule": governing_rule(run, facts.current.get("action")),
            "permitted_columns": PERMITTED_COLUMNS,
            "recent_charges": _recent_charges(run, facts.charge.get("charge_id")),
            "links": external_links(services),
            "live": live,
            "since": await DeskQueries(services.store).signature(facts.run_id) if live else None,
            "actions": [a.value for a in ResolutionAction],
            "channel": channel,
            "reviewer": reviewer,
            "token": token,
            "csrf": session.csrf if session is not None and token is None else None,
            "session": session,
            "form": form or DecisionForm(),
            "error": error,
        },
        status_code=status_code,
    )


# The customer's charges shown beside the dispute: the most recent first, at most these.
MAX_RECENT_CHARGES = 10


def _recent_charges(run: dict[str, Any], disputed: str | None) -> list[dict[str, Any]]:
    """The customer's recent charges (payment_data.recent_charges), newest first, each
    marked when it is the disputed one."""
    charges = list((run.get("payment_data") or {}).get("recent_charges") or [])
    charges.sort(key=lambda c: str(c.get("created_at") or ""), reverse=True)
    return [
        {**charge, "disputed": charge.get("charge_id") == disputed}
        for charge in charges[:MAX_RECENT_CHARGES]
    ]


@router.get("/review/{run_id}", response_class=HTMLResponse)
async def review_page(
    request: Request,
    run_id: str,
    services: Services,
    session: Session,
    token: str | None = None,
) -> Response:
    """Show the dispute, the proposal, its evidence and costs, with the decision form."""
    try:
        run_id = parse_run_id(run_id)
        if token is not None:
            claims = _verify_link(services, token, run_id)
            await services.used_tokens.ensure_unused(claims)
            reviewer = await _link_reviewer(services, claims)
            run = await pending_review(services.store, run_id)
            return await _page(
                request,
                services,
                run,
                channel="link",
                reviewer=reviewer.name,
                session=None,
                token=token,
            )
        if session is None:
            return login_redirect(request)
        found = await services.store.get_run(run_id)
        if found is None:
            raise NotFoundError(f"run {run_id} not found")
        return await _page(
            request,
            services,
            found,
            channel="page",
            reviewer=session.reviewer.name,
            session=session,
        )
    except PaymentsAgentError as exc:
        return error_page(request, exc, session=session if token is None else None)


@router.post("/review/{run_id}", response_class=HTMLResponse)
async def submit_review(
    request: Request,
    run_id: str,
    services: Services,
    session: Session,
    decision: Annotated[str, Form(max_length=16)] = "",
    action: Annotated[str, Form(max_length=32)] = "",
    amount: Annotated[str, Form(max_length=32)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    comments: Annotated[str, Form(max_length=MAX_COMMENTS)] = "",
    token: Annotated[str | None, Form(max_length=4096)] = None,
    csrf: Annotated[str, Form(max_length=100)] = "",
    version: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Record the decision under the link's or the session's reviewer."""
    evidence = {
        str(key).removeprefix("evidence_"): str(value)
        for key, value in (await request.form()).items()
        if str(key).startswith("evidence_") and isinstance(value, str)
    }
    form = DecisionForm(decision, action, amount, reason, comments, version, evidence)
    try:
        run_id = parse_run_id(run_id)
        if token:
            return await _submit_link(request, services, run_id, token, form)
        if session is None:
            return login_redirect(request)
        if not services.sessions.check_csrf(session.cookie, csrf):
            raise ForbiddenError("the form has expired; reload the page and decide again")
        return await _submit_page(request, services, run_id, session, form)
    except PaymentsAgentError as exc:
        return error_page(request, exc, session=session if not token else None)


async def _submit_link(
    request: Request, services: ApiServices, run_id: str, token: str, form: DecisionForm
) -> Response:
    claims = _verify_link(services, token, run_id)
    await services.used_tokens.ensure_unused(claims)
    reviewer = await _link_reviewer(services, claims)
    consumed = False
    try:
        verdict, modified = form.parse(chargeback=await _is_chargeback(services, run_id))
        # Reserve the token first (atomic: a concurrent second use gets 409), and give it
        # back if the decision is refused, so a reviewer can correct a rejected modification.
        await services.used_tokens.consume(claims)
        consumed = True
        recorded = await record_decision(
            services.store,
            run_id=run_id,
            case_id=None,
            decision=verdict,
            reviewer=reviewer,
            channel="link",
            comments=form.comments.strip(),
            modified=modified,
            version=form.shown_version(),
            now=services.clock(),
        )
    except InvalidRequestError as exc:
        if consumed:
            await services.used_tokens.release(claims)
        run = await pending_review(services.store, run_id)
        return await _page(
            request,
            services,
            run,
            channel="link",
            reviewer=reviewer.name,
            session=None,
            token=token,
            form=form,
            error=exc.message,
            status_code=exc.status_code,
        )
    except BaseException:
        if consumed:
            await services.used_tokens.release(claims)
        raise
    decided = await services.store.get_run(run_id)
    stored = await services.store.decisions_for_run(run_id)
    review = (decided or {}).get("human_review_data") or {}
    facts = ReviewFacts.from_run(decided) if decided else None
    state = (
        run_state(
            decided["status"],
            step=decided.get("current_step"),
            unapplied=[d for d in stored if d["applied_at"] is None],
            required=facts.required_approvals if facts else None,
            approved_by=facts.approved_by if facts else (),
            final=decided.get("final_resolution"),
            error=decided.get("last_error"),
        )
        if decided
        else None
    )
    return render(
        request,
        "decided.html",
        {
            "decision": recorded,
            "case_id": decided["case_id"] if decided else "",
            "status": decided["status"] if decided else None,
            "state": state,
            "awaiting_round": review.get("awaiting_round"),
            "session": None,
        },
    )


async def _submit_page(
    request: Request, services: ApiServices, run_id: str, session: PageSession, form: DecisionForm
) -> Response:
    reviewer = session.reviewer
    try:
        verdict, modified = form.parse(chargeback=await _is_chargeback(services, run_id))
        recorded = await record_decision(
            services.store,
            run_id=run_id,
            case_id=None,
            decision=verdict,
            reviewer=reviewer,
            channel="page",
            comments=form.comments.strip(),
            modified=modified,
            version=form.shown_version(),
            now=services.clock(),
        )
    except InvalidRequestError as exc:
        run = await pending_review(services.store, run_id)
        return await _page(
            request,
            services,
            run,
            channel="page",
            reviewer=reviewer.name,
            session=session,
            form=form,
            error=exc.message,
            status_code=exc.status_code,
        )
    response = RedirectResponse(f"/runs/{run_id}", status_code=303)
    # The run's page confirms this decision once (api/routes/dashboard.py run_page).
    response.set_cookie(
        DECIDED_COOKIE,
        str(recorded.round),
        max_age=300,
        path=f"/runs/{run_id}",
        httponly=True,
        secure=services.secure_cookies,
        samesite="lax",
    )
    return response
