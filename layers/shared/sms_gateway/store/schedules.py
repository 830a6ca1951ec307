"""EventBridge Scheduler: one one-time schedule per scheduled message, named after it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from sms_gateway.config import get_settings
from sms_gateway.store import aws_clients

# Scheduler invokes Lambda asynchronously: this policy covers only Scheduler's own Invoke call
# (throttled, or refused by Lambda), retried for up to an hour before the event goes to the DLQ.
# Once Lambda has taken the event, Lambda's asynchronous retries apply instead (two more
# attempts, over up to six hours), then the function's DeadLetterQueue: the same queue, alarmed.
RETRY_ATTEMPTS = 10
MAX_EVENT_AGE_SECONDS = 3600


def schedule_name(message_id: str) -> str:
    return f"msg-{message_id}"


def at_expression(moment: datetime) -> str:
    """`at()` takes seconds in the given time zone; we always give UTC."""
    return f"at({moment.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')})"


class ScheduleExistsError(Exception):
    """A schedule with this message's name exists already."""


def create_message_schedule(message_id: str, moment: datetime) -> None:
    try:
        _create(message_id, moment)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConflictException":
            raise ScheduleExistsError(message_id) from exc
        raise


def _create(message_id: str, moment: datetime) -> None:
    settings = get_settings()
    aws_clients.scheduler().create_schedule(
        Name=schedule_name(message_id),
        GroupName=settings.schedule_group_name,
        ScheduleExpression=at_expression(moment),
        ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion="DELETE",
        Target={
            "Arn": settings.scheduled_dispatch_function_arn,
            "RoleArn": settings.scheduler_role_arn,
            "Input": json.dumps({"message_id": message_id}),
            "RetryPolicy": {
                "MaximumRetryAttempts": RETRY_ATTEMPTS,
                "MaximumEventAgeInSeconds": MAX_EVENT_AGE_SECONDS,
            },
            "DeadLetterConfig": {"Arn": settings.schedule_dead_letter_queue_arn},
        },
    )


def delete_message_schedule(message_id: str) -> bool:
    """Delete the schedule; False if it was already gone (fired, or deleted before)."""
    try:
        aws_clients.scheduler().delete_schedule(
            Name=schedule_name(message_id), GroupName=get_settings().schedule_group_name
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return False
        raise
    return True
