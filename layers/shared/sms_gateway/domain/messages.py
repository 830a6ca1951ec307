"""The outbound message record and its status vocabulary."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

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

# The fields of the reference API's 201 response, in its order, plus send_at (scheduling) and
# test (sent with a test key: never handed to the provider).
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
)


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
    # Internal: the Twilio subaccount that must sign this message's callbacks, and the handoff
    # worker's claim (set before the provider is called).
    account_sid: str | None = None
    claimed_at: str | None = None
    created_at: str
    updated_at: str
    history: list[HistoryEntry] = Field(default_factory=list)

    def to_api(self, *, with_history: bool = False) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        out = {name: data[name] for name in API_FIELDS}
        if with_history:
            out["history"] = [entry.model_dump(mode="json") for entry in self.history]
        return out
