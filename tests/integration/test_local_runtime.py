"""The local stack's event sources behave as AWS's do: SQS poison messages reach the DLQ through
the redrive policy, and due schedules fire once and are deleted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sms_gateway import aws_clients
from sms_gateway.config import get_settings
from sms_gateway.use_cases import UseCase
from sms_local import template as tpl
from sms_local.aws_resources import LocalStack
from sms_local.schedule_runner import ScheduleRunner
from sms_local.sqs_poller import SqsPoller
from tests.integration.conftest import Tenant
from tests.integration.test_send_api import drain_handoff_queue, send_body

TEMPLATE = tpl.project_template()


@pytest.fixture
def instant_redelivery(aws: LocalStack) -> Iterator[str]:
    """Make failed handoff messages visible again at once (the template says 180 s)."""
    sqs = aws.client("sqs")
    url = aws.refs["HandoffQueue"]
    drain_handoff_queue()
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "0"})
    yield url
    sqs.set_queue_attributes(
        QueueUrl=url,
        Attributes={"VisibilityTimeout": str(TEMPLATE["Resources"]["HandoffQueue"]["Properties"]
                                             ["VisibilityTimeout"])},
    )  # fmt: skip
    drain_handoff_queue()


def test_a_poison_message_moves_to_the_dead_letter_queue(
    aws: LocalStack, instant_redelivery: str
) -> None:
    sqs = aws.client("sqs")
    [source] = [s for s in tpl.sqs_sources(TEMPLATE) if s.function == "HandoffFunction"]
    poller = SqsPoller(aws, source, tpl.functions(TEMPLATE)["HandoffFunction"])
    sqs.send_message(QueueUrl=instant_redelivery, MessageBody="not json")
    max_receives = TEMPLATE["Resources"]["HandoffQueue"]["Properties"]["RedrivePolicy"][
        "maxReceiveCount"
    ]
    received = sum(poller.poll_once() for _ in range(max_receives + 2))
    assert received == max_receives  # each delivery reported as failed, then no more
    dlq = aws.refs["HandoffDeadLetterQueue"]
    [dead] = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert dead["Body"] == "not json"
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=dead["ReceiptHandle"])


def test_due_schedules_fire_once_and_are_deleted(
    aws: LocalStack, tenant: Tenant, use_case: UseCase
) -> None:
    # Given a message scheduled ten minutes ahead
    send_at = (datetime.now(UTC) + timedelta(minutes=10)).isoformat(timespec="seconds")
    scheduled = tenant.api.send(send_body(use_case, send_at=send_at)).json()
    drain_handoff_queue()
    runner = ScheduleRunner(
        aws,
        tpl.functions(TEMPLATE),
        [aws.refs["MessageScheduleGroup"]],
    )
    # When the runner looks before and after its time
    assert runner.fire_due(datetime.now(UTC)) == 0
    later = datetime.now(UTC) + timedelta(minutes=11)
    assert runner.fire_due(later) >= 1
    # Then it was dispatched once, and its schedule is gone
    # (other tests' schedules in the shared group may come due at that time too)
    assert scheduled["id"] in {body["message_id"] for body in drain_handoff_queue()}
    assert tenant.api.request("GET", f"/v1/sms/{scheduled['id']}").json()["status"] == "pending"
    names = [
        s["Name"]
        for s in aws_clients.scheduler().list_schedules(
            GroupName=get_settings().schedule_group_name
        )["Schedules"]
    ]
    assert f"msg-{scheduled['id']}" not in names
