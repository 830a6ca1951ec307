"""The message model: a sent message as Twilio reports it, and its timeline of status changes.

``_Message`` holds one message and renders Twilio's Message JSON; its status only moves forward.
``_Outcome`` is how the carrier treats a recipient (by the magic suffixes of To), and
``_timeline`` turns it into the timed status changes the simulator fires.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sms_local.twilio_simulator.rules import _UNSUBSCRIBED_ERROR, _UNSUBSCRIBED_TO

API_VERSION: Final = "2010-04-01"

# Callbacks can be delivered out of order; the resource itself must only ever move forward.
_STATUS_RANK: Final[Mapping[str, int]] = {
    "accepted": 0,
    "queued": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
}
# A message still in Twilio's queue when its ValidityPeriod ran out is failed with 30036.
_VALIDITY_EXPIRED: Final = 30036
_DELIVERY_ERRORS: Final[Mapping[int, str]] = {
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30007: "Message filtered",
    _VALIDITY_EXPIRED: "Validity Period Expired",
    _UNSUBSCRIBED_ERROR[0]: _UNSUBSCRIBED_ERROR[1],
}


@dataclass(frozen=True)
class _Outcome:
    final_status: str | None  # None: the carrier never sends a delivery receipt
    error_code: int | None = None
    via_sent: bool = True
    via_queued: bool = True


_DELIVERED: Final = _Outcome("delivered")
_OUTCOME_SUFFIXES: Final[Mapping[str, _Outcome]] = {
    "5550030": _Outcome("undelivered", 30003),
    "5550031": _Outcome("undelivered", 30005),
    "5550040": _Outcome(None),
    "5550050": _Outcome("failed", 30007, via_sent=False),
}
# Reached only through a Messaging Service (otherwise refused at once, see _check_to).
_UNSUBSCRIBED: Final = _Outcome("failed", _UNSUBSCRIBED_ERROR[0], via_sent=False, via_queued=False)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _rfc2822(moment: datetime | None) -> str | None:
    return None if moment is None else email.utils.format_datetime(moment)


def _message_uri(account_sid: str, sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"


@dataclass
class _Message:
    sid: str
    account_sid: str
    service_sid: str | None
    to: str
    sender: str
    body: str
    num_segments: int
    status: str
    status_callback: str | None
    auth_token: str  # fallback for signing if the account disappears from the config
    date_created: datetime
    date_updated: datetime
    date_sent: datetime | None = None
    error_code: int | None = None

    def advance(self, status: str, error_code: int | None, now: datetime) -> None:
        if _STATUS_RANK[status] <= _STATUS_RANK[self.status]:
            return
        self.status = status
        self.date_updated = now
        if error_code is not None:
            self.error_code = error_code
        # A message the carrier refused outright was never handed over, so it has no send date.
        if self.date_sent is None and status != "failed" and _STATUS_RANK[status] >= 2:
            self.date_sent = now

    def to_json(self) -> dict[str, Any]:
        uri = _message_uri(self.account_sid, self.sid)
        media_base = uri.removesuffix(".json")
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": _rfc2822(self.date_created),
            "date_sent": _rfc2822(self.date_sent),
            "date_updated": _rfc2822(self.date_updated),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": _DELIVERY_ERRORS.get(self.error_code or 0),
            "from": self.sender,
            "messaging_service_sid": self.service_sid,
            "num_media": "0",
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {
                "media": f"{media_base}/Media.json",
                "feedback": f"{media_base}/Feedback.json",
            },
            "to": self.to,
            "uri": uri,
        }


# --- delivery timeline --------------------------------------------------------------------------


def _outcome_for(to: str) -> _Outcome:
    if to == _UNSUBSCRIBED_TO:
        return _UNSUBSCRIBED
    for suffix, outcome in _OUTCOME_SUFFIXES.items():
        if to.endswith(suffix):
            return outcome
    return _DELIVERED


def _timeline(
    to: str, delays: tuple[float, float], reorder: bool, validity_period: int | None = None
) -> list[tuple[float, str, int | None]]:
    """(offset seconds, status, error code) of every status change, in firing order. A message
    that would wait in the queue longer than its validity period is failed when it runs out."""
    outcome = _outcome_for(to)
    to_sent, to_final = (max(0.0, delay) for delay in delays)
    if outcome.via_queued and validity_period is not None and to_sent > validity_period:
        return [(0.0, "queued", None), (float(validity_period), "failed", _VALIDITY_EXPIRED)]
    if not outcome.via_queued:
        # Refused before it was queued to a sender: its final status is its only change.
        assert outcome.final_status is not None
        return [(0.0, outcome.final_status, outcome.error_code)]
    steps: list[tuple[str, int | None]] = [("queued", None)]
    offsets = [0.0]
    if outcome.via_sent:
        steps.append(("sent", None))
        offsets.append(to_sent)
    if outcome.final_status is not None:
        steps.append((outcome.final_status, outcome.error_code))
        offsets.append(to_sent + to_final if outcome.via_sent else to_sent)
    if reorder:
        # The offsets stay ascending so the reversed statuses still fire one per step.
        steps.reverse()
    return [(offset, status, code) for offset, (status, code) in zip(offsets, steps, strict=True)]
