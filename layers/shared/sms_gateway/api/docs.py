"""Route documentation kept next to the routes: the scope each route needs, its success shape and
every error code it can answer. sms_tools.openapi turns it into docs/openapi.json."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sms_gateway.domain.errors import (
    ForbiddenError,
    GatewayError,
    ServiceUnavailableError,
    UnauthorizedError,
)
from sms_gateway.domain.messages import MessageStatus


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable error code")
    message: str = Field(description="Human-readable explanation")


class ErrorBody(BaseModel):
    model_config = ConfigDict(title="Error")
    error: ErrorDetail


class MessageOut(BaseModel):
    model_config = ConfigDict(title="Message")

    id: str = Field(description="Unique identifier (UUID)")
    use_case_id: str
    message_sid: str | None = Field(description="Provider's message id; null until handoff")
    from_number: str | None = Field(description="Sender chosen from the pool; null until handoff")
    to_number: str = Field(description="Destination, E.164")
    body: str
    num_segments: int | None = Field(description="SMS segments; null until handoff")
    status: MessageStatus
    handed_off_at: str | None = Field(description="ISO 8601 UTC")
    delivered_at: str | None
    errored_at: str | None
    error_code: int | None
    created_at: str
    updated_at: str
    send_at: str | None = Field(description="Scheduled time, when the message was scheduled")
    test: bool = Field(
        description="Sent with an sk_test_ key: never reaches a carrier; delivered at once with "
        "a simulated SID"
    )


class HistoryEntryOut(BaseModel):
    at: str
    event: str
    status: MessageStatus | None = None
    provider_status: str | None = None
    error_code: int | None = None
    applied: bool = True


class MessageDetailOut(MessageOut):
    model_config = ConfigDict(title="MessageDetail")
    history: list[HistoryEntryOut]


class MessageListOut(BaseModel):
    model_config = ConfigDict(title="MessageList")
    items: list[MessageOut]
    next_cursor: str | None = Field(description="Opaque; pass as `cursor` for the next page")


AUTH_ERRORS: tuple[type[GatewayError], ...] = (UnauthorizedError, ForbiddenError)


def route_doc(
    *,
    summary: str,
    scope: str | None,
    success: tuple[int, str, type[BaseModel] | None],
    errors: tuple[type[GatewayError], ...],
    request_model: type[BaseModel] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for a Powertools route decorator."""
    all_errors: tuple[type[GatewayError], ...] = (
        (*AUTH_ERRORS, *errors, ServiceUnavailableError) if scope else errors
    )
    status, description, model = success
    responses: dict[int, Any] = {
        status: {"description": description}
        | ({"content": {"application/json": {"model": model}}} if model else {})
    }
    by_status: dict[int, list[str]] = defaultdict(list)
    for error in all_errors:
        if error.code not in by_status[error.status]:
            by_status[error.status].append(error.code)
    for error_status, codes in sorted(by_status.items()):
        responses[error_status] = {
            "description": "Error codes: " + ", ".join(f"`{c}`" for c in codes),
            "content": {"application/json": {"model": ErrorBody}},
        }
    extensions: dict[str, Any] = {
        "x-error-codes": {str(s): codes for s, codes in sorted(by_status.items())}
    }
    if scope:
        extensions["x-required-scope"] = scope
    if request_model is not None:
        extensions["x-request-model"] = request_model.__name__
    return {
        "summary": summary,
        "description": f"Requires scope `{scope}`." if scope else None,
        "responses": responses,
        "security": [{"bearerAuth": []}] if scope else None,
        "openapi_extensions": extensions,
    }
