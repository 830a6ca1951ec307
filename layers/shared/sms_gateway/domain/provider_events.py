"""A provider's status callback, reduced to what the message record keeps, in our terms."""

from __future__ import annotations

from dataclasses import dataclass

from sms_gateway.domain.messages import MessageStatus


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """`status` is ours (None: the provider's status moves nothing, e.g. queued or sending);
    `provider_status` is the provider's own word, kept in the message's history; `error_code`
    is ours. `account_sid`: the provider account the message was sent through, the only one
    whose callbacks may move it."""

    account_sid: str
    status: MessageStatus | None
    provider_status: str
    at: str
    message_sid: str | None = None
    from_number: str | None = None
    error_code: int | None = None
    num_segments: int | None = None
