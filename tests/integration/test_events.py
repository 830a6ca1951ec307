"""Every sample event in events/ runs through its function against moto, as `sam local invoke`
would run it: the answer is the documented one, reached through AWS calls made as that function
(each of which its role in template.yaml must grant, as in every integration test: conftest.py).

The samples are deterministic: they name a workspace, a use case, a message and a Twilio
subaccount that no test creates, and an API key no stack has issued.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from sms_gateway.store import api_keys
from sms_local import iam
from sms_local import template as tpl
from sms_local.aws_resources import LocalStack
from sms_local.iam import Call
from sms_local.lambda_runtime import invoke
from tests.unit.test_events_present import event_files, function_of

# File stem -> what the function answers.
EXPECTED: dict[str, dict[str, Any]] = {
    "authorizer": {
        "result": {
            "isAuthorized": True,
            "context": {"authenticated": False, "reason": "the API key is not valid"},
        }
    },
    "send": {"status": 404, "code": "use_case_not_found"},
    "messages_query_get": {"status": 404, "code": "message_not_found"},
    "messages_query_list": {"status": 200, "body": {"items": [], "next_cursor": None}},
    "use_cases_create": {"status": 201},
    "use_cases_list": {"status": 200},
    "catalog_templates_create": {"status": 201},
    "cancel": {"status": 404, "code": "message_not_found"},
    "status_callback": {"status": 403, "code": "forbidden"},
    "handoff": {"result": {"batchItemFailures": []}},
    "scheduled_dispatch": {"result": {"queued": False}},
    # A message stored, then delivered: two records counted, one status webhook queued.
    "message_stream": {"result": {"applied": 2, "webhook_events": 1}},
    # Its receiver, localhost, is refused before anything is sent: a URL we will not call is
    # never retried, so the job goes to the dead-letter queue and the record is done.
    "caller_webhooks": {"result": {"batchItemFailures": []}},
    # The sample's signature is a placeholder: refused, nothing stored.
    "inbound_sms": {"status": 403, "code": "forbidden"},
    # No such reply: nothing to forward, the record is done.
    "reply_forwarding": {"result": {"batchItemFailures": []}},
    # A delivery event of a message that was never handed to AWS End User Messaging SMS: the
    # conditional write finds none, nothing changes, the record is done.
    "eum_events": {"result": {"batchItemFailures": []}},
}


def load(event_file: Path) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(event_file.read_text())
    return event


@pytest.fixture(autouse=True)
def _sample_workspace_owns_the_sample_account(aws: LocalStack) -> None:
    """An operator gave the sample use case's Twilio subaccount to the sample's workspace, and
    bound its Messaging Service to that account."""
    event = load(next(f for f in event_files() if f.stem == "use_cases_create"))
    workspace = event["requestContext"]["authorizer"]["lambda"]["workspace_id"]
    body = json.loads(event["body"])
    assert api_keys.bind_twilio_account(workspace, body["twilio_account_sid"])
    assert api_keys.bind_messaging_service(
        body["twilio_account_sid"], body["messaging_service_sid"]
    )


@pytest.fixture
def aws_calls() -> Iterator[list[Call]]:
    """Every AWS API call a function's handler makes while the test runs, as (function, (IAM
    action, resource))."""
    with iam.recording() as calls:
        yield calls


def error_code(body: str) -> str:
    code: str = json.loads(body)["error"]["code"]
    return code


@pytest.mark.parametrize("event_file", event_files(), ids=lambda p: p.name)
def test_sample_event_gets_the_documented_answer_with_granted_calls_only(
    event_file: Path, aws: LocalStack, aws_calls: list[Call]
) -> None:
    function = function_of(event_file)
    spec = tpl.functions(tpl.project_template())[function]
    expected = EXPECTED[event_file.stem]

    result = invoke(spec, load(event_file))

    if "result" in expected:
        assert result == expected["result"]
    else:
        assert result["statusCode"] == expected["status"], result
        if "code" in expected:
            assert error_code(result["body"]) == expected["code"]
        if "body" in expected:
            assert json.loads(result["body"]) == expected["body"]
    assert aws_calls, "each sample reaches AWS at least once"
    assert {f for f, _ in aws_calls} == {function}


def test_every_sample_event_has_an_expected_answer() -> None:
    assert {f.stem for f in event_files()} == set(EXPECTED)


def test_the_use_case_sample_creates_what_it_says(aws: LocalStack) -> None:
    event_file = next(f for f in event_files() if f.stem == "use_cases_create")
    event = load(event_file)
    spec = tpl.functions(tpl.project_template())[function_of(event_file)]

    result = invoke(spec, event)

    created = json.loads(result["body"])
    sent = json.loads(event["body"])
    assert {k: created[k] for k in sent} == sent


def test_the_status_callback_sample_is_refused_with_the_line_the_alarm_counts(
    aws: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the sample callback: a form body base64-encoded, as API Gateway passes it
    event_file = next(f for f in event_files() if f.stem == "status_callback")
    event = load(event_file)
    assert event["isBase64Encoded"] is True
    form = dict(parse_qsl(base64.b64decode(event["body"]).decode()))
    assert {"AccountSid", "MessageSid", "MessageStatus"} <= set(form)
    spec = tpl.functions(tpl.project_template())["StatusCallbackFunction"]

    # When it arrives with its placeholder signature
    with caplog.at_level(logging.WARNING):
        result = invoke(spec, event)

    # Then it is refused, and logged with the message the metric filter matches
    assert result["statusCode"] == 403
    (metric_filter,) = tpl.resources_of_type(
        tpl.project_template(), "AWS::Logs::MetricFilter"
    ).values()
    pattern = metric_filter["Properties"]["FilterPattern"]
    assert any(f'$.message = "{r.getMessage()}"' in pattern for r in caplog.records)
