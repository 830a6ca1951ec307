"""GET /v1/sms/{id}/webhook-attempts: a workspace's own message's attempts, oldest first (kept
apart from the delivery, whose HTTP client the reading function never needs to load)."""

from __future__ import annotations

from typing import Any

from sms_gateway.logic import message_access
from sms_gateway.store import webhook_attempts


def attempts_for(workspace_id: str, message_id: str, *, test: bool) -> list[dict[str, Any]]:
    message = message_access.get_message_for(workspace_id, message_id, test=test)
    attempts = sorted(
        webhook_attempts.list_attempts(message.id), key=lambda a: (a.attempted_at, a.sequence)
    )
    return [
        {
            "type": a.type,
            "webhook_id": a.webhook_id,
            "sequence": a.sequence,
            "attempt": a.attempt,
            "attempted_at": a.attempted_at,
            "status_code": a.status_code,
            "error": a.error,
            "next_attempt_at": a.next_attempt_at,
        }
        for a in attempts
    ]
