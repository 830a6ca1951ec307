"""The operator's way out when HandoffPipe gave up on stream records (its dead-letter queue is
alarmed): find the pending messages no worker ever took and queue their handoff again.

A Scan, run by hand, never by a function: the table has no index by status, and this is rare.
Queueing a message twice is harmless: the handoff's claim sends it at most once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from sms_gateway.domain.clock import iso, utc_now
from sms_gateway.store import handoff_queue, message_store


def stuck_message_ids(older_than: timedelta) -> Iterator[str]:
    """Pending, never claimed, never accepted by the provider, and unchanged for `older_than`
    (a message the pipe queued a moment ago is not stuck)."""
    return message_store.unclaimed_pending_ids(updated_before=iso(utc_now() - older_than))


def requeue_stuck(older_than: timedelta) -> list[str]:
    requeued = []
    for message_id in stuck_message_ids(older_than):
        handoff_queue.enqueue_handoff(message_id)
        requeued.append(message_id)
    return requeued
