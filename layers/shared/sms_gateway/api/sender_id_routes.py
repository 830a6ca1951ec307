"""Registering alphanumeric sender IDs: /v1/sms/sender-ids (scope use_cases:manage)."""

from __future__ import annotations

from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field

from sms_gateway.api.caller import SCOPE_MANAGE, require_scope
from sms_gateway.api.docs import PAGE_PARAMETERS, SENDER_IDS_TAG, parameter, route_doc
from sms_gateway.api.http import json_object, json_response
from sms_gateway.domain.errors import (
    SenderIdAlreadyRegisteredError,
    SenderIdInvalidError,
    SenderIdNotFoundError,
    ValidationError,
)
from sms_gateway.logic import querying, sender_id_admin

router = APIGatewayHttpRouter()


class SenderIdOut(sender_id_admin.SenderIdRegistration):
    model_config = ConfigDict(title="SenderId")
    created_at: str


class SenderIdListOut(BaseModel):
    model_config = ConfigDict(title="SenderIdList")
    items: list[SenderIdOut]
    next_cursor: str | None = Field(description="Opaque; pass as `cursor` for the next page")


@router.post(
    "/v1/sms/sender-ids",
    **route_doc(
        summary="Register an alphanumeric sender ID for the workspace",
        operation_id="registerSenderId",
        tag=SENDER_IDS_TAG,
        scope=SCOPE_MANAGE,
        success=(201, "Registered", SenderIdOut),
        errors=(ValidationError, SenderIdInvalidError, SenderIdAlreadyRegisteredError),
        request_model=sender_id_admin.SenderIdRegistration,
    ),
)
def handle_register_sender_id() -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_MANAGE)
    registered = sender_id_admin.register_sender_id(
        caller.workspace_id, json_object(router.current_event)
    )
    return json_response(201, registered)


@router.get(
    "/v1/sms/sender-ids",
    **route_doc(
        summary="List the workspace's sender IDs",
        operation_id="listSenderIds",
        tag=SENDER_IDS_TAG,
        scope=SCOPE_MANAGE,
        success=(200, "A page of sender IDs, in order", SenderIdListOut),
        errors=(ValidationError,),
        parameters=PAGE_PARAMETERS,
    ),
)
def handle_list_sender_ids() -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_MANAGE)
    limit, cursor = querying.page_params(router.current_event.query_string_parameters or {})
    items, next_cursor = sender_id_admin.list_sender_ids(
        caller.workspace_id, limit=limit, cursor=cursor
    )
    return json_response(200, {"items": items, "next_cursor": next_cursor})


@router.delete(
    "/v1/sms/sender-ids/<sender_id>",
    **route_doc(
        summary="Remove a sender ID (sends naming it then get 422 sender_id_invalid)",
        operation_id="removeSenderId",
        tag=SENDER_IDS_TAG,
        scope=SCOPE_MANAGE,
        success=(204, "Removed", None),
        errors=(SenderIdNotFoundError,),
        parameters=(
            parameter(
                "sender_id",
                "path",
                "The sender ID, percent-encoded (a space is %20)",
                {"type": "string"},
                required=True,
            ),
        ),
    ),
)
def handle_remove_sender_id(sender_id: str) -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_MANAGE)
    sender_id_admin.remove_sender_id(caller.workspace_id, unquote(sender_id))
    return Response(status_code=204, body="")
