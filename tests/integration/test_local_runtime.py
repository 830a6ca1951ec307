"""The local stack's event sources behave as AWS's do: SQS poison messages reach the DLQ through
the redrive policy, and due schedules fire once and are deleted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sms_gateway.domain.use_cases import UseCase
from sms_local import sqs_poller
from sms_local import template as tpl
from sms_local.aws_resources import LocalStack
from sms_local.lambda_runtime import invoke
from sms_local.schedule_runner import ScheduleRunner
from sms_local.sqs_poller import SqsPoller
from tests.integration.conftest import Tenant
from tests.integration.test_scheduling import get_schedule
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


def take_from_queue(aws: LocalStack, url: str, body: str) -> dict[str, Any] | None:
    """The message with this body, received and deleted; the others are left visible as they
    were (the dead-letter queue is shared with the handoff's other tests)."""
    sqs = aws.client("sqs")
    found = None
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        if message["Body"] == body:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            found = message
        else:
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
    return found


def test_a_poison_message_moves_to_the_dead_letter_queue(
    aws: LocalStack, instant_redelivery: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a record the handoff can never process, and the handoff's deliveries of it counted
    sqs = aws.client("sqs")
    [source] = [s for s in tpl.sqs_sources(TEMPLATE) if s.function == "HandoffFunction"]
    poller = SqsPoller(aws, source, tpl.functions(TEMPLATE)["HandoffFunction"])
    poison = f"not json {uuid.uuid4()}"
    deliveries: list[Any] = []

    def counted(spec: Any, event: dict[str, Any]) -> Any:
        deliveries.extend(r for r in event["Records"] if r["body"] == poison)
        return invoke(spec, event)

    monkeypatch.setattr(sqs_poller, "invoke", counted)  # what the poller calls
    sqs.send_message(QueueUrl=instant_redelivery, MessageBody=poison)
    max_receives = TEMPLATE["Resources"]["HandoffQueue"]["Properties"]["RedrivePolicy"][
        "maxReceiveCount"
    ]
    dlq = aws.refs["HandoffDeadLetterQueue"]

    # When the event source mapping polls until it is gone from the queue (bounded)
    dead = None
    for _ in range(10 * max_receives):
        poller.poll_once()
        if (dead := take_from_queue(aws, dlq, poison)) is not None:
            break

    # Then it was delivered maxReceiveCount times, each reported as failed, and then moved
    assert dead is not None, f"not in the dead-letter queue after {len(deliveries)} deliveries"
    assert len(deliveries) == max_receives


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
    # When the runner looks before its time, it leaves it (the group is shared: what else it
    # fires is other tests' business)
    runner.fire_due(datetime.now(UTC))
    assert status(tenant, scheduled["id"]) == "scheduled"
    assert get_schedule(scheduled["id"]) is not None
    # and when it looks after its time, it fires it
    runner.fire_due(datetime.now(UTC) + timedelta(minutes=11))
    # Then it was dispatched once, and its schedule is gone
    assert scheduled["id"] in {body["message_id"] for body in drain_handoff_queue()}
    message = tenant.api.request("GET", f"/v1/sms/{scheduled['id']}").json()
    assert message["status"] == "pending"
    assert [h["event"] for h in message["history"]] == ["created", "dispatched"]
    assert get_schedule(scheduled["id"]) is None


def status(tenant: Tenant, message_id: str) -> str:
    answer: str = tenant.api.request("GET", f"/v1/sms/{message_id}").json()["status"]
    return answer
