"""Status webhooks to the caller (delivery receipts): which change of a message is an event, what
the receiver gets, and how it is signed (the Standard Webhooks specification,
standardwebhooks.com). Pure: the stream record's images in, the request's parts out.

The signature is the specification's, made by its reference library (`standardwebhooks`, no
dependencies of its own): `v1,` and the base64 HMAC-SHA256, keyed with the base64-decoded part of
the `whsec_` secret, of "{webhook-id}.{webhook-timestamp}.{payload}", where the payload is the
POST body or, for GET, the query string.
"""

from __future__ import annotations

import base64
import json
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, ValidationError
from standardwebhooks import Webhook

from sms_gateway.domain.messages import Message, MessageStatus
from sms_gateway.domain.queue_delays import MAX_RETRY_DELAY_SECONDS

if TYPE_CHECKING:
    # Only named: the send path imports this module and need not build the inbound model.
    from sms_gateway.domain.inbound import InboundMessage

S = MessageStatus

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
# 32 random bytes: the specification asks for 24 to 64.
SECRET_BYTES = 32

# The statuses a receiver hears about, and the event type of each.
EVENT_TYPES: dict[MessageStatus, str] = {
    S.SENT: "message.sent",
    S.DELIVERED: "message.delivered",
    S.UNDELIVERED: "message.undelivered",
    S.FAILED: "message.failed",
    S.CANCELED: "message.canceled",
}

# A reply to a message (reply forwarding), one event per reply: its webhook-id is the reply's id
# and this sequence.
REPLY_EVENT = "message.reply"
REPLY_SEQUENCE = 1

CallbackMethod = Literal["POST", "GET"]
DEFAULT_METHOD: CallbackMethod = "POST"

# Each delay of the schedule is stretched by up to this fraction at random, so that the
# retries of many events that failed together (a receiver's outage) do not come back together.
RETRY_JITTER = 0.2


class WebhookJob(BaseModel):
    """One event for one receiver: what the delivery queue carries. `data` is the message as the
    event saw it (the stream record's new image), not as it is when the job runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_id: str
    workspace_id: str
    message_id: str
    type: str
    sequence: int
    timestamp: str
    url: str
    method: CallbackMethod
    data: dict[str, Any]


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def status_sequence(message: Message) -> int:
    """How many status transitions the message has had, its creation included: it grows with
    each applied transition, so a receiver can drop an event older than one it has."""
    return sum(1 for entry in message.history if entry.status is not None and entry.applied)


def webhook_id_for(message_id: str, sequence: int) -> str:
    """Stable across every retry and duplicate of one event: the receiver's dedupe key."""
    return f"msg_{message_id.replace('-', '')}_{sequence}"


def _message(image: dict[str, Any] | None) -> Message | None:
    if image is None:
        return None
    try:
        return Message.model_validate(image)
    except ValidationError:
        return None  # not a whole message (an item of keys only): no event


def job_for_change(
    event_name: str, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> WebhookJob | None:
    """The event a change of the messages table stands for, if its message wants receipts: a
    status reached by an insert or changed by a modify. Anything else (a message's other facts
    recorded, an expiry) is not an event."""
    message = _message(new)
    if message is None or message.status not in EVENT_TYPES:
        return None
    if not message.status_callback_url or not message.delivery_receipt:
        return None
    if event_name == "MODIFY":
        before = _message(old)
        if before is None or before.status == message.status:
            return None
    elif event_name != "INSERT":
        return None
    sequence = status_sequence(message)
    return WebhookJob(
        webhook_id=webhook_id_for(message.id, sequence),
        workspace_id=message.workspace_id,
        message_id=message.id,
        type=EVENT_TYPES[message.status],
        sequence=sequence,
        timestamp=message.updated_at,
        url=message.status_callback_url,
        method=message.status_callback_method or DEFAULT_METHOD,
        data={**message.to_api(), "sequence": sequence},
    )


def reply_job(reply: InboundMessage) -> WebhookJob:
    """The `message.reply` event of a reply whose message asked it forwarded to a webhook; its
    data is the reply as GET /v1/sms/inbound/{id} shows it."""
    forwarding = reply.reply_forwarding
    if forwarding is None or forwarding.webhook_url is None:
        raise ValueError("the reply is not forwarded to a webhook")
    return WebhookJob(
        webhook_id=webhook_id_for(reply.id, REPLY_SEQUENCE),
        workspace_id=reply.workspace_id,
        message_id=reply.id,
        type=REPLY_EVENT,
        sequence=REPLY_SEQUENCE,
        timestamp=reply.received_at,
        url=forwarding.webhook_url,
        method=forwarding.webhook_method or DEFAULT_METHOD,
        data=reply.to_api(),
    )


def post_body(job: WebhookJob) -> bytes:
    """The POST body: {"type", "timestamp", "data"}, as the specification's payload shape."""
    return json.dumps(
        {"type": job.type, "timestamp": job.timestamp, "data": job.data},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def _query_values(prefix: str, value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [
            pair for key, inner in value.items() for pair in _query_values(f"{prefix}.{key}", inner)
        ]
    if isinstance(value, bool):
        return [(prefix, "true" if value else "false")]
    return [(prefix, str(value))]


def query_string(job: WebhookJob) -> str:
    """GET's parameters: type, timestamp and every field of data (a null left out, an object's
    fields as `cost.amount`), encoded once: the signature covers exactly these bytes."""
    pairs = [("type", job.type), ("timestamp", job.timestamp)]
    for name, value in job.data.items():
        pairs.extend(_query_values(name, value))
    return urlencode(pairs)


def signature(secret: str, webhook_id: str, timestamp: int, payload: bytes) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return str(Webhook(secret).sign(webhook_id, moment, payload.decode()))


def signature_header(
    signing_secrets: list[str], webhook_id: str, timestamp: int, payload: bytes
) -> str:
    """One signature per secret that signs now, space-separated (the current one first): during
    a rotation the receiver verifies with whichever it has."""
    return " ".join(signature(s, webhook_id, timestamp, payload) for s in signing_secrets)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    url: str
    method: CallbackMethod
    body: bytes | None
    headers: dict[str, str]
    # GET's parameters, encoded, to go after any query of the URL's own.
    query: str | None = None


def signed_request(job: WebhookJob, signing_secrets: list[str], timestamp: int) -> SignedRequest:
    """The request of one attempt. The timestamp is the attempt's: receivers refuse a signature
    older than a few minutes, so each retry is signed afresh (with the same webhook-id)."""
    headers = {
        "webhook-id": job.webhook_id,
        "webhook-timestamp": str(timestamp),
        "user-agent": "sms-gateway-webhooks/1",
    }
    if job.method == "GET":
        query = query_string(job)
        headers["webhook-signature"] = signature_header(
            signing_secrets, job.webhook_id, timestamp, query.encode()
        )
        return SignedRequest(job.url, "GET", None, headers, query)
    body = post_body(job)
    headers["webhook-signature"] = signature_header(
        signing_secrets, job.webhook_id, timestamp, body
    )
    headers["content-type"] = "application/json"
    return SignedRequest(job.url, "POST", body, headers)


def parse_retry_delays(text: str) -> tuple[int, ...]:
    """The retry schedule: seconds to wait before each retry, comma-separated."""
    delays = tuple(int(part) for part in text.split(",") if part.strip())
    if any(d < 0 or d > MAX_RETRY_DELAY_SECONDS for d in delays):
        raise ValueError(f"each retry delay must be 0 to {MAX_RETRY_DELAY_SECONDS} seconds")
    return delays


def retry_delay(
    delays: tuple[int, ...], attempt: int, rng: random.Random | None = None
) -> int | None:
    """How long to wait after failed attempt number `attempt` (1 for the first); None when it
    was the last. Never shorter than the schedule says, so the schedule's sum is the least time
    a receiver is given."""
    if attempt > len(delays):
        return None
    base = delays[attempt - 1]
    stretch = (rng or random.Random()).uniform(0, RETRY_JITTER)  # noqa: S311 - spreading only
    return min(MAX_RETRY_DELAY_SECONDS, round(base * (1 + stretch)))
