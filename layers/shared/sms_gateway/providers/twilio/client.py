"""The Twilio Messages API adapter. urllib3 is already loaded by botocore, so it costs nothing at
cold start.

What matters about a failed request is whether any byte of it left this process: before that
(connection refused, a connect timeout, a TLS handshake that failed or timed out, a name that did
not resolve) Twilio certainly created nothing and the send may be retried; after it, the request
may have reached Twilio and is never resent. urllib3's exception types do not tell the two apart
(a TLS error or a timeout can happen on either side of the request), so the connections used
here note the moment the request starts to go out.
"""

from __future__ import annotations

import base64
import json
import threading
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError

from sms_gateway.config import get_settings
from sms_gateway.providers.results import (
    Accepted,
    HandoffResult,
    OutcomeUnknown,
    Rejected,
    RetryLater,
)
from sms_gateway.providers.twilio import statuses, values

__all__ = [
    "Accepted",
    "HandoffResult",
    "OutcomeUnknown",
    "Rejected",
    "RetryLater",
    "create_message",
    "reset",
]


# Generic Twilio code for a 4xx without a parseable body.
_FALLBACK_REJECTION = 30000


# Whether the request of the attempt in progress on this thread has started to go out.
_attempt = threading.local()


def _request_leaving(connection: HTTPConnection) -> None:
    if connection.sock is None:
        # http.client would connect inside send(); connect first, so that connection and TLS
        # failures surface while nothing of the request has been sent.
        connection.connect()
    _attempt.request_left = True


class _TrackedHTTPConnection(HTTPConnection):
    def send(self, data: Any) -> None:
        _request_leaving(self)
        super().send(data)


class _TrackedHTTPSConnection(HTTPSConnection):
    def send(self, data: Any) -> None:
        _request_leaving(self)
        super().send(data)


class _TrackedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


@lru_cache(maxsize=1)
def _pool() -> urllib3.PoolManager:
    settings = get_settings()
    manager = urllib3.PoolManager(
        timeout=urllib3.Timeout(
            connect=settings.provider_connect_timeout_seconds,
            read=settings.provider_read_timeout_seconds,
        ),
        # Retries are ours to decide, by outcome: never let the client resend a POST. (With
        # retries off, urllib3 raises each error as it is, never wrapped in MaxRetryError.)
        retries=False,
    )
    manager.pool_classes_by_scheme = {
        "http": _TrackedHTTPConnectionPool,
        "https": _TrackedHTTPSConnectionPool,
    }
    return manager


def reset() -> None:
    _pool.cache_clear()


def create_message(
    *,
    account_sid: str,
    auth_token: str,
    to: str,
    body: str,
    messaging_service_sid: str,
    status_callback: str,
    sender_id: str | None = None,
    validity_period: int | None = None,
) -> HandoffResult:
    """Ask Twilio to send one message. Raises only while no byte of the request has been sent,
    so a caller that catches an exception knows Twilio created nothing.

    `sender_id`: an alphanumeric sender, sent as From beside the Messaging Service (whose
    settings still apply; Twilio uses a given From instead of picking from the pool).
    `validity_period`: Twilio's ValidityPeriod, the seconds it may keep the message queued."""
    url = (
        f"{get_settings().twilio_api_base_url.rstrip('/')}/2010-04-01/Accounts/"
        f"{quote(account_sid, safe='')}/Messages.json"
    )
    credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
    fields = {
        "To": to,
        "Body": body,
        "MessagingServiceSid": messaging_service_sid,
        "StatusCallback": status_callback,
    }
    if sender_id is not None:
        fields["From"] = sender_id
    if validity_period is not None:
        fields["ValidityPeriod"] = str(validity_period)
    form = urlencode(fields)
    _attempt.request_left = False
    try:
        response = _pool().request(
            "POST",
            url,
            body=form,
            headers={
                "Authorization": f"Basic {credentials}",
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )
    except Exception as exc:
        return _failed_request(exc)
    return _interpret(response.status, response.data)


def _failed_request(exc: Exception) -> HandoffResult:
    """What a request that raised means. Anything raised once the request had started to go out
    leaves the outcome unknown. Before that, a network failure (urllib3's errors, raised as
    they are with retries off) is worth retrying, and anything else is raised again: a bug,
    for which the caller knows nothing was sent."""
    name = type(exc).__name__
    if getattr(_attempt, "request_left", False):
        return OutcomeUnknown(f"no answer after sending: {name}")
    if isinstance(exc, HTTPError | OSError):
        return RetryLater(f"connection failed: {name}")
    raise exc


def _interpret(status: int, raw: bytes) -> HandoffResult:
    data = _json(raw)
    if status in (200, 201) and isinstance(data.get("sid"), str):
        segments = data.get("num_segments")
        return Accepted(
            message_sid=data["sid"],
            num_segments=values.small_int(segments),
            from_number=data.get("from") or None,
        )
    code = data.get("code")
    known = values.small_int(code) if isinstance(code, int) else None
    if status in (429, 503):
        # A 429 is one account's rate, not Twilio's health.
        return RetryLater(f"HTTP {status}", known, provider_unavailable=status == 503)
    if 400 <= status < 500:
        # Twilio's error codes are ours as they are (see statuses.py).
        error_code = _FALLBACK_REJECTION if known is None else known
        return Rejected(error_code, status, recipient=error_code in statuses.RECIPIENT_ERRORS)
    return OutcomeUnknown(f"HTTP {status}")


def _json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}
