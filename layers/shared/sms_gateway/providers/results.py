"""What a provider answered to one send request, in the handoff's terms: whatever the provider,
the handoff needs to know only whether the message was accepted, refused, certainly not created
(retry later) or possibly created (never resend)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Accepted:
    message_sid: str
    num_segments: int | None
    from_number: str | None


@dataclass(frozen=True, slots=True)
class Rejected:
    """The provider refused the message; it will never be sent. `error_code` is ours."""

    error_code: int
    http_status: int

    @property
    def credentials_refused(self) -> bool:
        """A 401: the credentials were refused, so nothing was created."""
        return self.http_status == 401


@dataclass(frozen=True, slots=True)
class RetryLater:
    """The request certainly did not create a message (refused connection, 429, 503)."""

    reason: str


@dataclass(frozen=True, slots=True)
class OutcomeUnknown:
    """The request may have reached the provider; resending could text a person twice."""

    reason: str


HandoffResult = Accepted | Rejected | RetryLater | OutcomeUnknown
