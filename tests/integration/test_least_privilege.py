"""The least-privilege policies are also enough: every AWS call each function makes over a
message's whole life (send, handoff, callbacks, reads, scheduling, cancel, dispatch, use-case
management, an opt-out from Twilio) is one its role in template.yaml grants, and every grant is
used by the code or listed below with the path that needs it.

The local stack already refuses a call the template does not grant (sms_local.iam); this also
compares the calls with EXPECTED_GRANTS and finds grants the code no longer needs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from sms_gateway import api_keys, opt_out_store, provider_credentials, use_case_store
from sms_gateway.use_cases import UseCase
from sms_local import iam, lambda_runtime
from sms_local import template as tpl
from sms_local.aws_resources import LocalStack
from sms_local.iam import Call, permitted
from sms_local.sqs_poller import SqsPoller
from sms_local.template import FunctionSpec
from sms_local.twilio_simulator import TwilioSimulator
from tests.integration.conftest import Tenant, use_case_spec
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


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Call]]:
    """The AWS calls functions' handlers make, as (function, (action, resource))."""
    load_handler = lambda_runtime.load_handler

    def uncached(spec: FunctionSpec) -> lambda_runtime.Handler:
        handler = load_handler(spec)

        def run(event: dict[str, Any], context: Any) -> Any:
            # Each function runs in processes of its own in Lambda: nothing another function
            # cached (a use case, an auth token) spares it a call.
            use_case_store.clear_cache()
            provider_credentials.reset()
            return handler(event, context)

        return run

    monkeypatch.setattr(lambda_runtime, "load_handler", uncached)
    with iam.recording() as made:
        yield made


def by_function(calls: list[Call]) -> dict[str, set[Grant]]:
    made: dict[str, set[Grant]] = {name: set() for name in EXPECTED_GRANTS}
    for function, grant in calls:
        made.setdefault(function, set()).add(grant)
    return made


def dispatch(message_id: str) -> Any:
    spec = tpl.functions(tpl.project_template())["ScheduledDispatchFunction"]
    return lambda_runtime.invoke(spec, {"message_id": message_id})


@pytest.mark.usefixtures("wired")
def test_every_call_is_granted_and_every_grant_is_needed(
    calls: list[Call],
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
    # A second firing finds it pending already: the outbox has queued it, so it does nothing.
    assert dispatch(later.json()["id"]) == {"queued": False}
    # Its handoff checks the opt-out list again (a scheduled message may wait 30 days).
    assert poller.poll_once() == 1
    assert wait_for(tenant, later.json()["id"], {"delivered"})["status"] == "delivered"
    # Twilio refuses an unsubscribed number at once when sent without a Messaging Service
    # (here the simulator's knob): the handoff then writes the opt-out itself.
    # (the operator lifts the opt-out the callback above added, to send to the number again)
    opt_out_store.remove_opt_out(
        opt_out_store.service_scope(use_case.messaging_service_sid), "+15005550004"
    )
    simulator.configure(reject_unsubscribed_synchronously=True)
    refused = send(tenant, use_case, "+15005550004")
    assert poller.poll_once() == 1
    assert wait_for(tenant, refused, {"failed"})["error_code"] == 21610
    simulator.configure(reject_unsubscribed_synchronously=False)
    simulator.wait_idle()
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

    made = by_function(calls)
    denied = {
        function: sorted(c for c in grants if not permitted(c, EXPECTED_GRANTS[function], aws))
        for function, grants in made.items()
    }
    assert not any(denied.values()), f"these calls would be denied in AWS: {denied}"

    unused = {
        (function, grant)
        for function, grants in EXPECTED_GRANTS.items()
        for grant in grants
        if not any(permitted(c, {grant}, aws) for c in made[function])
    }
    assert unused == set(NOT_EXERCISED), "grant no longer needed, or add it to NOT_EXERCISED"
