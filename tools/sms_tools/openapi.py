"""Generates the OpenAPI document from the routes themselves: `make openapi` writes
docs/openapi.json, and a test fails when the committed file, the code and template.yaml disagree."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Tag
from pydantic import BaseModel, ConfigDict, Field, create_model

from sms_gateway.api import (
    caller_webhook_routes,
    cancel_routes,
    docs,
    inbound_routes,
    inbound_webhook_routes,
    query_routes,
    send_routes,
    sender_id_routes,
    template_routes,
    usage_routes,
    use_case_routes,
    webhook_routes,
)
from sms_gateway.domain.inbound import INBOUND_API_FIELDS, InboundMessage
from sms_gateway.domain.messages import API_FIELDS, PREVIEW_FIELDS, HistoryEntry, Message
from sms_gateway.domain.templates import TemplateSpec
from sms_gateway.domain.use_cases import AccountSid, UseCaseSpec
from sms_gateway.logic.sender_id_admin import SenderIdRegistration
from sms_gateway.logic.sending import SendRequest

ROUTERS = (
    send_routes.router,
    cancel_routes.router,
    query_routes.router,
    use_case_routes.router,
    template_routes.router,
    sender_id_routes.router,
    usage_routes.router,
    webhook_routes.router,
    caller_webhook_routes.secret_router,
    caller_webhook_routes.attempts_router,
    inbound_routes.router,
    inbound_webhook_routes.router,
)


class TwilioStatusCallback(BaseModel):
    """The form Twilio posts to the webhook: the fields read (the signature covers every field)."""

    model_config = ConfigDict(extra="allow")

    account_sid: AccountSid = Field(alias="AccountSid")
    message_sid: str = Field(alias="MessageSid", description="Twilio's message id")
    message_status: str = Field(
        alias="MessageStatus", description="queued, sent, delivered, undelivered, failed, ..."
    )
    error_code: str | None = Field(default=None, alias="ErrorCode")
    num_segments: str | None = Field(default=None, alias="NumSegments")
    from_: str | None = Field(default=None, alias="From")
    to: str | None = Field(default=None, alias="To")
    messaging_service_sid: str | None = Field(default=None, alias="MessagingServiceSid")


class TwilioIncomingMessage(BaseModel):
    """The form Twilio posts for a message a person sent: the fields read (the signature covers
    every field)."""

    model_config = ConfigDict(extra="allow")

    account_sid: AccountSid = Field(alias="AccountSid")
    message_sid: str = Field(alias="MessageSid", description="Twilio's message id (SM… or MM…)")
    messaging_service_sid: str = Field(
        alias="MessagingServiceSid", description="The service whose number received it"
    )
    from_: str = Field(alias="From", description="The person, E.164")
    to: str = Field(alias="To", description="Our sender that received it")
    body: str = Field(alias="Body")
    num_segments: str | None = Field(default=None, alias="NumSegments")
    num_media: str | None = Field(default=None, alias="NumMedia")


# The API's answers, built from the domain's models so that a field is declared once. Only the
# document needs them: the functions name them (route_doc) and never build them.
MessageOut = create_model(
    "MessageOut",
    __config__=ConfigDict(title="Message"),
    **docs.required_fields(Message, API_FIELDS),
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

InboundMessageOut = create_model(
    "InboundMessageOut",
    __config__=ConfigDict(title="InboundMessage"),
    **docs.required_fields(InboundMessage, INBOUND_API_FIELDS),
)
InboundMessageListOut = create_model(
    "InboundMessageListOut",
    __config__=ConfigDict(title="InboundMessageList"),
    items=(list[InboundMessageOut], ...),
    next_cursor=(str | None, Field(description="Opaque; pass as `cursor` for the next page")),
)

# POST /v1/sms/preview's answer: the fields a send would store, and the room left in the last
# segment (sending.preview builds it).
PreviewOut = create_model(
    "PreviewOut",
    __config__=ConfigDict(title="Preview"),
    **docs.required_fields(Message, PREVIEW_FIELDS),
    characters_until_next_segment=(
        int,
        Field(
            description="How many more one-unit characters (a basic GSM-7 character, or a BMP "
            "character in UCS2) fit before one more segment is needed"
        ),
    ),
)


class Money(BaseModel):
    amount: str = Field(description="A decimal string", examples=["12.5000"])
    currency: str = Field(description="ISO 4217", examples=["USD"])


class WalletOut(BaseModel):
    balance: str = Field(description="What is left, a decimal string", examples=["12.5000"])
    currency: str = Field(description="ISO 4217: the wallet holds one currency")


class QuotaOut(BaseModel):
    monthly_segments: int | None = Field(
        description="Segments a calendar month (UTC) may send before the wallet pays; null: "
        "no quota, sends are not limited by segments"
    )
    remaining_segments: int | None = Field(
        description="Segments left this month; null for another month or without a quota"
    )


class RateLimitOut(BaseModel):
    sends_per_second: float = Field(description="The bucket's refill rate")
    burst: int = Field(description="Sends the bucket holds at once")


class UsageOut(BaseModel):
    """Counters kept as messages are accepted, change status and are refunded (a message that
    never reached the carrier gives its segments and cost back); they follow the messages
    within seconds. In the caller's mode: a test key sees test messages only."""

    period: str = Field(examples=["2026-11"])
    messages: int = Field(description="Messages accepted in the month")
    segments: int = Field(description="Their segments, less those refunded")
    cost: Money = Field(description="Their cost, less what was refunded")
    by_status: dict[str, int] = Field(description="The month's messages by their status now")
    quota: QuotaOut
    wallet: WalletOut | None = Field(description="The prepaid wallet (live); null: none")
    rate_limit: RateLimitOut | None = Field(description="The send rate; null: none")


RESPONSE_MODELS: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (
        MessageOut,
        MessageDetailOut,
        MessageListOut,
        PreviewOut,
        UsageOut,
        InboundMessageOut,
        InboundMessageListOut,
    )
}

REQUEST_MODELS: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (
        SendRequest,
        UseCaseSpec,
        TemplateSpec,
        SenderIdRegistration,
        TwilioStatusCallback,
        TwilioIncomingMessage,
    )
}


TITLE = "SMS Gateway API"
VERSION = "1.0.0"


def build_document() -> dict[str, Any]:
    app = APIGatewayHttpResolver()
    for router in ROUTERS:
        app.include_router(router)
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title=TITLE,
            version=VERSION,
            description=(
                "Send SMS through a configured use case and track each message's delivery. "
                'Every error body is {"error": {"code", "message"}}; codes are stable.'
            ),
            security_schemes={
                "bearerAuth": HTTPBearer(description="An API key: sk_live_... or sk_test_...")
            },
            tags=[Tag(name=name, description=text) for name, text in docs.TAGS.items()],
        )
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            _merge_parameters(operation)
            _add_response_model(operation, schemas)
            _add_response_headers(operation)
            model_name = operation.get("x-request-model")
            if not model_name:
                continue
            schema = REQUEST_MODELS[model_name].model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            if operation.pop(docs.PARTIAL_KEY, False):
                # Any subset of the fields, each as the model states it (never null).
                model_name = model_name.removesuffix("Spec") + "Patch"
                schema = {**schema, "title": model_name}
                schema.pop("required", None)
            for name, definition in schema.pop("$defs", {}).items():
                schemas.setdefault(name, definition)
            schemas[model_name] = schema
            media_type = operation.pop(docs.MEDIA_TYPE_KEY)
            operation["requestBody"] = {
                "required": True,
                "content": {media_type: {"schema": {"$ref": f"#/components/schemas/{model_name}"}}},
            }
            # Powertools documents a 200 for every route; ours answer the status they declare.
            if "201" in operation["responses"]:
                operation["responses"].pop("200", None)
    return document


def _add_response_model(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A success response named by route_doc (a model the function never builds)."""
    name = operation.pop(docs.RESPONSE_MODEL_KEY, None)
    if name is None:
        return
    schema = RESPONSE_MODELS[name].model_json_schema(ref_template="#/components/schemas/{model}")
    for nested, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(nested, definition)
    schemas[name] = schema
    success = next(status for status in operation["responses"] if status.startswith("2"))
    operation["responses"][success]["content"] = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
    }


def _add_response_headers(operation: dict[str, Any]) -> None:
    """The headers route_doc names go on each of the route's answers to a known caller (not
    on a 401 or 403: the caller's workspace is not known then); a 429 and a 503 also say when
    to retry."""
    headers = operation.pop(docs.RESPONSE_HEADERS_KEY, None)
    for status, response in operation["responses"].items():
        if headers and status not in ("401", "403"):
            response["headers"] = dict(headers)
        if status in ("429", "503"):
            response.setdefault("headers", {})["Retry-After"] = {
                "description": "Seconds to wait before retrying",
                "schema": {"type": "integer"},
            }


def _merge_parameters(operation: dict[str, Any]) -> None:
    """The parameters route_doc documents replace the bare ones Powertools reads from the
    handler's signature (a path `id` typed `str`), matched by location and name."""
    documented = operation.pop(docs.PARAMETERS_KEY, [])
    by_key = {(p["in"], p["name"]): p for p in documented}
    merged = [by_key.pop((p["in"], p["name"]), p) for p in operation.get("parameters", [])]
    merged.extend(by_key.values())
    if merged:
        operation["parameters"] = merged


def render() -> str:
    return json.dumps(build_document(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/openapi.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
