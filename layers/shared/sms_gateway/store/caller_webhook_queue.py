"""The SQS queue of status webhook jobs, and its dead-letter queue. A job carries the message as
its event saw it (the receiver is told what the status was then, not what it is when a retry
runs), so the queues are encrypted (SSE) and keep a job no longer than its retries need."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sms_gateway.config import get_settings
from sms_gateway.domain.caller_webhooks import WebhookJob
from sms_gateway.store import aws_clients

# SendMessageBatch's largest batch.
BATCH = 10
# Entries SQS failed (throttling, an internal error) are sent again this many times before the
# whole stream batch is failed and retried by Lambda.
ENTRY_ATTEMPTS = 3


class EnqueueFailedError(Exception):
    """Some jobs could not be queued: the stream batch must be retried."""


def enqueue(jobs: Sequence[WebhookJob]) -> None:
    sqs = aws_clients.sqs()
    url = get_settings().caller_webhook_queue_url
    for start in range(0, len(jobs), BATCH):
        pending = {str(i): job for i, job in enumerate(jobs[start : start + BATCH])}
        for _ in range(ENTRY_ATTEMPTS):
            response = sqs.send_message_batch(
                QueueUrl=url,
                Entries=[
                    # The tenant of an SQS fair queue: a workspace whose receivers are slow
                    # or whose events pile up is served after the quiet ones.
                    {
                        "Id": entry_id,
                        "MessageBody": _body(job),
                        "MessageGroupId": job.workspace_id,
                    }
                    for entry_id, job in pending.items()
                ],
            )
            pending = {f["Id"]: pending[f["Id"]] for f in response.get("Failed", [])}
            if not pending:
                break
        if pending:
            raise EnqueueFailedError(f"{len(pending)} webhook jobs could not be queued")


def _body(job: WebhookJob) -> str:
    """JSON in ASCII: SQS refuses some characters a message may hold (U+FFFE, U+FFFF, lone
    surrogates), and one refused job would stop the stream behind it."""
    return json.dumps(job.model_dump(mode="json"), ensure_ascii=True, separators=(",", ":"))


def parse_job(body: str) -> WebhookJob:
    return WebhookJob.model_validate_json(body)


def delay_redelivery(receipt_handle: str, delay_seconds: int) -> None:
    """Hide a received job for `delay_seconds`: the retry schedule's wait."""
    aws_clients.sqs().change_message_visibility(
        QueueUrl=get_settings().caller_webhook_queue_url,
        ReceiptHandle=receipt_handle,
        VisibilityTimeout=delay_seconds,
    )


def dead_letter(body: str) -> None:
    """A job whose every attempt failed: kept for the operator (alarmed), then deleted."""
    aws_clients.sqs().send_message(
        QueueUrl=get_settings().caller_webhook_dead_letter_queue_url, MessageBody=body
    )
