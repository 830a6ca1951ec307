"""POST /v1/sms/ and POST /v1/sms/preview."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from sms_gateway.api.caller import SCOPE_SEND, require_scope
from sms_gateway.api.docs import (
    IDEMPOTENCY_KEY_PARAMETER,
    MESSAGES_TAG,
    RATE_LIMIT_HEADERS,
    links_by_id,
    route_doc,
)
from sms_gateway.api.http import json_object, json_response
from sms_gateway.domain.callers import Caller
from sms_gateway.domain.errors import (
    SEND_ERRORS,
    GatewayError,
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    QuotaExceededError,
    RateLimitExceededError,
)
from sms_gateway.logic import admission, sending

router = APIGatewayHttpRouter()


@router.post(
    "/v1/sms/",
    **route_doc(
        summary="Send an SMS through a use case",
        operation_id="sendMessage",
        tag=MESSAGES_TAG,
        scope=SCOPE_SEND,
        success=(201, "The message was accepted and queued", "MessageOut"),
        errors=(
            *SEND_ERRORS,
            IdempotencyKeyReusedError,
            IdempotencyKeyInUseError,
            QuotaExceededError,
            RateLimitExceededError,
        ),
        request_model=sending.SendRequest,
        parameters=(IDEMPOTENCY_KEY_PARAMETER,),
        links=links_by_id("getMessage", "cancelMessage"),
        response_headers=RATE_LIMIT_HEADERS,
    ),
)
def handle_send() -> Response[str]:
    event = router.current_event
    caller = require_scope(event.raw_event, SCOPE_SEND)
    # Every answer carries the bucket's RateLimit-* headers: as the send left it when it spent
    # from it, else as it is (a refused, invalid or replayed send spends nothing).
    admission.answer_headers.set(None)
    try:
        request = sending.parse_send_request(json_object(event))
        key = (event.headers or {}).get("idempotency-key")
        body = sending.send_once(
            caller, request, idempotency_key=key, lambda_context=router.lambda_context
        )
    except GatewayError as error:
        if not error.headers:
            error.headers = _rate_headers(caller)
        raise
    return json_response(201, body, _rate_headers(caller) or None)


def _rate_headers(caller: Caller) -> dict[str, str]:
    """The headers the send's admission left, or, when it never got there (an invalid or a
    replayed request), the bucket as it is now."""
    headers = admission.answer_headers.get()
    if headers is None:
        return admission.headers_now(caller.workspace_id, caller.mode)
    return headers


@router.post(
    "/v1/sms/preview",
    **route_doc(
        summary="What a send would store, without sending",
        operation_id="previewMessage",
        tag=MESSAGES_TAG,
        scope=SCOPE_SEND,
        success=(200, "What the send would store; nothing was written or sent", "PreviewOut"),
        errors=SEND_ERRORS,
        request_model=sending.SendRequest,
    ),
)
def handle_preview() -> Response[str]:
    event = router.current_event
    caller = require_scope(event.raw_event, SCOPE_SEND)
    request = sending.parse_send_request(json_object(event))
    prepared = sending.prepare_send(caller.workspace_id, request, test=caller.is_test)
    return json_response(200, sending.preview(caller.workspace_id, prepared))
