"""Identifiers: random UUIDs, ids derived from an Idempotency-Key, and a check that never raises."""

from __future__ import annotations

import uuid

# The longest Idempotency-Key a caller may send (the API documents it; sending enforces it).
MAX_IDEMPOTENCY_KEY_LENGTH = 255

# Fixed forever: changing it would give a retried key a new message id (a second SMS).
_KEYED_MESSAGE_NAMESPACE = uuid.UUID("5b0c3f4e-8f7d-4f3a-9a59-3c1f0d2e6a71")


def new_id() -> str:
    return str(uuid.uuid4())


def message_id_for_key(workspace_id: str, mode: str, idempotency_key: str) -> str:
    """The one message id a workspace's Idempotency-Key can ever create in a mode (test or
    live): the message table's conditional put then refuses a second message for the key even
    after its idempotency record has expired."""
    return str(uuid.uuid5(_KEYED_MESSAGE_NAMESPACE, f"{workspace_id}\n{mode}\n{idempotency_key}"))


_FORWARDED_NAMESPACE = uuid.UUID("8c1d2f0a-64b3-4e8e-b0c5-7d9a1e3f5b27")


def forwarded_message_id(inbound_id: str) -> str:
    """The one message that forwards an inbound message by SMS: a forwarding run twice stores
    it once. Its own namespace, so no caller's Idempotency-Key can name it."""
    return str(uuid.uuid5(_FORWARDED_NAMESPACE, inbound_id))


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
