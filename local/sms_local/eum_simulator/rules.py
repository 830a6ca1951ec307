"""The rules End User Messaging SMS applies to a SendTextMessage request.

The SigV4 Authorization header's shape, the AWS JSON 1.0 envelope (target, content type, a JSON
object), the members' constraints exactly as the service model (botocore's
``pinpoint-sms-voice-v2`` service-2.json) states them, the E.164 destination, the account's
origination identities and configuration sets, and the test destination numbers. Every refusal is
an ``_AwsError``, which the server answers as an AWS JSON error.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sms_local.eum_simulator.config import EumSimulatorConfig

TARGET_PREFIX: Final = "PinpointSMSVoiceV2"
SEND_TEXT_MESSAGE: Final = "SendTextMessage"
JSON_CONTENT_TYPE: Final = "application/x-amz-json-1.0"
_SIGV4_PREFIX: Final = "AWS4-HMAC-SHA256 Credential="

# What AWS checks beyond the model's pattern: a destination in E.164 (``+``, then at most 15
# digits, no leading zero).
_E164: Final = re.compile(r"\+[1-9]\d{1,14}")

# --- test destination numbers (see the package docstring) ---------------------------------------

_INVALID_DESTINATION: Final = "+15005550001"
_BLOCKED_COUNTRY_DESTINATION: Final = "+15005550003"
_OPTED_OUT_DESTINATION: Final = "+15005550004"
_THROTTLED_SUFFIX: Final = "5550429"
_INTERNAL_ERROR_SUFFIX: Final = "5550500"
_UNAVAILABLE_SUFFIX: Final = "5550503"
_SLOW_SUFFIX: Final = "5550777"


class _AwsError(Exception):
    """An AWS JSON error: ``__type`` (the code), ``message``, and the exception shape's members."""

    def __init__(self, status: int, code: str, message: str, **members: Any) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.members = members

    def to_json(self) -> dict[str, Any]:
        return {"__type": self.code, "message": self.message, **self.members}


def _validation(reason: str, message: str, fields: list[tuple[str, str]]) -> _AwsError:
    return _AwsError(
        400,
        "ValidationException",
        message,
        Reason=reason,
        Fields=[{"Name": name, "Message": text} for name, text in fields],
    )


def _field_errors(reason: str, fields: list[tuple[str, str]]) -> _AwsError:
    count = len(fields)
    detail = "; ".join(f"Value at '{name}' failed to satisfy constraint: {t}" for name, t in fields)
    plural = "error" if count == 1 else "errors"
    return _validation(reason, f"{count} validation {plural} detected: {detail}", fields)


def _serialization(message: str) -> _AwsError:
    return _AwsError(400, "SerializationException", message)


def _unknown_operation(target: str | None) -> _AwsError:
    return _AwsError(400, "UnknownOperationException", f"Unknown operation {target or ''}".strip())


def _missing_authentication() -> _AwsError:
    return _AwsError(403, "MissingAuthenticationTokenException", "Missing Authentication Token")


def _incomplete_signature() -> _AwsError:
    return _AwsError(
        403,
        "IncompleteSignatureException",
        "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' of an"
        " AWS4-HMAC-SHA256 signature.",
    )


def _too_large(limit: int) -> _AwsError:
    return _AwsError(
        413, "RequestEntityTooLargeException", f"Request body must be at most {limit} bytes"
    )


def _service_unavailable() -> _AwsError:
    return _AwsError(503, "ServiceUnavailableException", "Service Unavailable")


def _not_found(path: str) -> _AwsError:
    return _AwsError(404, "UnknownOperationException", f"No resource at {path}")


# --- authentication and envelope ----------------------------------------------------------------


def _check_authorization(header: str | None) -> None:
    """Shape only: the simulator knows no keys. AWS answers 403 to a request without a
    signature (MissingAuthenticationToken) or with one that is not SigV4 (IncompleteSignature)."""
    if not header:
        raise _missing_authentication()
    if not header.startswith(_SIGV4_PREFIX):
        raise _incomplete_signature()


def _check_content_type(content_type: str | None) -> None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != JSON_CONTENT_TYPE:
        raise _AwsError(
            400,
            "UnknownOperationException",
            f"Content-Type must be {JSON_CONTENT_TYPE}, not {content_type!r}",
        )


def _operation(target: str | None) -> str:
    """The operation an ``X-Amz-Target`` names; only SendTextMessage is implemented."""
    if target != f"{TARGET_PREFIX}.{SEND_TEXT_MESSAGE}":
        raise _unknown_operation(target)
    return SEND_TEXT_MESSAGE


# --- the service model's constraints ------------------------------------------------------------


@dataclass(frozen=True)
class _StringRule:
    min_length: int
    max_length: int
    pattern: str | None = None
    enum: tuple[str, ...] | None = None

    def problems(self, value: str) -> list[str]:
        found: list[str] = []
        if len(value) < self.min_length:
            found.append(f"Member must have length greater than or equal to {self.min_length}")
        if len(value) > self.max_length:
            found.append(f"Member must have length less than or equal to {self.max_length}")
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            found.append(f"Member must satisfy regular expression pattern: {self.pattern}")
        if self.enum is not None and value not in self.enum:
            found.append(f"Member must satisfy enum value set: [{', '.join(self.enum)}]")
        return found


_UNBOUNDED: Final = 1 << 31
_PHONE_NUMBER: Final = _StringRule(1, 20, r"\+?[1-9][0-9]{1,18}")
_ORIGINATION_IDENTITY: Final = _StringRule(1, 256, r"[A-Za-z0-9_:/\+-]+")
_MESSAGE_BODY: Final = _StringRule(1, 1600, r"(?!\s*$)[\s\S]+")
_MESSAGE_TYPE: Final = _StringRule(0, _UNBOUNDED, enum=("TRANSACTIONAL", "PROMOTIONAL"))
_KEYWORD: Final = _StringRule(1, 30, r"[ \S]+")
_NAME_OR_ARN: Final = _StringRule(1, 256, r"[A-Za-z0-9_:/-]+")
_MAX_PRICE: Final = _StringRule(2, 8, r"[0-9]{0,2}\.[0-9]{1,5}")
_CONTEXT_KEY: Final = _StringRule(1, 100, r"\S+")
_CONTEXT_VALUE: Final = _StringRule(1, 800, r"(?!\s)^[\s\S]+(?<!\s)")
_COUNTRY_PARAMETER_KEY: Final = _StringRule(0, _UNBOUNDED, enum=("IN_TEMPLATE_ID", "IN_ENTITY_ID"))
_COUNTRY_PARAMETER_VALUE: Final = _StringRule(1, 64, r"\S+")
_TIME_TO_LIVE: Final = (5, 259_200)
_CONTEXT_MAX_ENTRIES: Final = 5
_COUNTRY_PARAMETERS_MAX_ENTRIES: Final = 10

_STRING_MEMBERS: Final[Mapping[str, _StringRule]] = {
    "DestinationPhoneNumber": _PHONE_NUMBER,
    "OriginationIdentity": _ORIGINATION_IDENTITY,
    "MessageBody": _MESSAGE_BODY,
    "MessageType": _MESSAGE_TYPE,
    "Keyword": _KEYWORD,
    "ConfigurationSetName": _NAME_OR_ARN,
    "MaxPrice": _MAX_PRICE,
    "ProtectConfigurationId": _NAME_OR_ARN,
}
_MAP_MEMBERS: Final[Mapping[str, tuple[_StringRule, _StringRule, int]]] = {
    "Context": (_CONTEXT_KEY, _CONTEXT_VALUE, _CONTEXT_MAX_ENTRIES),
    "DestinationCountryParameters": (
        _COUNTRY_PARAMETER_KEY,
        _COUNTRY_PARAMETER_VALUE,
        _COUNTRY_PARAMETERS_MAX_ENTRIES,
    ),
}
_INTEGER_MEMBERS: Final = frozenset({"TimeToLive"})
_BOOLEAN_MEMBERS: Final = frozenset({"DryRun", "MessageFeedbackEnabled"})
_REQUIRED_MEMBERS: Final = ("DestinationPhoneNumber",)
_MEMBERS: Final = frozenset({*_STRING_MEMBERS, *_MAP_MEMBERS, *_INTEGER_MEMBERS, *_BOOLEAN_MEMBERS})


@dataclass(frozen=True)
class _SendRequest:
    destination: str
    origination_identity: str
    body: str
    message_type: str
    configuration_set: str | None
    time_to_live: int | None
    context: dict[str, str] | None
    dry_run: bool


def _parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8")) if body.strip() else {}
    except (UnicodeDecodeError, ValueError):
        raise _serialization("Request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _serialization("Request body must be a JSON object")
    # JSON null is an absent member, as AWS reads it.
    return {name: value for name, value in data.items() if value is not None}


def _check_types(data: Mapping[str, Any]) -> None:
    """A member of the wrong JSON type cannot be deserialized: SerializationException."""
    checks: list[tuple[frozenset[str], Callable[[Any], bool], str]] = [
        (frozenset(_STRING_MEMBERS), lambda v: isinstance(v, str), "a string"),
        (_INTEGER_MEMBERS, lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
        (_BOOLEAN_MEMBERS, lambda v: isinstance(v, bool), "a boolean"),
        (
            frozenset(_MAP_MEMBERS),
            lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
            "an object of strings",
        ),
    ]
    for names, is_valid, expected in checks:
        for name in sorted(names & set(data)):
            if not is_valid(data[name]):
                raise _serialization(f"{name} must be {expected}")


def _model_problems(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = [
        (name, "Member is not in the request's shape") for name in data if name not in _MEMBERS
    ]
    problems += [
        (name, "Member must not be null") for name in _REQUIRED_MEMBERS if name not in data
    ]
    for name, rule in _STRING_MEMBERS.items():
        if name in data:
            problems += [(name, text) for text in rule.problems(data[name])]
    low, high = _TIME_TO_LIVE
    if "TimeToLive" in data and not low <= data["TimeToLive"] <= high:
        problems.append(
            ("TimeToLive", f"Member must have value between {low} and {high}, inclusive")
        )
    for name, (key_rule, value_rule, max_entries) in _MAP_MEMBERS.items():
        entries: dict[str, str] = data.get(name, {})
        if len(entries) > max_entries:
            problems.append((name, f"Member must have length less than or equal to {max_entries}"))
        for key, value in entries.items():
            problems += [(name, f"Key '{key}': {text}") for text in key_rule.problems(key)]
            problems += [(name, f"Value of '{key}': {text}") for text in value_rule.problems(value)]
    return problems


def _parse_send(body: bytes) -> _SendRequest:
    """The request, checked against the service model (FIELD_VALIDATION_FAILED), then for what
    the simulator always needs (MISSING_PARAMETER) and for an E.164 destination
    (INVALID_PARAMETER)."""
    data = _parse_json_object(body)
    _check_types(data)
    problems = _model_problems(data)
    if problems:
        raise _field_errors("FIELD_VALIDATION_FAILED", problems)
    missing = [
        (name, "Member must not be null")
        for name in ("OriginationIdentity", "MessageBody")
        if name not in data
    ]
    if missing:
        raise _field_errors("MISSING_PARAMETER", missing)
    destination: str = data["DestinationPhoneNumber"]
    _check_destination_number(destination)
    context = data.get("Context")
    return _SendRequest(
        destination=destination,
        origination_identity=data["OriginationIdentity"],
        body=data["MessageBody"],
        message_type=data.get("MessageType", "TRANSACTIONAL"),
        configuration_set=data.get("ConfigurationSetName"),
        time_to_live=data.get("TimeToLive"),
        context=dict(context) if context else None,
        dry_run=data.get("DryRun", False),
    )


def _check_destination_number(destination: str) -> None:
    if not _E164.fullmatch(destination):
        problem = "Destination phone number must be in E.164 format (+ and up to 15 digits)"
    elif destination == _INVALID_DESTINATION:
        problem = f"{destination} is not a valid phone number"
    else:
        return
    raise _validation(
        "INVALID_PARAMETER",
        f"Invalid destination phone number: {problem}",
        [("DestinationPhoneNumber", problem)],
    )


# --- the account's resources --------------------------------------------------------------------


def _identity_resource_type(identity: str) -> str:
    """The resource an OriginationIdentity names, by its shape: a pool, a phone number or a
    sender ID (their ids or ARNs)."""
    if ":pool/" in identity or identity.startswith("pool-"):
        return "pool"
    if (
        ":phone-number/" in identity
        or identity.startswith("phone-")
        or re.fullmatch(r"\+?\d+", identity)
    ):
        return "phone-number"
    return "sender-id"


def _origination_number(config: EumSimulatorConfig, identity: str) -> str:
    number = config.origination_identities.get(identity)
    if number is None:
        resource_type = _identity_resource_type(identity)
        raise _AwsError(
            400,
            "ResourceNotFoundException",
            f"Resource of type {resource_type} with id {identity} was not found",
            ResourceType=resource_type,
            ResourceId=identity,
        )
    return number


def _configuration_set_topic(config: EumSimulatorConfig, name: str | None) -> str | None:
    if name is None:
        return None
    if name not in config.configuration_sets:
        raise _AwsError(
            400,
            "ResourceNotFoundException",
            f"Resource of type configuration-set with id {name} was not found",
            ResourceType="configuration-set",
            ResourceId=name,
        )
    return config.configuration_sets[name]


# --- test destination numbers -------------------------------------------------------------------


def _check_destination_rules(destination: str) -> None:
    """The test numbers that refuse a send (after every other check)."""
    if destination == _BLOCKED_COUNTRY_DESTINATION:
        raise _validation(
            "DESTINATION_COUNTRY_BLOCKED",
            f"The account cannot send to the country of {destination}",
            [("DestinationPhoneNumber", "Destination country is blocked for this account")],
        )
    if destination == _OPTED_OUT_DESTINATION:
        raise _AwsError(
            400,
            "ConflictException",
            f"The destination phone number {destination} is opted out",
            Reason="DESTINATION_PHONE_NUMBER_OPTED_OUT",
            ResourceType="opted-out-number",
            ResourceId=destination,
        )
    if destination.endswith(_THROTTLED_SUFFIX):
        raise _AwsError(400, "ThrottlingException", "Rate exceeded")
    if destination.endswith(_INTERNAL_ERROR_SUFFIX):
        raise _AwsError(
            500,
            "InternalServerException",
            "Internal server error",
            RequestId=str(uuid.uuid4()),
        )
    if destination.endswith(_UNAVAILABLE_SUFFIX):
        raise _service_unavailable()


def _is_slow(destination: str) -> bool:
    return destination.endswith(_SLOW_SUFFIX)
