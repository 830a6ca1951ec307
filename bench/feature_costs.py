"""What each optional feature adds to a plain message, counted as bench.aws_calls counts a plain
one: against moto in server mode holding template.yaml's resources, with the Twilio simulator as
the provider (and the AWS End User Messaging SMS simulator for failover), each function invoked
with the event AWS would give it, every call on sms_gateway.store.aws_clients' clients counted by
bench.aws_calls.CallCounter's botocore hooks.

Each round takes one message of every variant through its whole life, in turn:

- plain: bench.aws_calls' life (authorizer, send, handoff pipe, SQS event source mapping,
  handoff, three Twilio status callbacks, the stream's usage function);
- template: the same send naming a template of the workspace by id, with its variables;
- webhook: the send with a status_callback_url (a local receiver answering 204); after the usage
  function queued the events (message.sent, message.delivered), the caller webhook queue's
  event source mapping and CallerWebhookFunction, which delivers them;
- reply: a plain life, then the person answers: Twilio's incoming-message webhook (signed by the
  simulator) to InboundSmsFunction, which links it to the message;
- reply forwarded: the send asks for reply forwarding to a webhook; the reply, then
  ReplyForwardingPipe, its queue's event source mapping, ReplyForwardingFunction (which queues a
  `message.reply` webhook) and CallerWebhookFunction delivering it;
- failover: the send through a use case listing aws_eum then twilio while AWS End User
  Messaging SMS answers 503 (its simulator's outage knob): the handoff tries it, records the
  attempt and the provider's failure, and Twilio takes the message.

A feature's addition is its variant's median life less the plain one (or, for reply forwarding,
less the reply's) in the same run; a webhook's is divided by the events the message had.

    python -m bench.feature_costs [--lives 5]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, cast

from bench.aws_calls import (
    AUTHORIZER,
    CALLBACK_PATH,
    CALLBACK_STATUSES,
    ESM,
    HANDOFF,
    PIPE,
    SEND,
    TO_NUMBER,
    USAGE,
    USAGE_ESM,
    CallbackReceiver,
    CallCounter,
    counted_clients,
    quiet_logs,
    template_gsis,
    usage_of,
)
from bench.common import json_result_channel, median, progress
from bench.feature_model import (
    FAILOVER,
    FORWARDED,
    REPLY,
    TEMPLATED,
    VARIANTS,
    WEBHOOK,
)
from bench.pricing import PhaseUsage
from sms_local import template as tpl

INBOUND_PATH = "/v1/webhook/twilio/sms-inbound"
STATUS_WEBHOOK_PATH = "/bench/status-webhook"
REPLY_WEBHOOK_PATH = "/bench/reply-webhook"
TEMPLATE = {"slug": "bench-code", "body": "Your code is {{code}}"}
TEMPLATE_VARIABLES = {"code": "123456"}
MESSAGE = "Your code is 123456"  # the plain send's text: the template's rendering
REPLY_TEXT = "Thanks, got it"

# Phases of the features' own steps.
WEBHOOK_ESM = "caller webhook event source mapping"
CALLER_WEBHOOK = "caller webhook"
INBOUND = "inbound webhook"
REPLY_PIPE = "reply forwarding pipe"
REPLY_ESM = "reply forwarding event source mapping"
REPLY_FORWARDING = "reply forwarding"

# -- measuring -----------------------------------------------------------------------------------


def measure(lives: int) -> dict[str, Any]:
    from sms_gateway.domain.use_cases import UseCaseSpec
    from sms_gateway.logic import template_admin
    from sms_gateway.logic.use_case_admin import create_use_case
    from sms_gateway.store import secrets, sms_voice, use_case_store
    from sms_local import http_events
    from sms_local.aws_emulator import start_local_aws
    from sms_local.aws_resources import create_resources
    from sms_local.demo_data import create_demo_data, new_eum_pool_id
    from sms_local.eum_simulator import EumSimulator
    from sms_local.lambda_runtime import (
        LambdaContext,
        load_handler,
        merged_environment,
        use_local_aws,
    )
    from sms_local.pipe_runner import PipeRunner
    from sms_local.sqs_poller import sqs_event
    from sms_local.stack import EUM_ENDPOINT_VARIABLE, demo_eum_simulator, eum_pool_arn
    from sms_local.stream_poller import StreamPoller
    from sms_local.twilio_simulator import SimulatorConfig, TwilioSimulator

    quiet_logs("sms_local.eum_simulator")
    template = tpl.project_template()
    functions = tpl.functions(template)
    routes = {(r.method, r.path): r.function for r in tpl.http_routes(template)}
    send_function = routes[("POST", "/v1/sms/")]
    callback_function = routes[("POST", CALLBACK_PATH)]
    inbound_function = routes[("POST", INBOUND_PATH)]
    authorizer_function = tpl.default_authorizer(template)
    gsis = template_gsis(template)

    moto = start_local_aws()
    receiver = CallbackReceiver()
    simulator = TwilioSimulator(
        SimulatorConfig(accounts={}, services={}, callback_delays=(0.01, 0.01))
    )
    simulator.start()
    eum: EumSimulator | None = None
    try:
        endpoint = moto.endpoint_url
        eum_pool_id = new_eum_pool_id()
        stack = create_resources(
            template,
            endpoint,
            {
                "PublicBaseUrl": receiver.url,
                "TwilioApiBaseUrl": simulator.base_url,
                "EumOriginationIdentityArns": eum_pool_arn(eum_pool_id),
            },
        )
        # AWS End User Messaging SMS down for the whole run: only the failover variant's use
        # case asks it first.
        eum = demo_eum_simulator(stack, eum_pool_id, endpoint, outage=True)
        eum.start()
        environment = {
            **merged_environment(functions, stack.environment),
            # The local receivers are on 127.0.0.1 over http (only the local stack allows it).
            "CALLER_WEBHOOK_ALLOW_LOOPBACK_HTTP": "true",
            EUM_ENDPOINT_VARIABLE: eum.base_url,
            # Every failover attempt of the run is counted, none starts a cool-down (in which
            # new messages would try Twilio first and no longer fail over).
            "PROVIDER_FAILURE_THRESHOLD": str(10**6),
        }
        use_local_aws(endpoint, environment, stack.parameters)
        demo = create_demo_data(eum_pool_id)
        simulator.configure(
            accounts={demo.account_sid: demo.auth_token},
            services={
                demo.use_case.messaging_service_sid: [s.sender for s in demo.use_case.sender_pool]
            },
            service_accounts={demo.use_case.messaging_service_sid: demo.account_sid},
            inbound_url=receiver.url + INBOUND_PATH,
        )
        spec = demo.use_case.model_dump(include=set(UseCaseSpec.model_fields), mode="json")
        spec["name"] = "Demo, AWS first"
        spec["providers"] = list(reversed(spec["providers"]))
        assert spec["providers"][0]["name"] == "aws_eum", spec["providers"]
        eum_first = create_use_case(demo.workspace_id, UseCaseSpec.model_validate(spec))
        message_template = template_admin.create_template(demo.workspace_id, dict(TEMPLATE))

        sources = {s.function: s for s in tpl.sqs_sources(template)}
        [handoff_source] = [
            s for s in sources.values() if stack.refs[s.queue] == os.environ["HANDOFF_QUEUE_URL"]
        ]
        webhook_source = sources["CallerWebhookFunction"]
        forwarding_source = sources["ReplyForwardingFunction"]
        pipes = {p.queue: p for p in tpl.stream_pipes(template)}
        handoff_pipe = PipeRunner(stack, pipes[handoff_source.queue])
        reply_pipe = PipeRunner(stack, pipes[forwarding_source.queue])
        handoff_function = handoff_source.function
        counter = CallCounter(gsis)
        # The handoff's AWS End User Messaging SMS client is its own (no retries): counted too,
        # as are EventBridge Pipes' clients.
        esm_sqs, observer = counted_clients(
            counter,
            endpoint,
            [sms_voice._client(), *handoff_pipe.clients, *reply_pipe.clients],
        )
        messages_table = os.environ["MESSAGES_TABLE"]
        [usage_source] = tpl.stream_sources(template)
        usage_function = usage_source.function
        handlers = {
            name: load_handler(functions[name])
            for name in (
                authorizer_function,
                send_function,
                handoff_function,
                callback_function,
                usage_function,
                inbound_function,
                webhook_source.function,
                forwarding_source.function,
            )
            if name is not None
        }
        usage_ms: list[float] = []

        def invoke(phase: str, function: str, event: dict[str, Any]) -> tuple[Any, float]:
            context = LambdaContext(
                function_name=function, timeout_seconds=functions[function].timeout
            )
            counter.phase = phase
            started = time.perf_counter()
            try:
                result = handlers[function](event, context)
            finally:
                counter.phase = None
            return result, (time.perf_counter() - started) * 1000.0

        def invoke_usage(spec: Any, event: dict[str, Any]) -> Any:
            answer, ms = invoke(USAGE, usage_function, event)
            counter.phase = USAGE_ESM
            usage_ms.append(ms)
            return answer

        usage_poller = StreamPoller(
            stack, usage_source, functions[usage_function], invoke=invoke_usage
        )
        for client in usage_poller.clients:
            counter.attach(client)
        usage_poller.pump()  # the demo data's records: not a message's
        use_case_store.clear_cache()
        secrets.reset()

        def drain(
            esm_phase: str, phase: str, source: Any, expected: int
        ) -> tuple[list[PhaseUsage], int]:
            """Lambda's SQS poller on `source`'s queue: one receive of what is there, the
            function invoked with it, the records it did not fail deleted."""
            queue_url, queue_arn = stack.refs[source.queue], stack.attributes[source.queue]["Arn"]
            counter.phase = esm_phase
            received: list[Any] = []
            deadline = time.monotonic() + 10
            while len(received) < expected and time.monotonic() < deadline:
                received += esm_sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=min(source.batch_size, 10),
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            counter.phase = None
            assert len(received) == expected, (source.function, len(received), expected)
            answer, ms = invoke(
                phase,
                source.function,
                sqs_event(cast(list[dict[str, Any]], received), queue_arn),
            )
            failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
            assert not failed, (source.function, answer)
            counter.phase = esm_phase
            esm_sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(received)
                ],
            )
            counter.phase = None
            return [
                usage_of(esm_phase, counter.records, None, 0.0, False),
                usage_of(phase, counter.records, source.function, ms, False),
            ], len(received)

        def life(extra: Mapping[str, Any], use_case_id: str) -> tuple[list[PhaseUsage], str]:
            """bench.aws_calls' life of one message (steady state), with `extra` in the send."""
            usages: list[PhaseUsage] = []
            body = {"use_case_id": use_case_id, "to_phone_number": TO_NUMBER, **extra}
            if "template" not in body:
                body["message"] = MESSAGE
            headers = {
                "host": "sms.example.test",
                "content-type": "application/json",
                "authorization": f"Bearer {demo.keys['live']}",
            }
            event = http_events.http_event(
                method="POST", raw_path="/v1/sms/", headers=headers,
                body=json.dumps(body).encode(), route_key="POST /v1/sms/",
            )  # fmt: skip
            if authorizer_function is not None:
                auth_event = http_events.authorizer_event(event, [headers["authorization"]])
                answer, ms = invoke(AUTHORIZER, authorizer_function, auth_event)
                assert answer["context"]["authenticated"] is True, answer
                event["requestContext"]["authorizer"] = {"lambda": answer["context"]}
                usages.append(usage_of(AUTHORIZER, counter.records, authorizer_function, ms, False))
            answer, ms = invoke(SEND, send_function, event)
            assert answer["statusCode"] == 201, answer
            message_id = json.loads(answer["body"])["id"]
            usages.append(usage_of(SEND, counter.records, send_function, ms, True))

            counter.phase = PIPE
            queued = handoff_pipe.pump()
            counter.phase = None
            assert queued == 1, queued
            usages.append(usage_of(PIPE, counter.records, None, 0.0, False, pipe_events=queued))
            handed, _ = drain(ESM, HANDOFF, handoff_source, 1)
            usages += handed

            callbacks = receiver.wait_for(message_id, len(CALLBACK_STATUSES))
            for path, query, callback_headers, callback_body in callbacks:
                status = urllib.parse.parse_qs(callback_body.decode())["MessageStatus"][0]
                phase = f"callback {status}"
                callback_event = http_events.http_event(
                    method="POST", raw_path=path, raw_query=query, headers=callback_headers,
                    body=callback_body, route_key=f"POST {CALLBACK_PATH}",
                )  # fmt: skip
                answer, ms = invoke(phase, callback_function, callback_event)
                assert answer["statusCode"] == 204, answer
                usages.append(usage_of(phase, counter.records, callback_function, ms, True))

            usage_ms.clear()
            counter.phase = USAGE_ESM
            usage_poller.pump()
            counter.phase = None
            usages.append(usage_of(USAGE_ESM, counter.records, None, 0.0, False))
            usages.append(usage_of(USAGE, counter.records, usage_function, sum(usage_ms), False))
            return usages, message_id

        def reply_to(message_id: str, forwarded: bool) -> list[PhaseUsage]:
            """The person answers the message: Twilio's signed webhook (the simulator posts it
            to the receiver; it is given to the function as the HTTP API would), then, when the
            message asked, the forwarding by webhook."""
            item = observer.get_item(
                TableName=messages_table, Key={"id": {"S": message_id}}, ConsistentRead=True
            )["Item"]
            before = len(receiver.received)
            request = urllib.request.Request(  # noqa: S310 - the simulator on loopback
                simulator.base_url + "/_simulator/inbound",
                data=json.dumps(
                    {"from": TO_NUMBER, "to": item["from_number"]["S"], "body": REPLY_TEXT}
                ).encode(),
                headers={"content-type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                assert answer.status == 200, answer.status
            with receiver.lock:
                [posted] = [r for r in receiver.received[before:] if r[0] == INBOUND_PATH]
            path, query, inbound_headers, inbound_body = posted
            inbound_event = http_events.http_event(
                method="POST", raw_path=path, raw_query=query, headers=inbound_headers,
                body=inbound_body, route_key=f"POST {INBOUND_PATH}",
            )  # fmt: skip
            answer, ms = invoke(INBOUND, inbound_function, inbound_event)
            assert answer["statusCode"] == 200, answer
            usages = [usage_of(INBOUND, counter.records, inbound_function, ms, True)]
            counter.phase = REPLY_PIPE
            queued = reply_pipe.pump()
            counter.phase = None
            assert queued == (1 if forwarded else 0), queued
            usages.append(
                usage_of(REPLY_PIPE, counter.records, None, 0.0, False, pipe_events=queued)
            )
            if forwarded:
                usages += drain(REPLY_ESM, REPLY_FORWARDING, forwarding_source, 1)[0]
                usages += drain(WEBHOOK_ESM, CALLER_WEBHOOK, webhook_source, 1)[0]
                with receiver.lock:
                    assert any(r[0] == REPLY_WEBHOOK_PATH for r in receiver.received[before:])
            return usages

        events_per_message: list[int] = []

        def run(variant: str) -> list[PhaseUsage]:
            counter.records = []
            if variant == TEMPLATED:
                extra: dict[str, Any] = {
                    "template": message_template.id,
                    "variables": TEMPLATE_VARIABLES,
                }
            elif variant == WEBHOOK:
                extra = {"status_callback_url": receiver.url + STATUS_WEBHOOK_PATH}
            elif variant == FORWARDED:
                extra = {"reply_forwarding": {"webhook_url": receiver.url + REPLY_WEBHOOK_PATH}}
            else:
                extra = {}
            use_case_id = eum_first.id if variant == FAILOVER else demo.use_case.id
            usages, message_id = life(extra, use_case_id)
            if variant == WEBHOOK:
                queue_url = stack.refs[webhook_source.queue]
                attributes = esm_sqs.get_queue_attributes(
                    QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
                )["Attributes"]
                events = int(attributes["ApproximateNumberOfMessages"])
                assert events >= 1, attributes
                delivered, taken = drain(WEBHOOK_ESM, CALLER_WEBHOOK, webhook_source, events)
                usages += delivered
                events_per_message.append(taken)
            if variant in (REPLY, FORWARDED):
                usages += reply_to(message_id, forwarded=variant == FORWARDED)
            final = observer.get_item(
                TableName=messages_table, Key={"id": {"S": message_id}}, ConsistentRead=True
            )["Item"]
            assert final["status"]["S"] == "delivered", (variant, final["status"])
            if variant == FAILOVER:
                assert final["provider"]["S"] == "twilio", final.get("provider")
                assert len(final["provider_attempts"]["L"]) == 2, final["provider_attempts"]
            return usages

        # One message of each variant first, not counted: every cache filled, every queue and
        # stream read once.
        for variant in VARIANTS:
            run(variant)
        events_per_message.clear()
        runs: dict[str, list[list[PhaseUsage]]] = {v: [] for v in VARIANTS}
        for number in range(lives):
            for variant in VARIANTS:
                runs[variant].append(run(variant))
            progress(f"feature costs: round {number + 1}/{lives}")

        def steady(variant_runs: list[list[PhaseUsage]]) -> list[dict[str, Any]]:
            """The lives' most common counts (a read cached for some seconds, such as the
            providers' health in the handoff, shows in a few lives only: at volume it is a
            fixed cost per container, not one per message), with every life's median duration."""
            shapes = Counter(json.dumps([p.calls for p in r], sort_keys=True) for r in variant_runs)
            usual = shapes.most_common(1)[0][0]
            [typical, *_] = [
                r for r in variant_runs if json.dumps([p.calls for p in r], sort_keys=True) == usual
            ]
            phases = []
            for index, usage in enumerate(typical):
                durations = [usages[index].duration_ms for usages in variant_runs]
                phases.append({**asdict(usage), "duration_ms": median(durations)})
            return phases

        identical = {
            v: all([p.calls for p in r] == [p.calls for p in rs[0]] for r in rs)
            for v, rs in runs.items()
        }
        # Where a variant's lives differed, each life's calls by step that differ from the first's.
        differences = {
            v: [
                {
                    p.phase: {"first": first.calls, "this": p.calls}
                    for p, first in zip(r, rs[0], strict=True)
                    if p.calls != first.calls
                }
                for r in rs[1:]
            ]
            for v, rs in runs.items()
            if not identical[v]
        }
        return {
            "variants": {v: steady(rs) for v, rs in runs.items()},
            "count_differences": differences,
            "steady_counts_identical": identical,
            "lives": lives,
            "webhook_events_per_message": median([float(n) for n in events_per_message]),
            "template": TEMPLATE,
            "functions": {
                "inbound": inbound_function,
                "caller_webhook": webhook_source.function,
                "reply_forwarding": forwarding_source.function,
                "status_callback": callback_function,
            },
            "webhook_batch_size": webhook_source.batch_size,
            "reply_forwarding_batch_size": forwarding_source.batch_size,
            "webhook_reserved_concurrency_parameter": template["Parameters"]
            .get("WebhookReservedConcurrency", {})
            .get("Default"),
        }
    finally:
        if eum is not None:
            eum.stop()
        simulator.stop()
        receiver.shutdown()
        receiver.server_close()
        moto.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.feature_costs", description=__doc__)
    parser.add_argument("--lives", type=int, default=5, help="rounds of every variant measured")
    args = parser.parse_args(argv)
    with json_result_channel() as write:
        write(measure(max(1, args.lives)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
