"""`make dev`: the whole service on one machine, all on 127.0.0.1.

moto in server mode, in a process of its own (sms_local.aws_process), holds the tables, queues
and secrets of template.yaml; in this process, an HTTP front serves
the template's routes (authorizer included); pollers feed the SQS and DynamoDB stream event
sources to their functions; a runner fires due EventBridge Scheduler schedules; the Twilio
simulator plays the provider and calls back to the front; the AWS End User Messaging SMS
simulator plays the second provider and publishes its events to moto's SNS. Every function runs
in worker processes of its own, up to its concurrency at once (sms_local.sandboxes), as Lambda
runs it in sandboxes; `--in-process` runs them all in this process instead (for a debugger).
Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

from sms_gateway import config
from sms_local import template as tpl
from sms_local.aws_process import LocalAwsProcess, start_local_aws_process
from sms_local.aws_resources import ACCOUNT_ID, REGION, LocalStack, create_resources
from sms_local.concurrency import ENVIRONMENT_VARIABLE, Concurrency, from_environment, parse
from sms_local.demo_data import DEMO_EUM_NUMBER, DemoData, create_demo_data, new_eum_pool_id
from sms_local.eum_simulator import EumSimulator, EumSimulatorConfig
from sms_local.gateway import HttpApiGateway
from sms_local.handler_logs import compact_handler_logs
from sms_local.http_server import ApiServer
from sms_local.lambda_runtime import invoke as invoke_in_process
from sms_local.lambda_runtime import load_handler, merged_environment, use_local_aws
from sms_local.pipe_runner import start_pipes, stop_pipes
from sms_local.sandbox_worker import WorkerSetup
from sms_local.sandboxes import Sandboxes
from sms_local.schedule_runner import ScheduleRunner
from sms_local.sqs_poller import SqsPoller
from sms_local.stream_poller import start_stream_pollers, stop_stream_pollers
from sms_local.template import FunctionSpec, SqsSource
from sms_local.twilio_simulator import SimulatorConfig, TwilioSimulator

log = logging.getLogger("sms_local")

# Where replies are emailed from here: an SES identity the local stack verifies in moto.
LOCAL_REPLY_EMAIL_FROM = "replies@sms-gateway.localhost"
# The incoming-message path the simulator's Messaging Services post to.
INBOUND_PATH = "/v1/webhook/twilio/sms-inbound"
# The retry schedule of status webhooks here: seconds (the template's default spans 28 hours).
LOCAL_WEBHOOK_RETRY_DELAYS = "1,2,2,4,4,8,8"
# Lambda runs several invocations of a function fed by SQS at once (a slow webhook receiver
# must not hold up the others'). In-process they share one process: only a function that keeps
# no state of an invocation in its module may run twice at once (the handoff's batch processor
# does; CallerWebhookFunction does not). Sandboxes are processes: every function gets a poller
# per sandbox it may run.
CONCURRENT_POLLERS = {"CallerWebhookFunction": 4}

# botocore's service-specific endpoint variable for pinpoint-sms-voice-v2.
EUM_ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2"


def eum_pool_arn(pool_id: str) -> str:
    return f"arn:aws:sms-voice:{REGION}:{ACCOUNT_ID}:pool/{pool_id}"


def demo_eum_simulator(
    stack: LocalStack, eum_pool_id: str, endpoint: str, **options: Any
) -> EumSimulator:
    """The AWS End User Messaging SMS simulator of a local stack: the demo pool (by id and ARN)
    sending from the demo number, the stack's configuration sets, their events published to
    moto's SNS at `endpoint`; `options`: the rest of EumSimulatorConfig (delays, outage)."""
    return EumSimulator(
        EumSimulatorConfig(
            origination_identities={
                eum_pool_id: DEMO_EUM_NUMBER,
                eum_pool_arn(eum_pool_id): DEMO_EUM_NUMBER,
            },
            configuration_sets=dict(stack.configuration_sets),
            sns_endpoint_url=endpoint,
            region=REGION,
            **options,
        )
    )


class LocalStackRunner:
    def __init__(
        self,
        port: int,
        callback_delays: tuple[float, float] = (0.3, 0.7),
        authorizer_ttl_seconds: float = 300.0,
        *,
        serialize_dynamodb: bool = True,
        concurrency: Concurrency | None = None,
        in_process: bool = False,
    ) -> None:
        """`concurrency`: sandboxes per function (by default SMS_LOCAL_CONCURRENCY's, else the
        machine's cores); `in_process` runs every function in this process instead."""
        self.port = port
        self.callback_delays = callback_delays
        self.authorizer_ttl_seconds = authorizer_ttl_seconds
        # False only for the benchmark that measures what DynamoDB's atomicity costs here.
        self.serialize_dynamodb = serialize_dynamodb
        self.concurrency = concurrency if concurrency is not None else from_environment()
        self.in_process = in_process
        self.sandboxes: Sandboxes | None = None
        self.aws: LocalAwsProcess | None = None
        self._stoppers: list[Any] = []
        self.info: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        template = tpl.project_template()
        functions = tpl.functions(template)
        unknown = sorted(set(self.concurrency.per_function) - set(functions))
        if unknown:
            raise ValueError(f"no such function in template.yaml: {', '.join(unknown)}")
        invoke = None if self.in_process else self._invoke
        gateway = HttpApiGateway(
            tpl.http_routes(template),
            functions,
            tpl.default_authorizer(template),
            authorizer_ttl_seconds=self.authorizer_ttl_seconds,
            invoke=invoke,
        )
        api = ApiServer(gateway, self.port)  # bound now, so its URL is known to everything else
        self._stoppers.append(api.stop)

        # In a process of its own: moto and this process's front each get a core (and a GIL).
        moto = start_local_aws_process(serialize_dynamodb=self.serialize_dynamodb)
        self.aws = moto
        self._stoppers.append(moto.stop)
        endpoint = moto.endpoint_url

        # Accounts and services are filled in once the demo use case exists.
        simulator = TwilioSimulator(
            SimulatorConfig(accounts={}, services={}, callback_delays=self.callback_delays)
        )
        simulator.start()
        self._stoppers.append(simulator.stop)
        eum_pool_id = new_eum_pool_id()
        stack = create_resources(
            template,
            endpoint,
            {
                "PublicBaseUrl": api.url,
                # What the handoff's role may send from: the demo's pool.
                "EumOriginationIdentityArns": eum_pool_arn(eum_pool_id),
                "TwilioApiBaseUrl": simulator.base_url,
                # Status webhooks retried within seconds, not a day: a receiver on the laptop
                # sees its retries while one waits.
                "CallerWebhookRetryDelays": LOCAL_WEBHOOK_RETRY_DELAYS,
                "ReplyEmailFrom": LOCAL_REPLY_EMAIL_FROM,
            },
        )
        # AWS End User Messaging SMS: the simulator holds the stack's configuration sets and
        # publishes their events to moto's SNS, which delivers them to EumEventsQueue.
        eum = demo_eum_simulator(stack, eum_pool_id, endpoint, event_delays=self.callback_delays)
        eum.start()
        self._stoppers.append(eum.stop)
        environment = merged_environment(functions, stack.environment)

        def local(variables: dict[str, str]) -> dict[str, str]:
            return {
                # Nowhere to ship EMF metrics to on a laptop; they would only clutter the log.
                "POWERTOOLS_METRICS_DISABLED": "true",
                **variables,
                # Receivers on this machine: http:// to 127.0.0.1 may be called (only here).
                "CALLER_WEBHOOK_ALLOW_LOOPBACK_HTTP": "true",
                # botocore's endpoint for this one service: the simulator, not moto.
                EUM_ENDPOINT_VARIABLE: eum.base_url,
            }

        # This process too: the demo data and the operator's calls use the shared package.
        use_local_aws(endpoint, local(environment), stack.parameters)
        if self.in_process:
            for spec in functions.values():
                load_handler(spec)  # import now: the first request should not pay for it
            compact_handler_logs()
        else:
            self.sandboxes = Sandboxes(
                sandbox_setups(functions, stack, local, environment), self.concurrency
            )
            self._stoppers.append(self.sandboxes.stop)
            self.sandboxes.warm()  # one sandbox each now: the first request should not wait

        demo = create_demo_data(eum_pool_id)
        simulator.configure(
            accounts={demo.account_sid: demo.auth_token},
            services={
                demo.use_case.messaging_service_sid: [s.sender for s in demo.use_case.sender_pool]
            },
            service_accounts={demo.use_case.messaging_service_sid: demo.account_sid},
            # The Messaging Service's "Inbound Request URL": a phone's answer
            # (POST /_simulator/inbound) reaches the gateway as Twilio would post it.
            inbound_url=api.url + INBOUND_PATH,
        )

        pipes = start_pipes(stack, tpl.stream_pipes(template))
        self._stoppers.append(lambda: stop_pipes(stack, pipes))

        # Functions fed by a table's stream directly (a SAM event of Type DynamoDB).
        stream_pollers = start_stream_pollers(
            stack, tpl.stream_sources(template), functions, invoke=invoke or invoke_in_process
        )
        self._stoppers.append(lambda: stop_stream_pollers(stream_pollers))

        for source in tpl.sqs_sources(template):
            for _ in range(self._pollers(source, stack)):
                poller = SqsPoller(stack, source, functions[source.function], invoke=invoke)
                poller.start()
                self._stoppers.append(poller.stop)

        groups = [
            stack.refs[name]
            for name in tpl.resources_of_type(template, "AWS::Scheduler::ScheduleGroup")
        ]
        runner = ScheduleRunner(stack, functions, groups, invoke=invoke)
        runner.start()
        self._stoppers.append(runner.stop)

        api.start()
        self.info = _info(api.url, simulator.base_url, endpoint, demo, environment)
        self.info["eum"] = {
            "simulator_url": eum.base_url,
            "origination_identity": eum_pool_id,
            "origination_number": DEMO_EUM_NUMBER,
            "configuration_set": environment.get("EUM_CONFIGURATION_SET", ""),
        }
        self.info["sandboxes"] = (
            {"in_process": True}
            if self.sandboxes is None
            else {
                "in_process": False,
                "concurrency": {n: self.sandboxes.concurrency_of(n) for n in sorted(functions)},
            }
        )
        return self.info

    def _invoke(self, spec: FunctionSpec, event: dict[str, Any]) -> Any:
        """Run a function in its sandboxes (the gateway is made before they exist)."""
        if self.sandboxes is None:
            raise RuntimeError("the stack's sandboxes are not started")
        return self.sandboxes.invoke(spec, event)

    def _pollers(self, source: SqsSource, stack: LocalStack) -> int:
        """How many batches of an SQS source may be in flight at once: in-process, what the
        function tolerates; in sandboxes, one per sandbox, within the mapping's
        MaximumConcurrency."""
        if self.sandboxes is None:
            return CONCURRENT_POLLERS.get(source.function, 1)
        count = self.sandboxes.concurrency_of(source.function)
        if source.maximum_concurrency is not None:
            count = min(count, int(stack.resolve(source.maximum_concurrency)))
        return count

    def stop(self) -> None:
        # Last started, first stopped: pollers before the simulator before moto.
        while self._stoppers:
            stop = self._stoppers.pop()
            try:
                stop()
            except Exception:
                log.exception("while stopping")


def sandbox_setups(
    functions: dict[str, FunctionSpec],
    stack: LocalStack,
    local: Any,
    environment: dict[str, str],
) -> dict[str, WorkerSetup]:
    """What each function's sandboxes start with: its own variables of template.yaml (with the
    local stack's additions, `local`), none of the other functions', and every function's to
    resolve the roles' grants."""
    everyone = local(environment)
    setups = {}
    for name, spec in functions.items():
        own = local(stack.environment(spec.environment))
        setups[name] = WorkerSetup(
            function=spec,
            endpoint_url=stack.endpoint_url,
            environment=own,
            unset=tuple(sorted(set(everyone) - set(own))),
            iam_environment=everyone,
            parameters=dict(stack.parameters),
        )
    return setups


def _info(
    api_url: str, simulator_url: str, aws_url: str, demo: DemoData, environment: dict[str, str]
) -> dict[str, Any]:
    """What a client of the running stack needs. `aws` is what `sms-gateway-admin --local` reads
    to act on the stack's tables and queues as an operator: the emulator's endpoint and region,
    and the functions' settings (their environment variables, e.g. MESSAGES_TABLE), no secret."""
    return {
        "api_url": api_url,
        "simulator_url": simulator_url,
        "aws_endpoint_url": aws_url,
        "workspace_id": demo.workspace_id,
        "use_case_id": demo.use_case.id,
        "keys": demo.keys,
        "twilio": {
            "account_sid": demo.account_sid,
            "auth_token": demo.auth_token,
            "messaging_service_sid": demo.use_case.messaging_service_sid,
            "inbound_url": api_url + INBOUND_PATH,
        },
        "reply_email_from": LOCAL_REPLY_EMAIL_FROM,
        "sender_pool": [s.sender for s in demo.use_case.sender_pool],
        "aws": {
            "endpoint_url": aws_url,
            "region": REGION,
            "settings": {k: v for k, v in sorted(environment.items()) if k in config.VARIABLES},
        },
    }


def banner(info: dict[str, Any], info_file: Path | None = None) -> str:
    send = (
        f"curl -s -X POST {info['api_url']}/v1/sms/ \\\n"
        f"  -H 'Authorization: Bearer {info['keys']['live']}' \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        f'  -d \'{{"use_case_id": "{info["use_case_id"]}", '
        '"to_phone_number": "+12125552671", "message": "Your code is 123456"}\''
    )
    read = (
        f"curl -s {info['api_url']}/v1/sms/<id from the first answer> \\\n"
        f"  -H 'Authorization: Bearer {info['keys']['live']}'"
    )
    admin = (
        [
            "Act on it as an operator (workspaces, keys, bindings, use cases, opt-outs):",
            f".venv/bin/sms-gateway-admin --local {info_file} workspace create --name second",
            "",
        ]
        if info_file
        else []
    )
    return "\n".join(
        [
            "",
            "SMS gateway running locally (Ctrl-C to stop)",
            f"  API            {info['api_url']}   (OpenAPI: {info['api_url']}/openapi.json)",
            f"  Twilio sim     {info['simulator_url']}",
            f"  AWS EUM sim    {info['eum']['simulator_url']}",
            f"  use case id    {info['use_case_id']}",
            f"  live key       {info['keys']['live']}",
            f"  test key       {info['keys']['test']}",
            f"  admin key      {info['keys']['admin']}",
            "",
            "Send a message:",
            send,
            "",
            "Read it back:",
            read,
            "",
            *admin,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sms-gateway-local", description=__doc__)
    parser.add_argument("--port", type=int, default=3000, help="HTTP API port (default 3000)")
    parser.add_argument("--info-file", type=Path, help="write the stack's details here as JSON")
    parser.add_argument(
        "--concurrency",
        metavar="SPEC",
        help="sandboxes (worker processes) per function: N for every function, "
        "Function=N,... for some, or both, e.g. 3,HandoffFunction=6 (default: "
        f"${ENVIRONMENT_VARIABLE}, else the machine's cores)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run every function in this one process, one route handler at a time (a debugger "
        "sees them all)",
    )
    args = parser.parse_args(argv)
    try:
        concurrency = parse(args.concurrency) if args.concurrency else from_environment()
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)-16s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stdout)  # fmt: skip
    warnings.filterwarnings("ignore", "No application metrics to publish")
    for noisy in (
        "werkzeug",
        "botocore",
        "urllib3",
        "sms_local.twilio_simulator",
        "sms_local.eum_simulator",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    runner = LocalStackRunner(args.port, concurrency=concurrency, in_process=args.in_process)
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        info = runner.start()
        print(banner(info, args.info_file), flush=True)
        if args.info_file:
            # Written last and atomically: its presence means the stack serves.
            tmp = args.info_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(info, indent=2))
            tmp.replace(args.info_file)
        stopped.wait()
    finally:
        print("stopping...", flush=True)
        runner.stop()
        if args.info_file:
            args.info_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
