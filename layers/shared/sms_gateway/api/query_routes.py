"""GET /v1/sms/{id} and GET /v1/sms/."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from sms_gateway.api.caller import SCOPE_READ, require_scope
from sms_gateway.api.docs import (
    LIST_MESSAGES_PARAMETERS,
    MESSAGES_TAG,
    id_parameter,
    route_doc,
)
from sms_gateway.api.http import json_response
from sms_gateway.domain.errors import MessageNotFoundError, ValidationError
from sms_gateway.logic import message_access, querying

router = APIGatewayHttpRouter()


@router.get(
    "/v1/sms/<id>",
    **route_doc(
        summary="Get a message with its status history",
        operation_id="getMessage",
        tag=MESSAGES_TAG,
        scope=SCOPE_READ,
        success=(200, "The message", "MessageDetailOut"),
        errors=(MessageNotFoundError,),
        parameters=(id_parameter("message"),),
    ),
)
def handle_get_message(id: str) -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_READ)
    message = message_access.get_message_for(caller.workspace_id, id, test=caller.is_test)
    return json_response(200, message.to_api(with_history=True))


@router.get(
    "/v1/sms/",
    **route_doc(
        summary="List messages, newest first",
        operation_id="listMessages",
        tag=MESSAGES_TAG,
        scope=SCOPE_READ,
        success=(200, "A page of messages", "MessageListOut"),
        errors=(ValidationError,),
        parameters=LIST_MESSAGES_PARAMETERS,
    ),
)
def handle_list_messages() -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_READ)
    params = router.current_event.query_string_parameters or {}
    page = querying.list_messages_for(caller.workspace_id, params, test=caller.is_test)
    return json_response(
        200,
        {"items": [m.to_api() for m in page.items], "next_cursor": page.next_cursor},
    )
