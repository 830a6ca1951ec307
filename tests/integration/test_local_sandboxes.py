"""The local stack runs each function in worker processes, as Lambda runs it in sandboxes
(sms_local.sandboxes): requests really run side by side, a function's concurrency bounds its
sandboxes, a sandbox that dies mid-event loses no SQS message, and a sandbox keeps its function's
role. The handlers are probes (tests/integration/sandbox_probe/app.py) that meet through files,
so no test depends on how fast the machine is."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sms_local import template as tpl
from sms_local.aws_resources import LocalStack
from sms_local.concurrency import Concurrency, parse
from sms_local.gateway import HttpApiGateway
from sms_local.http_server import ApiServer
from sms_local.lambda_runtime import merged_environment
from sms_local.sandbox_worker import WorkerSetup
from sms_local.sandboxes import (
    FunctionError,
    FunctionPool,
    SandboxCrashed,
    Sandboxes,
)
from sms_local.sqs_poller import SqsPoller
from sms_local.template import FunctionSpec, Route, SqsSource

PROBE_CODE = "tests/integration/sandbox_probe"
# Only a hang guard for the test's own waits: a correct run never comes near it.
HANG_GUARD_SECONDS = 60.0

pytestmark = pytest.mark.probes


def probe(name: str, handler: str, directory: Path, timeout: int = 120) -> WorkerSetup:
    """A probe function whose sandboxes touch no AWS."""
    spec = FunctionSpec(name=name, code_uri=PROBE_CODE, handler=f"app.{handler}", timeout=timeout)
    return WorkerSetup(function=spec, endpoint_url=None, environment={"PROBE_DIR": str(directory)})


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Wait (on files and counters other processes move, not on time) until `condition` holds."""
    done = threading.Event()
    deadline = threading.Timer(HANG_GUARD_SECONDS, done.set)
    deadline.start()
    try:
        while not condition():
            if done.wait(0.01):
                pytest.fail(f"never happened: {what}")
    finally:
        deadline.cancel()


@pytest.fixture
def pools() -> Iterator[list[FunctionPool]]:
    """Pools a test makes, stopped after it."""
    made: list[FunctionPool] = []
    yield made
    for pool in made:
        pool.stop()


def test_two_requests_run_at_once_in_two_sandboxes(tmp_path: Path) -> None:
    """Each request's handler waits until the other's has started: both answer only if the
    front ran them at the same time, in two processes."""
    setup = probe("MeetFunction", "rendezvous", tmp_path)
    sandboxes = Sandboxes({"MeetFunction": setup}, Concurrency(2))
    route = Route("GET", "/meet/{me}/{other}", function="MeetFunction", authorized=False)
    gateway = HttpApiGateway(
        [route], {"MeetFunction": setup.function}, None, invoke=sandboxes.invoke
    )
    server = ApiServer(gateway)
    server.start()
    try:

        def get(path: str) -> dict[str, Any]:
            with urllib.request.urlopen(server.url + path, timeout=HANG_GUARD_SECONDS) as reply:  # noqa: S310 - loopback
                answer: dict[str, Any] = json.loads(reply.read())
                return answer

        with ThreadPoolExecutor(max_workers=2) as callers:
            first = callers.submit(get, "/meet/a/b")
            second = callers.submit(get, "/meet/b/a")
            answers = [first.result(), second.result()]
    finally:
        server.stop()
        sandboxes.stop()
    assert [a["met"] for a in answers] == [True, True]
    assert answers[0]["pid"] != answers[1]["pid"]


def test_a_function_never_runs_more_sandboxes_than_its_concurrency(
    tmp_path: Path, pools: list[FunctionPool]
) -> None:
    pool = FunctionPool(probe("HoldFunction", "hold", tmp_path), concurrency=2)
    pools.append(pool)
    with ThreadPoolExecutor(max_workers=3) as callers:
        calls = [callers.submit(pool.invoke, {"name": name}) for name in "abc"]
        # Two events hold both sandboxes; the third waits for one of them.
        wait_until(
            lambda: len(list(tmp_path.glob("*.started"))) == 2 and pool.waiting == 1,
            "two events running and one waiting",
        )
        assert pool.size == 2
        assert len(list(tmp_path.glob("*.started"))) == 2
        (tmp_path / "release").write_text("")
        pids = {call.result() for call in calls}
    assert len(list(tmp_path.glob("*.started"))) == 3
    assert pids <= set(pool.pids())
    assert len(pids) == 2  # the third event reused a warm sandbox


def test_the_concurrency_setting_gives_each_function_its_own(tmp_path: Path) -> None:
    setups = {
        "HoldFunction": probe("HoldFunction", "hold", tmp_path),
        "MeetFunction": probe("MeetFunction", "rendezvous", tmp_path),
    }
    sandboxes = Sandboxes(setups, parse("3,HoldFunction=1"))
    try:
        assert sandboxes.concurrency_of("HoldFunction") == 1
        assert sandboxes.concurrency_of("MeetFunction") == 3
        assert sandboxes.pools["HoldFunction"].size == 0  # nothing starts before it is needed
    finally:
        sandboxes.stop()


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("", 2, Concurrency(2)),
        ("4", 2, Concurrency(4)),
        ("HandoffFunction=6", 2, Concurrency(2, {"HandoffFunction": 6})),
        ("3, HandoffFunction=6,SendFunction=1", 2, Concurrency(3, {"HandoffFunction": 6,
                                                                   "SendFunction": 1})),
    ],
)  # fmt: skip
def test_concurrency_is_read_as_documented(text: str, default: int, expected: Concurrency) -> None:
    assert parse(text, default) == expected


@pytest.mark.parametrize("text", ["0", "x", "HandoffFunction=", "=3", "HandoffFunction=-1"])
def test_a_concurrency_that_means_nothing_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        parse(text, 2)


def test_a_handler_that_raises_keeps_its_sandbox(tmp_path: Path, pools: list[FunctionPool]) -> None:
    pool = FunctionPool(probe("RaisingFunction", "raises", tmp_path), concurrency=1)
    pools.append(pool)
    with pytest.raises(FunctionError, match="RuntimeError: the handler failed"):
        pool.invoke({})
    pids = pool.pids()
    with pytest.raises(FunctionError):
        pool.invoke({})
    assert pool.pids() == pids  # Lambda's Python runtime goes on in the same sandbox


def test_a_sandbox_that_dies_mid_event_loses_no_sqs_message(
    tmp_path: Path, aws: LocalStack, pools: list[FunctionPool]
) -> None:
    """The first invocation kills its process: the poller deletes nothing, the message comes
    back after the visibility timeout, and a fresh sandbox takes it."""
    sqs = aws.client("sqs")
    name = f"sandbox-probe-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    stack = dataclasses.replace(
        aws,
        refs={**aws.refs, "ProbeQueue": url},
        attributes={**aws.attributes, "ProbeQueue": {"Arn": arn}},
    )
    setup = probe("CrashingFunction", "crash_once", tmp_path)
    pool = FunctionPool(setup, concurrency=1)
    pools.append(pool)

    def invoke(spec: FunctionSpec, event: dict[str, Any]) -> Any:
        return pool.invoke(event)

    source = SqsSource("CrashingFunction", "ProbeQueue", 10, report_batch_item_failures=True)
    poller = SqsPoller(stack, source, setup.function, invoke=invoke)
    try:
        sqs.send_message(QueueUrl=url, MessageBody="the one message")
        assert poller.poll_once(wait_seconds=1, catch_up=False) == 1  # its sandbox died
        crashed = int((tmp_path / "crashed").read_text())
        assert crashed not in pool.pids()
        done = tmp_path / "done"
        wait_until(
            lambda: poller.poll_once(wait_seconds=1, catch_up=False) > 0 and done.exists(),
            "the message redelivered and handled",
        )
        assert done.read_text().splitlines() == ["the one message"]
        assert pool.pids() and crashed not in pool.pids()
        # Handled once it succeeded: deleted, nothing left to deliver.
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["ApproximateNumberOfMessages"] == "0"
        assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    finally:
        sqs.delete_queue(QueueUrl=url)


def test_a_crash_is_reported_to_the_caller_and_the_next_event_gets_a_fresh_sandbox(
    tmp_path: Path, pools: list[FunctionPool]
) -> None:
    pool = FunctionPool(probe("CrashingFunction", "crash_once", tmp_path), concurrency=1)
    pools.append(pool)
    with pytest.raises(SandboxCrashed, match="exited with"):
        pool.invoke({"Records": []})
    assert pool.invoke({"Records": []}) == {"batchItemFailures": []}


def test_a_sandbox_that_died_while_idle_is_never_handed_an_event(
    tmp_path: Path, pools: list[FunctionPool]
) -> None:
    pool = FunctionPool(probe("RaisingFunction", "raises", tmp_path), concurrency=1)
    pools.append(pool)
    with pytest.raises(FunctionError):
        pool.invoke({})
    (dead,) = pool.pids()
    os.kill(dead, signal.SIGKILL)
    wait_until(lambda: not _running(dead), "the idle sandbox is gone")
    # The next event gets a fresh sandbox (its handler's own error), not a crash.
    with pytest.raises(FunctionError, match="RuntimeError: the handler failed"):
        pool.invoke({})
    assert pool.pids() != [dead]


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie not yet reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_the_front_answers_a_crashed_sandbox_as_api_gateway_does(tmp_path: Path) -> None:
    setup = probe("CrashingFunction", "crash_once", tmp_path)
    sandboxes = Sandboxes({"CrashingFunction": setup}, Concurrency(1))
    route = Route(method="POST", path="/crash", function="CrashingFunction", authorized=False)
    gateway = HttpApiGateway(
        [route], {"CrashingFunction": setup.function}, None, invoke=sandboxes.invoke
    )
    try:
        result = gateway.handle("POST", "/crash", "", {}, b"")
    finally:
        sandboxes.stop()
    assert (result.status, json.loads(result.body)) == (500, {"message": "Internal Server Error"})


def test_a_sandbox_holds_its_function_to_its_role(tmp_path: Path, aws: LocalStack) -> None:
    """The role's grants apply in the worker process as in-process: SendFunction may not
    describe the messages table's TTL, and the sandbox refuses it as AWS would."""
    template = tpl.project_template()
    functions = tpl.functions(template)
    everyone = merged_environment(functions, aws.environment)
    spec = dataclasses.replace(
        functions["SendFunction"], code_uri=PROBE_CODE, handler="app.describe_time_to_live"
    )
    setup = WorkerSetup(
        function=spec,
        endpoint_url=aws.endpoint_url,
        environment=aws.environment(functions["SendFunction"].environment),
        iam_environment=everyone,
        parameters=dict(aws.parameters),
    )
    pool = FunctionPool(setup, concurrency=1)
    try:
        assert pool.invoke({}) == "AccessDeniedException"
    finally:
        pool.stop()
