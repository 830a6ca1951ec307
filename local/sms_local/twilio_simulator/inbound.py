"""Incoming messages: ``POST /_simulator/inbound``'s request checks and the form Twilio posts.

``_parse_inbound`` turns the test's JSON into an ``_InboundRequest`` against the config (which
service owns To, which account signs); ``_inbound_params`` builds Twilio's incoming-message
webhook form; ``_inbound_target`` is the URL it is posted to. Every refusal is a 400 ``_ApiError``
with code 0, as the control endpoint answers.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import phonenumbers

from sms_gateway.domain.segments import count_segments
from sms_local.twilio_simulator.config import SimulatorConfig
from sms_local.twilio_simulator.messages import API_VERSION
from sms_local.twilio_simulator.rules import _MAX_BODY_CHARS, _ApiError, _bad_request

INBOUND_PATH: Final = "/_simulator/inbound"
_REQUIRED_KEYS: Final = ("from", "to", "body")
_FLAG_KEYS: Final = ("test", "duplicate")
# ASCII digits only: str patterns' \d would let other scripts' digits through.
_E164_ASCII: Final = re.compile(r"\+[1-9][0-9]{1,14}")
_TEST_MODE: Final = "mode=test"


@dataclass(frozen=True)
class _InboundRequest:
    sender: str  # the phone that answers (From)
    to: str  # the service's number it answers to
    body: str
    service_sid: str
    account_sid: str
    auth_token: str
    url: str  # where the form goes, with mode=test already added for a test message
    duplicate: bool


def _refuse(message: str) -> _ApiError:
    return _bad_request(0, message)


def _parse_inbound(raw: bytes, config: SimulatorConfig) -> _InboundRequest:
    """Check the JSON request against the config; every problem is a 400 ``_ApiError``."""
    request = _json_object(raw)
    sender = request["from"]
    if not isinstance(sender, str) or not _E164_ASCII.fullmatch(sender):
        raise _refuse("'from' must be an E.164 number: + then 2 to 15 digits, no leading zero")
    to = request["to"]
    if not isinstance(to, str):
        raise _refuse("'to' must be a string")
    service_sid = _owning_service(config.services, to)
    body = request["body"]
    if not isinstance(body, str) or not 1 <= len(body) <= _MAX_BODY_CHARS:
        raise _refuse(f"'body' must be a string of 1 to {_MAX_BODY_CHARS} characters")
    flags = {name: request.get(name, False) for name in _FLAG_KEYS}
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise _refuse(f"'{name}' must be true or false")
    account_sid = config.service_accounts.get(service_sid)
    if account_sid is None:
        raise _refuse(f"the Messaging Service {service_sid} has no account in service_accounts")
    auth_token = config.accounts.get(account_sid)
    if auth_token is None:
        raise _refuse(f"the account {account_sid} of {service_sid} has no token in accounts")
    url = _inbound_target(config.inbound_url, test=flags["test"])
    return _InboundRequest(
        sender, to, body, service_sid, account_sid, auth_token, url, flags["duplicate"]
    )


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        request = json.loads(raw)
    except ValueError:
        request = None
    allowed = (*_REQUIRED_KEYS, *_FLAG_KEYS)
    if not isinstance(request, dict):
        raise _refuse(f"send a JSON object with the keys {', '.join(allowed)}")
    unknown = sorted(set(request) - set(allowed))
    if unknown:
        raise _refuse(f"unknown keys {unknown}; allowed: {', '.join(allowed)}")
    missing = [key for key in _REQUIRED_KEYS if key not in request]
    if missing:
        raise _refuse(f"missing keys {missing}")
    return request


def _owning_service(services: Mapping[str, list[str]], to: str) -> str:
    """The first service whose pool lists ``to``; a phone cannot answer an alphanumeric sender,
    so ``to`` must be a number."""
    for service_sid, pool in services.items():
        if to in pool:
            if not _E164_ASCII.fullmatch(to):
                raise _refuse(f"'to' {to!r} is an alphanumeric sender ID, which cannot be answered")
            return service_sid
    raise _refuse(f"'to' {to!r} is in no configured Messaging Service's sender pool")


def _inbound_target(inbound_url: str | None, *, test: bool) -> str:
    if inbound_url is None:
        raise _refuse("no inbound_url is configured")
    parts = urllib.parse.urlsplit(inbound_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _refuse(f"the inbound_url {inbound_url!r} is not an absolute http(s) URL")
    if not test:
        return inbound_url
    # Added as text rather than through urlunsplit, which would respell the rest of the URL.
    base, hash_mark, fragment = inbound_url.partition("#")
    if "?" not in base:
        separator = "?"
    elif base.endswith(("?", "&")):
        separator = ""
    else:
        separator = "&"
    return f"{base}{separator}{_TEST_MODE}{hash_mark}{fragment}"


def _region(number: str) -> str:
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return ""
    return region or ""


def _inbound_params(request: _InboundRequest, message_sid: str) -> dict[str, str]:
    """The form Twilio posts to a Messaging Service's Inbound Request URL for an incoming SMS."""
    return {
        "MessageSid": message_sid,
        "SmsMessageSid": message_sid,
        "SmsSid": message_sid,
        "AccountSid": request.account_sid,
        "MessagingServiceSid": request.service_sid,
        "From": request.sender,
        "To": request.to,
        "Body": request.body,
        "NumSegments": str(count_segments(request.body).segments),
        "NumMedia": "0",
        "SmsStatus": "received",
        "ApiVersion": API_VERSION,
        "FromCountry": _region(request.sender),
        "FromState": "",
        "FromCity": "",
        "FromZip": "",
        "ToCountry": _region(request.to),
        "ToState": "",
        "ToCity": "",
        "ToZip": "",
    }
