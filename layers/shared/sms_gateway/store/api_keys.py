"""API keys and workspaces, which workspace owns each Twilio subaccount, and which subaccount each
Messaging Service belongs to. A key is shown once; only its SHA-256 hash is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sms_gateway.config import get_settings
from sms_gateway.domain.callers import ALL_SCOPES, KeyMode
from sms_gateway.domain.clock import now_iso
from sms_gateway.domain.ids import new_id
from sms_gateway.store import aws_clients
from sms_gateway.store.dynamo import from_item, to_item, write_if

BY_WORKSPACE_INDEX = "by_workspace"


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
    return _bind(_account_pk(account_sid), "twilio_account", "workspace_id", workspace_id)


def _service_pk(messaging_service_sid: str) -> str:
    return f"messaging_service#{messaging_service_sid}"


def bind_messaging_service(account_sid: str, messaging_service_sid: str) -> bool:
    """Record that a Messaging Service belongs to a Twilio subaccount (an operator's act, as in
    Twilio, where a service lives in the account it was created in); False if it is bound to
    another account. A use case may name only a service of its own account: opt-outs are kept
    per service, so naming another tenant's service would read that tenant's opt-out list."""
    return _bind(
        _service_pk(messaging_service_sid), "messaging_service", "account_sid", account_sid
    )


def _eum_identity_pk(origination_identity: str) -> str:
    return f"eum_identity#{origination_identity}"


def bind_eum_identity(workspace_id: str, origination_identity: str) -> bool:
    """Give an AWS End User Messaging SMS origination identity (a pool, phone number or sender
    ID, as the use case names it) to a workspace; False if another workspace has it. Only its
    owner may send from it: the stack's role may send from every identity the operator listed."""
    return _bind(
        _eum_identity_pk(origination_identity), "eum_identity", "workspace_id", workspace_id
    )


def eum_identity_owner(origination_identity: str) -> str | None:
    item = _read(_eum_identity_pk(origination_identity))
    return str(item["workspace_id"]) if item else None


def _bind(pk: str, kind: str, owner_attribute: str, owner: str) -> bool:
    """Give the thing `pk` names to `owner` for good; True if it is (now or already) theirs."""
    written = write_if(
        lambda: aws_clients.dynamodb().put_item(
            TableName=get_settings().api_keys_table,
            Item=to_item({"pk": pk, "kind": kind, owner_attribute: owner, "created_at": now_iso()}),
            ConditionExpression="attribute_not_exists(pk) OR #owner = :owner",
            ExpressionAttributeNames={"#owner": owner_attribute},
            ExpressionAttributeValues={":owner": {"S": owner}},
        )
    )
    return written is not None


def _read(pk: str) -> dict[str, Any]:
    """The item with this key ({} if none), read consistently: a key just revoked or an account
    just bound must count at once."""
    response = aws_clients.dynamodb().get_item(
        TableName=get_settings().api_keys_table, Key={"pk": {"S": pk}}, ConsistentRead=True
    )
    return from_item(response.get("Item", {}))


def messaging_service_account(messaging_service_sid: str) -> str | None:
    """The subaccount the service is bound to, or None if no operator bound it."""
    item = _read(_service_pk(messaging_service_sid))
    return str(item["account_sid"]) if item else None


def twilio_account_owner(account_sid: str) -> str | None:
    item = _read(_account_pk(account_sid))
    return str(item["workspace_id"]) if item else None


def workspace_exists(workspace_id: str) -> bool:
    return bool(_read(_workspace_pk(workspace_id)))


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
        revoked_at = key["revoked_at"] = now_iso()
        # Refused only when a concurrent revocation got there first.
        write_if(
            lambda: aws_clients.dynamodb().update_item(
                TableName=get_settings().api_keys_table,
                Key={"pk": {"S": key["pk"]}},
                UpdateExpression="SET revoked_at = :r",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(revoked_at)",
                ExpressionAttributeValues={":r": {"S": revoked_at}},
            )
        )
    return {k: v for k, v in key.items() if k not in {"pk", "kind"}}


def find_key(digest: str) -> dict[str, Any] | None:
    """The stored key whose secret hashes to `digest`, or None."""
    item = _read(_key_pk(digest))
    if not item or item.get("kind") != "api_key":
        return None
    return {**item, "hash": str(item["pk"]).removeprefix("key#")}
