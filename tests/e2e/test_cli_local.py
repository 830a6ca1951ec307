"""End to end: the operator CLI against the running local stack (`sms-gateway-admin --local
INFO_FILE`), as a person does it on a laptop, and what it did seen through the stack's API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from sms_gateway.config import Settings
from tests.e2e.conftest import Client, Stack

OPTED_OUT = "+12025552101"
RECIPIENT = "+12025552102"


@pytest.fixture(scope="module")
def info_file(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack's info file, as `make dev INFO_FILE=...` wrote it."""
    path = tmp_path_factory.mktemp("cli") / "stack.json"
    path.write_text(json.dumps(stack.info))
    return path


def admin(info_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a shell that holds nothing of AWS: no endpoint, region, credentials nor table
    names (whatever an earlier test of this session set), only the info file."""
    settings = {name.upper() for name in Settings.model_fields}
    shell = {k: v for k, v in os.environ.items() if k not in settings and not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "sms_tools.cli", "--local", str(info_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=shell,
        check=False,
    )


def ok(info_file: Path, *args: str) -> Any:
    done = admin(info_file, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def use_case_spec(stack: Stack, name: str, account: str, service: str) -> dict[str, Any]:
    prefix = stack.info["aws"]["settings"]["TWILIO_SECRET_PREFIX"]
    return {
        "name": name,
        "twilio_account_sid": account,
        "twilio_auth_token_secret": prefix + account,
        "messaging_service_sid": service,
        "sender_pool": [{"sender": "+12025550100", "kind": "long_code"}],
        "a2p_campaign_status": "verified",
        "allowed_countries": ["US"],
    }


def create_use_case(info_file: Path, folder: Path, workspace: str, spec: dict[str, Any]) -> str:
    """`use-case create` from a file, as an operator does it; the new use case's id."""
    (folder / "use-case.json").write_text(json.dumps(spec))
    created = ok(
        info_file,
        "use-case", "create", "--workspace", workspace, "--file", str(folder / "use-case.json"),
    )  # fmt: skip
    return str(created["id"])


def test_the_info_file_names_the_demo_workspace(stack: Stack, info_file: Path) -> None:
    keys = ok(info_file, "key", "list", "--workspace", stack.info["workspace_id"])
    assert sorted(k["name"] for k in keys) == ["demo admin", "demo live", "demo test"]


def test_an_operator_sets_up_a_second_workspace_on_the_local_stack(
    stack: Stack, info_file: Path, tmp_path: Path
) -> None:
    account = "AC" + uuid.uuid4().hex
    service = "MG" + uuid.uuid4().hex
    # Given a second workspace, its keys, its Twilio subaccount and Messaging Service
    workspace = ok(info_file, "workspace", "create", "--name", "second")["workspace_id"]
    assert workspace != stack.info["workspace_id"]
    live = ok(info_file, "key", "create", "--workspace", workspace)["key"]
    test = ok(info_file, "key", "create", "--workspace", workspace, "--mode", "test")["key"]
    assert live.startswith("sk_live_") and test.startswith("sk_test_")
    ok(info_file, "twilio-account", "bind", "--workspace", workspace, "--account-sid", account)
    bound = ok(
        info_file, "messaging-service", "bind", "--account-sid", account, "--service-sid", service
    )
    assert bound == {"twilio_account_sid": account, "messaging_service_sid": service}
    # and a use case, and a number that opted out of the service
    spec = use_case_spec(stack, "Second workspace's codes", account, service)
    use_case = create_use_case(info_file, tmp_path, workspace, spec)
    ok(info_file, "opt-out", "add", "--service", service, "--number", OPTED_OUT)

    # Then the stack's API knows the new key, and it is the second workspace's
    caller = Client(stack.api_url, live)
    listed = caller.request("GET", "/v1/sms/use-cases")
    assert listed.status == 200, listed.body
    assert [u["id"] for u in listed.json()["items"]] == [use_case]
    assert stack.client("admin").request("GET", f"/v1/sms/use-cases/{use_case}").status == 404
    # the opt-out holds
    body = {"use_case_id": use_case, "to_phone_number": OPTED_OUT, "message": "hi"}
    refused = caller.request("POST", "/v1/sms/", body)
    assert (refused.status, refused.json()["error"]["code"]) == (422, "recipient_opted_out")
    # the bindings hold: the workspace may name its account and service, and no other service
    created = caller.request("POST", "/v1/sms/use-cases", {**spec, "name": "Through the API"})
    assert created.status == 201, created.body
    stranger = {**spec, "messaging_service_sid": "MG" + uuid.uuid4().hex}
    unbound = caller.request("POST", "/v1/sms/use-cases", stranger)
    assert unbound.status == 422
    assert [e["code"] for e in unbound.json()["error"]["errors"]] == [
        "messaging_service_not_in_account"
    ]
    # and the test key sends through the new use case, with no carrier and no auth token
    tester = Client(stack.api_url, test)
    sent = tester.request("POST", "/v1/sms/", {**body, "to_phone_number": RECIPIENT})
    assert sent.status == 201, sent.body
    delivered = tester.wait_for(sent.json()["id"], {"delivered", "failed", "undelivered"})
    assert delivered["status"] == "delivered" and delivered["test"] is True
    assert delivered["message_sid"].startswith("SM")

    # A service bound to one account is refused to another
    taken = admin(
        info_file,
        "messaging-service", "bind", "--account-sid", "AC" + uuid.uuid4().hex,
        "--service-sid", service,
    )  # fmt: skip
    assert taken.returncode == 1
    assert f"{service} belongs to another Twilio account" in taken.stderr


def test_a_missing_info_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    done = admin(tmp_path / "no-stack.json", "workspace", "create", "--name", "x")
    assert done.returncode == 2
    assert "cannot read the info file" in done.stderr and "Traceback" not in done.stderr


def test_an_operator_limits_a_workspace_and_its_callers_see_it(
    stack: Stack, info_file: Path, tmp_path: Path
) -> None:
    """Limits set with the CLI apply to the running stack's next sends: the send rate (429 and
    the RateLimit headers), the monthly quota (402), and a refund of a message that never
    reached the carrier (its subaccount has no auth token: it fails 99002), seen in usage."""
    account = "AC" + uuid.uuid4().hex
    service = "MG" + uuid.uuid4().hex
    workspace = ok(info_file, "workspace", "create", "--name", "limited")["workspace_id"]
    live = ok(info_file, "key", "create", "--workspace", workspace)["key"]
    test = ok(info_file, "key", "create", "--workspace", workspace, "--mode", "test")["key"]
    # The subaccount's auth token is never stored: the handoff fails 99002
    spec = use_case_spec(stack, "Limited codes", account, service)
    use_case = create_use_case(info_file, tmp_path, workspace, spec)
    limits = ok(
        info_file, "workspace", "set-limits", "--workspace", workspace,
        "--monthly-segments", "1", "--sends-per-second", "0.001", "--burst", "2",
    )  # fmt: skip
    assert limits["quota"] == {"monthly_segments": 1, "remaining_segments": 1}
    body = {"use_case_id": use_case, "to_phone_number": RECIPIENT, "message": "hi"}

    # The test key's bucket holds 2 sends: the third is 429, and nothing is charged for quota
    tester = Client(stack.api_url, test)
    answers = [tester.request("POST", "/v1/sms/", body) for _ in range(3)]
    assert [a.status for a in answers] == [201, 201, 429]
    headers = [{k.lower(): v for k, v in a.headers.items()} for a in answers]
    assert [h["ratelimit-remaining"] for h in headers] == ["1", "0", "0"]
    assert {h["ratelimit-limit"] for h in headers} == {"2"}
    assert answers[2].json()["error"]["code"] == "rate_limit_exceeded"
    assert int(headers[2]["retry-after"]) >= 1

    # The live key: the quota pays one, then 402
    caller = Client(stack.api_url, live)
    first = caller.request("POST", "/v1/sms/", body)
    assert first.status == 201, first.body
    refused = caller.request("POST", "/v1/sms/", {**body, "message": "again"})
    assert (refused.status, refused.json()["error"]["code"]) == (402, "sms_quota_exceeded")
    # The first never reaches a carrier (no auth token): its segment comes back
    failed = caller.wait_for(first.json()["id"], {"failed", "delivered", "sent"})
    assert (failed["status"], failed["message_sid"]) == ("failed", None)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        usage = caller.request("GET", "/v1/usage").json()
        if usage["quota"]["remaining_segments"] == 1:
            break
        time.sleep(0.1)
    assert usage["quota"] == {"monthly_segments": 1, "remaining_segments": 1}
    assert usage["by_status"]["failed"] == 1 and usage["segments"] == 0
    assert ok(info_file, "usage", "--workspace", workspace)["quota"]["remaining_segments"] == 1
    assert ok(info_file, "usage", "--workspace", workspace, "--mode", "test")["messages"] == 2
