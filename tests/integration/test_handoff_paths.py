"""The handoff's paths that only another worker, the clock or a failing dependency can open:
a claim found live or stale on redelivery, a claim race between two deliveries, a missing auth
token secret, and every way a record is handed back for a later delivery.

Each delivery is run on its own SQS record (`run_handoff`), and what Twilio was asked is read
per message id (`provider_requests`), so messages other tests left in the shared queue count
for nothing here.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from sms_gateway.config import get_settings
from sms_gateway.domain.clock import iso, utc_now
from sms_gateway.domain.messages import MessageStatus
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic import handoff
from sms_gateway.logic.use_case_admin import create_use_case
from sms_gateway.providers.twilio import client as twilio_client
from sms_gateway.store import aws_clients, transitions
from sms_local import iam, lambda_runtime
from sms_local import template as tpl
from sms_local.aws_resources import LocalStack
from sms_local.lambda_runtime import Handler
from sms_local.template import PROJECT_ROOT
from sms_local.twilio_simulator import TwilioSimulator
from tests.integration.conftest import (
    AUTH_TOKENS,
    Tenant,
    restore_settings,
    set_settings,
    use_case_spec,
)
from tests.integration.test_handoff import (
    ProviderRequests,
    VisibilityChanges,
    emitted_metrics,
    handoff_context,
    provider_requests,
    queued_record,
    readme_backoff,
    run_handoff,
    send,
    send_scheduled,
    sent_to,
    simulator,
    stored,
    twin_record,
    visibility,
    wait_for,
    wired,
)
from tests.integration.test_resilience import untrusted_tls_server, unused_port

# The handoff tests' fixtures, used here by name.
__all__ = ["provider_requests", "simulator", "visibility", "wired"]

# Bounds a wait for another thread: only a failure makes it last.
WAIT = 30.0


def item(message_id: str) -> dict[str, Any]:
    """The message's item as stored, every attribute (a consistent read)."""
    found: dict[str, Any] = aws_clients.dynamodb().get_item(
        TableName=get_settings().messages_table, Key={"id": {"S": message_id}}, ConsistentRead=True
    )["Item"]
    return found


def handed_back(record: dict[str, Any]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": record["MessageId"]}]}


def claim_timeout() -> float:
    return get_settings().handoff_claim_timeout_seconds


@functools.cache
def another_sandbox() -> Handler:
    """The handoff function loaded once more, as a second Lambda sandbox holds its own copy of
    it (its own batch processor, which one invocation at a time may use): two deliveries of a
    message can only run at the same time in two sandboxes."""
    spec = tpl.functions(tpl.project_template())["HandoffFunction"]
    module_name, _, attribute = spec.handler.rpartition(".")
    path = PROJECT_ROOT / spec.code_uri / f"{module_name}.py"
    loader = importlib.util.spec_from_file_location(f"another_sandbox_{spec.name}", path)
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return lambda_runtime.as_function(spec.name, getattr(module, attribute))


def the_sandbox() -> Handler:
    return lambda_runtime.load_handler(tpl.functions(tpl.project_template())["HandoffFunction"])


# --- A claim found on redelivery: live, it is its worker's; stale, its worker died -------------


def frozen_clock(monkeypatch: pytest.MonkeyPatch, claimed_at: datetime, age: timedelta) -> None:
    """The handoff's clock reads `claimed_at + age` (what it compares a claim's age with)."""
    monkeypatch.setattr(handoff, "utc_now", lambda: claimed_at + age)


def claimed_by_another_worker(message_id: str) -> datetime:
    """Claim the message as another delivery's worker does; the moment it claimed it at (to the
    millisecond, as stored)."""
    at = iso(utc_now())
    assert transitions.claim_for_handoff(message_id, at)
    return datetime.fromisoformat(at)


@pytest.mark.parametrize(
    "age",
    [timedelta(0), timedelta(seconds=30), timedelta(seconds=60) - timedelta(milliseconds=1)],
    ids=["just-claimed", "half-way", "a-millisecond-before-stale"],
)
def test_a_live_claim_found_on_redelivery_is_left_to_its_worker(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    monkeypatch: pytest.MonkeyPatch, provider_requests: ProviderRequests,
    visibility: VisibilityChanges, capsys: pytest.CaptureFixture[str], age: timedelta,
) -> None:  # fmt: skip
    assert claim_timeout() == 60  # the ages above are around it
    # Given a message another worker claimed `age` ago (it may be calling Twilio right now)
    message_id = send(tenant, use_case, "+14155552671")
    claimed_at = claimed_by_another_worker(message_id)
    before = item(message_id)
    # When a redelivery of its record finds that claim
    record = queued_record(aws, message_id, receive_count=2)
    frozen_clock(monkeypatch, claimed_at, age)
    result = run_handoff(aws, [record])
    # Then the message is left as it is (not failed as "outcome unknown"), nothing is sent,
    # and the record comes back once the claim would be stale (to end it if its worker died)
    assert item(message_id) == before
    assert provider_requests.of(message_id) == []
    assert result == handed_back(record)
    [(delay, accepted)] = visibility.of(record)
    left = (timedelta(seconds=claim_timeout()) - age).total_seconds()
    assert accepted and left <= delay <= left + 1
    assert emitted_metrics(capsys.readouterr().out)["HandoffOutcomeUnknown"] == 0


@pytest.mark.parametrize(
    "age", [timedelta(seconds=60), timedelta(hours=1)], ids=["just-stale", "long-stale"]
)
def test_a_stale_claim_found_on_redelivery_fails_the_message_as_outcome_unknown(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    monkeypatch: pytest.MonkeyPatch, provider_requests: ProviderRequests,
    visibility: VisibilityChanges, capsys: pytest.CaptureFixture[str], age: timedelta,
) -> None:  # fmt: skip
    assert claim_timeout() == 60
    # Given a message whose worker claimed it `age` ago and never recorded Twilio's answer
    message_id = send(tenant, use_case, "+14155552671")
    claimed_at = claimed_by_another_worker(message_id)
    # When a redelivery of its record finds that claim
    record = queued_record(aws, message_id, receive_count=2)
    frozen_clock(monkeypatch, claimed_at, age)
    result = run_handoff(aws, [record])
    # Then the message may have been sent: it ends 99001, never resent
    assert result == {"batchItemFailures": []}
    assert visibility.of(record) == []
    final = stored(message_id)
    assert (final.status, final.error_code) == (MessageStatus.FAILED, 99001)
    assert provider_requests.of(message_id) == []
    assert emitted_metrics(capsys.readouterr().out)["HandoffOutcomeUnknown"] == 1


@contextmanager
def held_provider_call(message_id: str) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Holds the worker thread's request to Twilio for `message_id` (the request has started):
    yields (the request is being held, release it). Released on the way out, whatever happens."""
    holding, release = threading.Event(), threading.Event()
    create_message = twilio_client.create_message

    def held(**kwargs: Any) -> twilio_client.HandoffResult:
        in_a_worker = threading.current_thread() is not threading.main_thread()
        if in_a_worker and message_id in kwargs["status_callback"]:
            holding.set()
            release.wait(WAIT)
        return create_message(**kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(twilio_client, "create_message", held)
        try:
            yield holding, release
        finally:
            release.set()


def test_a_redelivery_while_the_message_is_being_sent_leaves_it_to_that_worker(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    provider_requests: ProviderRequests, visibility: VisibilityChanges,
) -> None:  # fmt: skip
    # Given a worker (another sandbox) that claimed the message and is waiting for Twilio's answer
    message_id = send(tenant, use_case, "+14155552671")
    first = queued_record(aws, message_id)
    # (the call is released before the pool waits for its thread, whatever happens)
    with ThreadPoolExecutor(1) as pool, held_provider_call(message_id) as (holding, release):
        sending = pool.submit(run_handoff, aws, [first], None, another_sandbox())
        assert holding.wait(WAIT), sending.exception(0) if sending.done() else "never called"
        during_the_call = item(message_id)
        assert "claimed_at" in during_the_call and "message_sid" not in during_the_call
        # When SQS delivers the message's record again (at-least-once), in this sandbox
        redelivery = twin_record(aws, message_id, receive_count=2)
        result = run_handoff(aws, [redelivery])
        # Then the redelivery leaves the message to that worker: no request, no change
        assert item(message_id) == during_the_call
        assert provider_requests.of(message_id) == []
        assert result == handed_back(redelivery)
        [(delay, accepted)] = visibility.of(redelivery)
        # (it comes back when that claim would be stale, to end it should that worker die)
        assert accepted and claim_timeout() - 5 <= delay <= claim_timeout() + 1
        # And once Twilio answers, the worker records it: one SMS, delivered
        release.set()
        assert sending.result(WAIT) == {"batchItemFailures": []}
    assert provider_requests.of(message_id) == ["Accepted"]
    assert wait_for(tenant, message_id, {"delivered", "failed"})["status"] == "delivered"
    assert sent_to(simulator, "+14155552671") == 1


# --- Two deliveries racing for the claim: exactly one sends ------------------------------------


@dataclass
class ClaimRace:
    """Two deliveries of one message, each in its own thread and sandbox, made to read the
    message before either claims it, then to claim in a chosen order: the winner's request to
    Twilio is held until the loser's delivery is over."""

    winner: str
    loser: str
    role: threading.local
    read: dict[str, threading.Event]
    winner_claimed: threading.Event
    loser_done: threading.Event
    claimed_item: dict[str, Any]
    posted_by: list[str]
    # Whether the loser had read the message when the winner claimed it (the race was real)
    both_read: bool = False

    def claim(self, real: Callable[[str, str], bool], message_id: str, at: str) -> bool:
        me = getattr(self.role, "name", None)
        if me is None:
            return real(message_id, at)
        self.read[me].set()  # claim_for_handoff runs after every read of the message
        if me == self.winner:
            self.both_read = self.read[self.loser].wait(WAIT)
            won = real(message_id, at)
            self.claimed_item.update(item(message_id))
            self.winner_claimed.set()
            return won
        self.winner_claimed.wait(WAIT)
        return real(message_id, at)

    def post(self, real: Callable[..., twilio_client.HandoffResult], **kwargs: Any) -> Any:
        me = getattr(self.role, "name", None)
        if me is not None:
            self.posted_by.append(me)
        if me == self.winner:
            self.loser_done.wait(WAIT)
        return real(**kwargs)

    def release_all(self) -> None:
        for event in (*self.read.values(), self.winner_claimed, self.loser_done):
            event.set()


@pytest.mark.parametrize("winner", ["first", "twin"])
def test_two_deliveries_racing_for_the_claim_send_one_sms(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    monkeypatch: pytest.MonkeyPatch, provider_requests: ProviderRequests,
    visibility: VisibilityChanges, winner: str,
) -> None:  # fmt: skip
    # Given two deliveries of one message (SQS is at-least-once), each in its own sandbox,
    # both of which read it unclaimed
    message_id = send(tenant, use_case, "+14155552671")
    records = {"first": queued_record(aws, message_id)}
    records["twin"] = twin_record(aws, message_id, receive_count=1)
    sandboxes = {"first": the_sandbox(), "twin": another_sandbox()}
    race = ClaimRace(
        winner=winner,
        loser="twin" if winner == "first" else "first",
        role=threading.local(),
        read={name: threading.Event() for name in records},
        winner_claimed=threading.Event(),
        loser_done=threading.Event(),
        claimed_item={},
        posted_by=[],
    )
    claim, create_message = transitions.claim_for_handoff, twilio_client.create_message
    monkeypatch.setattr(
        transitions, "claim_for_handoff", lambda i, at, provider: race.claim(claim, i, at)
    )
    monkeypatch.setattr(
        twilio_client, "create_message", lambda **kw: race.post(create_message, **kw)
    )

    def deliver(name: str) -> Any:
        race.role.name = name
        return run_handoff(aws, [records[name]], None, sandboxes[name])

    # When the winner claims first, and the loser right after
    with ThreadPoolExecutor(2) as pool:
        try:
            runs: dict[str, Future[Any]] = {name: pool.submit(deliver, name) for name in records}
            lost = runs[race.loser].result(WAIT)
            after_the_loser = item(message_id)
            race.loser_done.set()
            won = runs[race.winner].result(WAIT)
        finally:
            race.release_all()
    assert race.both_read
    # Then the loser sent nothing, changed nothing, and comes back once the winner's claim
    # would be stale (to end the message, should the winner die)
    assert lost == handed_back(records[race.loser])
    assert after_the_loser == race.claimed_item
    [(delay, accepted)] = visibility.of(records[race.loser])
    assert accepted and claim_timeout() < delay <= claim_timeout() + 1
    # And the winner sent the message, once
    assert won == {"batchItemFailures": []}
    assert visibility.of(records[race.winner]) == []
    assert race.posted_by == [race.winner]
    assert provider_requests.of(message_id) == ["Accepted"]
    assert wait_for(tenant, message_id, {"delivered", "failed"})["status"] == "delivered"
    assert sent_to(simulator, "+14155552671") == 1


# --- A missing auth token secret ---------------------------------------------------------------


def test_a_use_case_whose_auth_token_secret_does_not_exist_fails_its_message_unsent(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    provider_requests: ProviderRequests, visibility: VisibilityChanges,
) -> None:  # fmt: skip
    # Given a use case naming a secret that Secrets Manager does not hold
    unset = create_use_case(tenant.workspace_id, use_case_spec())
    message_id = send(tenant, unset, "+14155552671")
    record = queued_record(aws, message_id)
    result = run_handoff(aws, [record])
    # Then the message fails 99002 at once, never claimed, never sent, not retried
    assert result == {"batchItemFailures": []}
    assert visibility.of(record) == []
    final = stored(message_id)
    assert (final.status, final.error_code) == (MessageStatus.FAILED, 99002)
    assert final.claimed_at is None and final.message_sid is None
    assert provider_requests.of(message_id) == []


# --- Every way a record is handed back for a later delivery -----------------------------------


@dataclass(frozen=True)
class Fault:
    """Something that makes a delivery hand its record back: what Twilio was asked meanwhile,
    and whether the next delivery, with the fault gone, is accepted (a 429 or 503 comes from
    the recipient's number in the simulator, so it is met again)."""

    name: str
    to: str = "+14155552671"
    requests: tuple[str, ...] = ("RetryLater",)
    passes: bool = True
    scheduled: bool = False


FAULTS = [
    Fault("twilio-429", to="+14155550429", passes=False),
    Fault("twilio-503", to="+14155550503", passes=False),
    Fault("connection-refused"),
    Fault("tls-handshake-failed"),
    Fault("client-error-before-the-request-left", requests=("ValueError",)),
    Fault("secrets-manager-unavailable", requests=()),
    Fault("secrets-manager-unavailable-re-reading-a-refused-token", requests=("Rejected",)),
    Fault("dynamodb-throttles-the-opt-out-check", requests=(), scheduled=True),
]


def throttled(operation: str, code: str, when: Callable[[dict[str, Any]], bool]) -> Any:
    """A replacement for botocore's call that refuses the handoff function's `operation` calls
    for which `when(params)` is true, as AWS does when it throttles."""
    make_api_call = BaseClient._make_api_call  # type: ignore[attr-defined]

    def call(client: BaseClient, name: str, params: dict[str, Any]) -> Any:
        if name == operation and iam.running_function() == "HandoffFunction" and when(params):
            raise ClientError({"Error": {"Code": code, "Message": "throttled"}}, name)
        return make_api_call(client, name, params)

    return call


@contextmanager
def provider_at(url: str) -> Iterator[None]:
    saved = set_settings(TWILIO_API_BASE_URL=url)
    try:
        yield
    finally:
        restore_settings(saved)


def broken_pool() -> Any:
    raise ValueError("the HTTP client could not be set up")


@contextmanager
def fault_in_place(
    fault: Fault, use_case: UseCase, simulator: TwilioSimulator, tmp_path: Path
) -> Iterator[None]:
    """`fault` for the deliveries made in this block; none after it."""
    secret = use_case.twilio_auth_token_secret
    with ExitStack() as stack:
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        if fault.name == "connection-refused":
            stack.enter_context(provider_at(f"http://127.0.0.1:{unused_port()}"))
        elif fault.name == "tls-handshake-failed":
            stack.enter_context(
                provider_at(stack.enter_context(untrusted_tls_server(tmp_path)).url)
            )
        elif fault.name == "client-error-before-the-request-left":
            patch.setattr(twilio_client, "_pool", broken_pool)
        elif fault.name == "secrets-manager-unavailable":
            refuse = throttled(
                "GetSecretValue", "ThrottlingException", lambda p: p["SecretId"] == secret
            )
            patch.setattr(BaseClient, "_make_api_call", refuse)
        elif fault.name == "secrets-manager-unavailable-re-reading-a-refused-token":
            # Twilio refuses the token read first (401), and reading it again fails
            reads: list[str] = []

            def again(params: dict[str, Any]) -> bool:
                if params["SecretId"] == secret:
                    reads.append(secret)
                return len(reads) > 1

            account = use_case.twilio_account_sid
            simulator.configure(accounts={account: uuid.uuid4().hex})
            stack.callback(simulator.configure, accounts={account: AUTH_TOKENS[account]})
            refuse = throttled("GetSecretValue", "ThrottlingException", again)
            patch.setattr(BaseClient, "_make_api_call", refuse)
        elif fault.name == "dynamodb-throttles-the-opt-out-check":
            refuse = throttled(
                "BatchGetItem", "ProvisionedThroughputExceededException", lambda _: True
            )
            patch.setattr(BaseClient, "_make_api_call", refuse)
        else:
            assert fault.name in ("twilio-429", "twilio-503"), fault  # the simulator's numbers
        yield


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_a_record_handed_back_waits_the_readme_backoff_unclaimed(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    provider_requests: ProviderRequests, visibility: VisibilityChanges, tmp_path: Path,
    fault: Fault,
) -> None:  # fmt: skip
    # Given a message whose third delivery meets `fault`
    message_id = (send_scheduled if fault.scheduled else send)(tenant, use_case, fault.to)
    record = queued_record(aws, message_id, receive_count=3)
    with fault_in_place(fault, use_case, simulator, tmp_path):
        result = run_handoff(aws, [record])
    # Then the record comes back after the backoff the README states for a third delivery,
    # the message pending as it was, with no claim left on it
    assert result == handed_back(record)
    assert visibility.of(record) == [(readme_backoff(3), True)]
    assert provider_requests.of(message_id) == list(fault.requests)
    current = stored(message_id)
    assert current.status is MessageStatus.PENDING and current.claimed_at is None
    assert current.message_sid is None and current.error_code is None
    # And so the next delivery calls Twilio again (a claim left behind would be live for a
    # minute more: that delivery would wait instead), and with the fault gone, sends it once
    fourth = twin_record(aws, message_id, receive_count=4)
    result = run_handoff(aws, [fourth])
    if fault.passes:
        assert result == {"batchItemFailures": []}
        assert provider_requests.of(message_id) == [*fault.requests, "Accepted"]
        assert wait_for(tenant, message_id, {"delivered", "failed"})["status"] == "delivered"
        assert sent_to(simulator, fault.to) == 1
    else:
        assert result == handed_back(fourth)
        assert visibility.of(fourth) == [(readme_backoff(4), True)]
        assert provider_requests.of(message_id) == [*fault.requests, *fault.requests]
        assert stored(message_id).claimed_at is None


def test_a_busy_provider_is_retried_with_the_readme_backoff_then_ended_unsent(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    provider_requests: ProviderRequests, visibility: VisibilityChanges,
) -> None:  # fmt: skip
    # Given a message Twilio answers 503 every time
    message_id = send(tenant, use_case, "+14155550503")
    deliveries = get_settings().handoff_max_receives
    delays: list[tuple[int, bool]] = []
    # When the queue delivers it each time the handoff hands it back
    for receive in range(1, deliveries):
        # (the record handed back stays invisible for its delay: its twin stands in for it)
        if receive == 1:
            record = queued_record(aws, message_id, receive)
        else:
            record = twin_record(aws, message_id, receive)
        assert run_handoff(aws, [record]) == handed_back(record)
        delays.extend(visibility.of(record))
        assert stored(message_id).claimed_at is None
    # Then each delivery waited 10 s, 20 s, 40 s ... up to 15 min, as the README states
    assert delays == [(readme_backoff(receive), True) for receive in range(1, deliveries)]
    assert delays[-1] == (15 * 60, True)
    # And the last delivery ends it unsent, after one request each time
    last = twin_record(aws, message_id, deliveries)
    assert run_handoff(aws, [last]) == {"batchItemFailures": []}
    final = stored(message_id)
    assert (final.status, final.error_code) == (MessageStatus.FAILED, 99003)
    assert provider_requests.of(message_id) == ["RetryLater"] * deliveries


@pytest.mark.parametrize("where", ["before-the-record", "before-the-provider-call"])
def test_a_record_with_no_time_left_waits_the_readme_backoff(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    monkeypatch: pytest.MonkeyPatch, provider_requests: ProviderRequests,
    visibility: VisibilityChanges, where: str,
) -> None:  # fmt: skip
    message_id = send(tenant, use_case, "+14155552671")
    record = queued_record(aws, message_id, receive_count=3)
    context = handoff_context()
    # Time for the record, but not for the call after its reads; or not even for the record
    looks = iter([30_000] if where == "before-the-provider-call" else [])
    monkeypatch.setattr(context, "get_remaining_time_in_millis", lambda: next(looks, 5_000))
    assert run_handoff(aws, [record], context) == handed_back(record)
    assert stored(message_id).claimed_at is None
    assert provider_requests.of(message_id) == []
    assert visibility.of(record) == [(readme_backoff(3), True)]
