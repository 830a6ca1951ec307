"""The one place where domain errors become HTTP responses."""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from sms_gateway.domain.errors import GatewayError, ServiceUnavailableError, ValidationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent

logger = Logger(child=True)

JSON = "application/json"


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps(body, separators=(",", ":")),
        headers=headers,
    )


class UnreadableBodyError(Exception):
    """A base64 body that is not base64 of UTF-8."""


def body_text(event: BaseProxyEvent) -> str:
    """The request body as text. API Gateway passes base64 any body whose Content-Type is not
    JSON or text; UnreadableBodyError if that is not base64 of UTF-8."""
    text = event.body or ""
    if not event.is_base64_encoded:
        return text
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise UnreadableBodyError from exc


def json_object(event: BaseProxyEvent) -> dict[str, Any]:
    """The request body as a JSON object in UTF-8; anything else is a validation_error.

    Every way a body can fail is refused here, once for all routes: a body that is not UTF-8,
    JSON nested deeper than the parser can follow (RecursionError), and text holding a lone
    UTF-16 surrogate (`"\\ud800"` is valid JSON, but no store or client can encode it).
    """
    try:
        text = body_text(event)
    except UnreadableBodyError as exc:
        raise ValidationError("request body must be a JSON object in UTF-8") from exc
    try:
        data = json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise ValidationError("request body must be a JSON object") from exc
    except RecursionError as exc:
        raise ValidationError("request body is nested too deeply") from exc
    except _NumberTooLongError as exc:
        raise ValidationError(
            f"request body holds a number of more than {MAX_INT_DIGITS} digits"
        ) from exc
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object")
    if not is_valid_unicode(data):
        raise ValidationError("request body holds a string that is not valid Unicode")
    return data


# More digits than any field takes, and than DynamoDB keeps (38); int() refuses more than 4,300.
MAX_INT_DIGITS = 38


class _NumberTooLongError(Exception):
    pass


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _NumberTooLongError
    return int(text)


def is_valid_unicode(data: Any) -> bool:
    """True if every string in `data` (keys included) can be written as UTF-8: no lone
    surrogates."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **details}}


def error_response(error: GatewayError) -> Response[str]:
    headers = {"Retry-After": "5"} if isinstance(error, ServiceUnavailableError) else {}
    headers.update(error.headers)
    return json_response(
        error.status, error_body(error.code, error.message, **error.details), headers or None
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
