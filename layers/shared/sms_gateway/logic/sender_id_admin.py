"""Registering a workspace's alphanumeric sender IDs: /v1/sms/sender-ids (scope
use_cases:manage). A send may name only a registered one."""

from __future__ import annotations

from typing import Any

from sms_gateway.domain.clock import now_iso
from sms_gateway.domain.errors import (
    SenderIdAlreadyRegisteredError,
    SenderIdNotFoundError,
    ValidationError,
    refuse_unknown_fields,
)
from sms_gateway.domain.sender_ids import check_sender_id, is_sender_id
from sms_gateway.store import sender_id_store


def register_sender_id(workspace_id: str, data: dict[str, Any]) -> dict[str, str]:
    refuse_unknown_fields(data, {"sender_id"})
    sender_id = data.get("sender_id")
    if not isinstance(sender_id, str):
        raise ValidationError(
            "sender_id is required, a string",
            errors=[{"field": "sender_id", "code": "string_type", "issue": "required string"}],
        )
    check_sender_id(sender_id)
    created_at = now_iso()
    if not sender_id_store.register(workspace_id, sender_id, created_at):
        raise SenderIdAlreadyRegisteredError(
            "this sender ID is registered to the workspace already", sender_id=sender_id
        )
    return {"sender_id": sender_id, "created_at": created_at}


def list_sender_ids(
    workspace_id: str, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, str]], str | None]:
    return sender_id_store.list_page(workspace_id, limit=limit, cursor=cursor)


def remove_sender_id(workspace_id: str, sender_id: str) -> None:
    # A name no sender ID can have was never registered: nothing to delete.
    if not is_sender_id(sender_id) or not sender_id_store.remove(workspace_id, sender_id):
        raise SenderIdNotFoundError("this sender ID is not registered to the workspace")
