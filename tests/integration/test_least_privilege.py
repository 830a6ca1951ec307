"""The least-privilege policies are also enough: every AWS call each function makes over a
message's whole life (send, handoff, callbacks, reads, scheduling, cancel, dispatch, use-case
management, an opt-out from Twilio) is one its role in template.yaml grants, and every grant is
used by the code or listed below with the path that needs it.

moto does not enforce IAM, so without this an action missing from a policy would surface only
as an AccessDenied in AWS.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from botocore.client import BaseClient

from sms_gateway import api_keys, provider_credentials, use_case_store
from sms_gateway.use_cases import UseCase
from sms_local import lambda_runtime
from sms_local import template as tpl
from sms_local.aws_resources import LocalStack
from sms_local.sqs_poller import SqsPoller
from sms_local.template import FunctionSpec
from sms_local.twilio_simulator import TwilioSimulator
from tests.integration.conftest import Tenant, use_case_spec
from tests.integration.test_events import concrete_resources, permitted
from tests.integration.test_handoff import (  # noqa: F401 - fixtures
    poller,
    send,
    server,
    simulator,
    wait_for,
    wired,
)
from tests.integration.test_scheduling import at, schedule_later
from tests.integration.test_send_api import send_body
from tests.least_privilege import EXPECTED_GRANTS, Grant

# Grants no test here can exercise, and the path that needs each.
NOT_EXERCISED: dict[tuple[str, Grant], str] = {
    ("SendFunction", ("dynamodb:DeleteItem", "MessagesTable")): "queueing the handoff failed",
    ("SendFunction", ("dynamodb:GetItem", "IdempotencyTable")): (
        "Powertools reads a record when a conditional put fails without returning it"
    ),
    ("HandoffFunction", ("logs:CreateLogStream", "HandoffLogGroup")): "Lambda's own logging",
    ("HandoffFunction", ("logs:PutLogEvents", "HandoffLogGroup")): "Lambda's own logging",
    ("HandoffFunction", ("sqs:ReceiveMessage", "HandoffQueue")): "the event source mapping",
    ("HandoffFunction", ("sqs:DeleteMessage", "HandoffQueue")): "the event source mapping",
    ("HandoffFunction", ("sqs:GetQueueAttributes", "HandoffQueue")): "the event source mapping",
    ("HandoffFunction", ("sqs:ChangeMessageVisibility", "HandoffQueue")): "429/503 backoff",
    ("ScheduledDispatchFunction", ("sqs:SendMessage", "ScheduleDeadLetterQueue")): (
        "Lambda's asynchronous DLQ, after the function failed"
    ),
}

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("function", default=None)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, set[Grant]]]:
    """function -> the (action, resource) pairs of the AWS calls its handler made."""
    recorded: dict[str, set[Grant]] = {name: set() for name in EXPECTED_GRANTS}
    make_api_call = BaseClient._make_api_call  # type: ignore[attr-defined]  # private, unstubbed
    load_handler = lambda_runtime.load_handler

    def recording(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        function = _current.get()
        if function is not None:
            service = self.meta.service_model.endpoint_prefix
            for resource in concrete_resources(service, params):
                recorded[function].add((f"{service}:{operation}", resource))
        return make_api_call(self, operation, params)

    def attributed(spec: FunctionSpec) -> lambda_runtime.Handler:
        handler = load_handler(spec)

        def run(event: dict[str, Any], context: Any) -> Any:
            # Each function runs in processes of its own in Lambda: nothing another function
            # cached (a use case, an auth token) spares it a call.
            use_case_store.clear_cache()
            provider_credentials.reset()
            token = _current.set(spec.name)
            try:
                return handler(event, context)
            finally:
                _current.reset(token)

        return run

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    monkeypatch.setattr(lambda_runtime, "load_handler", attributed)
    yield recorded


def dispatch(message_id: str) -> Any:
    spec = tpl.functions(tpl.project_template())["ScheduledDispatchFunction"]
    return lambda_runtime.invoke(spec, {"message_id": message_id})


@pytest.mark.usefixtures("wired")
def test_every_call_is_granted_and_every_grant_is_needed(
    calls: dict[str, set[Grant]],
    aws: LocalStack,
    tenant: Tenant,
    use_case: UseCase,
    simulator: TwilioSimulator,  # noqa: F811
    poller: SqsPoller,  # noqa: F811
) -> None:
    api = tenant.api
    # A message's life, with an Idempotency-Key, and one to an unsubscribed number (21610).
    key = {"idempotency-key": uuid.uuid4().hex}
    sent = api.send(send_body(use_case, to_phone_number="+12125552671"), headers=key)
    assert sent.status == 201, sent.json()
    replayed = api.send(send_body(use_case, to_phone_number="+12125552671"), headers=key)
    assert replayed.json() == sent.json()
    unknown = send_body(use_case, use_case_id=str(uuid.uuid4()))
    assert api.send(unknown, headers={"idempotency-key": uuid.uuid4().hex}).status == 404
    opted_out = send(tenant, use_case, "+15005550004")
    assert poller.poll_once() == 2
    assert wait_for(tenant, sent.json()["id"], {"delivered"})["status"] == "delivered"
    assert wait_for(tenant, opted_out, {"failed"})["status"] == "failed"
    simulator.wait_idle()
    assert api.request("GET", "/v1/sms/", query={"use_case_id": use_case.id}).status == 200
    assert api.request("GET", "/v1/sms/").status == 200
    # Scheduling: one canceled, one dispatched.
    canceled = schedule_later(tenant, use_case)
    assert api.request("POST", f"/v1/sms/{canceled['id']}/cancel").status == 200
    later = api.send(send_body(use_case, send_at=at(timedelta(minutes=5))))
    assert dispatch(later.json()["id"]) == {"queued": True}
    # A second firing finds it pending and unclaimed: it reads it and queues it again.
    assert dispatch(later.json()["id"]) == {"queued": True}
    # Use-case management.
    path = f"/v1/sms/use-cases/{use_case.id}"
    assert api.request("GET", "/v1/sms/use-cases").status == 200
    assert api.request("GET", path).status == 200
    assert api.request("PATCH", path, json_body={"name": "Renamed"}).status == 200
    # (an operator gave the workspace the subaccount the new use case names)
    new_spec = use_case_spec()
    api_keys.bind_twilio_account(tenant.workspace_id, new_spec.twilio_account_sid)
    created = api.request("POST", "/v1/sms/use-cases", json_body=new_spec.model_dump(mode="json"))
    assert created.status == 201, created.json()
    deleted = api.request("DELETE", f"/v1/sms/use-cases/{created.json()['id']}")
    assert deleted.status in (200, 204)

    denied = {
        function: sorted(c for c in made if not permitted(c, EXPECTED_GRANTS[function], aws))
        for function, made in calls.items()
    }
    assert not any(denied.values()), f"these calls would be denied in AWS: {denied}"

    unused = {
        (function, grant)
        for function, grants in EXPECTED_GRANTS.items()
        for grant in grants
        if not any(permitted(c, {grant}, aws) for c in calls[function])
    }
    # iam:PassRole is checked by CreateSchedule itself, not called.
    unused.discard(("SendFunction", ("iam:PassRole", "SchedulerInvokeRole")))
    assert unused == set(NOT_EXERCISED), "grant no longer needed, or add it to NOT_EXERCISED"
