"""The one interface the handoff and the status webhook use to reach an SMS provider.

A provider sends a message, reads its own status callbacks (verifying they are its own) and maps
its statuses and error codes to ours; its credentials are its own business. Everything else
(claims, retries, the status machine, opt-outs) is the logic's, and speaks only our statuses and
our error codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sms_gateway.domain.provider_choices import ProviderChoice
    from sms_gateway.domain.provider_events import ProviderEvent
    from sms_gateway.domain.use_cases import UseCase
    from sms_gateway.providers.results import HandoffResult


class CredentialsUnavailableError(Exception):
    """The provider's credentials cannot be read now (throttling, network, permissions): try
    later."""


@dataclass(frozen=True, slots=True)
class OutboundSms:
    """One message as a provider is asked to send it: `choice` is the use case's entry for this
    provider (what it needs beyond the use case); `status_callback_url` where the provider calls
    back, for one that reports deliveries to a URL."""

    message_id: str
    to: str
    body: str
    use_case: UseCase
    choice: ProviderChoice
    status_callback_url: str | None
    # An alphanumeric sender to send from instead of the use case's pool.
    sender_id: str | None = None
    # Seconds the provider may keep it queued before handing it to a carrier.
    validity_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    """A status callback as it reached our webhook, before anything in it is trusted."""

    body: str
    raw_query: str
    domain_name: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A verified status callback. `message_id` is None when the callback names none of ours
    (it is acknowledged and dropped); `opt_out_scope` and `recipient` say where an opt-out the
    event reports belongs."""

    message_id: str | None
    event: ProviderEvent | None
    opt_out_scope: str | None = None
    recipient: str | None = None


@dataclass(frozen=True, slots=True)
class IncomingSms:
    """A verified incoming message, in our terms: who wrote (`from_number`), to which of our
    senders, through which account and service. `test`: a simulated one (the URL the provider
    was given, and signed, says so)."""

    account_sid: str
    messaging_service_sid: str | None
    message_sid: str
    from_number: str
    to_number: str
    body: str
    num_segments: int | None
    test: bool


class Provider(Protocol):
    name: str
    # Where its status callbacks reach us: the route, and the URL given with each send (None:
    # it reports deliveries another way).
    callback_path: str | None

    def credentials(self, use_case: UseCase, *, fresh: bool = False) -> str | None:
        """The use case's credentials, None if none are configured; CredentialsUnavailableError
        when they cannot be read now. `fresh`: read past any cache (they were just refused)."""
        ...

    def send(self, sms: OutboundSms, credentials: str) -> HandoffResult:
        """Ask the provider to send. Raises only while nothing of the request has left, so a
        caller that catches an exception knows the provider created nothing."""
        ...


class CallbackProvider(Provider, Protocol):
    """A provider that reports deliveries by calling our webhook."""

    callback_path: str

    def read_status_callback(self, request: CallbackRequest) -> StatusReport:
        """Verify and parse a callback. ForbiddenError when it is not the provider's,
        ServiceUnavailableError when it cannot be verified now."""
        ...
