"""Inbound messages: what a person texts to one of our senders, the keyword it may be (STOP,
START, HELP), the outbound message it answers, and where a caller asked its replies forwarded.
Pure: no I/O."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sms_gateway.domain.messages import DateTimeStr, UuidStr
from sms_gateway.domain.reply_forwarding import ReplyForwarding


class Keyword(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


# The whole trimmed body, whatever its case: Twilio's and AWS End User Messaging's default
# opt-out, opt-in and help keywords.
KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(
        ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"),
        Keyword.STOP,
    ),
    **dict.fromkeys(("START", "YES", "UNSTOP"), Keyword.START),
    **dict.fromkeys(("HELP", "INFO"), Keyword.HELP),
}

# A reply forwarded by SMS carries the replier's number before the text.
FORWARDED_SMS_PREFIX = "Reply from {number}: "

_NAMESPACE = uuid.UUID("0b9f6a4e-3f57-5b0c-9a55-2f4f1c6c1d11")


def keyword_of(body: str) -> Keyword | None:
    """The keyword the body is, if the whole of it (trimmed, any case) is one."""
    return KEYWORDS.get(body.strip().upper())


def inbound_id_for(account_sid: str, message_sid: str) -> str:
    """One id per provider message: a redelivery of the same webhook names the same record."""
    return str(uuid.uuid5(_NAMESPACE, f"twilio:{account_sid}:{message_sid}"))


# What a caller sees of an inbound message, in this order.
INBOUND_API_FIELDS = (
    "id",
    "use_case_id",
    "from_number",
    "to_number",
    "body",
    "num_segments",
    "received_at",
    "keyword",
    "in_reply_to",
    "test",
)


class InboundMessage(BaseModel):
    """An inbound message as stored. INBOUND_API_FIELDS are what a caller sees of it."""

    model_config = ConfigDict(extra="ignore")

    id: UuidStr = Field(description="Unique identifier (UUID)")
    workspace_id: str
    use_case_id: UuidStr = Field(description="The use case whose sender received it")
    from_number: str = Field(description="The person who wrote, E.164")
    to_number: str = Field(description="Our sender that received it")
    body: str
    num_segments: int | None = Field(default=None, description="SMS parts, as the carrier said")
    received_at: DateTimeStr = Field(description="When we received it, ISO 8601 UTC")
    keyword: Keyword | None = Field(
        default=None,
        description="stop (opted out), start (opted back in), help, or null: the whole "
        "trimmed body, in any case, was that keyword",
    )
    in_reply_to: UuidStr | None = Field(
        default=None,
        description="The latest message of the workspace sent from to_number to from_number "
        "within 30 days, or null",
    )
    test: bool = Field(default=False, description="A simulated reply: only test keys see it")
    # Internal: the provider's identity of the message, and what the answered message asked
    # done with its replies (copied when the reply was linked).
    message_sid: str
    account_sid: str
    messaging_service_sid: str
    reply_forwarding: ReplyForwarding | None = None
    # The channels to carry out, comma-separated (the forwarding pipe's filter reads it), and
    # what each came to once it was (channel -> outcome).
    forward_channels: str | None = None
    forwarded: dict[str, str] | None = None

    def to_api(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        return {name: data[name] for name in INBOUND_API_FIELDS}


def forwarded_sms_body(reply: InboundMessage, max_chars: int) -> str:
    """The replier's number, then the text, cut to `max_chars` (with an ellipsis)."""
    text = FORWARDED_SMS_PREFIX.format(number=reply.from_number) + reply.body
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def forwarded_email(reply: InboundMessage) -> tuple[str, str]:
    """The subject and text of a reply forwarded by email."""
    subject = f"SMS reply from {reply.from_number}"
    text = (
        f"{reply.from_number} replied to {reply.to_number} at {reply.received_at}:\n\n"
        f"{reply.body}\n\n"
        f"Reply id: {reply.id}\n"
        f"In reply to message: {reply.in_reply_to}\n"
    )
    return subject, text
