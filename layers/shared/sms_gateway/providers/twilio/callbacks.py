"""Twilio's status callbacks: verify X-Twilio-Signature with the subaccount's auth token, then
read the form into a StatusReport in our terms.

A bad signature, an unknown account or a body that is not Twilio's form raise ForbiddenError (the
route answers 403); a token that cannot be read now raises ServiceUnavailableError (503). A
verified callback always becomes a report, even one that names no message of ours or no status:
telling Twilio anything but 204 then would only make it retry.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

from aws_lambda_powertools import Logger

from sms_gateway.config import get_settings
from sms_gateway.domain import clock
from sms_gateway.domain.errors import ForbiddenError, ServiceUnavailableError
from sms_gateway.domain.ids import is_uuid
from sms_gateway.providers.interface import CallbackRequest, StatusReport
from sms_gateway.providers.twilio import credentials, values
from sms_gateway.providers.twilio.signature import is_valid_signature
from sms_gateway.providers.twilio.statuses import provider_event

logger = Logger(child=True)

CALLBACK_PATH = "/v1/webhook/twilio/sms-status"
SIGNATURE_HEADER = "x-twilio-signature"

# Use cases only accept this shape (domain.use_cases), so anything else cannot be one of our
# subaccounts; checking it first also keeps junk from becoming Secrets Manager look-ups.
ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}$")
SERVICE_SID = re.compile(r"^MG[0-9a-f]{32}$")

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


def first(pairs: list[tuple[str, str]], name: str) -> str | None:
    """The first value of a form field (Twilio never repeats one; the signature covers all)."""
    return next((value for key, value in pairs if key == name), None)


def signed_url(raw_query: str, domain_name: str, path: str = CALLBACK_PATH) -> str:
    """The URL Twilio signed: the StatusCallback URL the handoff gave it (or, for `path`, the
    incoming-message URL the operator gave the Messaging Service).

    With no configured public base URL the stack is reached on its default execute-api domain
    (template.yaml gives the handoff that URL, but cannot give it to this function: the HttpApi
    references this function, so a reference back would be a cycle). That domain is the request's
    own domainName, and the $default stage adds no path prefix.
    """
    base = get_settings().public_base_url.rstrip("/") or f"https://{domain_name}"
    url = base + path
    return f"{url}?{raw_query}" if raw_query else url


# One answer for every refusal, so a caller cannot probe which account SIDs are ours.
_REFUSED = "invalid Twilio signature"


def unreadable_body() -> ForbiddenError:
    """Twilio posts UTF-8 form data; a body that is not cannot carry a signature of Twilio's."""
    return ForbiddenError(_REFUSED)


def refuse(reason: str, *, incoming: bool = False, **details: object) -> ForbiddenError:
    """The refusal, logged under its own line per webhook (an alarm counts the callbacks')."""
    extra = {"reason": reason, **details}
    if incoming:
        logger.warning("incoming message refused", extra=extra)
    else:
        logger.warning("status callback refused", extra=extra)
    return ForbiddenError(_REFUSED)


def _auth_token(secret_name: str, *, fresh: bool = False) -> str | None:
    try:
        return credentials.auth_token(secret_name, fresh=fresh)
    except credentials.CredentialsUnavailableError as exc:
        # Not a forgery: a 5xx keeps these apart from the 403s the alarm counts.
        raise ServiceUnavailableError("cannot verify the signature now") from exc


def verify_signature(
    account_sid: str,
    url: str,
    pairs: list[tuple[str, str]],
    signature: str | None,
    *,
    incoming: bool = False,
) -> None:
    """Raise ForbiddenError unless the subaccount's token signed the request; a mismatch with the
    cached token is checked once more against a fresh read (the token may have been rotated)."""
    secret_name = credentials.secret_name_for_account(account_sid)
    token = _auth_token(secret_name)
    if token is None:
        raise refuse("unknown account", incoming=incoming, account_sid=account_sid)
    if is_valid_signature(url, pairs, signature, token):
        return
    if not signature or not fresh_reads.allow(secret_name):
        raise refuse("signature mismatch", incoming=incoming, account_sid=account_sid)
    fresh = _auth_token(secret_name, fresh=True)
    if fresh is None or fresh == token or not is_valid_signature(url, pairs, signature, fresh):
        raise refuse(
            "signature mismatch",
            incoming=incoming,
            account_sid=account_sid,
            secret_read_again=True,
        )
    logger.info("auth token changed; the fresh one verified", extra={"account_sid": account_sid})


def read_status_callback(request: CallbackRequest) -> StatusReport:
    """Verify one callback and read it; see the module's docstring for what raises."""
    pairs = parse_qsl(request.body, keep_blank_values=True)
    account_sid = first(pairs, "AccountSid")
    if not account_sid or not ACCOUNT_SID.fullmatch(account_sid):
        raise refuse("no valid AccountSid")
    url = signed_url(request.raw_query, request.domain_name)
    verify_signature(account_sid, url, pairs, request.headers.get(SIGNATURE_HEADER))

    # Past this point the request is Twilio's: whatever it says, the answer is 204.
    ids = [v for k, v in parse_qsl(request.raw_query, keep_blank_values=True) if k == "message_id"]
    message_id = ids[0] if len(ids) == 1 else None
    if message_id is None or not is_uuid(message_id):
        logger.warning("status callback without a message id", extra={"account_sid": account_sid})
        return StatusReport(None, None)
    status = (first(pairs, "MessageStatus") or first(pairs, "SmsStatus") or "").lower()
    if not status:
        logger.warning("status callback without a status", extra={"message_id": message_id})
        return StatusReport(message_id, None)
    event = provider_event(
        account_sid=account_sid,
        provider_status=values.word(status),
        at=clock.now_iso(),
        message_sid=values.identifier(first(pairs, "MessageSid") or first(pairs, "SmsSid")),
        from_number=values.identifier(first(pairs, "From")),
        error_code=values.small_int(first(pairs, "ErrorCode")),
        num_segments=values.small_int(first(pairs, "NumSegments")),
    )
    service_sid = first(pairs, "MessagingServiceSid")
    return StatusReport(
        message_id,
        event,
        # We always send through a Messaging Service, and Twilio keeps STOP per service.
        opt_out_scope=service_sid if service_sid and SERVICE_SID.fullmatch(service_sid) else None,
        recipient=values.identifier(first(pairs, "To")),
    )
