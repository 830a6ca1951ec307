"""POST /v1/sms/{id}/cancel."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from sms_gateway.api.caller import SCOPE_SEND, require_scope
from sms_gateway.api.docs import MESSAGES_TAG, id_parameter, route_doc
from sms_gateway.api.http import json_response
from sms_gateway.domain.errors import MessageNotFoundError, NotCancelableError
from sms_gateway.logic import scheduling

router = APIGatewayHttpRouter()


@router.post(
    "/v1/sms/<id>/cancel",
    **route_doc(
        summary="Cancel a scheduled message",
        operation_id="cancelMessage",
        tag=MESSAGES_TAG,
        scope=SCOPE_SEND,
        success=(200, "The canceled message", "MessageOut"),
        errors=(MessageNotFoundError, NotCancelableError),
        parameters=(id_parameter("message"),),
    ),
)
def handle_cancel(id: str) -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_SEND)
    canceled = scheduling.cancel_message(caller.workspace_id, id, test=caller.is_test)
    return json_response(200, canceled.to_api())
