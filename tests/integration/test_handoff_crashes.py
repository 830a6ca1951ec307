"""The handoff killed at every step of one record: before and after each AWS call it makes and
the Twilio POST. Then the world goes on (SQS redelivers, the claim ages, Twilio's callbacks
arrive) until the message is no longer pending, and for every crash point:

- the message ends as the README says a message can end: sent or delivered (through Twilio's
  callbacks), or failed with 99001 (outcome unknown) or 99003 (never sent);
- Twilio received at most one POST for it;
- nothing is left of it in the queue or its dead-letter queue.

A kill is modelled by a BaseException, so no `except Exception` in the code under test can
catch it. The crash points are the calls an uncrashed run of the same record makes, counted
first, so they follow the code as it changes.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.client import BaseClient

from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic import handoff
from sms_gateway.providers.twilio import client as twilio_client
from sms_local import lambda_runtime, sqs_poller
from sms_local.aws_resources import LocalStack
from sms_local.lambda_runtime import reset_cached_state
from sms_local.sqs_poller import SqsPoller
from sms_local.twilio_simulator import TwilioSimulator
from tests.integration.conftest import Tenant, restore_settings, set_settings
from tests.integration.test_handoff import (
    message,
    poller,
    send,
    send_scheduled,
    simulator,
    wait_for,
    wired,
)

# The handoff tests' fixtures, used here by name.
__all__ = ["poller", "simulator", "wired"]

# Numbers no other test sends to: the simulator's count of what reached them is this file's own.
UNCRASHED_TO = "+14155552688"
CRASHED_TO = "+14155552689"
# Polls of the shared queue before a test gives up on its own record being among those received.
MAX_POLLS = 50

# More than the handoff makes for one record today; a test below says when it no longer is.
ENDED = {("sent", None), ("delivered", None), ("failed", 99001), ("failed", 99003)}
TWILIO_POST = "twilio.POST"


class ProcessKilled(BaseException):
    """The Lambda sandbox died here (timeout, out of memory, a host failure)."""


@dataclass
class HandoffCalls:
    """The calls the handoff makes for one message, in order (its first handoff only); armed,
    it dies at one of them.

    Only those calls count: not the event source mapping's receive and delete, nor another
    message's handoff in the same batch (another test may have left one in the queue), nor
    the status callbacks that the local HTTP server runs on other threads."""

    target: str | None = None
    steps: list[str] = field(default_factory=list)
    crash_at: tuple[int, str] | None = None
    # Message id -> POSTs made to Twilio for it / the receipt handle of its latest delivery.
    posts: Counter[str] = field(default_factory=Counter)
    receipts: dict[str, str] = field(default_factory=dict)
    _recording: threading.local = field(default_factory=threading.local)

    def watch(self, message_id: str, crash_at: tuple[int, str] | None = None) -> None:
        self.target, self.steps, self.crash_at = message_id, [], crash_at

    @property
    def handed_off(self) -> bool:
        """Whether the watched message's first handoff has run."""
        return self.target is None

    def handing_off(self, message_id: str, call: Callable[[], Any]) -> Any:
        if message_id != self.target:
            return call()
        self.target = None  # only its first handoff: a new sandbox handles the redeliveries
        self._recording.on = True
        try:
            return call()
        finally:
            self._recording.on = False

    def step(self, name: str, call: Callable[[], Any]) -> Any:
        if not getattr(self._recording, "on", False):
            return call()
        index = len(self.steps)
        self.steps.append(name)
        if self.crash_at == (index, "before"):
            raise ProcessKilled
        result = call()
        if self.crash_at == (index, "after"):
            raise ProcessKilled
        return result


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> HandoffCalls:
    recorder = HandoffCalls()
    make_api_call = BaseClient._make_api_call  # type: ignore[attr-defined]

    def aws_call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        name = f"{client.meta.service_model.service_name}.{operation}"
        return recorder.step(name, lambda: make_api_call(client, operation, params))

    create_message = twilio_client.create_message

    def twilio_post(**kwargs: Any) -> twilio_client.HandoffResult:
        [message_id] = parse_qs(urlsplit(kwargs["status_callback"]).query)["message_id"]

        def post() -> twilio_client.HandoffResult:
            recorder.posts[message_id] += 1
            return create_message(**kwargs)

        result: twilio_client.HandoffResult = recorder.step(TWILIO_POST, post)
        return result

    hand_off = handoff.hand_off

    def watched_hand_off(message_id: str, **kwargs: Any) -> handoff.HandoffOutcome:
        outcome: handoff.HandoffOutcome = recorder.handing_off(
            message_id, lambda: hand_off(message_id, **kwargs)
        )
        return outcome

    invoke = lambda_runtime.invoke  # what the poller calls

    def invoke_handoff(spec: Any, event: dict[str, Any]) -> Any:
        for record in event["Records"]:
            recorder.receipts[json.loads(record["body"])["message_id"]] = record["receiptHandle"]
        return invoke(spec, event)

    monkeypatch.setattr(BaseClient, "_make_api_call", aws_call)
    monkeypatch.setattr(twilio_client, "create_message", twilio_post)
    monkeypatch.setattr(handoff, "hand_off", watched_hand_off)
    monkeypatch.setattr(sqs_poller, "invoke", invoke_handoff)
    return recorder


@pytest.fixture
def aged_claims(wired: None) -> Iterator[None]:
    """A claim is stale as soon as it is taken (as it is on AWS once the visibility timeout has
    passed), and a retry comes back at once: the test plays the passing time."""
    saved = set_settings(HANDOFF_CLAIM_TIMEOUT_SECONDS="0", HANDOFF_RETRY_BASE_SECONDS="0")
    yield
    restore_settings(saved)


Send = Callable[[Tenant, UseCase, str], str]
KINDS: dict[str, Send] = {"immediate": send, "scheduled": send_scheduled}
# The calls of an uncrashed run, by kind of message, counted once per session.
_uncrashed: dict[str, list[str]] = {}


def first_handoff(poller: SqsPoller, calls: HandoffCalls) -> None:
    """Poll until the watched message's record has been handed off. The queue is shared: a
    batch may hold only records other tests left behind, whose visibility ran out meanwhile."""
    for _ in range(MAX_POLLS):
        poller.poll_once()
        if calls.handed_off:
            return
    raise AssertionError(f"the queue never gave {calls.target}'s record in {MAX_POLLS} polls")


def uncrashed_steps(
    kind: str, tenant: Tenant, use_case: UseCase, poller: SqsPoller, calls: HandoffCalls
) -> list[str]:
    """The calls one message's handoff makes, from a cold start (as the crashed run will be)."""
    if kind not in _uncrashed:
        message_id = KINDS[kind](tenant, use_case, UNCRASHED_TO)
        calls.watch(message_id)
        first_handoff(poller, calls)
        assert wait_for(tenant, message_id, {"delivered"})["status"] == "delivered"
        _uncrashed[kind] = list(calls.steps)
        reset_cached_state()
    return _uncrashed[kind]


def before_the_claim(steps: list[str], step: int, moment: str) -> bool:
    """Whether a death at this point leaves no claim (the first write is the claim)."""
    claim = steps.index("dynamodb.UpdateItem")
    return step < claim or (step == claim and moment == "before")


def in_dead_letters(aws: LocalStack, message_id: str) -> bool:
    """Whether the handoff's dead-letter queue holds the message's record. It is peeked at
    (received with no visibility timeout), so records of other tests stay as they were."""
    sqs = aws.client("sqs")
    seen: set[str] = set()
    for _ in range(5):  # moto answers a sample of up to 10: look a few times
        for record in sqs.receive_message(
            QueueUrl=aws.refs["HandoffDeadLetterQueue"],
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
        ).get("Messages", []):
            seen.add(record["Body"])
    return any(_message_id(body) == message_id for body in seen)


def _message_id(body: str) -> Any:
    try:
        return json.loads(body).get("message_id")
    except (ValueError, AttributeError):  # another test's poison record
        return None


def make_visible_now(aws: LocalStack, receipt_handle: str) -> bool:
    """Let the visibility timeout (or a retry's delay) pass for the message last received with
    `receipt_handle`; False when the queue no longer holds it."""
    sqs = aws.client("sqs")
    try:
        sqs.change_message_visibility(
            QueueUrl=aws.refs["HandoffQueue"], ReceiptHandle=receipt_handle, VisibilityTimeout=0
        )
    except sqs.exceptions.ReceiptHandleIsInvalid:
        return False
    return True


def let_the_world_go_on(
    tenant: Tenant, message_id: str, poller: SqsPoller, calls: HandoffCalls, aws: LocalStack
) -> dict[str, Any]:
    """Redeliver, and wait for Twilio's callbacks, until the message has ended and the queue no
    longer holds it."""
    for _ in range(20):
        current = message(tenant, message_id)
        if current["status"] == "pending" and current["message_sid"]:
            # Twilio accepted it: its callbacks end it
            current = wait_for(tenant, message_id, {"sent", "delivered", "undelivered", "failed"})
        if not make_visible_now(aws, calls.receipts[message_id]):
            assert current["status"] != "pending", f"{message_id} left the queue still pending"
            return current
        poller.poll_once()
    raise AssertionError(f"{message_id} never ended: {message(tenant, message_id)}")


@pytest.mark.parametrize("moment", ["before", "after"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_handoff_killed_at_any_step_ends_its_message_once(
    kind: str, moment: str, tenant: Tenant, use_case: UseCase,
    simulator: TwilioSimulator, aged_claims: None, poller: SqsPoller, calls: HandoffCalls,
    aws: LocalStack,
) -> None:  # fmt: skip
    # Every call of an uncrashed handoff is a crash point: none can be missed or skipped.
    steps = uncrashed_steps(kind, tenant, use_case, poller, calls)
    assert TWILIO_POST in steps
    for step in range(len(steps)):
        where = f"{moment} {steps[step]} (call {step + 1} of {len(steps)})"
        reset_cached_state()  # each crash is met by a cold sandbox, as the uncrashed run was
        posts_before = [m["to"] for m in simulator.messages].count(CRASHED_TO)
        message_id = KINDS[kind](tenant, use_case, CRASHED_TO)
        # When the handoff dies at that point
        calls.watch(message_id, crash_at=(step, moment))
        with pytest.raises(ProcessKilled):
            first_handoff(poller, calls)
        assert calls.steps == steps[: step + 1], where
        # Then, once the world has gone on, the message has ended, and was sent at most once
        final = let_the_world_go_on(tenant, message_id, poller, calls, aws)
        assert (final["status"], final["error_code"]) in ENDED, where
        assert calls.posts[message_id] <= 1, where
        posts = [m["to"] for m in simulator.messages].count(CRASHED_TO)
        assert posts - posts_before <= 1, where
        assert not in_dead_letters(aws, message_id), where
        if before_the_claim(steps, step, moment):
            # A death before anything was claimed costs the message nothing
            assert wait_for(tenant, message_id, {"delivered"})["status"] == "delivered", where
