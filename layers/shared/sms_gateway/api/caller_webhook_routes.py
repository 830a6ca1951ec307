"""The status webhooks' signing secret (GET /v1/webhook-secret, POST /v1/webhook-secret/rotate)
and the delivery attempts of a message's status webhooks (GET /v1/sms/{id}/webhook-attempts) and
of a reply's message.reply webhook (GET /v1/sms/inbound/{id}/webhook-attempts)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field

from sms_gateway.api.caller import SCOPE_MANAGE, SCOPE_READ, require_scope
from sms_gateway.api.docs import STATUS_WEBHOOKS_TAG, id_parameter, route_doc
from sms_gateway.api.http import json_response
from sms_gateway.domain.errors import InboundMessageNotFoundError, MessageNotFoundError
from sms_gateway.logic import webhook_attempt_listing, webhook_secrets

secret_router = APIGatewayHttpRouter()
attempts_router = APIGatewayHttpRouter()


class WebhookSecretOut(BaseModel):
    model_config = ConfigDict(title="WebhookSecret")
    secret: str = Field(
        description="whsec_ and base64: verify each webhook's webhook-signature with it "
        "(Standard Webhooks)",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookAttemptOut(BaseModel):
    model_config = ConfigDict(title="WebhookAttempt")
    type: str = Field(description="The event: message.sent, message.delivered, …")
    webhook_id: str = Field(description="The webhook-id header: the same on every retry")
    sequence: int = Field(description="The event's place among the message's status changes")
    attempt: int = Field(description="1 for the first attempt at this event")
    attempted_at: str = Field(description="ISO 8601 UTC")
    status_code: int | None = Field(description="The receiver's HTTP status; null: no answer")
    error: str | None = Field(
        description="Why no answer came: timeout, connection_refused, dns_failed, "
        "address_refused, tls_error, connection_error or invalid_url; null when one came"
    )
    next_attempt_at: str | None = Field(
        description="When the event is tried again; null: delivered, or this was the last"
    )


class WebhookAttemptListOut(BaseModel):
    model_config = ConfigDict(title="WebhookAttemptList")
    items: list[WebhookAttemptOut] = Field(description="Oldest first")


@secret_router.get(
    "/v1/webhook-secret",
    **route_doc(
        summary="The secret that signs your status webhooks",
        operation_id="getWebhookSecret",
        tag=STATUS_WEBHOOKS_TAG,
        scope=SCOPE_MANAGE,
        success=(200, "The current secret (made on first use)", WebhookSecretOut),
        errors=(),
    ),
)
def handle_get_secret() -> Response[str]:
    caller = require_scope(secret_router.current_event.raw_event, SCOPE_MANAGE)
    return json_response(200, {"secret": webhook_secrets.current_secret(caller.workspace_id)})


@secret_router.post(
    "/v1/webhook-secret/rotate",
    **route_doc(
        summary="Make a new signing secret; the old one also signs for 24 hours",
        operation_id="rotateWebhookSecret",
        tag=STATUS_WEBHOOKS_TAG,
        scope=SCOPE_MANAGE,
        success=(200, "The new secret", WebhookSecretOut),
        errors=(),
    ),
)
def handle_rotate_secret() -> Response[str]:
    caller = require_scope(secret_router.current_event.raw_event, SCOPE_MANAGE)
    return json_response(200, {"secret": webhook_secrets.rotate(caller.workspace_id)})


@attempts_router.get(
    "/v1/sms/<id>/webhook-attempts",
    **route_doc(
        summary="Every attempt to deliver a message's status webhooks",
        operation_id="listWebhookAttempts",
        tag=STATUS_WEBHOOKS_TAG,
        scope=SCOPE_READ,
        success=(200, "The attempts, oldest first", WebhookAttemptListOut),
        errors=(MessageNotFoundError,),
        parameters=(id_parameter("message"),),
    ),
)
def handle_list_attempts(id: str) -> Response[str]:
    caller = require_scope(attempts_router.current_event.raw_event, SCOPE_READ)
    items = webhook_attempt_listing.attempts_for(caller.workspace_id, id, test=caller.is_test)
    return json_response(200, {"items": items})


@attempts_router.get(
    "/v1/sms/inbound/<id>/webhook-attempts",
    **route_doc(
        summary="Every attempt to deliver a reply's message.reply webhook",
        operation_id="listReplyWebhookAttempts",
        tag=STATUS_WEBHOOKS_TAG,
        scope=SCOPE_READ,
        success=(200, "The attempts, oldest first", WebhookAttemptListOut),
        errors=(InboundMessageNotFoundError,),
        parameters=(id_parameter("inbound message"),),
    ),
)
def handle_list_reply_attempts(id: str) -> Response[str]:
    caller = require_scope(attempts_router.current_event.raw_event, SCOPE_READ)
    items = webhook_attempt_listing.reply_attempts_for(caller.workspace_id, id, test=caller.is_test)
    return json_response(200, {"items": items})
