"""Who is calling: an API key from the Authorization header, resolved to its workspace, scopes
and mode (the HTTP API's authorizer runs this for every caller-facing route)."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from sms_gateway.domain.callers import Caller
from sms_gateway.store import api_keys

# 32 random bytes, url-safe base64 without padding, is 43 characters.
_KEY_PATTERN = re.compile(r"^sk_(live|test)_[A-Za-z0-9_-]{43,128}$")
_BEARER = re.compile(r"^Bearer +(\S+)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Authentication:
    caller: Caller | None
    reason: str


def authenticate(authorization: str | None) -> Authentication:
    """Resolve an Authorization header to a caller, or say why not (never which keys exist)."""
    match = _BEARER.match(authorization or "")
    if not match:
        return Authentication(None, "send 'Authorization: Bearer <API key>'")
    secret = match.group(1)
    if not _KEY_PATTERN.fullmatch(secret):
        return Authentication(None, "the API key is malformed")
    digest = api_keys.hash_key(secret)
    key = api_keys.find_key(digest)
    # The lookup is by hash already; the constant-time compare keeps it so if storage changes.
    if key is None or not hmac.compare_digest(key["hash"], digest):
        return Authentication(None, "the API key is not valid")
    if key.get("revoked_at"):
        return Authentication(None, "the API key is not valid")
    caller = Caller(
        workspace_id=str(key["workspace_id"]),
        scopes=frozenset(key.get("scopes") or ()),
        key_id=str(key["key_id"]),
        mode=str(key.get("mode", "live")),
    )
    return Authentication(caller, "ok")
