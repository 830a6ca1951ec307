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
    """The provider refused the message. `error_code` is ours. `recipient`: for a reason of the
    recipient's (an invalid number, an opt-out), so no other provider may send it either;
    otherwise for one of the provider's own (account, route, configuration), and the next
    provider is tried."""

    error_code: int
    http_status: int
    recipient: bool = False

    @property
    def credentials_refused(self) -> bool:
        """A 401: the credentials were refused, so nothing was created."""
        return self.http_status == 401


@dataclass(frozen=True, slots=True)
class RetryLater:
    """The request certainly did not create a message (refused connection, 429, 503).
    `error_code`: the provider's, in our numbering, when it answered. `provider_unavailable`:
    it says the provider is down or busy (false when our own dependency failed, e.g. reading
    its credentials), which counts against its health."""

    reason: str
    error_code: int | None = None
    provider_unavailable: bool = True


@dataclass(frozen=True, slots=True)
class OutcomeUnknown:
    """The request may have reached the provider; resending could text a person twice."""

    reason: str


HandoffResult = Accepted | Rejected | RetryLater | OutcomeUnknown
