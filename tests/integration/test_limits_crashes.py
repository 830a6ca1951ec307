"""Crash injection where money moves: a send against a quota or a wallet killed before and after
each AWS call it makes (the charge and the message are one transaction, so there is no point
between them where a kill leaves one without the other), and the usage consumer killed before
and after its batch's transaction (Lambda then retries the batch: it must count once).

The kill is test_send_crashes' Killed: a BaseException nothing in the code can catch.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic import limits_admin, usage
from sms_gateway.store import limits_store
from tests.integration.conftest import Tenant
from tests.integration.test_send_api import drain_handoff_queue, send_body, stored_messages
from tests.integration.test_send_crashes import (
    Crasher,
    CrashPoint,
    Killed,
    calls_of_a_send,
    every_crash_point,
    send_until_answered,
)

# The fixture, under its own name (an explicit re-export).
from tests.integration.test_send_crashes import crasher as crasher

US_PRICE = Decimal("0.0083")


def live(workspace_id: str) -> limits_store.Limits:
    limits = limits_store.read_limits(workspace_id, "live", consistent=True)
    assert limits is not None
    return limits


@pytest.mark.parametrize("source", ["quota", "wallet"])
def test_a_send_killed_at_any_point_is_paid_exactly_once(
    tenant: Tenant, use_case: UseCase, crasher: Crasher, source: str
) -> None:
    if source == "quota":
        limits_admin.set_monthly_segments(tenant.workspace_id, 1_000)
    else:
        limits_admin.set_monthly_segments(tenant.workspace_id, 0)
        limits_admin.top_up(tenant.workspace_id, Decimal(10), "USD")
    body = send_body(use_case)
    calls = calls_of_a_send(tenant, body, crasher)
    assert "TransactWriteItems" in crasher.calls
    drain_handoff_queue(tenant.workspace_id)
    for point in every_crash_point(calls):
        before = live(tenant.workspace_id).quota
        known = {m["id"] for m in stored_messages(tenant.workspace_id)}
        response = send_until_answered(tenant, body, uuid.uuid4().hex, crasher, point)
        assert response.status == 201, (str(point), response.json())
        new = [m for m in stored_messages(tenant.workspace_id) if m["id"] not in known]
        assert [m["id"] for m in new] == [response.json()["id"]], str(point)
        after = live(tenant.workspace_id).quota
        # Paid once: no segment or cent lost or gained, whatever was killed when
        if source == "quota":
            assert (before.remaining or 0) - (after.remaining or 0) == 1, str(point)
        else:
            assert (before.balance or 0) - (after.balance or 0) == US_PRICE, str(point)
        assert drain_handoff_queue(tenant.workspace_id) == [
            {"message_id": response.json()["id"]}
        ], str(point)


def _record(
    event: str, sequence: int, new: dict[str, Any], old: dict[str, Any] | None = None
) -> dict[str, Any]:
    from sms_gateway.store.dynamo import to_item

    dynamodb: dict[str, Any] = {
        "Keys": {"id": {"S": new["id"]}},
        "NewImage": to_item(new),
        "SequenceNumber": str(sequence),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        dynamodb["OldImage"] = to_item(old)
    return {"eventID": uuid.uuid4().hex, "eventName": event, "dynamodb": dynamodb}


def _message(workspace_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "workspace_id": workspace_id,
        "test": False,
        "status": status,
        "segments": 1,
        "cost": {"amount": str(US_PRICE), "currency": "USD"},
        "created_at": f"{usage.current_period()}-01T00:00:00.000Z",
        **extra,
    }


@pytest.mark.parametrize("after", [False, True])
def test_a_usage_batch_killed_around_its_write_counts_and_refunds_once(
    tenant: Tenant, crasher: Crasher, after: bool
) -> None:
    """The batch a dead invocation held comes again whole (Lambda retries it from its first
    record), and may come again longer: its marker makes the repeat count nothing twice."""
    limits_admin.set_monthly_segments(tenant.workspace_id, 10)
    limits_admin.top_up(tenant.workspace_id, Decimal(1), "USD")
    period = usage.current_period()
    pending_q = _message(tenant.workspace_id, "pending", charge="quota")
    pending_w = _message(tenant.workspace_id, "pending", charge="wallet")
    failed_q = {**pending_q, "status": "failed", "error_code": 99003}
    canceled_w = {**pending_w, "status": "canceled"}
    batch = [
        _record("INSERT", 101, pending_q),
        _record("INSERT", 102, pending_w),
        _record("MODIFY", 103, failed_q, pending_q),
        _record("MODIFY", 104, canceled_w, pending_w),
    ]
    crasher.arm(CrashPoint(0, after=after))
    with pytest.raises(Killed):
        usage.apply_batch(batch[:3])
    crasher.arm(None)
    # Lambda retries from the same first record; this time the batch holds one more
    usage.apply_batch(batch)
    usage.apply_batch(batch)  # and once more after a lost answer: nothing
    limits = live(tenant.workspace_id)
    # What the two messages were charged came back exactly once (their charges were made by
    # no send here: the quota shows only the refund, the wallet 1 USD plus the refund)
    assert limits.quota.remaining == 11
    assert limits.quota.balance == Decimal(1) + US_PRICE
    report = usage.usage_report(tenant.workspace_id, "live", period)
    assert (report["messages"], report["segments"]) == (2, 0)
    assert report["by_status"]["failed"] == 1 and report["by_status"]["canceled"] == 1
    assert report["by_status"]["pending"] == 0
    assert report["cost"] == {"amount": "0", "currency": "USD"}
