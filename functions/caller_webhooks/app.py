"""CallerWebhookFunction: delivers status webhook jobs from the caller webhook queue.

A batch's jobs run side by side, one thread per message (a message's own events in queue
order): a receiver that hangs for its whole 10 seconds holds up no other receiver's webhook.
A job the receiver did not take is hidden for the retry schedule's wait and reported failed (the
event source mapping leaves it in the queue); after its last attempt it goes to the dead-letter
queue. No module-level state changes per invocation, so invocations may run at once.
"""

from __future__ import annotations

# First, before Powertools: the garbage collector pauses and the packages whose __init__ a
# function does not need load without it, until startup.finish() at the end of this module.
from sms_gateway.runtime import startup  # isort: skip

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from sms_gateway.config import get_settings
from sms_gateway.domain.caller_webhooks import WebhookJob
from sms_gateway.logic.caller_webhook_delivery import Outcome, deliver
from sms_gateway.store import aws_clients, caller_webhook_queue

logger = Logger()

# Threads of one invocation: a batch holds at most 10 jobs.
MAX_THREADS = 10
# What an attempt needs besides its HTTP call: the reads and writes around it.
MARGIN_SECONDS = 5


Job = tuple[dict[str, Any], WebhookJob]  # an SQS record and the job it carries


def _deliver_record(record: dict[str, Any], job: WebhookJob) -> bool:
    """Whether the record is done (deleted from the queue); False leaves it for a retry."""
    result = deliver(job)
    if result.outcome is Outcome.RETRY:
        assert result.retry_in_seconds is not None
        caller_webhook_queue.delay_redelivery(record["receiptHandle"], result.retry_in_seconds)
        return False
    if result.outcome is Outcome.GAVE_UP:
        logger.warning(
            "webhook gave up after its last attempt",
            extra={"message_id": job.message_id, "webhook_id": job.webhook_id},
        )
        caller_webhook_queue.dead_letter(record["body"])
    return True


def _deliver_in_order(jobs: list[Job], seconds_left: Callable[[], float]) -> list[str]:
    """One message's jobs, in order; the ids of those left for a retry. A job is only started
    while a whole attempt still fits in the invocation: one cut off by Lambda's timeout would
    leave the batch to come back after the queue's visibility timeout."""
    failed = []
    for record, job in jobs:
        if seconds_left() < get_settings().caller_webhook_timeout_seconds + MARGIN_SECONDS:
            caller_webhook_queue.delay_redelivery(record["receiptHandle"], 0)
            failed.append(str(record["messageId"]))
            continue
        try:
            done = _deliver_record(record, job)
        except Exception:
            # Left in the queue: it comes back after the queue's visibility timeout.
            logger.exception("webhook job failed", extra={"sqs_message_id": record["messageId"]})
            done = False
        if not done:
            failed.append(str(record["messageId"]))
    return failed


def _by_message(records: list[dict[str, Any]]) -> dict[str, list[Job]]:
    """The batch's jobs by message, in queue order. A record that holds no job is never
    deliverable: it is kept aside for the operator, not retried for a day."""
    groups: dict[str, list[Job]] = {}
    for record in records:
        try:
            job = caller_webhook_queue.parse_job(str(record.get("body", "")))
        except ValidationError:
            logger.error(
                "unreadable webhook job", extra={"sqs_message_id": record.get("messageId")}
            )
            caller_webhook_queue.dead_letter(str(record.get("body", "")))
            continue
        groups.setdefault(job.message_id, []).append((record, job))
    return groups


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The clients are made here, once: botocore makes no two clients at once safely, and the
    # threads below would all make theirs on a cold start.
    aws_clients.dynamodb()
    aws_clients.sqs()

    def seconds_left() -> float:
        return context.get_remaining_time_in_millis() / 1000

    groups = _by_message(event.get("Records", []))
    failed: list[str] = []
    if groups:
        with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(groups))) as pool:
            # Each thread runs in a copy of this context (the logger's keys, the local stack's
            # notion of which function is running), as a thread of its own would not.
            run: Callable[..., list[str]] = _deliver_in_order
            futures = [
                pool.submit(contextvars.copy_context().run, run, jobs, seconds_left)
                for jobs in groups.values()
            ]
            for future in futures:
                failed.extend(future.result())
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


startup.finish()
