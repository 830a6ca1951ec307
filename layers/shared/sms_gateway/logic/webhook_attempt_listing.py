"""GET /v1/sms/{id}/webhook-attempts: a workspace's own message's attempts, oldest first (kept
apart from the delivery, whose HTTP client the reading function never needs to load)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sms_gateway.logic import message_access
from sms_gateway.store import webhook_attempts


def attempts_for(workspace_id: str, message_id: str, *, test: bool) -> list[dict[str, Any]]:
    message = message_access.get_message_for(workspace_id, message_id, test=test)
    attempts = sorted(
        webhook_attempts.list_attempts(message.id), key=lambda a: (a.attempted_at, a.sequence)
    )
    # What a caller reads of an attempt: all of it but the table's own bookkeeping.
    return [
        {k: v for k, v in asdict(a).items() if k not in ("message_id", "delivered")}
        for a in attempts
    ]
