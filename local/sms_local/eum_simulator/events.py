"""The message model, its timeline of events, and the event JSON AWS publishes for each.

``_Message`` holds one accepted message. ``_final_event`` is how the carrier treats a recipient
(by the test numbers), ``_timeline`` turns it into the timed events the simulator publishes, and
``_event_json`` renders one event exactly as AWS documents the SMS event of a configuration set's
event destination (docs.aws.amazon.com/sms-voice/latest/userguide/configuration-sets-event-format
.html).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import phonenumbers
from phonenumbers import carrier

EVENT_VERSION: Final = "1.0"
# The documented values of messageEncoding.
_ENCODINGS: Final[Mapping[str, str]] = {"GSM7": "GSM", "UCS2": "Unicode"}
# Simulated prices (USD): the same for every event of a message, as AWS reports them.
_PRICE_PER_PART: Final = 0.00581
_CARRIER_FEE_PER_PART: Final[Mapping[str, float]] = {"US": 0.00302}
# mcc and mnc are documented as optional; the simulator gives them for US numbers only (the
# values of AWS's example).
_NETWORK_CODES: Final[Mapping[str, tuple[str, str]]] = {"US": ("310", "800")}
_UNKNOWN_CARRIER: Final = "Simulated Carrier"


@dataclass(frozen=True)
class _EventKind:
    event_type: str
    status: str
    description: str


_PENDING: Final = _EventKind(
    "TEXT_PENDING", "PENDING", "Message is in the process of being delivered to the carrier"
)
_DELIVERED: Final = _EventKind(
    "TEXT_DELIVERED", "DELIVERED", "Message has been accepted by the destination handset"
)
_FINAL_EVENTS: Final[Mapping[str, _EventKind]] = {
    "+15005550002": _EventKind(
        "TEXT_UNREACHABLE", "UNREACHABLE", "The destination handset is not reachable"
    ),
    "+15005550005": _EventKind(
        "TEXT_BLOCKED", "BLOCKED", "The destination handset or carrier blocked the message"
    ),
    "+15005550006": _EventKind(
        "TEXT_CARRIER_UNREACHABLE",
        "CARRIER_UNREACHABLE",
        "The destination carrier's network had a temporary error",
    ),
    "+15005550007": _EventKind(
        "TEXT_SPAM", "SPAM", "The destination carrier blocked the message as spam"
    ),
    "+15005550008": _EventKind(
        "TEXT_TTL_EXPIRED", "TTL_EXPIRED", "The message could not be delivered within its TTL"
    ),
}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _final_event(destination: str) -> _EventKind:
    return _FINAL_EVENTS.get(destination, _DELIVERED)


def _timeline(
    destination: str, delays: tuple[float, float], reorder: bool
) -> list[tuple[float, _EventKind, bool]]:
    """(offset seconds after acceptance, event, isFinal) of every event, in publishing order:
    TEXT_PENDING, then the final event (the final event first with ``reorder``)."""
    first, second = (max(0.0, delay) for delay in delays)
    events = [(_PENDING, False), (_final_event(destination), True)]
    if reorder:
        events.reverse()
    offsets = (first, first + second)
    return [(offset, kind, final) for offset, (kind, final) in zip(offsets, events, strict=True)]


@dataclass
class _Message:
    message_id: str
    destination: str
    origination_identity: str
    origination_number: str
    configuration_set: str | None
    topic_arn: str | None
    body: str
    message_type: str
    time_to_live: int | None
    context: dict[str, str] | None
    encoding: str  # the API's name: GSM7 or UCS2
    parts: int
    request_timestamp: int  # ms since the epoch
    events: list[str] = field(default_factory=list)  # eventType of every event published

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "destination": self.destination,
            "origination_identity": self.origination_identity,
            "origination_number": self.origination_number,
            "configuration_set": self.configuration_set,
            "body": self.body,
            "message_type": self.message_type,
            "time_to_live": self.time_to_live,
            "context": None if self.context is None else dict(self.context),
            "message_request_timestamp": self.request_timestamp,
            "events": list(self.events),
        }


def _region(number: str) -> str | None:
    """ISO 3166-1 alpha-2 country of an E.164 number (by its country calling code when the
    number itself is not a valid one), or None."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    if region is None:
        region = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
    return None if region in (None, "ZZ", "001") else region


def _carrier_name(number: str) -> str:
    try:
        name = carrier.name_for_number(phonenumbers.parse(number, None), "en")
    except phonenumbers.NumberParseException:
        name = ""
    return name or _UNKNOWN_CARRIER


def _event_json(message: _Message, kind: _EventKind, is_final: bool, now_ms: int) -> dict[str, Any]:
    country = _region(message.destination)
    origin_country = _region(message.origination_number)
    event: dict[str, Any] = {
        "eventType": kind.event_type,
        "eventVersion": EVENT_VERSION,
        "eventTimestamp": now_ms,
        "isFinal": is_final,
        "originationPhoneNumber": message.origination_number,
        "destinationPhoneNumber": message.destination,
        "isoCountryCode": country,
        "isInternationalSend": (
            country is not None and origin_country is not None and country != origin_country
        ),
    }
    network = _NETWORK_CODES.get(country or "")
    if network is not None:
        event["mcc"], event["mnc"] = network
    event.update(
        {
            "carrierName": _carrier_name(message.destination),
            "messageId": message.message_id,
            "messageRequestTimestamp": message.request_timestamp,
            "messageEncoding": _ENCODINGS[message.encoding],
            "messageType": message.message_type,
            "messageStatus": kind.status,
            "messageStatusDescription": kind.description,
        }
    )
    if message.context is not None:
        event["context"] = dict(message.context)
    event.update(
        {
            "totalMessageParts": message.parts,
            "totalMessagePrice": round(message.parts * _PRICE_PER_PART, 5),
            "totalCarrierFee": round(
                message.parts * _CARRIER_FEE_PER_PART.get(country or "", 0.0), 5
            ),
        }
    )
    return event
