"""Project exceptions: each says whether retrying can help and which HTTP status it maps to."""

from __future__ import annotations


class PaymentsAgentError(Exception):
    """Base of every expected failure."""

    status_code: int = 500
    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable


class IntegrationError(PaymentsAgentError):
    """An external system failed; `retryable` tells timeouts/429/5xx from the rest."""

    status_code = 502

    def __init__(
        self,
        message: str,
        *,
        system: str,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{system}: {message}", retryable=retryable)
        self.system = system
        self.retry_after = retry_after
        self.status = status


class NotFoundError(PaymentsAgentError):
    """A case, account, charge or run does not exist."""

    status_code = 404


class AuthenticationError(PaymentsAgentError):
    status_code = 401


class ForbiddenError(PaymentsAgentError):
    status_code = 403


class ConflictError(PaymentsAgentError):
    """The request contradicts the current state (already decided, same reviewer twice)."""

    status_code = 409


class InvalidRequestError(PaymentsAgentError):
    """Well-formed but unacceptable input, e.g. an amount above what is refundable."""

    status_code = 422


class AttentionRequired(PaymentsAgentError):
    """A step cannot go on without a person: the run parks as `needs_attention` at once,
    its checkpoint before the step, until an operator retries or cancels it."""

    status_code = 409


class DraftError(PaymentsAgentError):
    """A drafter produced nothing usable."""
