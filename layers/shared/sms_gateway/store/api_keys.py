"""API keys and workspaces. A key is shown once; only its SHA-256 hash is stored."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from sms_gateway.api.caller import ALL_SCOPES, Caller
from sms_gateway.config import get_settings
from sms_gateway.domain.clock import now_iso
from sms_gateway.domain.ids import new_id
from sms_gateway.store import aws_clients
from sms_gateway.store.dynamo import from_item, to_item

KeyMode = Literal["live", "test"]
BY_WORKSPACE_INDEX = "by_workspace"
# 32 random bytes, url-safe base64 without padding, is 43 characters.
_KEY_PATTERN = re.compile(r"^sk_(live|test)_[A-Za-z0-9_-]{43,128}$")
_BEARER = re.compile(r"^Bearer +(\S+)$", re.IGNORECASE)


class UnknownWorkspaceError(Exception):
    pass


class UnknownKeyError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class IssuedKey:
    secret: str
    key_id: str
    workspace_id: str
    scopes: tuple[str, ...]
    mode: KeyMode


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _key_pk(digest: str) -> str:
    return f"key#{digest}"


def _workspace_pk(workspace_id: str) -> str:
    return f"workspace#{workspace_id}"


def create_workspace(name: str) -> dict[str, Any]:
    workspace = {
        "pk": _workspace_pk(new_id()),
        "kind": "workspace",
        "name": name,
        "created_at": now_iso(),
    }
    workspace["workspace_id"] = workspace["pk"].removeprefix("workspace#")
    aws_clients.dynamodb().put_item(
        TableName=get_settings().api_keys_table,
        Item=to_item(workspace),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return {k: v for k, v in workspace.items() if k not in {"pk", "kind"}}


def _account_pk(account_sid: str) -> str:
    return f"twilio_account#{account_sid}"


def bind_twilio_account(workspace_id: str, account_sid: str) -> bool:
    """Give a Twilio subaccount to a workspace (an operator's act); False if another workspace
    has it. Only its owner may point use cases at it: otherwise one tenant could send through,
    and be billed to, another's account."""
    try:
        aws_clients.dynamodb().put_item(
            TableName=get_settings().api_keys_table,
            Item=to_item(
                {
                    "pk": _account_pk(account_sid),
                    "kind": "twilio_account",
                    "workspace_id": workspace_id,
                    "created_at": now_iso(),
                }
            ),
            ConditionExpression="attribute_not_exists(pk) OR workspace_id = :w",
            ExpressionAttributeValues={":w": {"S": workspace_id}},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def twilio_account_owner(account_sid: str) -> str | None:
    response = aws_clients.dynamodb().get_item(
        TableName=get_settings().api_keys_table,
        Key={"pk": {"S": _account_pk(account_sid)}},
        ConsistentRead=True,
    )
    item = from_item(response.get("Item", {}))
    return str(item["workspace_id"]) if item else None


def workspace_exists(workspace_id: str) -> bool:
    response = aws_clients.dynamodb().get_item(
        TableName=get_settings().api_keys_table,
        Key={"pk": {"S": _workspace_pk(workspace_id)}},
        ConsistentRead=True,
    )
    return "Item" in response


def issue_key(
    workspace_id: str, scopes: tuple[str, ...], mode: KeyMode = "live", name: str = ""
) -> IssuedKey:
    if not workspace_exists(workspace_id):
        raise UnknownWorkspaceError(workspace_id)
    unknown = set(scopes) - set(ALL_SCOPES)
    if unknown or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {', '.join(ALL_SCOPES)}")
    secret = f"sk_{mode}_{secrets.token_urlsafe(32)}"
    key_id = "key_" + secrets.token_hex(8)
    aws_clients.dynamodb().put_item(
        TableName=get_settings().api_keys_table,
        Item=to_item(
            {
                "pk": _key_pk(hash_key(secret)),
                "kind": "api_key",
                "key_id": key_id,
                "workspace_id": workspace_id,
                "scopes": list(dict.fromkeys(scopes)),
                "mode": mode,
                "name": name,
                # Enough of the key to recognise it in a list, far too little to use it.
                "hint": secret[:12] + "…",
                "created_at": now_iso(),
            }
        ),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return IssuedKey(secret, key_id, workspace_id, tuple(dict.fromkeys(scopes)), mode)


def list_keys(workspace_id: str) -> list[dict[str, Any]]:
    """Every key of a workspace, never the secret nor its hash."""
    response = aws_clients.dynamodb().query(
        TableName=get_settings().api_keys_table,
        IndexName=BY_WORKSPACE_INDEX,
        KeyConditionExpression="workspace_id = :w",
        FilterExpression="kind = :k",
        ExpressionAttributeValues={":w": {"S": workspace_id}, ":k": {"S": "api_key"}},
    )
    keys = [from_item(item) for item in response.get("Items", [])]
    return [{k: v for k, v in key.items() if k not in {"pk", "kind"}} for key in keys]


def revoke_key(workspace_id: str, key_id: str) -> dict[str, Any]:
    """Revoke a key of the workspace; revoking it again keeps the first revocation time."""
    response = aws_clients.dynamodb().query(
        TableName=get_settings().api_keys_table,
        IndexName=BY_WORKSPACE_INDEX,
        KeyConditionExpression="workspace_id = :w",
        FilterExpression="key_id = :id",
        ExpressionAttributeValues={":w": {"S": workspace_id}, ":id": {"S": key_id}},
    )
    items = [from_item(item) for item in response.get("Items", [])]
    if not items:
        raise UnknownKeyError(key_id)
    key = items[0]
    if not key.get("revoked_at"):
        key["revoked_at"] = now_iso()
        try:
            aws_clients.dynamodb().update_item(
                TableName=get_settings().api_keys_table,
                Key={"pk": {"S": key["pk"]}},
                UpdateExpression="SET revoked_at = :r",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(revoked_at)",
                ExpressionAttributeValues={":r": {"S": key["revoked_at"]}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
    return {k: v for k, v in key.items() if k not in {"pk", "kind"}}


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
    digest = hash_key(secret)
    response = aws_clients.dynamodb().get_item(
        TableName=get_settings().api_keys_table,
        Key={"pk": {"S": _key_pk(digest)}},
        ConsistentRead=True,
    )
    item = from_item(response.get("Item", {}))
    stored = str(item.get("pk", "")).removeprefix("key#")
    # The lookup is by hash already; the constant-time compare keeps it so if storage changes.
    if not item or not hmac.compare_digest(stored, digest) or item.get("kind") != "api_key":
        return Authentication(None, "the API key is not valid")
    if item.get("revoked_at"):
        return Authentication(None, "the API key is not valid")
    caller = Caller(
        workspace_id=str(item["workspace_id"]),
        scopes=frozenset(item.get("scopes") or ()),
        key_id=str(item["key_id"]),
        mode=str(item.get("mode", "live")),
    )
    return Authentication(caller, "ok")


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
