"""Status webhook events from the messages table's stream: every applied status change of a
message that asks for receipts becomes a job on the delivery queue. The event is read from the
status write itself (the stream), so no crash after the write can leave it out; a stream batch
that fails is given again by Lambda, which may queue a job twice: its webhook-id is the same,
and the delivery drops a job whose event was already taken."""

from __future__ import annotations

from typing import Any

from sms_gateway.domain.caller_webhooks import WebhookJob, job_for_change
from sms_gateway.store import caller_webhook_queue
from sms_gateway.store.dynamo import from_item


def _image(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    return from_item(raw) if raw else None


def jobs_in(records: list[dict[str, Any]]) -> list[WebhookJob]:
    jobs = []
    for record in records:
        dynamodb = record.get("dynamodb") or {}
        job = job_for_change(
            str(record.get("eventName", "")),
            _image(dynamodb.get("OldImage")),
            _image(dynamodb.get("NewImage")),
        )
        if job is not None:
            jobs.append(job)
    return jobs


def enqueue_events(records: list[dict[str, Any]]) -> int:
    """Queue the batch's events, in stream order; how many. Raises when some could not be
    queued (the batch is then retried whole)."""
    jobs = jobs_in(records)
    if jobs:
        caller_webhook_queue.enqueue(jobs)
    return len(jobs)
