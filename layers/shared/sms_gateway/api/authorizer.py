"""The HTTP API authorizer's answer (simple responses) for an authenticated or refused caller."""

from __future__ import annotations

from typing import Any

from sms_gateway.logic.auth import Authentication


def authorizer_response(authentication: Authentication) -> dict[str, Any]:
    """HTTP API simple response. Unauthenticated callers pass with authenticated=false so the
    route can answer the documented 401 body (a simple-response deny is a bare 403)."""
    caller = authentication.caller
    if caller is None:
        return {
            "isAuthorized": True,
            "context": {"authenticated": False, "reason": authentication.reason},
        }
    return {
        "isAuthorized": True,
        "context": {
            "authenticated": True,
            "workspace_id": caller.workspace_id,
            "scopes": " ".join(sorted(caller.scopes)),
            "key_id": caller.key_id,
            "mode": caller.mode,
        },
    }
