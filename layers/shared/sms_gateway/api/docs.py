"""Route documentation kept next to the routes: the scope each route needs, its success shape and
every error code it can answer. sms_tools.openapi turns it into docs/openapi.json."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from sms_gateway.domain.errors import (
    ForbiddenError,
    GatewayError,
    ServiceUnavailableError,
    UnauthorizedError,
)
from sms_gateway.domain.messages import API_FIELDS, HistoryEntry, Message


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable error code")
    message: str = Field(description="Human-readable explanation")


class ErrorBody(BaseModel):
    model_config = ConfigDict(title="Error")
    error: ErrorDetail


def _required_fields(source: type[BaseModel], names: tuple[str, ...]) -> dict[str, Any]:
    """The named fields of a model, each required (a response always carries it, null or not),
    with the model's own type and description."""
    fields = source.model_fields
    return {
        name: (fields[name].annotation, Field(description=fields[name].description))
        for name in names
    }


# The API's shapes, built from the domain's models so that a field is declared once.
MessageOut = create_model(
    "MessageOut", __config__=ConfigDict(title="Message"), **_required_fields(Message, API_FIELDS)
)
_history_fields: dict[str, Any] = {
    name: (field.annotation, field) for name, field in HistoryEntry.model_fields.items()
}
HistoryEntryOut = create_model("HistoryEntryOut", **_history_fields)
MessageDetailOut = create_model(
    "MessageDetailOut",
    __base__=MessageOut,
    __config__=ConfigDict(title="MessageDetail"),
    history=(list[HistoryEntryOut], ...),
)
MessageListOut = create_model(
    "MessageListOut",
    __config__=ConfigDict(title="MessageList"),
    items=(list[MessageOut], ...),
    next_cursor=(str | None, Field(description="Opaque; pass as `cursor` for the next page")),
)


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
