"""Inbound messages as the caller reads them: GET /v1/sms/inbound and GET /v1/sms/inbound/{id}
(Twilio's webhook that stores them is api.inbound_webhook_routes)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from sms_gateway.api.caller import SCOPE_READ, require_scope
from sms_gateway.api.docs import (
    INBOUND_TAG,
    LIST_INBOUND_PARAMETERS,
    id_parameter,
    route_doc,
)
from sms_gateway.api.http import json_response
from sms_gateway.domain.errors import InboundMessageNotFoundError, ValidationError
from sms_gateway.logic import querying

router = APIGatewayHttpRouter()


@router.get(
    "/v1/sms/inbound",
    **route_doc(
        summary="List inbound messages, newest first",
        operation_id="listInboundMessages",
        tag=INBOUND_TAG,
        scope=SCOPE_READ,
        success=(200, "A page of inbound messages", "InboundMessageListOut"),
        errors=(ValidationError,),
        parameters=LIST_INBOUND_PARAMETERS,
    ),
)
def handle_list_inbound() -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_READ)
    params = router.current_event.query_string_parameters or {}
    page = querying.list_inbound_for(caller.workspace_id, params, test=caller.is_test)
    return json_response(
        200, {"items": [m.to_api() for m in page.items], "next_cursor": page.next_cursor}
    )


@router.get(
    "/v1/sms/inbound/<id>",
    **route_doc(
        summary="Get an inbound message",
        operation_id="getInboundMessage",
        tag=INBOUND_TAG,
        scope=SCOPE_READ,
        success=(200, "The inbound message", "InboundMessageOut"),
        errors=(InboundMessageNotFoundError,),
        parameters=(id_parameter("inbound message"),),
    ),
)
def handle_get_inbound(id: str) -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_READ)
    message = querying.get_inbound_for(caller.workspace_id, id, test=caller.is_test)
    return json_response(200, message.to_api())
