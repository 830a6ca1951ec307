"""AWS End User Messaging SMS's delivery events, through EumEventsFunction as its SQS event source
delivers them: in any order, any number of times, a message ends where its life says, its status
never goes back, and an event moves only a message handed to AWS, under the id AWS gave it."""

from __future__ import annotations

import json
import uuid
from itertools import count
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms_gateway.domain.clock import now_iso
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic.use_case_admin import create_use_case
from sms_gateway.store import transitions
from sms_local import template as tpl
from sms_local.aws_resources import LocalStack
from sms_local.lambda_runtime import invoke
from sms_local.sqs_poller import sqs_event
from tests.integration.conftest import EUM_POOL_ID, Tenant, use_case_spec
from tests.integration.test_status_callback import (
    get,
    new_message,
    provider_entries,
    reproducible,
    shuffled_with_duplicates,
    stored_item,
)
from tests.unit.test_transitions import RANK, TERMINAL

_moments = count(1_795_608_000_000)


@pytest.fixture
def eum_use_case(tenant: Tenant) -> UseCase:
    providers = [{"name": "aws_eum", "origination_identity": EUM_POOL_ID}]
    return create_use_case(tenant.workspace_id, use_case_spec(providers=providers))


def handed_to_aws(tenant: Tenant, use_case: UseCase, *, record: bool = True) -> tuple[str, str]:
    """A message AWS took (its acceptance recorded, unless `record` is false: a worker that has
    not written it yet); its id, and AWS's."""
    message_id = new_message(tenant, use_case)
    sid = str(uuid.uuid4())
    assert transitions.claim_for_handoff(message_id, now_iso(), "aws_eum")
    if record:
        assert transitions.record_acceptance(
            message_id, now_iso(), sid, 1, None, provider="aws_eum"
        )
    return message_id, sid


def event(message_id: str, sid: str, event_type: str) -> dict[str, Any]:
    return {
        "eventType": event_type,
        "eventVersion": "1.0",
        "eventTimestamp": next(_moments),
        "isFinal": event_type not in ("TEXT_QUEUED", "TEXT_PENDING"),
        "originationPhoneNumber": "+12065550100",
        "destinationPhoneNumber": "+12125552671",
        "messageId": sid,
        "messageType": "TRANSACTIONAL",
        "context": {"message_id": message_id},
        "totalMessageParts": 1,
    }


def deliver(aws: LocalStack, *events: dict[str, Any]) -> Any:
    spec = tpl.functions(tpl.project_template())["EumEventsFunction"]
    records = [
        {
            "MessageId": str(uuid.uuid4()),
            "ReceiptHandle": "handle",
            "Body": json.dumps(e),
            "Attributes": {"ApproximateReceiveCount": "1"},
            "MD5OfBody": "",
        }
        for e in events
    ]
    return invoke(spec, sqs_event(records, aws.attributes["EumEventsQueue"]["Arn"]))


# What AWS reports for one message, whatever the order: each way its life can go, and where it
# must end, with the error code that ending sets.
LIVES: dict[str, tuple[tuple[str, ...], str, int | None]] = {
    "delivered": (("TEXT_QUEUED", "TEXT_PENDING", "TEXT_DELIVERED"), "delivered", None),
    "successful": (("TEXT_QUEUED", "TEXT_PENDING", "TEXT_SUCCESSFUL"), "delivered", None),
    "unreachable": (("TEXT_QUEUED", "TEXT_PENDING", "TEXT_UNREACHABLE"), "undelivered", 30003),
    "blocked": (("TEXT_QUEUED", "TEXT_PENDING", "TEXT_BLOCKED"), "undelivered", 30004),
    "spam": (("TEXT_QUEUED", "TEXT_PENDING", "TEXT_SPAM"), "undelivered", 30007),
    "expired": (("TEXT_QUEUED", "TEXT_PENDING", "TEXT_TTL_EXPIRED"), "undelivered", 99005),
    "invalid message": (("TEXT_QUEUED", "TEXT_INVALID_MESSAGE"), "failed", 30008),
    "still pending": (("TEXT_QUEUED", "TEXT_PENDING"), "sent", None),
    "only queued": (("TEXT_QUEUED",), "pending", None),
}


@pytest.mark.parametrize("life", list(LIVES))
@reproducible(max_examples=6)
@given(data=st.data())
def test_a_messages_events_in_any_order_end_in_its_final_status(
    aws: LocalStack, tenant: Tenant, eum_use_case: UseCase, life: str, data: st.DataObject
) -> None:
    types, final, error_code = LIVES[life]
    order = data.draw(shuffled_with_duplicates(types), label="order")
    message_id, sid = handed_to_aws(tenant, eum_use_case)

    status = "pending"
    for event_type in order:
        assert deliver(aws, event(message_id, sid, event_type)) == {"batchItemFailures": []}
        item = stored_item(message_id)
        assert item is not None
        now = item["status"]["S"]
        # Never back, never sideways, never out of a terminal status
        if status in TERMINAL:
            assert now == status, f"{status} left after {event_type} in {order}"
        elif now != status:
            assert RANK[now] > RANK[status], f"{status} -> {now} in {order}"
        status = now

    message = get(tenant, message_id)
    assert message["status"] == final
    assert message["error_code"] == error_code
    assert (message["delivered_at"] is not None) == (final == "delivered")
    assert (message["handed_off_at"] is not None) == (final in ("sent", "delivered", "undelivered"))
    assert message["provider"] == "aws_eum"
    # Every event is in the history, in order; the first final one moved it, no other did
    entries = provider_entries(message)
    assert [e["provider_status"] for e in entries] == order
    moved = [e["status"] for e in entries if e["applied"]]
    assert moved.count(final) == (0 if final == "pending" else 1)
    assert len(moved) == len(set(moved))


@reproducible(max_examples=20)
@given(order=st.lists(st.sampled_from(["TEXT_PENDING", "TEXT_DELIVERED", "TEXT_BLOCKED",
                                        "TEXT_INVALID_MESSAGE", "TEXT_QUEUED", "TEXT_NEW_KIND"]),
                      min_size=1, max_size=6))  # fmt: skip
def test_any_events_in_any_order_only_ever_move_a_status_forward(
    aws: LocalStack, tenant: Tenant, eum_use_case: UseCase, order: list[str]
) -> None:
    message_id, sid = handed_to_aws(tenant, eum_use_case)
    # All at once, in one batch, as a redelivered batch would bring them
    assert deliver(aws, *(event(message_id, sid, t) for t in order)) == {"batchItemFailures": []}

    message = get(tenant, message_id)
    moved = [e["status"] for e in provider_entries(message) if e["applied"]]
    assert [RANK[s] for s in moved] == sorted(RANK[s] for s in moved)
    assert len(moved) == len(set(moved))
    assert len([s for s in moved if s in TERMINAL]) <= 1
    assert message["message_sid"] == sid


def test_an_event_arriving_before_the_acceptance_is_recorded_applies(
    aws: LocalStack, tenant: Tenant, eum_use_case: UseCase
) -> None:
    message_id, sid = handed_to_aws(tenant, eum_use_case, record=False)

    deliver(aws, event(message_id, sid, "TEXT_DELIVERED"))
    assert transitions.record_acceptance(message_id, now_iso(), sid, 1, None, provider="aws_eum")

    message = get(tenant, message_id)
    assert (message["status"], message["message_sid"]) == ("delivered", sid)
    assert message["from_number"] == "+12065550100"


def test_an_event_moves_no_message_it_does_not_belong_to(
    aws: LocalStack, tenant: Tenant, use_case: UseCase, eum_use_case: UseCase
) -> None:
    # A message handed to Twilio, and one AWS took under another id
    twilio_message = new_message(tenant, use_case)
    assert transitions.claim_for_handoff(twilio_message, now_iso(), "twilio")
    aws_message, _ = handed_to_aws(tenant, eum_use_case)

    deliver(
        aws,
        event(twilio_message, str(uuid.uuid4()), "TEXT_DELIVERED"),
        event(aws_message, str(uuid.uuid4()), "TEXT_DELIVERED"),
    )

    assert get(tenant, twilio_message)["status"] == "pending"
    assert get(tenant, aws_message)["status"] == "pending"
    assert provider_entries(get(tenant, twilio_message)) == []


def test_an_event_that_is_not_ours_is_dropped_not_retried(aws: LocalStack) -> None:
    not_ours = {"eventType": "TEXT_DELIVERED", "context": {"account": "bar"}}
    assert deliver(aws, not_ours) == {"batchItemFailures": []}
