"""Scheduled sends, dispatch and cancel, against moto (Scheduler, DynamoDB, SQS)."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import Stubber

from sms_gateway.config import get_settings
from sms_gateway.domain.clock import now_iso
from sms_gateway.domain.messages import MessageStatus
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.store import aws_clients, message_store, schedules, transitions
from sms_local import iam
from sms_local import template as tpl
from sms_local.aws_resources import function_arn
from sms_local.lambda_runtime import invoke
from sms_local.sqs_poller import SqsPoller
from sms_local.twilio_simulator import TwilioSimulator
from tests.integration.conftest import Tenant, make_tenant
from tests.integration.test_handoff import (  # noqa: F401 - fixtures
    poller,
    simulator,
    wait_for,
    wired,
)
from tests.integration.test_send_api import drain_handoff_queue, send_body, stored_messages


@pytest.fixture(autouse=True)
def _empty_queue() -> None:
    drain_handoff_queue()


def at(delta: timedelta, offset_hours: int = 0) -> str:
    zone = UTC if offset_hours == 0 else timezone(offset_hours)
    return (datetime.now(UTC) + delta).astimezone(zone).isoformat(timespec="seconds")


def timezone(hours: int) -> Any:
    from datetime import timezone as tz

    return tz(timedelta(hours=hours))


def get_schedule(message_id: str) -> dict[str, Any] | None:
    try:
        schedule = dict(
            aws_clients.scheduler().get_schedule(
                Name=f"msg-{message_id}", GroupName=get_settings().schedule_group_name
            )
        )
    except aws_clients.scheduler().exceptions.ResourceNotFoundException:
        return None
    return schedule


def schedule_later(tenant: Tenant, use_case: UseCase, minutes: int = 10) -> dict[str, Any]:
    response = tenant.api.send(send_body(use_case, send_at=at(timedelta(minutes=minutes))))
    assert response.status == 201, response.json()
    body: dict[str, Any] = response.json()
    return body


def test_a_message_further_than_a_minute_ahead_is_scheduled(
    tenant: Tenant, use_case: UseCase
) -> None:
    # Given a send time expressed in another offset
    send_at = at(timedelta(minutes=90), offset_hours=2)
    response = tenant.api.send(send_body(use_case, send_at=send_at))
    assert response.status == 201
    body = response.json()
    expected = datetime.fromisoformat(send_at).astimezone(UTC)
    assert body["status"] == "scheduled"
    assert datetime.fromisoformat(body["send_at"].replace("Z", "+00:00")) == expected
    assert body["send_at"].endswith("Z")
    assert tenant.api.request("GET", f"/v1/sms/{body['id']}").json()["send_at"] == body["send_at"]
    assert drain_handoff_queue(tenant.workspace_id) == []  # nothing handed off before its time

    schedule = get_schedule(body["id"])
    assert schedule is not None
    assert schedule["GroupName"] == get_settings().schedule_group_name
    assert schedule["ScheduleExpression"] == f"at({expected:%Y-%m-%dT%H:%M:%S})"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["ActionAfterCompletion"] == "DELETE"
    target = schedule["Target"]
    assert target["Arn"] == function_arn("ScheduledDispatchFunction")
    assert target["RoleArn"] == get_settings().scheduler_role_arn
    assert json.loads(target["Input"]) == {"message_id": body["id"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert target["DeadLetterConfig"]["Arn"] == get_settings().schedule_dead_letter_queue_arn


@pytest.mark.parametrize(
    "delta",
    [timedelta(seconds=50), timedelta(0), timedelta(minutes=-59)],
    ids=["within-a-minute", "now", "59-minutes-late"],
)
def test_near_or_recent_send_at_sends_now(
    tenant: Tenant, use_case: UseCase, delta: timedelta
) -> None:
    response = tenant.api.send(send_body(use_case, send_at=at(delta)))
    assert response.status == 201
    body = response.json()
    assert body["status"] == "pending"
    assert body["send_at"] is None
    assert drain_handoff_queue(tenant.workspace_id) == [{"message_id": body["id"]}]
    assert get_schedule(body["id"]) is None


@pytest.mark.parametrize(
    "delta", [timedelta(minutes=-61), timedelta(days=30, minutes=5)], ids=["too-late", "too-far"]
)
def test_send_at_out_of_range(tenant: Tenant, use_case: UseCase, delta: timedelta) -> None:
    response = tenant.api.send(send_body(use_case, send_at=at(delta)))
    assert response.status == 422
    assert response.json()["error"]["code"] == "send_at_out_of_range"
    assert stored_messages(tenant.workspace_id) == []


def test_twenty_nine_days_ahead_is_fine(tenant: Tenant, use_case: UseCase) -> None:
    assert schedule_later(tenant, use_case, minutes=29 * 24 * 60)["status"] == "scheduled"


@pytest.mark.parametrize("send_at", ["2030-01-01T10:00:00", "tomorrow", "2030-01-01", 1234])
def test_malformed_send_at_is_a_validation_error(
    tenant: Tenant, use_case: UseCase, send_at: Any
) -> None:
    response = tenant.api.send(send_body(use_case, send_at=send_at))
    assert response.status == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert stored_messages(tenant.workspace_id) == []


def test_schedule_failure_answers_503_and_keeps_nothing(tenant: Tenant, use_case: UseCase) -> None:
    with Stubber(aws_clients.scheduler()) as stub:
        stub.add_client_error("create_schedule", "InternalServerException", http_status_code=500)
        response = tenant.api.send(send_body(use_case, send_at=at(timedelta(hours=1))))
    assert (response.status, response.json()) == (
        503,
        {
            "error": {
                "code": "service_unavailable",
                "message": "the message could not be scheduled; retry later",
            }
        },
    )
    assert stored_messages(tenant.workspace_id) == []


def dispatch(message_id: str) -> Any:
    spec = tpl.functions(tpl.project_template())["ScheduledDispatchFunction"]
    return invoke(spec, {"message_id": message_id})


def test_dispatch_moves_the_message_to_pending_and_queues_it_once(
    tenant: Tenant, use_case: UseCase
) -> None:
    scheduled = schedule_later(tenant, use_case)
    assert dispatch(scheduled["id"]) == {"queued": True}
    message = tenant.api.request("GET", f"/v1/sms/{scheduled['id']}").json()
    assert message["status"] == "pending"
    assert [h["event"] for h in message["history"]] == ["created", "dispatched"]
    assert drain_handoff_queue(tenant.workspace_id) == [{"message_id": scheduled["id"]}]
    # A duplicate (late) firing finds it pending already and does nothing: the table's stream
    # queued it once, whether a worker has claimed it yet or not.
    assert dispatch(scheduled["id"]) == {"queued": False}
    assert drain_handoff_queue(tenant.workspace_id) == []
    transitions.claim_for_handoff(scheduled["id"], now_iso())
    assert dispatch(scheduled["id"]) == {"queued": False}
    assert drain_handoff_queue(tenant.workspace_id) == []


def test_dispatch_ignores_unknown_and_malformed_ids(tenant: Tenant) -> None:
    unknown = str(uuid.uuid4())
    assert dispatch(unknown) == {"queued": False}
    assert dispatch("nope") == {"queued": False}
    assert not {unknown, "nope"} & {body["message_id"] for body in drain_handoff_queue()}


def test_cancel_a_scheduled_message(tenant: Tenant, use_case: UseCase) -> None:
    scheduled = schedule_later(tenant, use_case)
    response = tenant.api.request("POST", f"/v1/sms/{scheduled['id']}/cancel")
    assert response.status == 200
    assert response.json()["status"] == "canceled"
    assert get_schedule(scheduled["id"]) is None
    # A firing that was already under way finds nothing to do
    assert dispatch(scheduled["id"]) == {"queued": False}
    assert drain_handoff_queue(tenant.workspace_id) == []
    again = tenant.api.request("POST", f"/v1/sms/{scheduled['id']}/cancel")
    assert (again.status, again.json()["error"]["code"]) == (409, "not_cancelable")


def test_cancel_survives_a_schedule_that_is_already_gone(tenant: Tenant, use_case: UseCase) -> None:
    scheduled = schedule_later(tenant, use_case)
    aws_clients.scheduler().delete_schedule(
        Name=f"msg-{scheduled['id']}", GroupName=get_settings().schedule_group_name
    )
    response = tenant.api.request("POST", f"/v1/sms/{scheduled['id']}/cancel")
    assert response.status == 200


def force_status(message_id: str, status: MessageStatus) -> None:
    aws_clients.dynamodb().update_item(
        TableName=get_settings().messages_table,
        Key={"id": {"S": message_id}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": status.value}},
    )


@pytest.mark.parametrize(
    "status", [s for s in MessageStatus if s is not MessageStatus.SCHEDULED], ids=str
)
def test_only_scheduled_messages_can_be_canceled(
    tenant: Tenant, use_case: UseCase, status: MessageStatus
) -> None:
    scheduled = schedule_later(tenant, use_case)
    force_status(scheduled["id"], status)
    response = tenant.api.request("POST", f"/v1/sms/{scheduled['id']}/cancel")
    assert (response.status, response.json()) == (
        409,
        {
            "error": {
                "code": "not_cancelable",
                "message": f"only a scheduled message can be canceled; this one is {status.value}",
                "status": status.value,
            }
        },
    )


def test_cancel_of_unknown_or_foreign_message_is_404(
    gateway: Any, tenant: Tenant, use_case: UseCase
) -> None:
    scheduled = schedule_later(tenant, use_case)
    stranger = make_tenant(gateway)
    for who, message_id in ((stranger, scheduled["id"]), (tenant, str(uuid.uuid4()))):
        response = who.api.request("POST", f"/v1/sms/{message_id}/cancel")
        assert (response.status, response.json()) == (
            404,
            {
                "error": {
                    "code": "message_not_found",
                    "message": "message not found",
                    "message_id": message_id,
                }
            },
        )
    assert get_schedule(scheduled["id"]) is not None


def fire_schedule(message_id: str) -> Any:
    """The message's schedule firing: ScheduledDispatchFunction invoked in a thread of its own,
    as Scheduler invokes it while the caller is still inside its own call; its answer."""
    with ThreadPoolExecutor(max_workers=1) as scheduler:
        return scheduler.submit(dispatch, message_id).result(timeout=60)


def test_a_schedule_firing_after_the_cancel_wrote_finds_nothing_to_send(
    tenant: Tenant, use_case: UseCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race cancel wins: the schedule fires after the cancel's conditional write and before
    it deletes the schedule. The firing moves nothing, the message stays canceled, nothing is
    queued to be sent, and the schedule is gone."""
    scheduled = schedule_later(tenant, use_case)["id"]
    delete = schedules.delete_message_schedule
    fired: list[Any] = []

    def fire_then_delete(message_id: str) -> bool:
        if message_id == scheduled and not fired:
            fired.append(fire_schedule(message_id))
        return delete(message_id)

    monkeypatch.setattr(schedules, "delete_message_schedule", fire_then_delete)

    response = tenant.api.request("POST", f"/v1/sms/{scheduled}/cancel")

    assert (response.status, response.json()["status"]) == (200, "canceled")
    assert fired == [{"queued": False}]
    message = tenant.api.request("GET", f"/v1/sms/{scheduled}").json()
    assert message["status"] == "canceled"
    assert [h["event"] for h in message["history"]] == ["created", "canceled"]
    assert scheduled not in {q["message_id"] for q in drain_handoff_queue(tenant.workspace_id)}
    assert get_schedule(scheduled) is None


@pytest.mark.usefixtures("wired")
def test_a_schedule_firing_between_the_cancel_s_read_and_write_wins_and_the_message_is_sent(
    tenant: Tenant,
    use_case: UseCase,
    monkeypatch: pytest.MonkeyPatch,
    poller: SqsPoller,  # noqa: F811
    simulator: TwilioSimulator,  # noqa: F811
) -> None:
    """The race dispatch wins: the schedule fires after the cancel has read the message
    (scheduled, so cancelable as far as it knows) and before its conditional write. The cancel
    answers 409 not_cancelable with the status it lost to, and the message goes on to be sent."""
    scheduled = schedule_later(tenant, use_case)["id"]
    read = message_store.get_message
    fired: list[Any] = []

    def read_then_fire(message_id: str, **kwargs: Any) -> Any:
        message = read(message_id, **kwargs)
        if message_id == scheduled and iam.running_function() == "CancelFunction" and not fired:
            assert message is not None and message.status is MessageStatus.SCHEDULED
            fired.append(fire_schedule(message_id))
        return message

    monkeypatch.setattr(message_store, "get_message", read_then_fire)

    response = tenant.api.request("POST", f"/v1/sms/{scheduled}/cancel")

    assert fired == [{"queued": True}]
    assert response.status == 409, response.json()
    error = response.json()["error"]
    assert (error["code"], error["status"]) == ("not_cancelable", "pending")
    monkeypatch.undo()
    # The handoff picks it up (other tests' records may share the queue: poll until it moved)
    deadline = time.monotonic() + 30
    while status_of(tenant, scheduled) == "pending" and time.monotonic() < deadline:
        poller.poll_once()
    final = wait_for(tenant, scheduled, {"delivered"})
    assert final["status"] == "delivered"
    assert [h["event"] for h in final["history"]][:2] == ["created", "dispatched"]
    assert [m["sid"] for m in simulator.messages] == [final["message_sid"]]


def status_of(tenant: Tenant, message_id: str) -> str:
    status: str = tenant.api.request("GET", f"/v1/sms/{message_id}").json()["status"]
    return status
