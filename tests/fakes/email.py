"""A fake EmailSender recording what it was asked to send, optionally failing first."""

from __future__ import annotations

from services.review.email import EmailError, OutgoingEmail


class RecordingSender:
    backend = "fake"
    delivers = True

    def __init__(self, *, failures: list[EmailError] | None = None) -> None:
        self.sent: list[OutgoingEmail] = []
        self.failures = list(failures or [])
        self.attempts = 0

    async def send(self, email: OutgoingEmail) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(email)

    def to(self, recipient: str) -> list[OutgoingEmail]:
        return [e for e in self.sent if e.to == recipient]
