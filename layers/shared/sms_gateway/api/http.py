"""The one place where domain errors become HTTP responses."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from sms_gateway.domain.errors import GatewayError, ServiceUnavailableError, ValidationError

logger = Logger(child=True)

JSON = "application/json"


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps(body, separators=(",", ":")),
        headers=headers,
    )


def json_object(raw: str | None) -> dict[str, Any]:
    """A request body that must be a JSON object; anything else is a validation_error."""
    try:
        data = json.loads(raw or "")
    except json.JSONDecodeError as exc:
        raise ValidationError("request body must be a JSON object") from exc
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object")
    return data


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **details}}


def error_response(error: GatewayError) -> Response[str]:
    headers = {"Retry-After": "5"} if isinstance(error, ServiceUnavailableError) else None
    return json_response(
        error.status, error_body(error.code, error.message, **error.details), headers
    )


def build_resolver() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver()

    @app.exception_handler(GatewayError)
    def handle_gateway_error(error: GatewayError) -> Response[str]:
        if error.status >= 500:
            logger.error("request failed", extra={"code": error.code})
        return error_response(error)

    @app.not_found
    def handle_not_found(_: NotFoundError) -> Response[str]:
        return json_response(404, error_body("not_found", "no such route"))

    @app.exception_handler(Exception)
    def handle_unexpected(error: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return json_response(500, error_body("internal_error", "internal error"))

    return app
