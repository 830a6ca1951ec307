"""AWS calls per message over its whole life, counted with botocore event hooks.

One message is taken through every step by hand, each function invoked the way AWS would invoke
it, against moto in server mode holding template.yaml's resources, with the Twilio simulator as the
provider: the authorizer (its key lookup), the send, the SQS event source mapping (its receive
and delete, made here by a client of our own, as Lambda's poller makes them), the handoff, and the
three status callbacks the simulator sent (caught by a small receiver, then given to the
status-callback function). Hooks on sms_gateway.store.aws_clients' clients record every call
(`before-parameter-build`) and its answer (`after-call`), from which DynamoDB request units are
computed with the items' real sizes.

The first message runs with every function's caches cold (as if each ran in a new container);
the next ones are the steady state, with the use-case and secret caches warm.

    python -m bench.aws_calls [--lives 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
import urllib.parse
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import boto3

from bench.common import function_shape, json_result_channel, median, progress
from bench.pricing import PhaseUsage, item_size, read_units, write_units
from sms_local import template as tpl

CALLBACK_PATH = "/v1/webhook/twilio/sms-status"
CALLBACK_STATUSES = ("queued", "sent", "delivered")
TO_NUMBER = "+13125551234"  # a Chicago mobile: geomatched to the demo pool's Chicago sender
ESM = "sqs event source mapping"
PIPE = "handoff pipe"
AUTHORIZER, SEND, HANDOFF = "authorizer", "send", "handoff"
USAGE = "usage"
USAGE_ESM = "usage event source mapping"
# The limits a workspace is given for the lives that measure what limits add to a send: a send
# rate, a quota that never runs out during the run (so every send spends from it) and a wallet.
LIMITS: dict[str, Any] = {
    "monthly_segments": 10**9,
    "sends_per_second": "1000",
    "burst": 1000,
    "wallet": "100",
}


# -- counting ------------------------------------------------------------------------------------


@dataclass
class CallRecord:
    phase: str
    service: str
    operation: str
    table: str | None = None
    ok: bool = True
    error: str | None = None
    write_units: float = 0.0
    read_units: float = 0.0
    item_bytes: int | None = None


@dataclass(frozen=True)
class Gsi:
    """A global secondary index of template.yaml, as far as its write cost goes."""

    keys: list[str]
    table_keys: list[str]
    projection: str  # ALL, KEYS_ONLY or INCLUDE
    included: list[str]

    def entry(self, item: dict[str, Any] | None) -> dict[str, Any] | None:
        """What the index holds of `item` (None: the item is not in it, a key is missing)."""
        if item is None or not all(k in item for k in self.keys):
            return None
        if self.projection == "ALL":
            return item
        names = {*self.keys, *self.table_keys, *self.included}
        return {name: value for name, value in item.items() if name in names}

    def write_units(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> int:
        """DynamoDB's index write for one table write from `old` to `new`: none when the
        index's entry is unchanged (an update of attributes it does not hold); a put at the
        entry's size when it enters or changes; a delete (one unit) when it leaves; both when
        its keys change."""
        before, after = self.entry(old), self.entry(new)
        if before == after:
            return 0
        if after is None:
            return 1
        put = write_units(item_size(after))
        moved = before is not None and any(before[k] != after[k] for k in self.keys)
        return put + (1 if moved else 0)


def template_gsis(template: dict[str, Any]) -> dict[str, list[Gsi]]:
    """Each table of template.yaml with its global secondary indexes."""
    return {
        name: [
            Gsi(
                keys=[k["AttributeName"] for k in index["KeySchema"]],
                table_keys=[k["AttributeName"] for k in resource["Properties"]["KeySchema"]],
                projection=str(index.get("Projection", {}).get("ProjectionType", "KEYS_ONLY")),
                included=list(index.get("Projection", {}).get("NonKeyAttributes", [])),
            )
            for index in resource["Properties"].get("GlobalSecondaryIndexes", [])
        ]
        for name, resource in tpl.resources_of_type(template, "AWS::DynamoDB::Table").items()
    }


def quiet_logs(*more: str) -> None:
    """Only warnings from the libraries and simulators a measured life runs through."""
    warnings.filterwarnings("ignore", "No application metrics to publish")
    for noisy in ("werkzeug", "botocore", "urllib3", "sms_local.twilio_simulator", *more):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@dataclass
class CallCounter:
    """Registered on clients; records the calls made while a phase is set."""

    gsis: dict[str, list[Gsi]]  # table -> its global secondary indexes
    phase: str | None = None
    records: list[CallRecord] = field(default_factory=list)
    # The last image seen of each item (table, key), from the writes' requests and answers and
    # the reads' answers: what a write changed, so what it wrote in each index.
    images: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def _image_key(self, table: str | None, item: dict[str, Any]) -> tuple[str, str] | None:
        gsis = self.gsis.get(table or "")
        if not gsis:
            return None
        return (table or "", json.dumps([item.get(k) for k in gsis[0].table_keys], sort_keys=True))

    def _remember(self, table: str | None, item: dict[str, Any] | None) -> dict[str, Any] | None:
        """Store `item` as the latest image of its key; the image it replaces (None: unseen)."""
        if item is None:
            return None
        key = self._image_key(table, item)
        if key is None:
            return None
        old = self.images.get(key)
        self.images[key] = item
        return old

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build", self._before)
        client.meta.events.register("after-call", self._after)

    def _before(
        self, params: dict[str, Any], context: dict[str, Any], event_name: str, **kwargs: Any
    ) -> None:
        if self.phase is None:
            return
        service, operation = event_name.split(".")[1:]
        record = CallRecord(self.phase, service, operation, params.get("TableName"))
        self.records.append(record)
        context["bench_call"] = (record, params)

    def _after(
        self,
        http_response: Any,
        parsed: dict[str, Any],
        context: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        entry = context.pop("bench_call", None)
        if entry is None:
            return
        record, params = entry
        record.ok = http_response.status_code < 300
        if not record.ok:
            record.error = parsed.get("Error", {}).get("Code")
        if record.service == "dynamodb":
            self._capacity(record, params, parsed)

    def _index_units(
        self, table: str | None, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> int:
        """Write units the table's GSIs take for a write from `old` to `new` (Gsi.write_units)."""
        return sum(gsi.write_units(old, new) for gsi in self.gsis.get(table or "", []))

    def _capacity(self, record: CallRecord, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        op = record.operation
        consistent = bool(params.get("ConsistentRead", False))
        if op == "GetItem":
            record.item_bytes = item_size(parsed.get("Item", {}))
            record.read_units = read_units(record.item_bytes, consistent=consistent)
            self._remember(record.table, parsed.get("Item"))
        elif op == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                found = parsed.get("Responses", {}).get(table, [])
                strong = bool(request.get("ConsistentRead", False))
                # A key with no item still costs the minimum read.
                missing = len(request["Keys"]) - len(found)
                record.read_units += missing * read_units(0, consistent=strong)
                record.read_units += sum(read_units(item_size(i), consistent=strong) for i in found)
        elif op == "Query":
            size = sum(item_size(i) for i in parsed.get("Items", []))
            record.read_units = read_units(size, consistent=consistent)
        elif op == "TransactWriteItems":
            # A canceled transaction still costs its units, but writes nothing: no index entry,
            # no new image.
            record.write_units = self._transaction_units(params, written=record.ok)
        elif op in ("PutItem", "UpdateItem", "DeleteItem"):
            if not record.ok:
                record.write_units = 1.0  # a failed condition still costs a write
                return
            item = params["Item"] if op == "PutItem" else parsed.get("Attributes")
            if item is None:  # no ALL_NEW answer: size unknown, assume one unit in every index
                record.write_units = float(1 + len(self.gsis.get(record.table or "", [])))
                return
            record.item_bytes = item_size(item)
            old = self._remember(record.table, item)
            if op == "UpdateItem" and old is None:
                # An item never seen before this update: assume every index it is in written.
                old = {}
            record.write_units = float(
                write_units(record.item_bytes) + self._index_units(record.table, old, item)
            )

    def _transaction_units(self, params: dict[str, Any], *, written: bool = True) -> float:
        """A transactional write costs two units per KB of each item it writes or checks (and
        a canceled one as much); its index writes cost as a plain write's. An Update's item is
        not in the request: these are small items (limits, counters, markers; under 1 KB) the
        transaction's own key and values bound, counted at one KB."""
        units = 0.0
        for action in params["TransactItems"]:
            ((kind, request),) = action.items()
            table = request.get("TableName")
            if kind == "Put":
                size = item_size(request["Item"])
                units += 2 * write_units(size)
                if written:
                    old = self._remember(table, request["Item"])
                    units += self._index_units(table, old, request["Item"])
            else:
                units += 2 * write_units(
                    item_size({**request["Key"], **request.get("ExpressionAttributeValues", {})})
                )
        return units


def usage_of(
    phase: str,
    records: list[CallRecord],
    function: str | None,
    ms: float,
    api: bool,
    pipe_events: int = 0,
) -> PhaseUsage:
    mine = [r for r in records if r.phase == phase]
    memory, architecture = function_shape(tpl.project_template(), function) if function else (0, "")
    return PhaseUsage(
        phase=phase,
        function=function,
        duration_ms=ms,
        memory_mb=memory,
        architecture=architecture,
        api_request=api,
        dynamodb_write_units=sum(r.write_units for r in mine),
        dynamodb_read_units=sum(r.read_units for r in mine),
        sqs_requests=sum(r.service == "sqs" for r in mine),
        secrets_manager_calls=sum(r.service == "secrets-manager" for r in mine),
        pipe_events=pipe_events,
        calls=dict(Counter(f"{r.service}.{r.operation}" for r in mine)),
    )


# The factories of sms_gateway.store.aws_clients whose clients a life's calls go through.
OUR_CLIENT_FACTORIES = ("dynamodb", "sqs", "secretsmanager", "scheduler", "sesv2")


def counted_clients(counter: CallCounter, endpoint: str, others: Iterable[Any]) -> tuple[Any, Any]:
    """Attach `counter` to our functions' clients and to `others` (the pipes', or a provider's
    client of its own); return the SQS client that plays Lambda's poller (counted: its receive
    and delete are the mapping's, not our code's) and a DynamoDB client that only observes (not
    counted)."""
    from sms_gateway.store import aws_clients
    from sms_local.aws_resources import REGION

    for factory in OUR_CLIENT_FACTORIES:
        if hasattr(aws_clients, factory):
            counter.attach(getattr(aws_clients, factory)())
    for client in others:
        counter.attach(client)
    esm_sqs = boto3.session.Session().client("sqs", endpoint_url=endpoint, region_name=REGION)
    counter.attach(esm_sqs)
    observer = boto3.session.Session().client("dynamodb", endpoint_url=endpoint, region_name=REGION)
    return esm_sqs, observer


# -- the Twilio callbacks' receiver --------------------------------------------------------------


class CallbackReceiver(ThreadingHTTPServer):
    """Answers Twilio's status callbacks with 204 and keeps them, to be replayed to the function."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.received: list[tuple[str, str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, name="bench-callbacks", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def wait_for(self, message_id: str, count: int, timeout: float = 15.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                mine = [r for r in self.received if f"message_id={message_id}" in r[1]]
            if len(mine) >= count:
                return mine
            time.sleep(0.01)
        raise TimeoutError(f"{count} callbacks for {message_id} did not arrive")


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: CallbackReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        path, _, query = self.path.partition("?")
        headers = {name.lower(): value for name, value in self.headers.items()}
        with self.server.lock:
            self.server.received.append((path, query, headers, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


# -- one message's life --------------------------------------------------------------------------


def measure(lives: int) -> dict[str, Any]:
    from decimal import Decimal

    from sms_gateway.domain.limits import SendRate
    from sms_gateway.logic import limits_admin
    from sms_gateway.store import secrets, use_case_store
    from sms_local import http_events
    from sms_local.aws_emulator import start_local_aws
    from sms_local.aws_resources import create_resources
    from sms_local.demo_data import create_demo_data, new_eum_pool_id
    from sms_local.lambda_runtime import (
        LambdaContext,
        load_handler,
        merged_environment,
        use_local_aws,
    )
    from sms_local.pipe_runner import PipeRunner
    from sms_local.sqs_poller import sqs_event
    from sms_local.stream_poller import StreamPoller
    from sms_local.twilio_simulator import SimulatorConfig, TwilioSimulator

    quiet_logs()
    template = tpl.project_template()
    functions = tpl.functions(template)
    routes = {(r.method, r.path): r.function for r in tpl.http_routes(template)}
    send_function = routes[("POST", "/v1/sms/")]
    callback_function = routes[("POST", CALLBACK_PATH)]
    authorizer_function = tpl.default_authorizer(template)
    gsis = template_gsis(template)

    moto = start_local_aws()
    receiver = CallbackReceiver()
    simulator = TwilioSimulator(
        SimulatorConfig(accounts={}, services={}, callback_delays=(0.01, 0.01))
    )
    simulator.start()
    try:
        endpoint = moto.endpoint_url
        stack = create_resources(
            template,
            endpoint,
            {"PublicBaseUrl": receiver.url, "TwilioApiBaseUrl": simulator.base_url},
        )
        use_local_aws(endpoint, merged_environment(functions, stack.environment))
        demo = create_demo_data(new_eum_pool_id())
        simulator.configure(
            accounts={demo.account_sid: demo.auth_token},
            services={
                demo.use_case.messaging_service_sid: [s.sender for s in demo.use_case.sender_pool]
            },
        )

        # The event source that drains the queue the handoff pipe fills from the stream.
        [source] = [
            s
            for s in tpl.sqs_sources(template)
            if stack.refs[s.queue] == os.environ["HANDOFF_QUEUE_URL"]
        ]
        [pipe] = [p for p in tpl.stream_pipes(template) if p.queue == source.queue]
        # Run by AWS, not by us: pumped by hand after each send, with clients counted apart.
        pipe_runner = PipeRunner(stack, pipe)
        handoff_function = source.function
        counter = CallCounter(gsis)
        esm_sqs, observer = counted_clients(counter, endpoint, pipe_runner.clients)
        queue_url = stack.refs[source.queue]
        queue_arn = stack.attributes[source.queue]["Arn"]
        messages_table = os.environ["MESSAGES_TABLE"]
        # The usage counters' event source mapping on the same stream, run by AWS.
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
            )
            if name is not None
        }
        usage_ms: list[float] = []

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

        def fresh_containers() -> None:
            use_case_store.clear_cache()
            secrets.reset()

        def life(cold: bool) -> tuple[list[PhaseUsage], str]:
            counter.records = []
            usages: list[PhaseUsage] = []
            body = json.dumps(
                {
                    "use_case_id": demo.use_case.id,
                    "to_phone_number": TO_NUMBER,
                    "message": "Your code is 123456",
                }
            ).encode()
            headers = {
                "host": "sms.example.test",
                "content-type": "application/json",
                "authorization": f"Bearer {demo.keys['live']}",
            }
            event = http_events.http_event(
                method="POST", raw_path="/v1/sms/", headers=headers, body=body,
                route_key="POST /v1/sms/",
            )  # fmt: skip
            if authorizer_function is not None:
                auth_event = http_events.authorizer_event(event, [headers["authorization"]])
                answer, ms = invoke(AUTHORIZER, authorizer_function, auth_event)
                assert answer["context"]["authenticated"] is True, answer
                event["requestContext"]["authorizer"] = {"lambda": answer["context"]}
                usages.append(usage_of(AUTHORIZER, counter.records, authorizer_function, ms, False))
            if cold:
                fresh_containers()
            answer, ms = invoke(SEND, send_function, event)
            assert answer["statusCode"] == 201, answer
            message_id = json.loads(answer["body"])["id"]
            usages.append(usage_of(SEND, counter.records, send_function, ms, True))

            counter.phase = PIPE
            queued = pipe_runner.pump()
            counter.phase = None
            assert queued == 1, queued
            usages.append(usage_of(PIPE, counter.records, None, 0.0, False, pipe_events=queued))

            counter.phase = ESM
            received = esm_sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(source.batch_size, 10),
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            counter.phase = None
            assert len(received) == 1, received
            if cold:
                fresh_containers()
            answer, ms = invoke(
                HANDOFF,
                handoff_function,
                sqs_event(cast(list[dict[str, Any]], received), queue_arn),
            )
            assert not answer.get("batchItemFailures"), answer
            counter.phase = ESM
            esm_sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": "0", "ReceiptHandle": received[0]["ReceiptHandle"]}],
            )
            counter.phase = None
            usages.append(usage_of(ESM, counter.records, None, 0.0, False))
            usages.append(usage_of(HANDOFF, counter.records, handoff_function, ms, False))

            if cold:
                fresh_containers()
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

            # The message's stream records, in one batch here (at volume a batch of
            # BatchSize records carries several messages': the report weighs that).
            usage_ms.clear()
            counter.phase = USAGE_ESM
            taken = usage_poller.pump()
            counter.phase = None
            records_per_message.append(taken)
            usages.append(usage_of(USAGE_ESM, counter.records, None, 0.0, False))
            usages.append(usage_of(USAGE, counter.records, usage_function, sum(usage_ms), False))
            return usages, message_id

        records_per_message: list[int] = []

        first, _ = life(cold=True)
        life(cold=False)  # the caches the cold run emptied fill again: not yet the steady state
        steady_runs = []
        for number in range(lives):
            steady_runs.append(life(cold=False))
            progress(f"aws calls: steady-state message {number + 1}/{lives}")

        final = observer.get_item(
            TableName=messages_table, Key={"id": {"S": steady_runs[-1][1]}}, ConsistentRead=True
        )["Item"]

        # The same lives for a workspace with a send rate, a monthly quota and a wallet.
        limits_admin.set_monthly_segments(demo.workspace_id, int(LIMITS["monthly_segments"]))
        limits_admin.set_send_rate(
            demo.workspace_id,
            SendRate(Decimal(str(LIMITS["sends_per_second"])), int(LIMITS["burst"])),
        )
        limits_admin.top_up(demo.workspace_id, Decimal(str(LIMITS["wallet"])), "USD")
        life(cold=False)  # the first send of the month starts the quota's period
        limited_runs = []
        for number in range(lives):
            limited_runs.append(life(cold=False))
            progress(f"aws calls: message with limits {number + 1}/{lives}")
        assert final["status"]["S"] == "delivered", final["status"]
        call_sets = [[p.calls for p in usages] for usages, _ in steady_runs]

        def medians(runs: list[tuple[list[PhaseUsage], str]]) -> list[dict[str, Any]]:
            phases = []
            for index, usage in enumerate(runs[0][0]):
                durations = [usages[index].duration_ms for usages, _ in runs]
                phases.append({**asdict(usage), "duration_ms": median(durations)})
            return phases

        return {
            "first_message": [asdict(u) for u in first],
            "steady_state": medians(steady_runs),
            "with_limits": medians(limited_runs),
            "limits": LIMITS,
            "usage_batch_size": usage_source.batch_size,
            "usage_records_per_message": median([float(n) for n in records_per_message[2:]]),
            "steady_lives": lives,
            "steady_counts_identical": all(c == call_sets[0] for c in call_sets),
            "final_status": final["status"]["S"],
            "final_message_item_bytes": item_size(final),
            "functions": {
                "authorizer": authorizer_function,
                "send": send_function,
                "handoff": handoff_function,
                "status_callback": callback_function,
                "usage": usage_function,
            },
            "handoff_batch_size": source.batch_size,
        }
    finally:
        simulator.stop()
        receiver.shutdown()
        receiver.server_close()
        moto.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.aws_calls", description=__doc__)
    parser.add_argument("--lives", type=int, default=5, help="steady-state messages measured")
    args = parser.parse_args(argv)
    with json_result_channel() as write:
        write(measure(max(1, args.lives)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
