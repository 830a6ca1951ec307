"""One attempt at one status webhook: signed afresh (Standard Webhooks), sent with the SSRF
checks of store.webhook_http, recorded, and, when the receiver did not take it, the wait before
the next attempt from the retry schedule (or none: the job has had its last attempt)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from aws_lambda_powertools import Logger

from sms_gateway.config import get_settings
from sms_gateway.domain.caller_webhooks import (
    WebhookJob,
    parse_retry_delays,
    retry_delay,
    signed_request,
)
from sms_gateway.domain.clock import iso
from sms_gateway.logic import webhook_secrets
from sms_gateway.store import webhook_attempts, webhook_http

logger = Logger(child=True)


class Outcome(StrEnum):
    DELIVERED = "delivered"
    # An attempt at this event was already taken (the job was queued twice).
    DUPLICATE = "duplicate"
    RETRY = "retry"
    GAVE_UP = "gave_up"


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    retry_in_seconds: int | None = None


def deliver(job: WebhookJob) -> Result:
    """The next attempt at `job`'s event. Its number is what the attempts table says was tried
    of the event, not how often SQS delivered the job: a delivery that never got to its attempt
    (a function timing out, a dependency failing) uses up no retry of the schedule."""
    settings = get_settings()
    # Read first: a schedule that cannot be read fails the job before anything is sent.
    delays = parse_retry_delays(settings.caller_webhook_retry_delays)
    tried = webhook_attempts.attempts_at(job.message_id, job.sequence)
    if tried.delivered:
        return Result(Outcome.DUPLICATE)
    attempt = tried.made + 1
    signing = webhook_secrets.signing_secrets(job.workspace_id)
    now = time.time()
    request = signed_request(job, signing, int(now))
    answer = webhook_http.send(
        request.url,
        request.method,
        body=request.body,
        headers=request.headers,
        allow_loopback_http=settings.caller_webhook_allow_loopback_http,
        timeout_seconds=settings.caller_webhook_timeout_seconds,
        query=request.query,
    )
    delay = None
    # A URL we will not call now never will be (the settings that allowed it changed): no retry.
    if not answer.accepted and answer.error != "invalid_url":
        delay = retry_delay(delays, attempt)
    webhook_attempts.record(
        webhook_attempts.Attempt(
            message_id=job.message_id,
            webhook_id=job.webhook_id,
            type=job.type,
            sequence=job.sequence,
            attempt=attempt,
            attempted_at=iso(datetime.fromtimestamp(now, UTC)),
            status_code=answer.status,
            error=answer.error,
            next_attempt_at=(
                iso(datetime.fromtimestamp(now + delay, UTC)) if delay is not None else None
            ),
            delivered=answer.accepted,
        )
    )
    # The URL and the body are the caller's and hold a phone number: neither is logged.
    logger.info(
        "webhook attempt",
        extra={
            "message_id": job.message_id,
            "webhook_id": job.webhook_id,
            "event_type": job.type,
            "attempt": attempt,
            "status_code": answer.status,
            "error": answer.error,
        },
    )
    if answer.accepted:
        return Result(Outcome.DELIVERED)
    if delay is None:
        return Result(Outcome.GAVE_UP)
    return Result(Outcome.RETRY, delay)
