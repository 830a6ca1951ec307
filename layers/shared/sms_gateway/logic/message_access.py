"""A workspace's own messages: the one check that answers another workspace's message exactly as
a missing one (kept apart from querying so that cancel does not load the use-case models)."""

from __future__ import annotations

from sms_gateway.domain.errors import MessageNotFoundError
from sms_gateway.domain.ids import is_uuid
from sms_gateway.domain.messages import Message
from sms_gateway.store import message_store


def get_message_for(workspace_id: str, message_id: str, *, test: bool) -> Message:
    """Another workspace's message is answered exactly as a missing one, and so is a message of
    the other mode: a test key (`test`) sees test messages only, a live key live ones only."""
    message = message_store.get_message(message_id) if is_uuid(message_id) else None
    if message is None or message.workspace_id != workspace_id or message.test is not test:
        raise MessageNotFoundError("message not found", message_id=message_id)
    return message
