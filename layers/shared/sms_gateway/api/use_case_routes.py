"""The use-case management API: /v1/sms/use-cases (scope use_cases:manage)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict

from sms_gateway.api.caller import SCOPE_MANAGE, require_scope
from sms_gateway.api.docs import USE_CASES_TAG, id_parameter, links_by_id, route_doc
from sms_gateway.api.http import json_object, json_response
from sms_gateway.domain.errors import (
    CallbackUrlInvalidError,
    UseCaseNotFoundError,
    ValidationError,
    refuse_unknown_fields,
)
from sms_gateway.domain.messages import UuidStr
from sms_gateway.domain.use_cases import UseCaseSpec
from sms_gateway.logic import use_case_admin

router = APIGatewayHttpRouter()


class UseCaseOut(UseCaseSpec):
    model_config = ConfigDict(title="UseCase")
    id: UuidStr
    created_at: str
    updated_at: str


class UseCaseListOut(BaseModel):
    model_config = ConfigDict(title="UseCaseList")
    items: list[UseCaseOut]


@router.post(
    "/v1/sms/use-cases",
    **route_doc(
        summary="Create a use case",
        operation_id="createUseCase",
        tag=USE_CASES_TAG,
        scope=SCOPE_MANAGE,
        success=(201, "The created use case", UseCaseOut),
        errors=(ValidationError, CallbackUrlInvalidError),
        request_model=UseCaseSpec,
        links=links_by_id("getUseCase", "updateUseCase", "deleteUseCase"),
    ),
)
def handle_create_use_case() -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_MANAGE)
    spec = use_case_admin.parse_spec(json_object(router.current_event))
    use_case_admin.check_caller_may_use(caller.workspace_id, spec)
    use_case = use_case_admin.create_use_case(caller.workspace_id, spec)
    return json_response(201, use_case.to_api())


@router.get(
    "/v1/sms/use-cases",
    **route_doc(
        summary="List the workspace's use cases",
        operation_id="listUseCases",
        tag=USE_CASES_TAG,
        scope=SCOPE_MANAGE,
        success=(200, "Every live use case of the workspace", UseCaseListOut),
        errors=(),
    ),
)
def handle_list_use_cases() -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_MANAGE)
    use_cases = use_case_admin.list_use_cases_for(caller.workspace_id)
    return json_response(200, {"items": [u.to_api() for u in use_cases]})


@router.get(
    "/v1/sms/use-cases/<id>",
    **route_doc(
        summary="Get a use case",
        operation_id="getUseCase",
        tag=USE_CASES_TAG,
        scope=SCOPE_MANAGE,
        success=(200, "The use case", UseCaseOut),
        errors=(UseCaseNotFoundError,),
        parameters=(id_parameter("use case"),),
    ),
)
def handle_get_use_case(id: str) -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_MANAGE)
    return json_response(200, use_case_admin.get_use_case_for(caller.workspace_id, id).to_api())


@router.patch(
    "/v1/sms/use-cases/<id>",
    **route_doc(
        summary="Change some fields of a use case",
        operation_id="updateUseCase",
        tag=USE_CASES_TAG,
        scope=SCOPE_MANAGE,
        success=(200, "The changed use case", UseCaseOut),
        errors=(UseCaseNotFoundError, ValidationError, CallbackUrlInvalidError),
        request_model=UseCaseSpec,
        partial_request=True,
        parameters=(id_parameter("use case"),),
    ),
)
def handle_patch_use_case(id: str) -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_MANAGE)
    changes = json_object(router.current_event)
    refuse_unknown_fields(changes, set(UseCaseSpec.model_fields))
    use_case = use_case_admin.update_use_case(caller.workspace_id, id, changes, check_owner=True)
    return json_response(200, use_case.to_api())


@router.delete(
    "/v1/sms/use-cases/<id>",
    **route_doc(
        summary="Delete a use case (sends through it then get 404)",
        operation_id="deleteUseCase",
        tag=USE_CASES_TAG,
        scope=SCOPE_MANAGE,
        success=(204, "Deleted", None),
        errors=(UseCaseNotFoundError,),
        parameters=(id_parameter("use case"),),
    ),
)
def handle_delete_use_case(id: str) -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_MANAGE)
    use_case_admin.delete_use_case(caller.workspace_id, id)
    return Response(status_code=204, body="")
