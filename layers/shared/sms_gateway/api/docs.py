"""Route documentation kept next to the routes: the scope each route needs, its success shape and
every error code it can answer, its operationId, tag, parameters and links. sms_tools.openapi
turns it into docs/openapi.json."""

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
from sms_gateway.domain.ids import MAX_IDEMPOTENCY_KEY_LENGTH
from sms_gateway.domain.messages import (
    DEFAULT_PAGE_SIZE,
    MAX_EXTERNAL_ID_CHARS,
    MAX_PAGE_SIZE,
    MessageStatus,
)

# The operation tags, with the description the document gives each.
MESSAGES_TAG = "Messages"
USE_CASES_TAG = "Use cases"
TEMPLATES_TAG = "Templates"
SENDER_IDS_TAG = "Sender IDs"
WEBHOOKS_TAG = "Webhooks"
USAGE_TAG = "Usage"
STATUS_WEBHOOKS_TAG = "Status webhooks"
INBOUND_TAG = "Inbound messages"
TAGS = {
    MESSAGES_TAG: "Send SMS and track their delivery",
    USE_CASES_TAG: "The use cases messages are sent through (sender pool, compliance state)",
    TEMPLATES_TAG: "Message texts with {{name}} placeholders, rendered at send",
    SENDER_IDS_TAG: "Alphanumeric senders a workspace may send from",
    WEBHOOKS_TAG: "Callbacks from the SMS provider",
    USAGE_TAG: "What a workspace used in a month, and its quota, wallet and send rate",
    STATUS_WEBHOOKS_TAG: "Signed webhooks (Standard Webhooks) to your status_callback_url "
    "when a message's status changes: the signing secret, and each message's attempts",
    INBOUND_TAG: "What people text to your senders: replies linked to the message they "
    "answer, STOP/START/HELP keywords",
}

# Where route_doc puts the parameters it documents; sms_tools.openapi merges them with the ones
# Powertools reads from the handler's signature (it would overwrite a plain `parameters`).
PARAMETERS_KEY = "x-parameters"
PARTIAL_KEY = "x-request-partial"
RESPONSE_MODEL_KEY = "x-response-model"
RESPONSE_HEADERS_KEY = "x-response-headers"
MEDIA_TYPE_KEY = "x-request-media-type"


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable error code")
    message: str = Field(description="Human-readable explanation")


class ErrorBody(BaseModel):
    model_config = ConfigDict(title="Error")
    error: ErrorDetail


def required_fields(source: type[BaseModel], names: tuple[str, ...]) -> dict[str, Any]:
    """The named fields of a model, each required (a response always carries it, null or not),
    with the model's own type and description."""
    fields = source.model_fields
    return {
        name: (
            fields[name].annotation,
            Field(
                description=fields[name].description,
                json_schema_extra=fields[name].json_schema_extra,
            ),
        )
        for name in names
    }


UUID_SCHEMA = {"type": "string", "format": "uuid"}


def parameter(
    name: str, where: str, description: str, schema: dict[str, Any], *, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": schema,
    }


def id_parameter(resource: str) -> dict[str, Any]:
    """The `{id}` of a resource's path: the id its create or send answered."""
    return parameter("id", "path", f"The {resource}'s id", UUID_SCHEMA, required=True)


_LIMIT_PARAMETER = parameter(
    "limit",
    "query",
    "Page size",
    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE},
)
_CURSOR_PARAMETER = parameter(
    "cursor", "query", "The previous page's `next_cursor`", {"type": "string"}
)
# A listing that takes nothing but its page (templates, sender IDs).
PAGE_PARAMETERS = (_LIMIT_PARAMETER, _CURSOR_PARAMETER)
# What querying.list_messages_for accepts; anything else is a validation_error.
LIST_MESSAGES_PARAMETERS = (
    parameter(
        "use_case_id",
        "query",
        "Only the messages sent through this use case",
        UUID_SCHEMA,
    ),
    parameter(
        "status",
        "query",
        "Only the messages in this status",
        {"$ref": f"#/components/schemas/{MessageStatus.__name__}"},
    ),
    parameter(
        "external_id",
        "query",
        "Only the messages sent with this external_id",
        {"type": "string", "minLength": 1, "maxLength": MAX_EXTERNAL_ID_CHARS},
    ),
    _LIMIT_PARAMETER,
    _CURSOR_PARAMETER,
)
# What querying.list_inbound_for accepts.
LIST_INBOUND_PARAMETERS = (
    parameter(
        "use_case_id", "query", "Only the messages received through this use case", UUID_SCHEMA
    ),
    parameter(
        "from",
        "query",
        "Only the messages from this number (E.164)",
        {"type": "string", "pattern": r"^\+[0-9]{8,15}$"},
    ),
    _LIMIT_PARAMETER,
    _CURSOR_PARAMETER,
)
USAGE_PARAMETERS = (
    parameter(
        "period",
        "query",
        "A calendar month (UTC), YYYY-MM; the current month when omitted",
        {"type": "string", "pattern": r"^[0-9]{4}-(0[1-9]|1[0-2])$", "examples": ["2026-11"]},
    ),
)
# The send rate's bucket, on every answer of a send for a workspace with a send rate.
RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": {
        "description": "The bucket's size (burst); only for a workspace with a send rate",
        "schema": {"type": "integer"},
    },
    "RateLimit-Remaining": {
        "description": "Sends the bucket would take now (after this one, if it was accepted)",
        "schema": {"type": "integer"},
    },
    "RateLimit-Reset": {
        "description": "Seconds until the bucket is full again",
        "schema": {"type": "integer"},
    },
}
IDEMPOTENCY_KEY_PARAMETER = parameter(
    "Idempotency-Key",
    "header",
    "Retrying with the same key and body answers the first response again and sends nothing; "
    "the same key with another body is refused",
    {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH},
)


def links_by_id(*operation_ids: str) -> dict[str, Any]:
    """OpenAPI links from a response carrying a resource's `id` to the operations that take it
    as their `{id}`."""
    return {
        operation_id: {"operationId": operation_id, "parameters": {"id": "$response.body#/id"}}
        for operation_id in operation_ids
    }


AUTH_ERRORS: tuple[type[GatewayError], ...] = (UnauthorizedError, ForbiddenError)


def route_doc(
    *,
    summary: str,
    operation_id: str,
    tag: str,
    scope: str | None,
    success: tuple[int, str, type[BaseModel] | str | None],
    errors: tuple[type[GatewayError], ...],
    request_model: type[BaseModel] | str | None = None,
    partial_request: bool = False,
    request_media_type: str = "application/json",
    parameters: tuple[dict[str, Any], ...] = (),
    links: dict[str, Any] | None = None,
    response_headers: dict[str, Any] | None = None,
    success_content: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for a Powertools route decorator. `response_headers`: headers every
    answer of the route may carry (the document puts them on each response); `success_content`:
    the success answer's media types and schemas, for an answer that is not a JSON model."""
    all_errors: tuple[type[GatewayError], ...] = (
        (*AUTH_ERRORS, *errors, ServiceUnavailableError) if scope else errors
    )
    status, description, model = success
    responses: dict[int, Any] = {
        status: {"description": description}
        | ({"content": {"application/json": {"model": model}}} if isinstance(model, type) else {})
        | ({"content": success_content} if success_content else {})
        | ({"links": links} if links else {})
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
    if isinstance(model, str):
        # A model the document generator knows and the function never needs to build.
        extensions[RESPONSE_MODEL_KEY] = model
    if scope:
        extensions["x-required-scope"] = scope
    if request_model is not None:
        # partial_request: a PATCH body, any subset of the model's fields.
        # A name: a model the document generator knows and the function never needs to load.
        extensions["x-request-model"] = (
            request_model if isinstance(request_model, str) else request_model.__name__
        )
        if partial_request:
            extensions[PARTIAL_KEY] = True
        extensions[MEDIA_TYPE_KEY] = request_media_type
    if parameters:
        extensions[PARAMETERS_KEY] = list(parameters)
    if response_headers:
        extensions[RESPONSE_HEADERS_KEY] = response_headers
    return {
        "summary": summary,
        "operation_id": operation_id,
        "tags": [tag],
        "description": f"Requires scope `{scope}`." if scope else None,
        "responses": responses,
        "security": [{"bearerAuth": []}] if scope else None,
        "openapi_extensions": extensions,
    }
