"""The operator's way out when HandoffPipe gave up on stream records (its dead-letter queue is
alarmed): find the pending messages no worker ever took and queue their handoff again.

A Scan, run by hand, never by a function: the table has no index by status, and this is rare.
Queueing a message twice is harmless: the handoff's claim sends it at most once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from sms_gateway.config import get_settings
from sms_gateway.domain.clock import iso, utc_now
from sms_gateway.domain.messages import MessageStatus
from sms_gateway.store import aws_clients, handoff_queue


def stuck_message_ids(older_than: timedelta) -> Iterator[str]:
    """Pending, never claimed, never accepted by the provider, and unchanged for `older_than`
    (a message the pipe queued a moment ago is not stuck)."""
    cutoff = iso(utc_now() - older_than)
    paginator = aws_clients.dynamodb().get_paginator("scan")
    pages = paginator.paginate(
        TableName=get_settings().messages_table,
        ProjectionExpression="#id",
        FilterExpression=(
            "#s = :pending AND attribute_not_exists(claimed_at) "
            "AND attribute_not_exists(message_sid) AND updated_at < :cutoff"
        ),
        ExpressionAttributeNames={"#id": "id", "#s": "status"},
        ExpressionAttributeValues={
            ":pending": {"S": MessageStatus.PENDING.value},
            ":cutoff": {"S": cutoff},
        },
        ConsistentRead=True,
    )
    for page in pages:
        for item in page.get("Items", []):
            yield item["id"]["S"]


def requeue_stuck(older_than: timedelta) -> list[str]:
    requeued = []
    for message_id in stuck_message_ids(older_than):
        handoff_queue.enqueue_handoff(message_id)
        requeued.append(message_id)
    return requeued
