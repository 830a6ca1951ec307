"""GET /v1/usage: a workspace's usage of a month, in the caller's mode."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from sms_gateway.api.caller import SCOPE_READ, require_scope
from sms_gateway.api.docs import USAGE_PARAMETERS, USAGE_TAG, route_doc
from sms_gateway.api.http import json_response
from sms_gateway.domain.errors import ValidationError
from sms_gateway.domain.limits import is_period
from sms_gateway.logic import usage

router = APIGatewayHttpRouter()


@router.get(
    "/v1/usage",
    **route_doc(
        summary="Usage of a month: messages, segments, cost, statuses, quota, wallet, rate",
        operation_id="getUsage",
        tag=USAGE_TAG,
        scope=SCOPE_READ,
        success=(200, "The month's usage, in the caller's mode", "UsageOut"),
        errors=(ValidationError,),
        parameters=USAGE_PARAMETERS,
    ),
)
def handle_usage() -> Response[str]:
    caller = require_scope(router.current_event.raw_event, SCOPE_READ)
    params = router.current_event.query_string_parameters or {}
    unknown = sorted(set(params) - {"period"})
    if unknown:
        raise ValidationError(f"unknown query parameter: {unknown[0]}", field=unknown[0])
    period = params.get("period") or usage.current_period()
    if not is_period(period):
        raise ValidationError("period must be a calendar month, YYYY-MM", field="period")
    return json_response(200, usage.usage_report(caller.workspace_id, caller.mode, period))
