"""The operator CLI against the configured tables (moto)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sms_gateway.domain.clock import iso, utc_now
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic.sending import new_message
from sms_gateway.store import api_keys, message_store, opt_out_store
from sms_local.aws_resources import LocalStack
from sms_tools import cli
from tests.integration.conftest import Api, Tenant
from tests.integration.test_send_api import drain_handoff_queue, send_body


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()  # drop what the handlers logged before
    assert cli.main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_workspace_key_and_use_case_lifecycle(
    aws: LocalStack, gateway: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = run(capsys, "workspace", "create", "--name", "Acme")["workspace_id"]
    issued = run(capsys, "key", "create", "--workspace", workspace, "--scope", "messages:read")
    assert issued["key"].startswith("sk_live_") and issued["scopes"] == ["messages:read"]
    listed = run(capsys, "key", "list", "--workspace", workspace)
    assert [k["key_id"] for k in listed] == [issued["key_id"]]
    assert issued["key"] not in json.dumps(listed)
    # The key works until it is revoked
    assert Api(gateway, issued["key"]).request("GET", "/v1/sms/").status == 200
    revoked = run(capsys, "key", "revoke", "--workspace", workspace, "--key-id", issued["key_id"])
    assert revoked["revoked_at"]
    assert Api(gateway, issued["key"]).request("GET", "/v1/sms/").status == 401

    spec = tmp_path / "use-case.json"
    spec.write_text(
        json.dumps(
            {
                "name": "Reminders",
                "twilio_account_sid": "AC" + "0" * 32,
                "twilio_auth_token_secret": "sms/twilio/AC" + "0" * 32,
                "messaging_service_sid": "MG" + "0" * 32,
                "sender_pool": [{"sender": "+14155550100", "kind": "long_code"}],
                "a2p_campaign_status": "verified",
                "allowed_countries": ["US"],
            }
        )
    )
    created = run(capsys, "use-case", "create", "--workspace", workspace, "--file", str(spec))
    assert [u["id"] for u in run(capsys, "use-case", "list", "--workspace", workspace)] == [
        created["id"]
    ]
    deactivated = run(
        capsys, "use-case", "deactivate", "--workspace", workspace, "--id", created["id"]
    )
    assert deactivated["active"] is False

    assert run(capsys, "opt-out", "add", "--use-case", created["id"], "--number", "+14155552671")
    scope = opt_out_store.use_case_scope(created["id"])
    assert opt_out_store.is_opted_out([scope], "+14155552671")
    run(capsys, "opt-out", "remove", "--use-case", created["id"], "--number", "+14155552671")
    assert not opt_out_store.is_opted_out([scope], "+14155552671")


def test_errors_are_reported_not_raised(
    aws: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["key", "create", "--workspace", "nope"]) == 1
    assert "error" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x"}))
    workspace = api_keys.create_workspace("w")["workspace_id"]
    assert cli.main(["use-case", "create", "--workspace", workspace, "--file", str(bad)]) == 2
    assert "invalid use case" in capsys.readouterr().err


def test_requeue_stuck_queues_only_pending_messages_no_worker_took(
    aws: LocalStack, tenant: Tenant, use_case: UseCase, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a message the pipe never queued (its stream record was lost), unchanged for an hour,
    # next to one a worker has claimed and one just sent
    stuck = message_record(tenant, use_case, minutes_ago=60)
    claimed = message_record(tenant, use_case, minutes_ago=60, claimed_at=iso(utc_now()))
    drain_handoff_queue()
    fresh = tenant.api.send(send_body(use_case)).json()["id"]
    # When the operator requeues what is stuck for more than 15 minutes
    answer = run(capsys, "message", "requeue-stuck", "--older-than-minutes", "15")
    # Then only the stuck message is queued (what the send queued itself is still there too)
    assert stuck in answer["message_ids"] and claimed not in answer["message_ids"]
    assert fresh not in answer["message_ids"]
    queued = drain_handoff_queue(tenant.workspace_id)
    assert sorted(q["message_id"] for q in queued) == sorted([stuck, fresh])


def message_record(
    tenant: Tenant, use_case: UseCase, *, minutes_ago: int, claimed_at: str | None = None
) -> str:
    """A pending message written straight to the table, as if long ago: the stream does queue
    it, so the test drains the queue afterwards to stand for a pipe that lost it."""
    created = iso(utc_now() - timedelta(minutes=minutes_ago))
    message = new_message(tenant.workspace_id, use_case, "+14155552671", "stuck")
    message.created_at = message.updated_at = created
    message.claimed_at = claimed_at
    message_store.put_new_message(message)
    return message.id


def test_requeue_stuck_refuses_a_window_under_a_minute(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["message", "requeue-stuck", "--older-than-minutes", "0"]) == 1
    assert "at least 1" in capsys.readouterr().err


def test_dispatch_moves_a_scheduled_message_to_pending_once(
    tenant: Tenant, use_case: UseCase, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a scheduled message whose firing ended in ScheduleDeadLetterQueue
    send_at = (utc_now() + timedelta(minutes=30)).isoformat(timespec="seconds")
    scheduled = tenant.api.send(send_body(use_case, send_at=send_at)).json()
    drain_handoff_queue()
    # When the operator dispatches it by hand, twice
    first = run(capsys, "message", "dispatch", "--id", scheduled["id"])
    again = run(capsys, "message", "dispatch", "--id", scheduled["id"])
    # Then it is pending and queued once
    assert (first["dispatched"], again["dispatched"]) == (True, False)
    queued = drain_handoff_queue(tenant.workspace_id)
    assert queued == [{"message_id": scheduled["id"]}]
    assert cli.main(["message", "dispatch", "--id", "not-a-uuid"]) == 1
