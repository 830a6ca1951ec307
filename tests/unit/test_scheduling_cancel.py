"""logic.scheduling.cancel_message and dispatch_scheduled against DynamoDB and EventBridge
Scheduler (moto, in this process): who may cancel what, the exact errors the cancel API answers
with, what is stored and deleted, and what a firing schedule does."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sms_gateway.domain.clock import now_iso
from sms_gateway.domain.errors import MessageNotFoundError, NotCancelableError
from sms_gateway.domain.messages import HistoryEntry, Message, MessageStatus
from sms_gateway.logic import scheduling
from sms_gateway.store import aws_clients, message_store, schedules
from tests.unit.in_process_aws import SCHEDULER_SETTINGS, create_table, in_process_aws

TABLE = "messages"
GROUP = "sms-schedules"
WORKSPACE = "w1"


@pytest.fixture(autouse=True)
def aws() -> Iterator[None]:
    with in_process_aws(MESSAGES_TABLE=TABLE, SCHEDULE_GROUP_NAME=GROUP, **SCHEDULER_SETTINGS):
        create_table(TABLE)
        aws_clients.scheduler().create_schedule_group(Name=GROUP)
        yield


def stored(status: MessageStatus = MessageStatus.SCHEDULED, workspace_id: str = WORKSPACE) -> str:
    """A message as the send stores it, with its schedule when it is scheduled; its id."""
    now = now_iso()
    message = Message(
        id=str(uuid.uuid4()),
        workspace_id=workspace_id,
        use_case_id=str(uuid.uuid4()),
        to_number="+14155552671",
        body="Your appointment is tomorrow at 9",
        status=status,
        send_at="2030-01-01T09:00:00.000Z",
        created_at=now,
        updated_at=now,
        history=[HistoryEntry(at=now, event="created", status=status)],
    )
    message_store.put_new_message(message)
    if status is MessageStatus.SCHEDULED:
        schedules.create_message_schedule(message.id, datetime.now(UTC) + timedelta(hours=1))
    return message.id


def schedule_exists(message_id: str) -> bool:
    try:
        aws_clients.scheduler().get_schedule(
            Name=schedules.schedule_name(message_id), GroupName=GROUP
        )
    except aws_clients.scheduler().exceptions.ResourceNotFoundException:
        return False
    return True


class MessagesTableCalls:
    """Every DynamoDB call made (the messages table is the only table here), by operation."""

    def __init__(self) -> None:
        self.operations: list[str] = []
        aws_clients.dynamodb().meta.events.register("before-call.dynamodb.*", self)

    def __call__(self, event_name: str, **_: Any) -> None:
        self.operations.append(event_name.rsplit(".", 1)[-1])


def test_cancel_of_a_scheduled_message_cancels_it_and_deletes_its_schedule() -> None:
    message_id = stored()

    canceled = scheduling.cancel_message(WORKSPACE, message_id, test=False)

    assert canceled.status is MessageStatus.CANCELED
    assert [(h.event, h.status) for h in canceled.history] == [
        ("created", MessageStatus.SCHEDULED),
        ("canceled", MessageStatus.CANCELED),
    ]
    assert message_store.get_message(message_id) == canceled
    assert not schedule_exists(message_id)
    # A schedule that still fires (already under way) finds nothing to do.
    assert scheduling.dispatch_scheduled(message_id) is False
    assert message_store.get_message(message_id) == canceled


def test_cancel_of_a_message_whose_schedule_is_gone_still_cancels() -> None:
    message_id = stored()
    schedules.delete_message_schedule(message_id)
    assert (
        scheduling.cancel_message(WORKSPACE, message_id, test=False).status
        is MessageStatus.CANCELED
    )


@pytest.mark.parametrize("whose", ["unknown", "another-workspace's"])
def test_cancel_of_an_unknown_or_foreign_message_is_not_found_naming_it(whose: str) -> None:
    message_id = stored(workspace_id="w2") if whose != "unknown" else str(uuid.uuid4())

    with pytest.raises(MessageNotFoundError) as not_found:
        scheduling.cancel_message(WORKSPACE, message_id, test=False)

    assert not_found.value.message == "message not found"
    assert not_found.value.details == {"message_id": message_id}
    if whose != "unknown":
        # The other workspace's message is left as it was.
        message = message_store.get_message(message_id)
        assert message is not None and message.status is MessageStatus.SCHEDULED
        assert schedule_exists(message_id)


@pytest.mark.parametrize("message_id", ["nope", "x" * 2049], ids=["short", "over-2048-bytes"])
def test_cancel_of_a_malformed_id_is_not_found_without_asking_dynamodb(message_id: str) -> None:
    """Not a message id at all: 404 at once. (DynamoDB would refuse a key over 2048 bytes with
    a ValidationException, a 500 for the caller.)"""
    calls = MessagesTableCalls()

    with pytest.raises(MessageNotFoundError) as not_found:
        scheduling.cancel_message(WORKSPACE, message_id, test=False)

    assert (not_found.value.message, not_found.value.details) == (
        "message not found",
        {"message_id": message_id},
    )
    assert calls.operations == []


@pytest.mark.parametrize(
    "status", [s for s in MessageStatus if s is not MessageStatus.SCHEDULED], ids=str
)
def test_only_a_scheduled_message_can_be_canceled(status: MessageStatus) -> None:
    message_id = stored(status)
    before = message_store.get_message(message_id)

    with pytest.raises(NotCancelableError) as refused:
        scheduling.cancel_message(WORKSPACE, message_id, test=False)

    assert refused.value.message == (
        f"only a scheduled message can be canceled; this one is {status.value}"
    )
    assert refused.value.details == {"status": status.value}
    assert message_store.get_message(message_id) == before


def test_a_cancel_that_lost_the_race_names_the_status_it_lost_to() -> None:
    """The schedule fired between the cancel's read and its write: the answer names the status
    the message has now (pending), not the one the cancel first read."""
    message_id = stored()
    read = message_store.get_message
    fired: list[bool] = []

    def read_then_fire(mid: str, **kwargs: Any) -> Message | None:
        message = read(mid, **kwargs)
        if not fired:
            fired.append(scheduling.dispatch_scheduled(mid))
        return message

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(message_store, "get_message", read_then_fire)
        with pytest.raises(NotCancelableError) as refused:
            scheduling.cancel_message(WORKSPACE, message_id, test=False)

    assert fired == [True]
    assert refused.value.message == "only a scheduled message can be canceled; this one is pending"
    assert refused.value.details == {"status": "pending"}
    assert schedule_exists(message_id)  # (it fired; Scheduler deletes it after completion)


def test_dispatch_moves_a_scheduled_message_to_pending_once() -> None:
    message_id = stored()
    assert scheduling.dispatch_scheduled(message_id) is True
    message = message_store.get_message(message_id)
    assert message is not None
    assert message.status is MessageStatus.PENDING
    assert [h.event for h in message.history] == ["created", "dispatched"]
    assert scheduling.dispatch_scheduled(message_id) is False
    assert message_store.get_message(message_id) == message


def test_dispatch_of_an_unknown_message_does_nothing() -> None:
    assert scheduling.dispatch_scheduled(str(uuid.uuid4())) is False
