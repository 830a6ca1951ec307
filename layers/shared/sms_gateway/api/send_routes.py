"""POST /v1/sms/."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from sms_gateway.api.caller import SCOPE_SEND, require_scope
from sms_gateway.api.docs import MessageOut, route_doc
from sms_gateway.api.http import json_object, json_response
from sms_gateway.domain.errors import (
    SEND_ERRORS,
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    ValidationError,
)
from sms_gateway.logic import sending
from sms_gateway.store import idempotency

router = APIGatewayHttpRouter()


@router.post(
    "/v1/sms/",
    **route_doc(
        summary="Send an SMS through a use case",
        scope=SCOPE_SEND,
        success=(201, "The message was accepted and queued", MessageOut),
        errors=(*SEND_ERRORS, IdempotencyKeyReusedError, IdempotencyKeyInUseError),
        request_model=sending.SendRequest,
    ),
)
def handle_send() -> Response[str]:
    event = router.current_event
    caller = require_scope(event.raw_event, SCOPE_SEND)
    request = sending.parse_send_request(json_object(event.decoded_body))
    key = (event.headers or {}).get("idempotency-key")

    def send() -> dict[str, Any]:
        message = sending.send_message(
            caller.workspace_id, request, test=caller.mode == "test", idempotency_key=key
        )
        return message.to_api()

    if key is None:
        return json_response(201, send())
    if not 1 <= len(key) <= idempotency.MAX_KEY_LENGTH:
        raise ValidationError(
            f"Idempotency-Key must be 1 to {idempotency.MAX_KEY_LENGTH} characters",
            errors=[{"field": "Idempotency-Key", "issue": "length out of range"}],
        )
    body = idempotency.run_once(
        # A key is the workspace's in one mode: a test request never answers for a live one.
        scope=f"{caller.workspace_id}#{caller.mode}",
        key=key,
        payload=request.model_dump(),
        action=send,
        lambda_context=router.lambda_context,
    )
    return json_response(201, body)
