"""The outbound message record and its status vocabulary."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sms_gateway.domain.pricing import Cost
from sms_gateway.domain.provider_attempts import ProviderAttempt
from sms_gateway.domain.reply_forwarding import ReplyForwarding
from sms_gateway.domain.segments import Encoding

# Schema-only: they give a string's format to the API reference and check nothing, since the
# API checks each format itself, in its documented order and with its own error codes.
UuidStr = Annotated[str, Field(json_schema_extra={"format": "uuid"})]
DateTimeStr = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class MessageStatus(StrEnum):
    SCHEDULED = "scheduled"
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELED = "canceled"


TERMINAL_STATUSES = frozenset(
    {
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERED,
        MessageStatus.FAILED,
        MessageStatus.CANCELED,
    }
)

# The fields of the reference API's 201 response, in its order, plus send_at (scheduling), test
# (sent with a test key: never handed to the provider) and what composing the message decided
# (encoding and segments, cost, template, sender ID, country, external id, validity).
API_FIELDS = (
    "id",
    "use_case_id",
    "message_sid",
    "from_number",
    "to_number",
    "body",
    "num_segments",
    "status",
    "handed_off_at",
    "delivered_at",
    "errored_at",
    "error_code",
    "created_at",
    "updated_at",
    "send_at",
    "test",
    "encoding",
    "segments",
    "cost",
    "template_id",
    "sender_id",
    "sender_id_applied",
    "country",
    "external_id",
    "validity_period",
    "status_callback_url",
    "status_callback_method",
    "delivery_receipt",
    "reply_forwarding",
    "forwarded_from",
    "provider",
    "provider_attempts",
)


# What POST /v1/sms/preview answers of the message a send would store.
PREVIEW_FIELDS = (
    "use_case_id",
    "to_number",
    "body",
    "encoding",
    "segments",
    "cost",
    "country",
    "template_id",
    "sender_id",
    "sender_id_applied",
    "external_id",
    "validity_period",
    "send_at",
    "test",
    "status_callback_url",
    "status_callback_method",
    "delivery_receipt",
    "reply_forwarding",
)

# A caller's own id for a message: 1 to 255 characters, no control characters.
MAX_EXTERNAL_ID_CHARS = 255
EXTERNAL_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,255}$"

# A listing's page: its size when the caller names none, and the largest it may ask for.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


class HistoryEntry(BaseModel):
    """One thing that happened to a message: its creation, a transition or a provider event."""

    model_config = ConfigDict(extra="allow")

    at: str
    event: str
    status: MessageStatus | None = None
    provider_status: str | None = None
    error_code: int | None = None
    applied: bool = True


def history_item(entry: HistoryEntry) -> dict[str, Any]:
    """A history entry as stored: without what its defaults give back (no status, applied),
    since every byte of a message's item is paid at each of its writes."""
    return entry.model_dump(mode="json", exclude_defaults=True)


class Message(BaseModel):
    """A message as stored. API_FIELDS are what a caller sees of it, described here once (the
    API reference's Message schema is built from these fields)."""

    model_config = ConfigDict(extra="ignore")

    id: UuidStr = Field(description="Unique identifier (UUID)")
    workspace_id: str
    use_case_id: UuidStr
    to_number: str = Field(description="Destination, E.164")
    body: str
    status: MessageStatus
    message_sid: str | None = Field(
        default=None, description="Provider's message id; null until handoff"
    )
    from_number: str | None = Field(
        default=None, description="Sender chosen from the pool; null until handoff"
    )
    num_segments: int | None = Field(default=None, description="SMS segments; null until handoff")
    handed_off_at: str | None = Field(default=None, description="ISO 8601 UTC")
    delivered_at: str | None = None
    errored_at: str | None = None
    error_code: int | None = None
    send_at: DateTimeStr | None = Field(
        default=None, description="Scheduled time, when the message was scheduled"
    )
    test: bool = Field(
        default=False,
        description="Sent with an sk_test_ key: never reaches a carrier; delivered at once with "
        "a simulated SID",
    )
    encoding: Encoding | None = Field(
        default=None, description="GSM7, or UCS2 when a character is outside GSM-7"
    )
    segments: int | None = Field(
        default=None,
        description="Our count of SMS parts (GSM7: 160, or 153 per part; UCS2: 70, or 67)",
    )
    cost: Cost | None = Field(
        default=None,
        description="Committed at send from the destination's price; 0 for a test message; "
        "null when the destination country has no price",
    )
    template_id: UuidStr | None = Field(
        default=None, description="The template the body was rendered from"
    )
    sender_id: str | None = Field(default=None, description="The alphanumeric sender ID asked for")
    sender_id_applied: bool | None = Field(
        default=None,
        description="Whether the sender ID is used; false: the destination country does not "
        "accept alphanumeric senders, so the message goes from the use case's pool",
    )
    country: str | None = Field(
        default=None,
        description="ISO 3166-1 alpha-2 country the message was checked and priced for: the "
        "request's `country`, else the number's",
    )
    external_id: str | None = Field(default=None, description="The caller's own id")
    validity_period: int | None = Field(
        default=None,
        description="Seconds the message may wait to be handed to the carrier; past it, it "
        "ends failed with error_code 99005",
    )
    status_callback_url: str | None = Field(
        default=None,
        description="Where the message's status changes are pushed (signed webhooks): the "
        "send's, else its use case's",
    )
    status_callback_method: Literal["POST", "GET"] | None = Field(
        default=None, description="POST (JSON body) or GET (query parameters); null: POST"
    )
    delivery_receipt: bool = Field(
        default=True,
        description="false: no status webhooks for this message; true (the default): they go "
        "to status_callback_url when there is one",
    )
    reply_forwarding: ReplyForwarding | None = Field(
        default=None, description="Where replies to this message are forwarded"
    )
    forwarded_from: UuidStr | None = Field(
        default=None,
        description="The inbound message (GET /v1/sms/inbound/{id}) this message forwards",
    )
    provider: str | None = Field(
        default=None,
        description="The provider that took the message (twilio or aws_eum); null until one did",
    )
    provider_attempts: list[ProviderAttempt] = Field(
        default_factory=list,
        description="Every try of a provider to take the message, oldest first: a provider that "
        "refused or was unavailable is followed at once by the next one",
    )
    # Internal: the Twilio subaccount that must sign this message's callbacks, and the handoff
    # worker's claim (set before the provider is called).
    account_sid: str | None = None
    claimed_at: str | None = None
    # Internal: what paid for the message when it was accepted, so that a refund gives exactly
    # that back: "quota" (its segments, of the month of created_at) or "wallet" (its cost);
    # None: nothing was charged (no quota, or test mode). A short string: it is in every write.
    charge: str | None = None
    created_at: str
    updated_at: str
    history: list[HistoryEntry] = Field(default_factory=list)

    def validity_deadline(self) -> datetime | None:
        """When the message stops being worth sending: its validity period after it became due
        (its send_at when scheduled, else its creation)."""
        if self.validity_period is None:
            return None
        due = datetime.fromisoformat(self.send_at or self.created_at)
        return due + timedelta(seconds=self.validity_period)

    @property
    def alphanumeric_sender(self) -> str | None:
        """The sender ID the provider is to send from, when one applies."""
        return self.sender_id if self.sender_id_applied else None

    def to_api(self, *, with_history: bool = False) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        out = {name: data[name] for name in API_FIELDS}
        # Stored from the claim on (the provider being tried), it is only the one that took the
        # message once one did.
        out["provider"] = self.provider if self.message_sid else None
        if with_history:
            out["history"] = [entry.model_dump(mode="json") for entry in self.history]
        return out
