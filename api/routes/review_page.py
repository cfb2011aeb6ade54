"""The review page: reached from an e-mailed link (channel "link") or the dashboard ("page").

With `?token=…` the signed link is the credential: it names the run and the reviewer,
expires, and works once (403 when forged, expired or for another run; 409 once used).
Without a token the dashboard session is the credential, and forms carry a CSRF token.
Either way the decision goes through workflows.decisions.record_decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from api.auth import PageSession, Session
from api.deps import ApiServices, Services
from api.pages import error_page, login_redirect, render
from api.routes.workflows import parse_run_id
from models.domain import ModifiedResolution, ResolutionAction, ReviewChannel
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

    def shown_version(self) -> int | None:
        """The version the page showed (a hidden field); None from an older page."""
        return int(self.version) if self.version.strip().isdigit() else None

    def parse(self) -> tuple[str, ModifiedResolution | None]:
        """(decision, modification) from the form; InvalidRequestError (422) when unusable."""
        if len(self.comments) > MAX_COMMENTS:
            raise InvalidRequestError(f"comments are limited to {MAX_COMMENTS} characters")
        if self.decision == "approve":
            return "approved", None
        if self.decision == "reject":
            return "rejected", None
        if self.decision != "modify":
            raise InvalidRequestError("choose approve, modify or reject")
        try:
            modified = ModifiedResolution.model_validate(
                {
                    "action": self.action,
                    "amount": self.amount.strip(),
                    "reason": self.reason.strip() or self.comments.strip(),
                }
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}" for e in exc.errors()
            )
            raise InvalidRequestError(f"modification refused: {problems}") from None
        return "approved", modified


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
    return render(
        request,
        "review.html",
        {
            "f": ReviewFacts.from_run(run),
            "run": run,
            "awaiting_round": awaiting,
            "can_decide": run["status"] == "pending" and awaiting is not None,
            "decisions": await services.store.decisions_for_run(str(run["run_id"])),
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
    form = DecisionForm(decision, action, amount, reason, comments, version)
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
        verdict, modified = form.parse()
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
    return render(
        request,
        "decided.html",
        {"decision": recorded, "case_id": decided["case_id"] if decided else "", "session": None},
    )


async def _submit_page(
    request: Request, services: ApiServices, run_id: str, session: PageSession, form: DecisionForm
) -> Response:
    reviewer = session.reviewer
    try:
        verdict, modified = form.parse()
        await record_decision(
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
    return RedirectResponse(f"/runs/{run_id}", status_code=303)
