"""Webhook delivery: Twilio's status-callback parameters, and the signed form POST (with the
status callbacks' retry rule) that status callbacks and incoming messages share."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Final, Protocol

from sms_local.twilio_simulator.messages import API_VERSION, _Message

CALLBACK_TIMEOUT_SECONDS: Final = 5.0
CALLBACK_MAX_RETRIES: Final = 2
CALLBACK_RETRY_BACKOFF_SECONDS: Final = 0.1
USER_AGENT: Final = "TwilioProxy/1.1"
ANSWER_BODY_CHARS: Final = 2000


class _Readable(Protocol):
    def read(self, amt: int, /) -> bytes: ...


def _callback_params(message: _Message, status: str, error_code: int | None) -> dict[str, str]:
    params = {
        "AccountSid": message.account_sid,
        "ApiVersion": API_VERSION,
        "From": message.sender,
        "MessageSid": message.sid,
        "MessageStatus": status,
        "SmsSid": message.sid,
        "SmsStatus": status,
        "To": message.to,
    }
    if message.service_sid is not None:
        params["MessagingServiceSid"] = message.service_sid
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params


@dataclass(frozen=True)
class _FormAnswer:
    """What came back from a signed form POST: the HTTP answer, or why none came."""

    http_status: int | None
    content_type: str | None  # the Content-Type header as sent, None without one
    body: str  # the first ``ANSWER_BODY_CHARS`` characters of the answer, decoded
    error: str | None  # why no HTTP answer came back


def _post_form(
    opener: urllib.request.OpenerDirector, url: str, params: Mapping[str, str], signature: str
) -> tuple[int | None, str | None]:
    """POST a callback; returns (HTTP status, None) or (None, why no HTTP answer came back)."""
    answer = _post_form_answer(opener, url, params, signature)
    return answer.http_status, answer.error


def _post_form_answer(
    opener: urllib.request.OpenerDirector, url: str, params: Mapping[str, str], signature: str
) -> _FormAnswer:
    """POST Twilio's form to ``url`` once, signed, as Twilio's webhooks do; never raises for a
    receiver that answers badly or not at all."""
    # The scheme was checked to be http(s) before (message acceptance, inbound request).
    request = urllib.request.Request(  # noqa: S310, RUF100
        url,
        data=urllib.parse.urlencode(params).encode("utf-8"),
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": USER_AGENT,
            "X-Twilio-Signature": signature,
        },
    )
    try:
        with opener.open(request, timeout=CALLBACK_TIMEOUT_SECONDS) as response:
            return _answer(int(response.status), response.headers, response)
    except urllib.error.HTTPError as exc:
        with exc:
            return _answer(exc.code, exc.headers, exc)
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        return _FormAnswer(None, None, "", f"{type(exc).__name__}: {exc}")


def _answer(status: int, headers: Message, response: _Readable) -> _FormAnswer:
    try:
        # At most 4 bytes a character (UTF-8, UTF-32): enough for the characters kept.
        data = response.read(4 * ANSWER_BODY_CHARS + 4)
    except (OSError, http.client.HTTPException):
        # Status and headers arrived; a body cut short is reported as what was read: nothing.
        data = b""
    charset = headers.get_content_charset() or "utf-8"
    try:
        text = data.decode(charset, errors="replace")
    except LookupError:
        text = data.decode("utf-8", errors="replace")
    return _FormAnswer(status, headers.get("Content-Type"), text[:ANSWER_BODY_CHARS], None)


def _should_retry(http_status: int | None) -> bool:
    return http_status is None or http_status >= 500
