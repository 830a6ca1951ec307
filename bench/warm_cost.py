"""Warm cost of our code: CPU time per request of the send and status-callback handlers, in a warm
process, with their AWS calls answered in-process (bench.fake_aws), against the same AWS calls
made bare: the exact parameters the handler passed, replayed on the same clients and answered by
the same fake.

    python -m bench.warm_cost [--iterations 300] [--rounds 7]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from botocore import xform_name

from bench.common import (
    PUBLIC_BASE_URL,
    aws_environment,
    fake_stack,
    function_environment,
    json_result_channel,
    median,
    progress,
)
from bench.fake_aws import FakeAws

SEND = "SendFunction"
CALLBACK = "StatusCallbackFunction"
CALLBACK_STATUSES = ("queued", "sent", "delivered")
# The destination of the benchmark's messages: a New York mobile number, no simulator magic.
TO_NUMBER = "+12125551234"

Call = tuple[Any, str, dict[str, Any], str]  # client, method, parameters, Service.Operation


def _set_environment() -> tuple[dict[str, Any], dict[str, Any]]:
    """The two functions' environment (template.yaml, fake resource names); returns the template
    and its function specs."""
    from sms_local import template as tpl

    template = tpl.project_template()
    functions = tpl.functions(template)
    stack = fake_stack(template)
    os.environ.update(aws_environment())
    for name in (SEND, CALLBACK):
        os.environ.update(function_environment(functions[name], stack))
    os.environ.pop("AWS_PROFILE", None)
    return template, functions


class CallRecorder:
    """Keeps the parameters of every AWS call while `recording` is on (before-parameter-build)."""

    def __init__(self) -> None:
        self.recording = False
        self.calls: list[Call] = []
        self._clients: dict[str, Any] = {}

    def attach(self, service: str, client: Any) -> None:
        self._clients[service] = client
        client.meta.events.register("before-parameter-build", self._record)

    def _record(self, params: dict[str, Any], event_name: str, **kwargs: Any) -> None:
        if self.recording:
            service, operation = event_name.split(".")[1:]
            client = self._clients[service]
            label = f"{service}.{operation}"
            self.calls.append((client, xform_name(operation), copy.deepcopy(params), label))

    def capture(self, action: Callable[[], Any]) -> list[Call]:
        self.calls, self.recording = [], True
        try:
            action()
        finally:
            self.recording = False
        return self.calls


def operations(calls: list[Call]) -> list[str]:
    return [label for _, _, _, label in calls]


def cpu_ms_per_call(action: Callable[[int], Any], iterations: int) -> float:
    started = time.process_time()
    for i in range(iterations):
        action(i)
    return (time.process_time() - started) * 1000.0 / iterations


@dataclass
class Scenario:
    """Both handlers loaded, their AWS calls answered by `fake`, the demo workspace stored and
    one message sent (the callbacks' message)."""

    fake: FakeAws
    recorder: CallRecorder
    functions: dict[str, Any]
    demo: Any
    send_handler: Any
    callback_handler: Any
    send_event: Callable[[], dict[str, Any]]
    callback_event: Callable[[str], dict[str, Any]]
    invoke: Callable[[Any, str, dict[str, Any], int], dict[str, Any]]
    message_id: str
    authorizer_context: dict[str, Any]


def prepare() -> Scenario:
    template, functions = _set_environment()
    warnings.filterwarnings("ignore", "No application metrics to publish")

    from sms_gateway import config
    from sms_gateway.api.authorizer import authorizer_response
    from sms_gateway.logic.auth import authenticate
    from sms_gateway.providers.twilio.signature import compute_signature
    from sms_gateway.store import aws_clients
    from sms_local import http_events
    from sms_local.demo_data import create_demo_data, new_eum_pool_id
    from sms_local.lambda_runtime import LambdaContext, load_handler

    config.reset_settings()
    aws_clients.reset_clients()
    fake = FakeAws.from_template(template)
    recorder = CallRecorder()
    clients = {
        "dynamodb": aws_clients.dynamodb(),
        "sqs": aws_clients.sqs(),
        "secrets-manager": aws_clients.secretsmanager(),
    }
    for service, client in clients.items():
        fake.attach(client)
        recorder.attach(service, client)

    demo = create_demo_data(new_eum_pool_id())
    authorizer_context = authorizer_response(authenticate(f"Bearer {demo.keys['live']}"))["context"]
    send_handler = load_handler(functions[SEND])
    callback_handler = load_handler(functions[CALLBACK])

    def send_event() -> dict[str, Any]:
        body = {
            "use_case_id": demo.use_case.id,
            "to_phone_number": TO_NUMBER,
            "message": "Your code is 123456",
        }
        return http_events.http_event(
            method="POST",
            raw_path="/v1/sms/",
            headers={
                "host": "sms.example.test",
                "content-type": "application/json",
                "authorization": f"Bearer {demo.keys['live']}",
                "user-agent": "bench",
            },
            body=json.dumps(body).encode(),
            route_key="POST /v1/sms/",
            authorizer_context=authorizer_context,
        )

    def invoke(handler: Any, name: str, event: dict[str, Any], expected: int) -> dict[str, Any]:
        response: dict[str, Any] = handler(
            event, LambdaContext(function_name=name, timeout_seconds=10)
        )
        if response.get("statusCode") != expected:
            raise RuntimeError(
                f"{name} answered {response.get('statusCode')}: {response.get('body')}"
                + (
                    f"; AWS calls bench.fake_aws cannot answer: {dict(fake.unanswered)}"
                    if fake.unanswered
                    else ""
                )
            )
        return response

    # A message for the callbacks to find.
    first = invoke(send_handler, SEND, send_event(), 201)
    message_id = json.loads(first["body"])["id"]

    def callback_event(status: str) -> dict[str, Any]:
        query = urlencode({"message_id": message_id})
        url = f"{PUBLIC_BASE_URL}/v1/webhook/twilio/sms-status?{query}"
        params = {
            "AccountSid": demo.account_sid,
            "ApiVersion": "2010-04-01",
            "From": demo.use_case.sender_pool[1].sender,
            "MessageSid": "SM" + "0" * 32,
            "MessageStatus": status,
            "MessagingServiceSid": demo.use_case.messaging_service_sid,
            "SmsSid": "SM" + "0" * 32,
            "SmsStatus": status,
            "To": TO_NUMBER,
        }
        return http_events.http_event(
            method="POST",
            raw_path="/v1/webhook/twilio/sms-status",
            raw_query=query,
            headers={
                "host": "sms.example.test",
                "content-type": "application/x-www-form-urlencoded",
                "user-agent": "TwilioProxy/1.1",
                "x-twilio-signature": compute_signature(url, params, demo.auth_token),
            },
            body=urlencode(params).encode(),
            route_key="POST /v1/webhook/twilio/sms-status",
        )

    return Scenario(
        fake=fake,
        recorder=recorder,
        functions=functions,
        demo=demo,
        send_handler=send_handler,
        callback_handler=callback_handler,
        send_event=send_event,
        callback_event=callback_event,
        invoke=invoke,
        message_id=message_id,
        authorizer_context=authorizer_context,
    )


def measure(iterations: int, rounds: int) -> dict[str, Any]:
    scenario = prepare()
    fake, recorder, invoke = scenario.fake, scenario.recorder, scenario.invoke
    send_handler, callback_handler = scenario.send_handler, scenario.callback_handler
    send_event = scenario.send_event
    from sms_local.lambda_runtime import LambdaContext

    # Warm caches (use case, secret, Powertools).
    callback_events = [scenario.callback_event(status) for status in CALLBACK_STATUSES]
    for _ in range(50):
        invoke(send_handler, SEND, send_event(), 201)
        for event in callback_events:
            invoke(callback_handler, CALLBACK, copy.deepcopy(event), 204)

    # The AWS calls of one warm request of each kind: what the bare side replays.
    send_groups = [recorder.capture(lambda: invoke(send_handler, SEND, send_event(), 201))]
    callback_groups = []
    for event in callback_events:

        def callback(event: dict[str, Any] = event) -> None:
            invoke(callback_handler, CALLBACK, copy.deepcopy(event), 204)

        callback_groups.append(recorder.capture(callback))

    def send_events(n: int) -> list[dict[str, Any]]:
        return [send_event() for _ in range(n)]

    def callback_events_for(n: int) -> list[dict[str, Any]]:
        # Callbacks cycle through queued, sent, delivered (one UpdateItem each).
        return [copy.deepcopy(callback_events[i % len(callback_events)]) for i in range(n)]

    kinds = {
        "send": (send_handler, SEND, send_events, 201, send_groups),
        "status_callback": (callback_handler, CALLBACK, callback_events_for, 204, callback_groups),
    }
    results: dict[str, Any] = {"rounds": rounds, "requests_per_round": iterations}
    for kind, (handler, name, make_events, expected, groups) in kinds.items():
        handler_ms: list[float] = []
        bare_ms: list[float] = []
        for round_number in range(rounds):
            events = make_events(iterations)
            contexts = [LambdaContext(function_name=name, timeout_seconds=10) for _ in events]
            statuses: list[Any] = [None] * iterations

            def handle(i: int) -> None:
                statuses[i] = handler(events[i], contexts[i])["statusCode"]  # noqa: B023

            def bare(i: int) -> None:
                for client, method, params, _ in groups[i % len(groups)]:  # noqa: B023
                    getattr(client, method)(**params)

            handler_ms.append(cpu_ms_per_call(handle, iterations))
            bare_ms.append(cpu_ms_per_call(bare, iterations))
            wrong = [status for status in statuses if status != expected]
            if wrong:
                unanswered = dict(fake.unanswered) or "none"
                raise RuntimeError(
                    f"{name} answered {wrong[:3]} during the benchmark "
                    f"(AWS calls bench.fake_aws cannot answer: {unanswered})"
                )
            progress(f"warm cost: {kind} round {round_number + 1}/{rounds}")
        results[kind] = {
            "function": name,
            "handler_cpu_ms": median(handler_ms),
            "bare_aws_cpu_ms": median(bare_ms),
            "handler_cpu_ms_rounds": handler_ms,
            "bare_aws_cpu_ms_rounds": bare_ms,
            "aws_calls_per_request": [operations(group) for group in groups],
        }
    results["status_callback"]["callback_statuses"] = list(CALLBACK_STATUSES)
    results["aws_calls_answered"] = dict(fake.calls)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.warm_cost", description=__doc__)
    parser.add_argument("--iterations", type=int, default=1000, help="requests per timed round")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (median reported)")
    args = parser.parse_args(argv)
    with json_result_channel() as write:
        write(measure(max(3, args.iterations), max(1, args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
