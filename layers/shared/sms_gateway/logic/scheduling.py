"""Scheduled sends: when a `send_at` schedules a message, the dispatch when it fires, and cancel."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from sms_gateway.domain.clock import now_iso, utc_now
from sms_gateway.domain.errors import (
    NotCancelableError,
    SendAtOutOfRangeError,
    ValidationError,
)
from sms_gateway.domain.messages import Message, MessageStatus
from sms_gateway.logic import message_access
from sms_gateway.store import message_store, schedules, transitions

logger = Logger(child=True)

SEND_NOW_WITHIN = timedelta(minutes=1)
LATEST_PAST = timedelta(hours=1)
FURTHEST_AHEAD = timedelta(days=30)


# RFC 3339's date-time (section 5.6), and nothing else ISO 8601 allows: no week or ordinal dates,
# no basic format, no '+0100', no space for the T. ASCII digits only.
_RFC_3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


@dataclass(frozen=True, slots=True)
class SendTime:
    """When to send: None means now."""

    scheduled_for: datetime | None


def parse_send_at(raw: str | None, now: datetime | None = None) -> SendTime:
    """RFC 3339 with an offset. Within the next minute, or up to an hour late: send now."""
    if raw is None:
        return SendTime(None)
    moment = _rfc_3339(raw)
    now = now or utc_now()
    if moment < now - LATEST_PAST or moment > now + FURTHEST_AHEAD:
        raise SendAtOutOfRangeError(
            "send_at must be between one hour ago and 30 days ahead", send_at=raw
        )
    return SendTime(moment if moment > now + SEND_NOW_WITHIN else None)


def _rfc_3339(raw: str) -> datetime:
    not_rfc_3339 = ValidationError(
        "send_at must be an RFC 3339 date-time with an offset, e.g. 2026-12-01T09:00:00Z",
        errors=[{"field": "send_at", "code": "datetime_parsing", "issue": "not RFC 3339"}],
    )
    if _RFC_3339.fullmatch(raw):
        try:
            # Python reads 'T' and 'Z' only in upper case; RFC 3339 allows both cases.
            return datetime.fromisoformat(raw.upper())
        except ValueError as exc:  # the right shape, but no such moment (month 13, 25:00)
            raise not_rfc_3339 from exc
    try:
        lenient = datetime.fromisoformat(raw)
    except ValueError:
        lenient = None
    if lenient is not None and (lenient.tzinfo is None or "T" not in raw.upper()):
        # A date-time a caller may have meant, but whose instant is unknown.
        raise ValidationError(
            "send_at must carry a time and a UTC offset (Z or +hh:mm)",
            errors=[{"field": "send_at", "code": "timezone_missing", "issue": "no offset"}],
        )
    raise not_rfc_3339


def dispatch_scheduled(message_id: str) -> bool:
    """scheduled -> pending (the table's stream then queues its handoff). A canceled, already
    dispatched or unknown message is left alone, so a duplicate or late firing does nothing
    (True if this firing moved it)."""
    moved = transitions.apply_internal(message_id, MessageStatus.PENDING, now_iso(), "dispatched")
    logger.info("scheduled dispatch", extra={"message_id": message_id, "moved": moved})
    return moved


def cancel_message(workspace_id: str, message_id: str, *, test: bool) -> Message:
    """Cancel a scheduled message of the workspace and of the caller's mode (`test`)."""
    message = message_access.get_message_for(workspace_id, message_id, test=test)
    if not transitions.apply_internal(message_id, MessageStatus.CANCELED, now_iso(), "canceled"):
        current = message_store.get_message(message_id) or message
        raise NotCancelableError(
            f"only a scheduled message can be canceled; this one is {current.status.value}",
            status=current.status.value,
        )
    # The status is what counts: a schedule that still fires finds nothing to do.
    schedules.delete_message_schedule(message_id)
    canceled = message_store.get_message(message_id)
    assert canceled is not None
    logger.info("message canceled", extra={"message_id": message_id})
    return canceled
