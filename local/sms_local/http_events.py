"""API Gateway HTTP API payload v2.0 events, built as API Gateway builds them."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

API_ID = "localapi01"
ACCOUNT_ID = "123456789012"

# API Gateway base64-encodes bodies it does not consider text.
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")


def is_text_content(content_type: str | None) -> bool:
    return bool(content_type) and str(content_type).lower().startswith(_TEXT_TYPES)


def http_event(
    *,
    method: str,
    raw_path: str,
    raw_query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    route_key: str,
    path_parameters: dict[str, str] | None = None,
    source_ip: str = "127.0.0.1",
    authorizer_context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    now = datetime.now(UTC)
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        # API Gateway joins repeated query parameters with commas.
        query[name] = f"{query[name]},{value}" if name in query else value
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": lowered,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": lowered.get("host", "127.0.0.1").split(".")[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex[:16] + "=",
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if authorizer_context is not None:
        event["requestContext"]["authorizer"] = {"lambda": authorizer_context}
    if body:
        if is_text_content(lowered.get("content-type")):
            event["body"] = body.decode("utf-8", errors="replace")
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def authorizer_event(request_event: dict[str, Any], identity: list[str]) -> dict[str, Any]:
    """The REQUEST authorizer event (payload v2.0) for a route request."""
    context = request_event["requestContext"]
    event = {
        key: request_event[key]
        for key in ("version", "routeKey", "rawPath", "rawQueryString", "headers")
    }
    event.update(
        {
            "type": "REQUEST",
            "routeArn": (
                f"arn:aws:execute-api:us-east-1:{ACCOUNT_ID}:{API_ID}/$default/"
                f"{context['http']['method']}{context['http']['path']}"
            ),
            "identitySource": identity,
            "requestContext": {k: v for k, v in context.items() if k != "authorizer"},
        }
    )
    for optional in ("queryStringParameters", "pathParameters"):
        if optional in request_event:
            event[optional] = request_event[optional]
    return event
