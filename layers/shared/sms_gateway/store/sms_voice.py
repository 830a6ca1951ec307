"""AWS End User Messaging SMS's SendTextMessage, called once: botocore's retries are off for this
client (a retry after the request left could text a person twice), and what was raised before
the request left is told apart from what was raised after, which only botocore knows: its
`before-send` event fires once the request is built and signed, right before the HTTP call. What
an answer or an exception means is the provider's business (providers/aws_eum/answers.py)."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from botocore.config import Config

from sms_gateway.config import get_settings
from sms_gateway.store import aws_clients

if TYPE_CHECKING:
    from mypy_boto3_pinpoint_sms_voice_v2.client import PinpointSMSVoiceV2Client
    from mypy_boto3_pinpoint_sms_voice_v2.type_defs import SendTextMessageResultTypeDef

# Whether the request of the call in progress on this thread reached botocore's HTTP send.
_attempt = threading.local()


class NotSentError(Exception):
    """Raised before the request was sent (a parameter botocore refuses, no region, no
    credentials): AWS received nothing. `__cause__` is botocore's exception."""


def _request_leaving(**_: Any) -> None:
    _attempt.left = True


@lru_cache(maxsize=1)
def _client() -> PinpointSMSVoiceV2Client:
    settings = get_settings()
    config = Config(
        connect_timeout=settings.provider_connect_timeout_seconds,
        read_timeout=settings.provider_read_timeout_seconds,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    client = aws_clients.session().client("pinpoint-sms-voice-v2", config=config)
    # This client's own emitter: the hook sees only its requests.
    client.meta.events.register("before-send", _request_leaving)
    return client


def reset() -> None:
    """Drop the cached client (tests and the local stack change endpoints and settings)."""
    _client.cache_clear()


def send_text_message(params: dict[str, Any]) -> SendTextMessageResultTypeDef:
    """The answer to one request; NotSentError for a failure before it was sent, botocore's own
    exception for one after."""
    _attempt.left = False
    try:
        return _client().send_text_message(**params)
    except Exception as exc:
        if not getattr(_attempt, "left", False):
            raise NotSentError(type(exc).__name__) from exc
        raise
