"""The operator CLI against the configured tables (moto)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sms_gateway import api_keys, cli, opt_out_store
from sms_local.aws_resources import LocalStack
from tests.integration.conftest import Api


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
