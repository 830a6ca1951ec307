"""Crash injection in the send and the scheduled dispatch: the function is killed before and after
each AWS call it makes, then the world goes on (the caller retries its Idempotency-Key once the
in-progress record has expired, the schedule fires, Lambda retries the dispatch). Whatever the
crash point, the request ends with exactly one stored message that something will hand off, and
it is queued for handoff exactly once.

A kill is a BaseException: no `except Exception` in our code or in Powertools can catch it, so
nothing runs after it, as when Lambda stops a sandbox at its timeout.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from botocore.client import BaseClient

from sms_gateway.config import get_settings
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.store import aws_clients
from tests.integration.conftest import Response, Tenant
from tests.integration.test_scheduling import at, dispatch, get_schedule
from tests.integration.test_send_api import (
    drain_handoff_queue,
    forget_idempotency_records,
    send_body,
    stored_messages,
)


class Killed(BaseException):
    """The function's sandbox stopped here."""


@dataclass
class CrashPoint:
    call: int  # the n-th AWS call of the invocation, from 0
    after: bool  # the call went through before the kill

    def __str__(self) -> str:
        return f"{'after' if self.after else 'before'} call {self.call}"


class Crasher:
    """Counts the AWS calls made on this thread and kills the invocation at `point`."""

    def __init__(self) -> None:
        self.point: CrashPoint | None = None
        self.calls: list[str] = []
        self._thread = threading.get_ident()

    def arm(self, point: CrashPoint | None) -> None:
        self.point = point
        self.calls = []

    def wrap(self, make_api_call: Callable[..., Any]) -> Callable[..., Any]:
        def call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            # Other threads (the outbox pipe) are other processes on AWS: never killed here.
            if threading.get_ident() != self._thread:
                return make_api_call(client, operation, params)
            index = len(self.calls)
            self.calls.append(operation)
            point = self.point
            if point is not None and point.call == index and not point.after:
                self.point = None
                raise Killed(str(point))
            result = make_api_call(client, operation, params)
            if point is not None and point.call == index and point.after:
                self.point = None
                raise Killed(str(point))
            return result

        return call


@pytest.fixture
def crasher(monkeypatch: pytest.MonkeyPatch) -> Iterator[Crasher]:
    crasher = Crasher()
    original = BaseClient._make_api_call  # type: ignore[attr-defined]  # private, unstubbed
    monkeypatch.setattr(BaseClient, "_make_api_call", crasher.wrap(original))
    yield crasher


def send_until_answered(
    tenant: Tenant, body: dict[str, Any], key: str, crasher: Crasher, point: CrashPoint | None
) -> Response:
    """The caller's view: a request that died is retried with the same key once its in-progress
    record has expired (forgetting the records stands for that expiry)."""
    crasher.arm(point)
    try:
        return tenant.api.send(body, headers={"idempotency-key": key})
    except Killed:
        crasher.arm(None)
        forget_idempotency_records()
        return tenant.api.send(body, headers={"idempotency-key": key})


def calls_of_a_send(tenant: Tenant, body: dict[str, Any], crasher: Crasher) -> int:
    # Warm the authorizer's and the use case's caches, as on every request but the first.
    assert tenant.api.send(body, headers={"idempotency-key": uuid.uuid4().hex}).status == 201
    crasher.arm(None)
    assert tenant.api.send(body, headers={"idempotency-key": uuid.uuid4().hex}).status == 201
    return len(crasher.calls)


def every_crash_point(calls: int) -> list[CrashPoint]:
    return [CrashPoint(call, after) for call in range(calls) for after in (False, True)]


def test_a_send_killed_at_any_point_ends_with_one_queued_message(
    tenant: Tenant, use_case: UseCase, crasher: Crasher
) -> None:
    body = send_body(use_case)
    calls = calls_of_a_send(tenant, body, crasher)
    # Idempotency record, opt-out check, the message, the idempotency result.
    assert calls >= 4, crasher.calls
    drain_handoff_queue(tenant.workspace_id)
    for point in every_crash_point(calls):
        before = {m["id"] for m in stored_messages(tenant.workspace_id)}
        response = send_until_answered(tenant, body, uuid.uuid4().hex, crasher, point)
        assert response.status == 201, (str(point), response.json())
        new = [m for m in stored_messages(tenant.workspace_id) if m["id"] not in before]
        assert [m["id"] for m in new] == [response.json()["id"]], str(point)
        assert new[0]["status"] == "pending", str(point)
        queued = drain_handoff_queue(tenant.workspace_id)
        assert queued == [{"message_id": response.json()["id"]}], str(point)


def test_a_scheduled_send_killed_at_any_point_ends_with_one_message_and_its_schedule(
    tenant: Tenant, use_case: UseCase, crasher: Crasher
) -> None:
    body = send_body(use_case, send_at=at(timedelta(minutes=30)))
    calls = calls_of_a_send(tenant, body, crasher)
    assert "CreateSchedule" in crasher.calls
    for point in every_crash_point(calls):
        before = {m["id"] for m in stored_messages(tenant.workspace_id)}
        response = send_until_answered(tenant, body, uuid.uuid4().hex, crasher, point)
        assert response.status == 201, (str(point), response.json())
        message_id = response.json()["id"]
        new = [m for m in stored_messages(tenant.workspace_id) if m["id"] not in before]
        assert [m["id"] for m in new] == [message_id], str(point)
        assert new[0]["status"] == "scheduled", str(point)
        assert get_schedule(message_id) is not None, str(point)
        # When it fires, it is queued once.
        assert dispatch(message_id) == {"queued": True}
        assert drain_handoff_queue(tenant.workspace_id) == [{"message_id": message_id}]


def test_a_schedule_whose_send_died_before_storing_the_message_fires_harmlessly(
    tenant: Tenant, use_case: UseCase, crasher: Crasher
) -> None:
    body = send_body(use_case, send_at=at(timedelta(minutes=30)))
    calls_of_a_send(tenant, body, crasher)
    put_message = next(
        i
        for i, operation in enumerate(crasher.calls)
        if operation == "PutItem" and i > crasher.calls.index("CreateSchedule")
    )
    existing = schedule_names()
    messages = stored_messages(tenant.workspace_id)
    crasher.arm(CrashPoint(put_message, after=False))
    with pytest.raises(Killed):
        tenant.api.send(body, headers={"idempotency-key": uuid.uuid4().hex})
    crasher.arm(None)
    # The schedule exists, its message does not: when it fires, nothing happens.
    [orphan] = schedule_names() - existing
    orphan_id = orphan.removeprefix("msg-")
    assert stored_messages(tenant.workspace_id) == messages
    assert dispatch(orphan_id) == {"queued": False}
    assert drain_handoff_queue(tenant.workspace_id) == []
    assert stored_messages(tenant.workspace_id) == messages


def schedule_names() -> set[str]:
    scheduler = aws_clients.scheduler()
    group = get_settings().schedule_group_name
    paginator = scheduler.get_paginator("list_schedules")
    return {s["Name"] for page in paginator.paginate(GroupName=group) for s in page["Schedules"]}


def test_a_dispatch_killed_at_any_point_queues_the_message_once(
    tenant: Tenant, use_case: UseCase, crasher: Crasher
) -> None:
    body = send_body(use_case, send_at=at(timedelta(minutes=30)))
    first = send_until_answered(tenant, body, uuid.uuid4().hex, crasher, None).json()
    crasher.arm(None)
    assert dispatch(first["id"]) == {"queued": True}
    calls = len(crasher.calls)
    drain_handoff_queue(tenant.workspace_id)
    for point in every_crash_point(calls):
        message = send_until_answered(tenant, body, uuid.uuid4().hex, crasher, None).json()
        crasher.arm(point)
        with pytest.raises(Killed):
            dispatch(message["id"])
        crasher.arm(None)
        # Lambda retries the failed asynchronous invocation.
        dispatch(message["id"])
        current = tenant.api.request("GET", f"/v1/sms/{message['id']}").json()
        assert current["status"] == "pending", str(point)
        assert drain_handoff_queue(tenant.workspace_id) == [{"message_id": message["id"]}], str(
            point
        )
