"""Who is calling: read from the authorizer's context in exactly one place.

The HTTP API authorizer authenticates the key and passes `workspace_id` and `scopes` on; an
HTTP API simple-response authorizer can only deny with a bare 403, so an unauthenticated caller
is passed on as such and refused here with the documented 401 body before anything is read.
"""

from __future__ import annotations

from typing import Any

from sms_gateway.domain.callers import (
    ALL_SCOPES,
    SCOPE_MANAGE,
    SCOPE_READ,
    SCOPE_SEND,
    SCOPE_TEMPLATES,
    Caller,
)
from sms_gateway.domain.errors import ForbiddenError, UnauthorizedError

__all__ = [
    "ALL_SCOPES",
    "SCOPE_MANAGE",
    "SCOPE_READ",
    "SCOPE_SEND",
    "SCOPE_TEMPLATES",
    "Caller",
    "caller_from_event",
    "require_scope",
]


def caller_from_event(raw_event: dict[str, Any]) -> Caller:
    context = (raw_event.get("requestContext") or {}).get("authorizer") or {}
    claims = context.get("lambda") or {}
    workspace_id = claims.get("workspace_id")
    if claims.get("authenticated") is not True or not workspace_id:
        raise UnauthorizedError(str(claims.get("reason") or "a valid API key is required"))
    scopes = frozenset(str(claims.get("scopes") or "").split())
    return Caller(
        workspace_id=str(workspace_id),
        scopes=scopes,
        key_id=claims.get("key_id"),
        mode=str(claims.get("mode") or "live"),
    )


def require_scope(raw_event: dict[str, Any], scope: str) -> Caller:
    caller = caller_from_event(raw_event)
    if scope not in caller.scopes:
        raise ForbiddenError(f"this API key lacks the '{scope}' scope", required_scope=scope)
    return caller
