"""The status machine's table: which status each status may move to, and what the move sets.
store.transitions enforces it with conditional writes (docs/architecture.md draws it)."""

from __future__ import annotations

from dataclasses import dataclass

from sms_gateway.domain.messages import MessageStatus

S = MessageStatus


@dataclass(frozen=True, slots=True)
class Transition:
    to: MessageStatus
    allowed_from: tuple[MessageStatus, ...]
    sets_time: str | None  # the timestamp attribute the transition sets
    sets_error: bool = False


TRANSITIONS: dict[MessageStatus, Transition] = {
    S.PENDING: Transition(S.PENDING, (S.SCHEDULED,), None),
    S.CANCELED: Transition(S.CANCELED, (S.SCHEDULED,), None),
    S.SENT: Transition(S.SENT, (S.PENDING,), "handed_off_at"),
    S.FAILED: Transition(S.FAILED, (S.PENDING,), "errored_at", sets_error=True),
    S.DELIVERED: Transition(S.DELIVERED, (S.PENDING, S.SENT), "delivered_at"),
    S.UNDELIVERED: Transition(S.UNDELIVERED, (S.PENDING, S.SENT), "errored_at", sets_error=True),
}
