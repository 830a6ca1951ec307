"""A provider's status callback, reduced to what the message record keeps, in our terms."""

from __future__ import annotations

from dataclasses import dataclass

from sms_gateway.domain.messages import MessageStatus


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """`status` is ours (None: the provider's status moves nothing, e.g. queued or sending);
    `provider_status` is the provider's own word, kept in the message's history; `error_code`
    is ours. `provider`: the provider that reports it, the only one whose events may move a
    message it was handed to; `account_sid`: for Twilio, the account the message was sent
    through, the only one whose callbacks may move it (None for a provider without accounts of
    its own). `message_sid`: the provider's id of the message, which must be the message's own
    once it is known."""

    account_sid: str | None
    status: MessageStatus | None
    provider_status: str
    at: str
    message_sid: str | None = None
    from_number: str | None = None
    error_code: int | None = None
    num_segments: int | None = None
    provider: str = "twilio"
