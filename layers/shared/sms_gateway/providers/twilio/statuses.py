"""Twilio's message statuses and error codes, in our terms.

Error codes need no table: the API reports error codes of Twilio's numbering (the reference
API's), so Twilio's own pass through as they are, RECIPIENT_UNSUBSCRIBED (21610) among them.
"""

from __future__ import annotations

from sms_gateway.domain.messages import MessageStatus
from sms_gateway.domain.provider_events import ProviderEvent

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
