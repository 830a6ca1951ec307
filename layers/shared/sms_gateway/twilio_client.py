"""The Twilio Messages API adapter. urllib3 is already loaded by botocore, so it costs nothing at
cold start, and it tells a connection that never opened (safe to retry) from a read that timed
out after the request was sent (outcome unknown: never resent)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from sms_gateway.config import get_settings


@dataclass(frozen=True, slots=True)
class Accepted:
    message_sid: str
    num_segments: int | None
    from_number: str | None


@dataclass(frozen=True, slots=True)
class Rejected:
    """Twilio refused the message; it will never be sent."""

    error_code: int
    http_status: int


@dataclass(frozen=True, slots=True)
class RetryLater:
    """The request certainly did not create a message (refused connection, 429, 503)."""

    reason: str


@dataclass(frozen=True, slots=True)
class OutcomeUnknown:
    """The request may have reached Twilio; resending could text a person twice."""

    reason: str


HandoffResult = Accepted | Rejected | RetryLater | OutcomeUnknown

# Generic Twilio code for a 4xx without a parseable body.
_FALLBACK_REJECTION = 30000


@lru_cache(maxsize=1)
def _pool() -> urllib3.PoolManager:
    settings = get_settings()
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(
            connect=settings.provider_connect_timeout_seconds,
            read=settings.provider_read_timeout_seconds,
        ),
        # Retries are ours to decide, by outcome: never let the client resend a POST.
        retries=False,
    )


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
) -> HandoffResult:
    url = (
        f"{get_settings().twilio_api_base_url.rstrip('/')}/2010-04-01/Accounts/"
        f"{quote(account_sid, safe='')}/Messages.json"
    )
    credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
    form = urlencode(
        {
            "To": to,
            "Body": body,
            "MessagingServiceSid": messaging_service_sid,
            "StatusCallback": status_callback,
        }
    )
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
    except (ConnectTimeoutError, NewConnectionError) as exc:
        return RetryLater(f"connection failed: {type(exc).__name__}")
    except MaxRetryError as exc:
        if isinstance(exc.reason, ConnectTimeoutError | NewConnectionError):
            return RetryLater(f"connection failed: {type(exc.reason).__name__}")
        return OutcomeUnknown(f"request failed: {type(exc.reason).__name__}")
    except (ReadTimeoutError, ProtocolError) as exc:
        return OutcomeUnknown(f"no answer after sending: {type(exc).__name__}")
    return _interpret(response.status, response.data)


def _interpret(status: int, raw: bytes) -> HandoffResult:
    data = _json(raw)
    if status in (200, 201) and isinstance(data.get("sid"), str):
        segments = data.get("num_segments")
        return Accepted(
            message_sid=data["sid"],
            num_segments=int(str(segments)) if str(segments or "").isdigit() else None,
            from_number=data.get("from") or None,
        )
    if status in (429, 503):
        return RetryLater(f"HTTP {status}")
    if 400 <= status < 500:
        code = data.get("code")
        return Rejected(int(code) if isinstance(code, int) else _FALLBACK_REJECTION, status)
    return OutcomeUnknown(f"HTTP {status}")


def _json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
