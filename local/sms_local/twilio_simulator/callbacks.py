"""Status callback delivery: Twilio's form parameters, POSTed signed, with the retry rule."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Final

from sms_local.twilio_simulator.messages import API_VERSION, _Message

CALLBACK_TIMEOUT_SECONDS: Final = 5.0
CALLBACK_MAX_RETRIES: Final = 2
CALLBACK_RETRY_BACKOFF_SECONDS: Final = 0.1
USER_AGENT: Final = "TwilioProxy/1.1"


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


def _post_form(
    opener: urllib.request.OpenerDirector, url: str, params: Mapping[str, str], signature: str
) -> tuple[int | None, str | None]:
    """POST a callback; returns (HTTP status, None) or (None, why no HTTP answer came back)."""
    # The scheme was checked to be http(s) when the message was accepted.
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
            response.read()
            return int(response.status), None
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _should_retry(http_status: int | None) -> bool:
    return http_status is None or http_status >= 500
