"""The template management API: /v1/sms/templates (scope templates:manage)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field

from sms_gateway.api.caller import SCOPE_TEMPLATES, require_scope
from sms_gateway.api.docs import (
    PAGE_PARAMETERS,
    TEMPLATES_TAG,
    links_by_id,
    parameter,
    route_doc,
)
from sms_gateway.api.http import json_object, json_response
from sms_gateway.domain.errors import (
    TemplateNotFoundError,
    TemplateSlugTakenError,
    ValidationError,
)
from sms_gateway.domain.templates import TemplateSpec
from sms_gateway.logic import querying, template_admin

router = APIGatewayHttpRouter()

ID_OR_SLUG = parameter(
    "id", "path", "The template's id or its slug", {"type": "string"}, required=True
)


class TemplateOut(TemplateSpec):
    model_config = ConfigDict(title="Template")
    id: str = Field(json_schema_extra={"format": "uuid"})
    variables: list[str] = Field(description="The placeholders' names, in order of first use")
    created_at: str
    updated_at: str


class TemplateListOut(BaseModel):
    model_config = ConfigDict(title="TemplateList")
    items: list[TemplateOut] = Field(description="In slug order")
    next_cursor: str | None = Field(description="Opaque; pass as `cursor` for the next page")


@router.post(
    "/v1/sms/templates",
    **route_doc(
        summary="Create a template",
        operation_id="createTemplate",
        tag=TEMPLATES_TAG,
        scope=SCOPE_TEMPLATES,
        success=(201, "The created template", TemplateOut),
        errors=(ValidationError, TemplateSlugTakenError),
        request_model=TemplateSpec,
        links=links_by_id("getTemplate", "updateTemplate", "deleteTemplate"),
    ),
)
def handle_create_template() -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_TEMPLATES)
    template = template_admin.create_template(
        caller.workspace_id, json_object(router.current_event)
    )
    return json_response(201, template.to_api())


@router.get(
    "/v1/sms/templates",
    **route_doc(
        summary="List the workspace's templates",
        operation_id="listTemplates",
        tag=TEMPLATES_TAG,
        scope=SCOPE_TEMPLATES,
        success=(200, "A page of templates, in slug order", TemplateListOut),
        errors=(ValidationError,),
        parameters=PAGE_PARAMETERS,
    ),
)
def handle_list_templates() -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_TEMPLATES)
    limit, cursor = querying.page_params(router.current_event.query_string_parameters or {})
    templates, next_cursor = template_admin.list_templates(
        caller.workspace_id, limit=limit, cursor=cursor
    )
    return json_response(
        200, {"items": [t.to_api() for t in templates], "next_cursor": next_cursor}
    )


@router.get(
    "/v1/sms/templates/<id>",
    **route_doc(
        summary="Get a template",
        operation_id="getTemplate",
        tag=TEMPLATES_TAG,
        scope=SCOPE_TEMPLATES,
        success=(200, "The template", TemplateOut),
        errors=(TemplateNotFoundError,),
        parameters=(ID_OR_SLUG,),
    ),
)
def handle_get_template(id: str) -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_TEMPLATES)
    return json_response(200, template_admin.get_template(caller.workspace_id, id).to_api())


@router.patch(
    "/v1/sms/templates/<id>",
    **route_doc(
        summary="Change a template (messages already accepted keep their text)",
        operation_id="updateTemplate",
        tag=TEMPLATES_TAG,
        scope=SCOPE_TEMPLATES,
        success=(200, "The changed template", TemplateOut),
        errors=(TemplateNotFoundError, TemplateSlugTakenError, ValidationError),
        request_model=TemplateSpec,
        partial_request=True,
        parameters=(ID_OR_SLUG,),
    ),
)
def handle_patch_template(id: str) -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_TEMPLATES)
    changes = json_object(router.current_event)
    template = template_admin.update_template(caller.workspace_id, id, changes)
    return json_response(200, template.to_api())


@router.delete(
    "/v1/sms/templates/<id>",
    **route_doc(
        summary="Delete a template (sends naming it then get 404)",
        operation_id="deleteTemplate",
        tag=TEMPLATES_TAG,
        scope=SCOPE_TEMPLATES,
        success=(204, "Deleted", None),
        errors=(TemplateNotFoundError,),
        parameters=(ID_OR_SLUG,),
    ),
)
def handle_delete_template(id: str) -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_TEMPLATES)
    template_admin.delete_template(caller.workspace_id, id)
    return Response(status_code=204, body="")
