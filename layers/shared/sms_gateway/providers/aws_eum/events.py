"""AWS End User Messaging SMS's delivery events, in our terms.

A configuration set's event destination publishes each event to SNS as a JSON object (the SQS
queue subscribed to the topic gets it as its body, with raw message delivery); its `context` is
the Context we sent, which names our message: events are matched by it, never by an index of the
provider's id.

The table below maps `eventType` to our status and error code. Source: "Event types for SMS,
MMS, and voice" and "Example SMS event data" in the AWS End User Messaging SMS user guide.
TEXT_DELIVERED and TEXT_SUCCESSFUL are the carrier's acceptance, used interchangeably by
country (the guide says so); both end the message `delivered`. TEXT_PENDING (on its way to the
carrier) makes it `sent`. A type not listed (a new one, or TEXT_QUEUED) moves nothing and is kept
in the history.

An event with `isFinal: false` is an intermediate report (AWS may still answer otherwise, e.g.
after a transient TEXT_CARRIER_UNREACHABLE): it never ends a message. A failure that is not
final moves nothing, a success that is not final makes it `sent` at most.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sms_gateway.domain import error_codes
from sms_gateway.domain.clock import iso
from sms_gateway.domain.messages import MessageStatus
from sms_gateway.domain.provider_choices import ProviderName
from sms_gateway.domain.provider_events import ProviderEvent
from sms_gateway.providers.aws_eum.client import MESSAGE_ID_CONTEXT_KEY

S = MessageStatus

# eventType -> (our status, our error code). Error codes in Twilio's numbering: 30003
# "Unreachable destination handset", 30004 "Message blocked", 30005 "Unknown destination
# handset", 30006 "Landline or unreachable carrier", 30007 "Message filtered", 30008 "Unknown
# error"; 99005 is ours (the validity period ran out).
EVENT_TYPES: Mapping[str, tuple[MessageStatus | None, int | None]] = {
    "TEXT_QUEUED": (None, None),
    "TEXT_PENDING": (S.SENT, None),
    "TEXT_SENT": (S.SENT, None),
    "TEXT_SUCCESSFUL": (S.DELIVERED, None),
    "TEXT_DELIVERED": (S.DELIVERED, None),
    "TEXT_BLOCKED": (S.UNDELIVERED, 30004),
    "TEXT_CARRIER_BLOCKED": (S.UNDELIVERED, 30007),
    "TEXT_SPAM": (S.UNDELIVERED, 30007),
    "TEXT_UNREACHABLE": (S.UNDELIVERED, 30003),
    "TEXT_CARRIER_UNREACHABLE": (S.UNDELIVERED, 30006),
    "TEXT_INVALID": (S.UNDELIVERED, 30005),
    "TEXT_INVALID_MESSAGE": (S.FAILED, 30008),
    "TEXT_UNKNOWN": (S.UNDELIVERED, 30008),
    # May follow TEXT_PENDING (the carrier kept it past its time to live): undelivered, which
    # a sent message may still become (failed may not), with our code for an expired validity.
    "TEXT_TTL_EXPIRED": (S.UNDELIVERED, error_codes.VALIDITY_PERIOD_EXPIRED),
    # Blocked by the account's own protect configuration, before any carrier.
    "TEXT_PROTECT_BLOCKED": (S.FAILED, 30004),
}

_ENDINGS = frozenset({S.DELIVERED, S.UNDELIVERED, S.FAILED})
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_EVENT_TYPE = re.compile(r"^[A-Z_]{1,64}$")
_PROVIDER_ID = re.compile(r"^[A-Za-z0-9-]{1,128}$")
_ORIGINATION = re.compile(r"^[A-Za-z0-9_:/+ -]{1,256}$")
# A message has at most this many parts: 1,600 characters of UCS-2 in 67-character parts.
_MAX_PARTS = 25


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    message_id: str
    event: ProviderEvent


class EventUnreadableError(ValueError):
    """Not an SMS event of ours: nothing to apply, and nothing a retry would change."""


def read_event(body: str) -> DeliveryEvent:
    """The message and the event an SQS record's body reports. A body SNS wrapped (a
    subscription without raw message delivery) is unwrapped."""
    data = _json_object(body)
    if data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        data = _json_object(data["Message"])
    event_type = data.get("eventType")
    if not isinstance(event_type, str) or not _EVENT_TYPE.fullmatch(event_type):
        raise EventUnreadableError("no eventType")
    if not event_type.startswith("TEXT_"):
        raise EventUnreadableError(f"not an SMS event: {event_type}")
    context = data.get("context")
    message_id = context.get(MESSAGE_ID_CONTEXT_KEY) if isinstance(context, dict) else None
    if not isinstance(message_id, str) or not _UUID.fullmatch(message_id):
        raise EventUnreadableError("no message of ours in its context")
    provider_id = data.get("messageId")
    if not isinstance(provider_id, str) or not _PROVIDER_ID.fullmatch(provider_id):
        raise EventUnreadableError("no messageId")
    status, error_code = EVENT_TYPES.get(event_type, (None, None))
    if data.get("isFinal") is False and status in _ENDINGS:
        status, error_code = (S.SENT, None) if status is S.DELIVERED else (None, None)
    return DeliveryEvent(
        message_id=message_id,
        event=ProviderEvent(
            account_sid=None,
            status=status,
            provider_status=event_type,
            at=_event_time(data.get("eventTimestamp")),
            message_sid=provider_id,
            from_number=_origination(data.get("originationPhoneNumber")),
            error_code=error_code,
            num_segments=_parts(data.get("totalMessageParts")),
            provider=ProviderName.AWS_EUM.value,
        ),
    )


def _json_object(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise EventUnreadableError("not JSON") from exc
    if not isinstance(data, dict):
        raise EventUnreadableError("not a JSON object")
    return data


def _event_time(value: object) -> str:
    """The event's own time (milliseconds since the epoch), which orders the history."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventUnreadableError("no eventTimestamp")
    try:
        return iso(datetime.fromtimestamp(value / 1000, UTC))
    except (OverflowError, OSError, ValueError) as exc:
        raise EventUnreadableError("eventTimestamp out of range") from exc


def _origination(value: object) -> str | None:
    return value if isinstance(value, str) and _ORIGINATION.fullmatch(value) else None


def _parts(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_PARTS:
        return None
    return value
