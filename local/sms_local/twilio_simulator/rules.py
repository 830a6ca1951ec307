"""The rules Twilio applies to a create request.

Basic auth, the form fields (To, Body, From or MessagingServiceSid, ValidityPeriod), From as a
number or an alphanumeric sender ID, the Messaging Service,
Twilio's magic test numbers for To, the body length, the StatusCallback URL, the throttle
suffixes, and the choice of a sender from a service's pool (reachability, area-code geomatch).
Every refusal is an ``_ApiError``, which the server answers as Twilio's error JSON.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sms_local.twilio_simulator.config import SimulatorConfig

_MAX_BODY_CHARS: Final = 1600
_E164: Final = re.compile(r"\+[1-9]\d{1,14}")
_NANP: Final = re.compile(r"\+1\d{10}")

_UNSUBSCRIBED_TO: Final = "+15005550004"
_UNSUBSCRIBED_ERROR: Final = (21610, "Attempt to send to unsubscribed recipient")
_MAGIC_TO_ERRORS: Final[Mapping[str, tuple[int, str]]] = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: {to}, is not currently reachable via SMS."),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the"
        " 'To' number: {to}.",
    ),
    _UNSUBSCRIBED_TO: _UNSUBSCRIBED_ERROR,
    "+15005550009": (21614, "'To' number {to} is not a valid mobile number"),
}
_THROTTLE_SUFFIXES: Final[Mapping[str, tuple[int, int, str]]] = {
    "5550429": (429, 20429, "Too Many Requests"),
    "5550503": (503, 20503, "Service unavailable"),
}
_SLOW_SUFFIX: Final = "5550777"
# Twilio's alphanumeric sender: up to 11 of A-Z, a-z, 0-9, space, -, +, _ and &, not digits only
# (AlphaSender resource).
_ALPHA_SENDER: Final = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 +_&-]{1,11}")
# ValidityPeriod: whole seconds, 1 to 36,000 (10 hours, also the default).
_MAX_VALIDITY_SECONDS: Final = 36_000


class _ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def _bad_request(code: int, message: str) -> _ApiError:
    return _ApiError(400, code, message)


def _unauthorized() -> _ApiError:
    return _ApiError(401, 20003, "Authenticate")


def _outage() -> _ApiError:
    """What every create gets while the ``outage`` knob is on."""
    return _ApiError(503, 20503, "Service unavailable")


def _not_found(path: str) -> _ApiError:
    return _ApiError(404, 20404, f"The requested resource {path} was not found")


@dataclass(frozen=True)
class _CreateRequest:
    to: str
    body: str
    sender: str | None
    service_sid: str | None
    status_callback: str | None
    validity_period: int | None = None


# --- request parsing and validation -------------------------------------------------------------


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, separator, password = decoded.partition(":")
    return (user, password) if separator else None


def _token_matches(expected: str | None, given: str) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def _parse_form(body: bytes) -> dict[str, str]:
    form: dict[str, str] = {}
    text = body.decode("utf-8", errors="replace")
    for name, value in urllib.parse.parse_qsl(text, keep_blank_values=True):
        form.setdefault(name, value)
    return form


def _parse_create(form: Mapping[str, str]) -> _CreateRequest:
    to = form.get("To", "")
    if not to:
        raise _bad_request(21604, "A 'To' phone number is required.")
    body = form.get("Body", "")
    if not body:
        raise _bad_request(21602, "Message body is required.")
    sender = form.get("From") or None
    service_sid = form.get("MessagingServiceSid") or None
    if sender is None and service_sid is None:
        raise _bad_request(21603, "A 'From' phone number is required.")
    return _CreateRequest(
        to,
        body,
        sender,
        service_sid,
        form.get("StatusCallback") or None,
        _validity_period(form.get("ValidityPeriod")),
    )


def _validity_period(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= _MAX_VALIDITY_SECONDS:
        raise _bad_request(
            21624, f"ValidityPeriod must be an integer from 1 to {_MAX_VALIDITY_SECONDS}."
        )
    return int(raw)


def _check_from(sender: str | None, to: str) -> None:
    """A From is a number or an alphanumeric sender ID; an alphanumeric one cannot reach a
    North American number."""
    if sender is None or _E164.fullmatch(sender):
        return
    if not _ALPHA_SENDER.fullmatch(sender):
        raise _bad_request(
            21212,
            f"The 'From' number {sender} is not a valid phone number or alphanumeric sender ID.",
        )
    if to.startswith("+1"):
        raise _bad_request(
            21612,
            f"The 'To' phone number: {to}, is not currently reachable using the 'From' phone"
            f" number: {sender} via SMS.",
        )


def _service_pool(services: Mapping[str, list[str]], service_sid: str | None) -> list[str]:
    if service_sid is None:
        return []
    pool = services.get(service_sid)
    if pool is None:
        raise _bad_request(21701, f"The Messaging Service Sid {service_sid} is invalid.")
    return pool


def _unsubscribed_is_reported_later(request: _CreateRequest, config: SimulatorConfig) -> bool:
    """Twilio answers a Messaging Service send to an opted-out number with 201 and fails it in
    the status callback; only a send without a service is refused synchronously."""
    return request.service_sid is not None and not config.reject_unsubscribed_synchronously


def _check_to(to: str, *, unsubscribed_later: bool) -> None:
    magic = _MAGIC_TO_ERRORS.get(to)
    if magic is not None and not (unsubscribed_later and to == _UNSUBSCRIBED_TO):
        code, template = magic
        raise _bad_request(code, template.format(to=to))
    if not _E164.fullmatch(to):
        raise _bad_request(21211, f"The 'To' number {to} is not a valid phone number.")


def _check_body(body: str) -> None:
    if len(body) > _MAX_BODY_CHARS:
        raise _bad_request(
            21617, f"The concatenated message body exceeds the {_MAX_BODY_CHARS} character limit."
        )


def _check_status_callback(url: str | None) -> None:
    if url is None:
        return
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _bad_request(21609, f"The StatusCallback URL {url} is not a valid URL.")


def _check_throttle(to: str) -> None:
    for suffix, (status, code, message) in _THROTTLE_SUFFIXES.items():
        if to.endswith(suffix):
            raise _ApiError(status, code, message)


# --- sender selection ---------------------------------------------------------------------------


def _can_reach(sender: str, to: str) -> bool:
    # US/CA handsets cannot receive from alphanumeric sender IDs.
    return not to.startswith("+1") or _E164.fullmatch(sender) is not None


def _pick_sender(pool: Sequence[str], to: str, geomatch: bool) -> str | None:
    eligible = [sender for sender in pool if _can_reach(sender, to)]
    if geomatch and _NANP.fullmatch(to):
        area_code = to[2:5]
        for sender in eligible:
            if _NANP.fullmatch(sender) and sender[2:5] == area_code:
                return sender
    return eligible[0] if eligible else None
