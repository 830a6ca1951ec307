"""store.schedules against EventBridge Scheduler (moto, in this process): the at() expression
in UTC whatever the machine's time zone, the conflict a repeated name raises, and what deleting a
schedule reports to its caller."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from sms_gateway.store import aws_clients, schedules
from tests.unit.in_process_aws import SCHEDULER_SETTINGS, in_process_aws

GROUP = "sms-schedules"


@pytest.fixture
def scheduler() -> Iterator[None]:
    with in_process_aws(SCHEDULE_GROUP_NAME=GROUP, **SCHEDULER_SETTINGS):
        aws_clients.scheduler().create_schedule_group(Name=GROUP)
        yield


@pytest.fixture
def machine_in_tokyo() -> Iterator[None]:
    """The process's local time zone is UTC+9 (a developer's machine running the local stack;
    a POSIX TZ string, so no tz database is needed)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TZ", "JST-9")
        time.tzset()
        try:
            yield
        finally:
            env.undo()
            time.tzset()


@pytest.mark.usefixtures("machine_in_tokyo")
def test_the_at_expression_is_in_utc_whatever_the_local_time_zone() -> None:
    # 09:00 at +02:00 is 07:00 UTC (16:00 in Tokyo): Scheduler is told UTC, so it gets 07:00.
    moment = datetime(2026, 3, 1, 9, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    assert time.localtime(0).tm_hour == 9  # (the zone really is in effect)
    assert schedules.at_expression(moment) == "at(2026-03-01T07:00:05)"


@pytest.mark.usefixtures("scheduler")
def test_a_message_s_schedule_fires_once_at_its_moment_and_dispatches_it() -> None:
    """What Scheduler is asked for: a one-time schedule named after the message, at the moment
    (UTC, no flexible window: not minutes late), deleted once it has fired, invoking the dispatch
    function with the message id, retried and dead-lettered as documented."""
    message_id = str(uuid.uuid4())
    moment = datetime(2030, 1, 1, 11, 30, 15, tzinfo=timezone(timedelta(hours=2)))

    schedules.create_message_schedule(message_id, moment)

    schedule = aws_clients.scheduler().get_schedule(Name=f"msg-{message_id}", GroupName=GROUP)
    assert schedule["ScheduleExpression"] == "at(2030-01-01T09:30:15)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["Target"] == {
        "Arn": "arn:aws:lambda:us-east-1:123456789012:function:dispatch",
        "RoleArn": "arn:aws:iam::123456789012:role/scheduler",
        "Input": json.dumps({"message_id": message_id}),
        "RetryPolicy": {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 3600},
        "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:123456789012:dlq"},
    }


@pytest.mark.usefixtures("scheduler")
def test_a_second_schedule_for_the_same_message_raises_schedule_exists_naming_it() -> None:
    message_id = str(uuid.uuid4())
    moment = datetime.now(UTC) + timedelta(hours=1)
    schedules.create_message_schedule(message_id, moment)

    with pytest.raises(schedules.ScheduleExistsError) as exists:
        schedules.create_message_schedule(message_id, moment)

    assert exists.value.args == (message_id,)


@pytest.mark.usefixtures("scheduler")
def test_delete_says_whether_it_deleted_the_schedule() -> None:
    message_id = str(uuid.uuid4())
    schedules.create_message_schedule(message_id, datetime.now(UTC) + timedelta(hours=1))

    assert schedules.delete_message_schedule(message_id) is True
    # Gone now (as after it fired, or an earlier delete): nothing deleted, no error.
    assert schedules.delete_message_schedule(message_id) is False
    with pytest.raises(aws_clients.scheduler().exceptions.ResourceNotFoundException):
        aws_clients.scheduler().get_schedule(
            Name=schedules.schedule_name(message_id), GroupName=GROUP
        )
