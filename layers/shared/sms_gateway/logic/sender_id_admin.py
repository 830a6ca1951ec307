"""Registering a workspace's alphanumeric sender IDs: /v1/sms/sender-ids (scope
use_cases:manage). A send may name only a registered one."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from sms_gateway.domain.clock import now_iso
from sms_gateway.domain.errors import (
    SenderIdAlreadyRegisteredError,
    SenderIdNotFoundError,
    ValidationError,
)
from sms_gateway.domain.sender_ids import SENDER_ID_PATTERN, check_sender_id, is_sender_id
from sms_gateway.store import sender_id_store


class SenderIdRegistration(BaseModel):
    """A missing, mistyped or unknown field is a validation_error; a sender_id that breaks the
    rule is a sender_id_invalid."""

    # The pattern only documents the rule: check_sender_id applies it, with its own code.

    model_config = ConfigDict(title="SenderIdRegistration", extra="forbid", strict=True)
    sender_id: str = Field(
        description="1 to 11 characters of A-Z, a-z, 0-9 and space, at least one letter",
        json_schema_extra={"pattern": SENDER_ID_PATTERN},
    )


def register_sender_id(workspace_id: str, data: dict[str, Any]) -> dict[str, str]:
    try:
        sender_id = SenderIdRegistration.model_validate_json(json.dumps(data)).sender_id
    except PydanticValidationError as exc:
        raise ValidationError.from_pydantic("sender ID registration is invalid", exc) from exc
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
