"""Twilio status callbacks: verify the signature, then hand the event to the status machine.

Every outcome but a bad signature is acknowledged (the route answers 204): a duplicate, a
regression, an unknown message or a status that changes nothing is recorded or dropped by
sms_gateway.transitions, and telling Twilio anything else would only make it retry.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from aws_lambda_powertools import Logger

from sms_gateway import clock, provider_credentials, transitions
from sms_gateway.config import get_settings
from sms_gateway.errors import ForbiddenError, ServiceUnavailableError
from sms_gateway.ids import is_uuid
from sms_gateway.redact import mask_phone
from sms_gateway.twilio_signature import is_valid_signature

logger = Logger(child=True)

CALLBACK_PATH = "/v1/webhook/twilio/sms-status"

# Use cases only accept this shape (sms_gateway.use_cases), so anything else cannot be one of our
# subaccounts; checking it first also keeps junk from becoming Secrets Manager look-ups.
_ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}$")


def _first(pairs: list[tuple[str, str]], name: str) -> str | None:
    """The first value of a form field (Twilio never repeats one; the signature covers all)."""
    return next((value for key, value in pairs if key == name), None)


def _int_or_none(value: str | None) -> int | None:
    # isascii: str.isdigit() also accepts digits such as '²' that int() refuses.
    return int(value) if value and value.isascii() and value.isdigit() else None


def signed_url(raw_query: str, domain_name: str) -> str:
    """The URL Twilio signed: the StatusCallback URL the handoff gave it.

    With no configured public base URL the stack is reached on its default execute-api domain
    (template.yaml gives the handoff that URL, but cannot give it to this function: the HttpApi
    references this function, so a reference back would be a cycle). That domain is the request's
    own domainName, and the $default stage adds no path prefix.
    """
    base = get_settings().public_base_url.rstrip("/") or f"https://{domain_name}"
    url = base + CALLBACK_PATH
    return f"{url}?{raw_query}" if raw_query else url


def _refuse(reason: str, **details: object) -> ForbiddenError:
    # One answer for every cause, so a caller cannot probe which account SIDs are ours.
    logger.warning("status callback refused", extra={"reason": reason, **details})
    return ForbiddenError("invalid Twilio signature")


def handle_status_callback(
    *, body: str, raw_query: str, domain_name: str, signature: str | None
) -> None:
    """Verify and apply one callback; raise ForbiddenError when it is not Twilio's, for one of
    our subaccounts. Returns normally in every other case, whether or not anything changed."""
    pairs = parse_qsl(body, keep_blank_values=True)
    account_sid = _first(pairs, "AccountSid")
    if not account_sid or not _ACCOUNT_SID.fullmatch(account_sid):
        raise _refuse("no valid AccountSid")
    try:
        token = provider_credentials.auth_token(
            provider_credentials.secret_name_for_account(account_sid)
        )
    except provider_credentials.CredentialsUnavailableError as exc:
        # Not a forgery: a 5xx keeps these apart from the 403s the alarm counts.
        raise ServiceUnavailableError("cannot verify the signature now") from exc
    if token is None:
        raise _refuse("unknown account", account_sid=account_sid)
    if not is_valid_signature(signed_url(raw_query, domain_name), pairs, signature, token):
        raise _refuse("signature mismatch", account_sid=account_sid)

    # Past this point the request is Twilio's: whatever it says, the answer is 204.
    ids = [v for k, v in parse_qsl(raw_query, keep_blank_values=True) if k == "message_id"]
    message_id = ids[0] if len(ids) == 1 else None
    if message_id is None or not is_uuid(message_id):
        logger.warning("status callback without a message id", extra={"account_sid": account_sid})
        return
    status = (_first(pairs, "MessageStatus") or _first(pairs, "SmsStatus") or "").lower()
    if not status:
        logger.warning("status callback without a status", extra={"message_id": message_id})
        return
    from_number = _first(pairs, "From") or None
    event = transitions.ProviderEvent(
        account_sid=account_sid,
        provider_status=status,
        at=clock.now_iso(),
        message_sid=_first(pairs, "MessageSid") or _first(pairs, "SmsSid") or None,
        from_number=from_number,
        error_code=_int_or_none(_first(pairs, "ErrorCode")),
        num_segments=_int_or_none(_first(pairs, "NumSegments")),
    )
    applied = transitions.apply_provider_event(message_id, event)
    logger.info(
        "status callback",
        extra={
            "message_id": message_id,
            "provider_status": status,
            # True: the status moved; False: recorded only; None: no such message for the account.
            "applied": applied,
            "error_code": event.error_code,
            "from_number": mask_phone(from_number),
        },
    )
