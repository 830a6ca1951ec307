"""GET /v1/sms/{id}/webhook-attempts and GET /v1/sms/inbound/{id}/webhook-attempts: a workspace's
own message's (or reply's) attempts, oldest first (kept apart from the delivery, whose HTTP
client the reading function never needs to load)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sms_gateway.logic import message_access, querying
from sms_gateway.store import webhook_attempts


def attempts_for(workspace_id: str, message_id: str, *, test: bool) -> list[dict[str, Any]]:
    message = message_access.get_message_for(workspace_id, message_id, test=test)
    return _listed(message.id)


def reply_attempts_for(workspace_id: str, inbound_id: str, *, test: bool) -> list[dict[str, Any]]:
    """The attempts at a reply's `message.reply` webhook (recorded under the reply's id)."""
    reply = querying.get_inbound_for(workspace_id, inbound_id, test=test)
    return _listed(reply.id)


def _listed(owner_id: str) -> list[dict[str, Any]]:
    attempts = sorted(
        webhook_attempts.list_attempts(owner_id), key=lambda a: (a.attempted_at, a.sequence)
    )
    # What a caller reads of an attempt: all of it but the table's own bookkeeping.
    return [
        {k: v for k, v in asdict(a).items() if k not in ("message_id", "delivered")}
        for a in attempts
    ]
