"""The operator CLI against the configured tables (moto)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sms_gateway.config import Settings
from sms_gateway.domain.clock import iso, utc_now
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic.sending import new_message
from sms_gateway.store import api_keys, message_store, opt_out_store, provider_health
from sms_local.aws_resources import REGION, LocalStack
from sms_local.lambda_runtime import reset_cached_state
from sms_tools import cli
from tests.integration.conftest import Api, Tenant, restore_settings, set_settings
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
    # Each change is recorded, with its source; a repeated removal records nothing.
    assert not run(
        capsys, "opt-out", "remove", "--use-case", created["id"], "--number", "+14155552671"
    )["removed"]
    changes = run(capsys, "opt-out", "changes", "--use-case", created["id"])
    assert [(c["phone_number"], c["action"], c["source"]) for c in changes] == [
        ("+14155552671", "opted_out", "operator"),
        ("+14155552671", "opted_in", "operator"),
    ]
    assert all(c["at"] for c in changes)
    assert (
        run(capsys, "opt-out", "changes", "--use-case", created["id"], "--number", "+14155550000")
        == []
    )


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


def use_case_file(tmp_path: Path, **overrides: Any) -> Path:
    account = overrides.pop("twilio_account_sid", None) or "AC" + uuid.uuid4().hex
    spec = tmp_path / f"use-case-{uuid.uuid4().hex[:8]}.json"
    data = {
        "name": "Reminders",
        "twilio_account_sid": account,
        "twilio_auth_token_secret": f"sms/twilio/{account}",
        "messaging_service_sid": "MG" + uuid.uuid4().hex,
        "sender_pool": [{"sender": "+14155550100", "kind": "long_code"}],
        "a2p_campaign_status": "verified",
        "allowed_countries": ["US"],
    }
    spec.write_text(json.dumps(data | overrides))
    return spec


def test_use_case_files_are_checked_as_strictly_as_the_api_and_bind_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = api_keys.create_workspace("w")["workspace_id"]

    def refused(spec: Path) -> str:
        capsys.readouterr()
        assert cli.main(["use-case", "create", "--workspace", workspace, "--file", str(spec)]) == 2
        return capsys.readouterr().err

    not_json = tmp_path / "not-json.json"
    not_json.write_text("{'name': 'single quotes'}")
    assert "is not JSON" in refused(not_json)
    assert "cannot read the use case file" in refused(tmp_path / "missing.json")
    # Strict, as POST /v1/sms/use-cases: a string is not a boolean
    account = "AC" + uuid.uuid4().hex
    err = refused(use_case_file(tmp_path, twilio_account_sid=account, active="false"))
    assert "invalid use case" in err and "active" in err
    # The token must be where the convention says, before anything is bound
    err = refused(use_case_file(tmp_path, twilio_account_sid=account, twilio_auth_token_secret="x"))
    assert "twilio_auth_token_secret" in err
    assert api_keys.twilio_account_owner(account) is None
    assert "Traceback" not in err


def test_messaging_service_bind_refuses_a_service_of_another_account(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account, other, service = (
        "AC" + uuid.uuid4().hex,
        "AC" + uuid.uuid4().hex,
        "MG" + uuid.uuid4().hex,
    )
    bind = ["messaging-service", "bind", "--service-sid", service, "--account-sid"]
    assert run(capsys, *bind, account) == {
        "twilio_account_sid": account,
        "messaging_service_sid": service,
    }
    run(capsys, *bind, account)  # again: nothing changes
    assert cli.main([*bind, other]) == 1
    assert f"{service} belongs to another Twilio account" in capsys.readouterr().err
    assert api_keys.messaging_service_account(service) == account
    # Nor does a use case of the other account get it through use-case create
    workspace = api_keys.create_workspace("w")["workspace_id"]
    spec = use_case_file(tmp_path, twilio_account_sid=other, messaging_service_sid=service)
    assert cli.main(["use-case", "create", "--workspace", workspace, "--file", str(spec)]) == 1
    assert "another Twilio account" in capsys.readouterr().err
    # A SID that no use case could name is not bound at all
    with pytest.raises(SystemExit) as usage:
        cli.main(["messaging-service", "bind", "--account-sid", account, "--service-sid", "MG1"])
    assert usage.value.code == 2


@pytest.fixture
def info_in_bare_shell(aws: LocalStack, tmp_path: Path) -> Iterator[Path]:
    """An info file as the local stack writes it for the CLI (`aws`), for this package's AWS, in
    a shell that holds no table name, endpoint, region nor credentials. The test's environment,
    and what was derived from it, is given back afterwards."""
    settings = {n.upper() for n in Settings.model_fields}
    info = tmp_path / "stack.json"
    info.write_text(
        json.dumps(
            {
                "aws": {
                    "endpoint_url": aws.endpoint_url,
                    "region": REGION,
                    "settings": {k: v for k, v in os.environ.items() if k in settings},
                }
            }
        )
    )
    saved = dict(os.environ)
    for name in [*settings, *(n for n in saved if n.startswith("AWS_"))]:
        os.environ.pop(name, None)
    reset_cached_state()
    yield info
    os.environ.clear()
    os.environ.update(saved)
    reset_cached_state()


def test_local_reads_everything_from_the_info_file(
    info_in_bare_shell: Path, gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    local = ("--local", str(info_in_bare_shell))
    workspace = run(capsys, *local, "workspace", "create", "--name", "second")["workspace_id"]
    issued = run(capsys, *local, "key", "create", "--workspace", workspace)
    # The key is in the tables the functions read: the API takes it
    assert Api(gateway, issued["key"]).request("GET", "/v1/sms/").status == 200


FOREIGN_SETTING = {"aws": {"endpoint_url": "http://127.0.0.1:1", "region": "us-east-1",
                           "settings": {"PATH": "/usr/bin"}}}  # fmt: skip


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot read the info file"),
        ("{not json", "is not JSON"),
        (json.dumps({"api_url": "http://127.0.0.1:3000"}), "is not a local stack's info file"),
        (json.dumps(FOREIGN_SETTING), "settings the functions do not have"),
    ],
)
def test_a_bad_info_file_is_reported_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, says: str
) -> None:
    info = tmp_path / "stack.json"
    if content is not None:
        info.write_text(content)
    environment = dict(os.environ)
    assert cli.main(["--local", str(info), "workspace", "create", "--name", "x"]) == 2
    err = capsys.readouterr().err
    assert says in err and str(info) in err and "Traceback" not in err
    assert dict(os.environ) == environment


def test_local_and_stack_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        cli.main(["--local", "stack.json", "--stack", "sms-gateway-dev", "key", "list",
                  "--workspace", "w"])  # fmt: skip
    assert usage.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


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


def test_an_operator_s_price_is_committed_into_later_sends_only(
    aws: LocalStack, tenant: Tenant, use_case: UseCase, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tenant.api.send(send_body(use_case, to_phone_number="+447400123456")).json()
    set_price = run(capsys, "price", "set", "--country", "GB", "--unit-price", "0.0400")
    try:
        listed = run(capsys, "price", "list")
        # Each function caches a price for the use cases' TTL: a new sandbox reads it at once.
        reset_cached_state()
        after = tenant.api.send(send_body(use_case, to_phone_number="+447400123456")).json()
    finally:
        unset = run(capsys, "price", "unset", "--country", "GB")
    drain_handoff_queue()

    assert set_price == {
        "country": "GB", "unit_price": "0.0400", "currency": "USD", "source": "operator",
    }  # fmt: skip
    assert {
        "country": "GB",
        "unit_price": "0.0400",
        "currency": "USD",
        "source": "operator",
    } in listed
    assert {
        "country": "US",
        "unit_price": "0.0083",
        "currency": "USD",
        "source": "bundled",
    } in listed
    assert before["cost"] is None
    assert after["cost"] == {
        "amount": "0.0400", "currency": "USD", "unit_price": "0.0400", "segments": 1,
    }  # fmt: skip
    assert unset == {"country": "GB", "now": None}
    read_again = tenant.api.request("GET", f"/v1/sms/{after['id']}").json()
    assert read_again["cost"]["amount"] == "0.0400"


@pytest.mark.parametrize(
    "args",
    [
        ["--country", "gb", "--unit-price", "0.04"],
        ["--country", "XX", "--unit-price", "0.04"],
        ["--country", "GB", "--unit-price", "-1"],
        ["--country", "GB", "--unit-price", "1e-3"],
        ["--country", "GB", "--unit-price", "0.04", "--currency", "usd"],
    ],
)
def test_a_malformed_price_is_a_usage_error_and_sets_nothing(
    aws: LocalStack, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["price", "set", *args])
    assert exited.value.code == 2
    assert all(p["country"] != "GB" for p in run(capsys, "price", "list"))


def test_limits_are_set_topped_up_and_reported_by_the_operator(
    aws: LocalStack, tenant: Tenant, use_case: UseCase, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = tenant.workspace_id
    limits = run(
        capsys, "workspace", "set-limits", "--workspace", workspace,
        "--monthly-segments", "2", "--sends-per-second", "5", "--burst", "10",
    )  # fmt: skip
    assert limits == {
        "workspace_id": workspace,
        "quota": {"monthly_segments": 2, "remaining_segments": 2},
        "wallet": None,
        "rate_limit": {"sends_per_second": 5, "burst": 10},
    }
    topped = run(
        capsys, "wallet", "top-up", "--workspace", workspace, "--amount", "0.0083",
        "--currency", "USD",
    )  # fmt: skip
    assert topped == {"workspace_id": workspace, "balance": "0.0083", "currency": "USD"}  # no note
    # Two sends from the quota, one from the wallet, then nothing pays
    answers = [tenant.api.send(send_body(use_case, message=f"code {i}")) for i in range(4)]
    assert [a.status for a in answers] == [201, 201, 201, 402]
    report = run(capsys, "usage", "--workspace", workspace)
    assert report["quota"] == {"monthly_segments": 2, "remaining_segments": 0}
    assert report["wallet"] == {"balance": "0", "currency": "USD"}
    # Removing the quota makes the workspace unlimited again; the wallet stays
    cleared = run(
        capsys, "workspace", "set-limits", "--workspace", workspace,
        "--monthly-segments", "none", "--sends-per-second", "none",
    )  # fmt: skip
    assert (cleared["quota"]["monthly_segments"], cleared["rate_limit"]) == (None, None)
    assert tenant.api.send(send_body(use_case)).status == 201
    # `--burst none` removes a send rate as well
    run(capsys, "workspace", "set-limits", "--workspace", workspace, "--sends-per-second", "1",
        "--burst", "1")  # fmt: skip
    removed = run(capsys, "workspace", "set-limits", "--workspace", workspace, "--burst", "none")
    assert removed["rate_limit"] is None


@pytest.mark.parametrize(
    "args",
    [
        ["workspace", "set-limits", "--monthly-segments", "-1"],
        ["workspace", "set-limits", "--monthly-segments", "lots"],
        ["workspace", "set-limits", "--sends-per-second", "5"],
        ["workspace", "set-limits", "--burst", "5"],
        ["workspace", "set-limits", "--sends-per-second", "0", "--burst", "5"],
        ["workspace", "set-limits", "--sends-per-second", "5", "--burst", "0"],
        ["workspace", "set-limits"],
        ["wallet", "top-up", "--amount", "-3", "--currency", "USD"],
        ["wallet", "top-up", "--amount", "1.1234567", "--currency", "USD"],
        ["wallet", "top-up", "--amount", "abc", "--currency", "USD"],
    ],
)
def test_malformed_limits_are_refused_and_change_nothing(
    aws: LocalStack, tenant: Tenant, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    group, action, *rest = args
    assert cli.main([group, action, "--workspace", tenant.workspace_id, *rest]) in (1, 2)
    assert capsys.readouterr().err
    report = run(capsys, "usage", "--workspace", tenant.workspace_id)
    assert (report["quota"]["monthly_segments"], report["wallet"], report["rate_limit"]) == (
        None,
        None,
        None,
    )


def test_a_wallet_keeps_its_currency_and_limits_need_a_workspace(
    aws: LocalStack, tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = tenant.workspace_id
    first = run(
        capsys, "wallet", "top-up", "--workspace", workspace, "--amount", "5", "--currency", "EUR"
    )
    # Without a quota the wallet pays nothing: the operator is told
    assert "--monthly-segments 0" in first["note"]
    assert (
        cli.main(
            ["wallet", "top-up", "--workspace", workspace, "--amount", "5", "--currency", "USD"]
        )
        == 1
    )
    assert "holds EUR" in capsys.readouterr().err
    assert run(capsys, "usage", "--workspace", workspace)["wallet"] == {
        "balance": "5",
        "currency": "EUR",
    }
    assert cli.main(["usage", "--workspace", "nope"]) == 1
    assert (
        cli.main(["workspace", "set-limits", "--workspace", "nope", "--monthly-segments", "1"]) == 1
    )


def test_eum_identities_are_bound_to_one_workspace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine, theirs = (api_keys.create_workspace(n)["workspace_id"] for n in ("mine", "theirs"))
    pool = "pool-" + uuid.uuid4().hex
    bind = ["eum-identity", "bind", "--identity", pool, "--workspace"]
    assert run(capsys, *bind, mine) == {"workspace_id": mine, "origination_identity": pool}
    run(capsys, *bind, mine)  # again: nothing changes
    assert cli.main([*bind, theirs]) == 1
    assert f"{pool} belongs to another workspace" in capsys.readouterr().err
    assert api_keys.eum_identity_owner(pool) == mine
    # use-case create binds the use case's own identity, and refuses another workspace's
    other_pool = "pool-" + uuid.uuid4().hex
    spec = use_case_file(
        tmp_path, providers=[{"name": "aws_eum", "origination_identity": other_pool}]
    )
    created = run(capsys, "use-case", "create", "--workspace", theirs, "--file", str(spec))
    assert created["providers"][0]["origination_identity"] == other_pool
    assert api_keys.eum_identity_owner(other_pool) == theirs
    taken = use_case_file(tmp_path, providers=[{"name": "aws_eum", "origination_identity": pool}])
    assert cli.main(["use-case", "create", "--workspace", theirs, "--file", str(taken)]) == 1
    # An identity no use case could name is not bound at all
    with pytest.raises(SystemExit) as usage:
        cli.main(["eum-identity", "bind", "--workspace", mine, "--identity", "pool 1"])
    assert usage.value.code == 2


def test_providers_status_shows_a_cool_down_and_reset_ends_it(
    aws: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # One window for the whole test, wherever the clock is (its boundaries are 2001 and 2033)
    saved = set_settings(PROVIDER_FAILURE_THRESHOLD="2", PROVIDER_FAILURE_WINDOW_SECONDS=str(10**9))
    try:
        run(capsys, "providers", "reset", "--provider", "twilio")
        provider_health.record_failure("twilio", utc_now())
        [twilio, eum] = run(capsys, "providers", "status")
        assert (twilio["provider"], twilio["failures_in_window"], twilio["cooling"]) == (
            "twilio",
            1,
            False,
        )
        assert eum["provider"] == "aws_eum"
        provider_health.record_failure("twilio", utc_now())
        [twilio, _] = run(capsys, "providers", "status")
        assert twilio["cooling"] is True and twilio["cooling_until"] > iso(utc_now())
        assert run(capsys, "providers", "reset", "--provider", "twilio") == {
            "provider": "twilio",
            "cooling": False,
        }
        [twilio, _] = run(capsys, "providers", "status")
        assert (twilio["cooling"], twilio["failures_in_window"]) == (False, 0)
        assert "twilio" not in provider_health.cooling(utc_now())
    finally:
        restore_settings(saved)
    with pytest.raises(SystemExit):
        cli.main(["providers", "reset", "--provider", "carrier-pigeon"])
