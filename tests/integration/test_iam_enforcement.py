"""The local stack holds each function to its role in template.yaml, as AWS would: a call the role
does not grant is refused with AccessDeniedException before it reaches moto, a granted one goes
through, and calls made outside any function's handler (setup, the CLI, the pollers) are the
operator's and are not checked.

Each test runs a tiny handler under a real function's name, the way the local stack runs the
functions (sms_local.lambda_runtime), making the AWS calls it is given through the shared
package's clients, as the functions do.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sms_gateway.config import get_settings
from sms_gateway.store import aws_clients
from sms_local.aws_resources import LocalStack
from sms_local.lambda_runtime import LambdaContext, invoke, load_handler
from sms_local.template import FunctionSpec

HANDLER = '''
from sms_gateway.store import aws_clients


def handler(event, context):
    """Make the AWS call the event names; answer its result or the error's code and message."""
    event.get("before", lambda: None)()
    client = getattr(aws_clients, event["service"])()
    try:
        getattr(client, event["method"])(**event["params"])
    except client.exceptions.ClientError as error:
        refusal = error.response["Error"]
        return {"error": refusal["Code"], "message": refusal["Message"]}
    return {"ok": True}
'''

Probe = Callable[[str], FunctionSpec]

# The probe's calls are this file's, not the functions' code's: they are no evidence that a grant
# is needed, and some are refused on purpose (tests/integration/conftest.py).
pytestmark = pytest.mark.probes


@pytest.fixture
def probe(tmp_path: Path, aws: LocalStack) -> Probe:
    """probe(function): the tiny handler, as that function."""
    module = f"iam_probe_{uuid.uuid4().hex}"  # the runtime caches modules by name
    (tmp_path / f"{module}.py").write_text(HANDLER)
    return lambda function: FunctionSpec(function, str(tmp_path), f"{module}.handler")


def run_as(probe: Probe, function: str, event: dict[str, Any]) -> dict[str, Any]:
    """The tiny handler's answer, run as `function` the way the local stack runs functions."""
    result: dict[str, Any] = invoke(probe(function), event)
    return result


def opt_out_key() -> dict[str, Any]:
    return {"scope": {"S": f"use_case#{uuid.uuid4()}"}, "phone_number": {"S": "+15005550006"}}


def put_opt_out(key: dict[str, Any]) -> dict[str, Any]:
    return {
        "service": "dynamodb",
        "method": "put_item",
        "params": {"TableName": "OptOutsTable", "Item": {**key, "reason": {"S": "test"}}},
    }


def stored(aws: LocalStack, key: dict[str, Any]) -> bool:
    return "Item" in aws.client("dynamodb").get_item(TableName="OptOutsTable", Key=key)


def test_a_call_the_role_does_not_grant_is_refused_and_changes_nothing(
    aws: LocalStack, probe: Probe
) -> None:
    # Given an opt-out, stored by the operator
    key = opt_out_key()
    aws_clients.dynamodb().put_item(TableName="OptOutsTable", Item={**key, "reason": {"S": "x"}})
    # When the handoff, which may only add opt-outs, tries to delete it
    delete = {"service": "dynamodb", "method": "delete_item",
              "params": {"TableName": "OptOutsTable", "Key": key}}  # fmt: skip
    result = run_as(probe, "HandoffFunction", delete)
    # Then AWS's answer is AccessDeniedException, and the opt-out is still there
    assert result == {
        "error": "AccessDeniedException",
        "message": "User: arn:aws:sts::123456789012:assumed-role/HandoffRole/HandoffFunction is "
        "not authorized to perform: dynamodb:DeleteItem on resource: "
        "arn:aws:dynamodb:us-east-1:123456789012:table/OptOutsTable because no identity-based "
        "policy allows the dynamodb:DeleteItem action",
    }
    assert stored(aws, key)


def test_a_granted_call_goes_through_and_the_operator_is_not_checked(
    aws: LocalStack, probe: Probe
) -> None:
    key = opt_out_key()
    assert run_as(probe, "HandoffFunction", put_opt_out(key)) == {"ok": True}
    assert stored(aws, key)
    # The operator (no function running) may do what no function's role grants
    aws_clients.dynamodb().delete_item(TableName="OptOutsTable", Key=key)
    assert not stored(aws, key)


def test_a_handler_called_directly_is_checked_as_its_function(
    aws: LocalStack, probe: Probe
) -> None:
    # As tests call load_handler(spec)(event, context) themselves
    handler = load_handler(probe("AuthorizerFunction"))
    key = opt_out_key()
    result = handler(put_opt_out(key), LambdaContext("AuthorizerFunction", 3))
    assert result["error"] == "AccessDeniedException"
    assert not stored(aws, key)


def test_each_thread_s_handler_is_held_to_its_own_role(aws: LocalStack, probe: Probe) -> None:
    # Two handlers inside their invocations at once, in two threads: the handoff may add an
    # opt-out, the authorizer may not.
    both_inside = threading.Barrier(2, timeout=30)  # a guard against a hang, not a timing
    keys = {"HandoffFunction": opt_out_key(), "AuthorizerFunction": opt_out_key()}
    results: dict[str, dict[str, Any]] = {}

    def run(function: str) -> None:
        event = {**put_opt_out(keys[function]), "before": both_inside.wait}
        results[function] = run_as(probe, function, event)

    threads = [threading.Thread(target=run, args=(function,)) for function in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["HandoffFunction"] == {"ok": True}
    assert results["AuthorizerFunction"]["error"] == "AccessDeniedException"
    refusal = results["AuthorizerFunction"]["message"]
    assert "assumed-role/AuthorizerFunctionRole/AuthorizerFunction " in refusal
    assert stored(aws, keys["HandoffFunction"])
    assert not stored(aws, keys["AuthorizerFunction"])


def create_schedule(aws: LocalStack, name: str, role: str) -> dict[str, Any]:
    settings = get_settings()
    return {
        "service": "scheduler",
        "method": "create_schedule",
        "params": {
            "Name": name,
            "GroupName": settings.schedule_group_name,
            "ScheduleExpression": "at(2099-01-01T00:00:00)",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {
                "Arn": settings.scheduled_dispatch_function_arn,
                "RoleArn": aws.attributes[role]["Arn"],
                "Input": "{}",
            },
        },
    }


def schedule_exists(name: str) -> bool:
    scheduler = aws_clients.scheduler()
    try:
        scheduler.get_schedule(Name=name, GroupName=get_settings().schedule_group_name)
    except scheduler.exceptions.ResourceNotFoundException:
        return False
    return True


def test_creating_a_schedule_needs_pass_role_on_its_target_role(
    aws: LocalStack, probe: Probe
) -> None:
    # The send may create schedules in its group, and pass only SchedulerInvokeRole to them
    refused = f"iam-{uuid.uuid4().hex}"
    result = run_as(probe, "SendFunction", create_schedule(aws, refused, "HandoffRole"))
    assert result["error"] == "AccessDeniedException"
    assert result["message"].startswith(
        "User: arn:aws:sts::123456789012:assumed-role/SendFunctionRole/SendFunction is not "
        "authorized to perform: iam:PassRole on resource: "
        "arn:aws:iam::123456789012:role/HandoffRole because"
    )
    assert not schedule_exists(refused)

    granted = f"iam-{uuid.uuid4().hex}"
    allowed = run_as(probe, "SendFunction", create_schedule(aws, granted, "SchedulerInvokeRole"))
    assert allowed == {"ok": True}
    assert schedule_exists(granted)
    aws_clients.scheduler().delete_schedule(
        Name=granted, GroupName=get_settings().schedule_group_name
    )
