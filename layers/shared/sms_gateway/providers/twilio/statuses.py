"""Twilio's message statuses and error codes, in our terms.

Error codes need no table: the API reports error codes of Twilio's numbering (the reference
API's), so Twilio's own pass through as they are, RECIPIENT_UNSUBSCRIBED (21610) among them.
"""

from __future__ import annotations

from sms_gateway.domain.messages import MessageStatus
from sms_gateway.domain.provider_events import ProviderEvent

# Create-time refusals about the recipient, which another provider must not get around: the
# number is invalid (21211, 21214, 21217, 21401, 21421), cannot receive SMS (21612, 21614) or
# unsubscribed (21610). Every other refusal (authentication, the sender, the Messaging Service,
# a region not enabled: 20003, 21606, 21408, ...) is the account's or the route's, and the next
# provider may take the message. Source: Twilio's error dictionary (twilio.com/docs/api/errors).
RECIPIENT_ERRORS = frozenset({21211, 21214, 21217, 21401, 21421, 21610, 21612, 21614})

# Twilio's MessageStatus -> ours; the others (accepted, queued, sending, scheduled, ...) only go
# into the history.
STATUSES: dict[str, MessageStatus] = {
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
}


def provider_event(
    *,
    account_sid: str,
    provider_status: str,
    at: str,
    message_sid: str | None = None,
    from_number: str | None = None,
    error_code: int | None = None,
    num_segments: int | None = None,
) -> ProviderEvent:
    """A callback's facts as the status machine takes them: Twilio's status mapped to ours."""
    return ProviderEvent(
        account_sid=account_sid,
        status=STATUSES.get(provider_status),
        provider_status=provider_status,
        at=at,
        message_sid=message_sid,
        from_number=from_number,
        error_code=error_code,
        num_segments=num_segments,
    )
