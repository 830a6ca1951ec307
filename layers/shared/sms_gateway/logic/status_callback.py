"""Twilio status callbacks: verify the signature, then hand the event to the status machine.

Every outcome but a bad signature is acknowledged (the route answers 204): a duplicate, a
regression, an unknown message or a status that changes nothing is recorded or dropped by
sms_gateway.store.transitions, and telling Twilio anything else would only make it retry. The
exceptions are 503s for what cannot be done now: reading the auth token, or recording an
opt-out that the callback reports (ErrorCode 21610).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from sms_gateway.config import get_settings
from sms_gateway.domain import clock
from sms_gateway.domain.errors import (
    ForbiddenError,
    PhoneInvalidError,
    PhoneLandlineError,
    ServiceUnavailableError,
)
from sms_gateway.domain.ids import is_uuid
from sms_gateway.domain.phone import check_destination
from sms_gateway.domain.redact import mask_phone
from sms_gateway.providers.twilio import credentials as provider_credentials
from sms_gateway.providers.twilio.signature import is_valid_signature
from sms_gateway.store import opt_out_store, transitions
from sms_gateway.store.opt_out_store import UNSUBSCRIBED_ERROR_CODE

logger = Logger(child=True)

CALLBACK_PATH = "/v1/webhook/twilio/sms-status"

# Use cases only accept this shape (domain.use_cases), so anything else cannot be one of our
# subaccounts; checking it first also keeps junk from becoming Secrets Manager look-ups.
_ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-f]{32}$")

# Through a Messaging Service Twilio accepts a send to an unsubscribed number and fails it in the
# callback with UNSUBSCRIBED_ERROR_CODE.
_FAILURE_STATUSES = frozenset({"failed", "undelivered"})

# After an auth token rotation the cached token refuses every genuine callback, and Twilio does
# not retry a 403: a mismatch therefore reads the secret again, past the cache. At most once per
# subaccount per this many seconds, so forged callbacks cost at most that many Secrets Manager
# calls per warm container, whatever their rate. 30 s: short next to the 5-minute token cache
# (the worst case, a forgery just before a rotation, loses at most 30 s of statuses), long enough
# that a flood across 300 warm containers stays near 10 calls a second per subaccount.
FRESH_READ_INTERVAL_SECONDS = 30.0


class FreshReadLimiter:
    """When each secret was last read past the cache. Only secrets that exist get here (an
    unknown account is refused before), so it holds at most one entry per subaccount of ours."""

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, secret_name: str) -> bool:
        """True, and counted, if this secret may be read past the cache now."""
        with self._lock:
            now = self._clock()
            last = self._last.get(secret_name)
            if last is not None and now - last < self._interval:
                return False
            self._last[secret_name] = now
            return True

    def clear(self) -> None:
        with self._lock:
            self._last.clear()


fresh_reads = FreshReadLimiter(FRESH_READ_INTERVAL_SECONDS)


def reset() -> None:
    """Forget the fresh reads (a new sandbox starts without them)."""
    fresh_reads.clear()


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


def _auth_token(secret_name: str, *, fresh: bool = False) -> str | None:
    try:
        return provider_credentials.auth_token(secret_name, fresh=fresh)
    except provider_credentials.CredentialsUnavailableError as exc:
        # Not a forgery: a 5xx keeps these apart from the 403s the alarm counts.
        raise ServiceUnavailableError("cannot verify the signature now") from exc


def _verify_signature(
    account_sid: str, url: str, pairs: list[tuple[str, str]], signature: str | None
) -> None:
    """Raise ForbiddenError unless the subaccount's token signed the request; a mismatch with the
    cached token is checked once more against a fresh read (the token may have been rotated)."""
    secret_name = provider_credentials.secret_name_for_account(account_sid)
    token = _auth_token(secret_name)
    if token is None:
        raise _refuse("unknown account", account_sid=account_sid)
    if is_valid_signature(url, pairs, signature, token):
        return
    if not signature or not fresh_reads.allow(secret_name):
        raise _refuse("signature mismatch", account_sid=account_sid)
    fresh = _auth_token(secret_name, fresh=True)
    if fresh is None or fresh == token or not is_valid_signature(url, pairs, signature, fresh):
        raise _refuse("signature mismatch", account_sid=account_sid, secret_read_again=True)
    logger.info("auth token changed; the fresh one verified", extra={"account_sid": account_sid})


def handle_status_callback(
    *, body: str, raw_query: str, domain_name: str, signature: str | None
) -> None:
    """Verify and apply one callback; raise ForbiddenError when it is not Twilio's, for one of
    our subaccounts, and ServiceUnavailableError when a dependency fails. Returns normally in
    every other case, whether or not anything changed."""
    pairs = parse_qsl(body, keep_blank_values=True)
    account_sid = _first(pairs, "AccountSid")
    if not account_sid or not _ACCOUNT_SID.fullmatch(account_sid):
        raise _refuse("no valid AccountSid")
    _verify_signature(account_sid, signed_url(raw_query, domain_name), pairs, signature)

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
    if applied is not None and _reports_unsubscribed(event):
        _record_opt_out(message_id, _first(pairs, "MessagingServiceSid"), _first(pairs, "To"))


def _reports_unsubscribed(event: transitions.ProviderEvent) -> bool:
    return (
        event.provider_status in _FAILURE_STATUSES and event.error_code == UNSUBSCRIBED_ERROR_CODE
    )


def _record_opt_out(message_id: str, service_sid: str | None, to: str | None) -> None:
    """Put the recipient on the opt-out list of the Messaging Service it answered STOP to, as
    the handoff does for the synchronous 21610, so the next send is refused before Twilio."""
    if not service_sid or not _SERVICE_SID.fullmatch(service_sid):
        # We always send through a service; a callback without one has no scope to record.
        logger.warning("21610 without a Messaging Service", extra={"message_id": message_id})
        return
    number = _e164(to)
    if number is None:
        logger.warning("21610 without a usable To", extra={"message_id": message_id})
        return
    try:
        added = opt_out_store.add_twilio_unsubscribed(service_sid, number)
    except ClientError as exc:
        # The status is applied, but 204 would lose the opt-out without a trace. Twilio does not
        # retry a 5xx by default either, yet a 503 counts in the API's 5xx metrics and access
        # log, and any redelivery of this callback completes the write (the transition is then
        # only recorded, which still leads here). Should it be lost all the same, Twilio keeps
        # refusing the number, and the next send's callback brings the 21610 back.
        logger.error(
            "opt-out not recorded",
            extra={"message_id": message_id, "to": mask_phone(number), "error": str(exc)},
        )
        raise ServiceUnavailableError("cannot record the opt-out now") from exc
    logger.info(
        "recipient opted out by Twilio",
        extra={"message_id": message_id, "to": mask_phone(number), "added": added},
    )


def _e164(to: str | None) -> str | None:
    """The number as the send path stores and looks it up (it was valid when it was sent).

    The message's own to_number would be better still, but apply_provider_event does not return
    the item it reads; the signed To is the same number, normalized the same way."""
    try:
        return check_destination(to).e164 if to else None
    except (PhoneInvalidError, PhoneLandlineError):
        return None
