"""Handoff against the Twilio simulator: at most one SMS per message, whatever happens."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from sms_gateway.domain.clock import now_iso
from sms_gateway.domain.messages import MessageStatus
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic import scheduling
from sms_gateway.logic.use_case_admin import delete_use_case, update_use_case
from sms_gateway.providers.twilio import client as twilio_client
from sms_gateway.store import (
    api_keys,
    aws_clients,
    message_store,
    opt_out_store,
    transitions,
    use_case_store,
)
from sms_local import iam
from sms_local import template as tpl
from sms_local.aws_resources import LocalStack
from sms_local.http_server import ApiServer
from sms_local.lambda_runtime import Handler, LambdaContext, load_handler
from sms_local.pipe_runner import pump_all
from sms_local.sqs_poller import SqsPoller, sqs_event
from sms_local.twilio_simulator import SimulatorConfig, TwilioSimulator
from tests.integration.conftest import AUTH_TOKENS, Api, Tenant, restore_settings, set_settings
from tests.integration.test_resilience import untrusted_tls_server, unused_port
from tests.integration.test_send_api import drain_handoff_queue, send_body


@pytest.fixture
def simulator(use_case: UseCase) -> Iterator[TwilioSimulator]:
    sim = TwilioSimulator(
        SimulatorConfig(
            accounts={use_case.twilio_account_sid: AUTH_TOKENS[use_case.twilio_account_sid]},
            services={use_case.messaging_service_sid: [s.sender for s in use_case.sender_pool]},
            callback_delays=(0.05, 0.05),
        )
    )
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def wired(
    simulator: TwilioSimulator, server: ApiServer, aws: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Point the handoff at the simulator and the callbacks at the local HTTP server; on the
    way out, take from the handoff queue what the test left there."""
    saved = set_settings(TWILIO_API_BASE_URL=simulator.base_url, PUBLIC_BASE_URL=server.url)
    drain_handoff_queue()
    in_flight = records_in_flight(aws, monkeypatch)
    yield
    restore_settings(saved)
    settle_handoff_queue(aws, in_flight)


def records_in_flight(aws: LocalStack, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The receipt handles of the handoff queue's records received from now on and not deleted,
    by whichever client (the poller, a test, the function's own ChangeMessageVisibility)."""
    queue_url = aws.refs["HandoffQueue"]
    receipts: set[str] = set()
    make_api_call = BaseClient._make_api_call  # type: ignore[attr-defined]

    def tracked(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        result = make_api_call(client, operation, params)
        if params.get("QueueUrl") != queue_url:
            return result
        if operation == "ReceiveMessage":
            receipts.update(m["ReceiptHandle"] for m in result.get("Messages", []))
        elif operation == "DeleteMessage":
            receipts.discard(params["ReceiptHandle"])
        elif operation == "DeleteMessageBatch":
            receipts.difference_update(e["ReceiptHandle"] for e in params["Entries"])
        return result

    monkeypatch.setattr(BaseClient, "_make_api_call", tracked)
    return receipts


def settle_handoff_queue(aws: LocalStack, in_flight: set[str]) -> None:
    """Make the records a test received and never deleted visible, and take them: left in
    flight, one would come back when its visibility timeout ends, in the middle of a later test
    that counts what a poll receives."""
    sqs = aws.client("sqs")
    for receipt in list(in_flight):
        # A handle fails when a later receive of the same record replaced it.
        with contextlib.suppress(ClientError):
            sqs.change_message_visibility(
                QueueUrl=aws.refs["HandoffQueue"], ReceiptHandle=receipt, VisibilityTimeout=0
            )
    drain_handoff_queue()


@pytest.fixture
def poller(aws: LocalStack) -> SqsPoller:
    template = tpl.project_template()
    [source] = [s for s in tpl.sqs_sources(template) if s.function == "HandoffFunction"]
    return SqsPoller(aws, source, tpl.functions(template)["HandoffFunction"])


def message(tenant: Tenant, message_id: str) -> dict[str, Any]:
    body: dict[str, Any] = tenant.api.request("GET", f"/v1/sms/{message_id}").json()
    return body


def wait_for(tenant: Tenant, message_id: str, statuses: set[str], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        current = message(tenant, message_id)
        if current["status"] in statuses or time.monotonic() > deadline:
            return current
        time.sleep(0.05)


def send(tenant: Tenant, use_case: UseCase, to: str) -> str:
    response = tenant.api.send(send_body(use_case, to_phone_number=to))
    assert response.status == 201, response.json()
    return str(response.json()["id"])


def send_scheduled(tenant: Tenant, use_case: UseCase, to: str) -> str:
    """A message scheduled for later, whose schedule has just fired (it is pending now)."""
    send_at = (datetime.now(UTC) + timedelta(minutes=5)).isoformat(timespec="seconds")
    response = tenant.api.send(send_body(use_case, to_phone_number=to, send_at=send_at))
    assert response.status == 201, response.json()
    message_id = str(response.json()["id"])
    assert scheduling.dispatch_scheduled(message_id)
    return message_id


def queued_record(aws: LocalStack, message_id: str, receive_count: int = 1) -> dict[str, Any]:
    """The message's SQS record as the event source mapping receives it, as its
    `receive_count`th delivery."""
    pump_all()  # the outbox pipe queues it
    sqs = aws.client("sqs")
    url = aws.refs["HandoffQueue"]
    for _ in range(10):
        found: dict[str, Any] | None = None
        for record in sqs.receive_message(
            QueueUrl=url, AttributeNames=["All"], MaxNumberOfMessages=10
        ).get("Messages", []):
            if json.loads(record["Body"])["message_id"] == message_id:
                record["Attributes"]["ApproximateReceiveCount"] = str(receive_count)
                found = record
            else:  # not this one: leave it as it was
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=record["ReceiptHandle"], VisibilityTimeout=0
                )
        if found is not None:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{message_id} was never queued")


def handoff_context(timeout_seconds: int | None = None) -> LambdaContext:
    spec = tpl.functions(tpl.project_template())["HandoffFunction"]
    return LambdaContext(
        function_name="HandoffFunction", timeout_seconds=timeout_seconds or spec.timeout
    )


def twin_record(aws: LocalStack, message_id: str, receive_count: int) -> dict[str, Any]:
    """Another delivery of the message's SQS record, as its `receive_count`th (the record
    `run_handoff` handed back stays invisible for its delay: a twin stands in for it)."""
    aws.client("sqs").send_message(
        QueueUrl=aws.refs["HandoffQueue"], MessageBody=json.dumps({"message_id": message_id})
    )
    return queued_record(aws, message_id, receive_count)


def run_handoff(
    aws: LocalStack,
    records: list[dict[str, Any]],
    context: LambdaContext | None = None,
    handler: Handler | None = None,
) -> Any:
    """One delivery of `records` to the handoff function, as its event source mapping makes it
    (to `handler`, another sandbox's copy of the function, when given); then the records are
    deleted, whatever the answer (these tests look at that one delivery, and a record handed
    back with a long delay must not reappear in a later test)."""
    spec = tpl.functions(tpl.project_template())["HandoffFunction"]
    event = sqs_event(records, aws.attributes["HandoffQueue"]["Arn"])
    try:
        return (handler or load_handler(spec))(event, context or handoff_context())
    finally:
        for record in records:
            aws.client("sqs").delete_message(
                QueueUrl=aws.refs["HandoffQueue"], ReceiptHandle=record["ReceiptHandle"]
            )


@dataclass
class ProviderRequests:
    """Each request the handoff made to Twilio, by message id (read from its StatusCallback),
    with what came of it: the answer's kind (Accepted, Rejected, RetryLater, OutcomeUnknown) or
    the exception raised. Unlike the simulator's counters, scoped to a test's own messages (a
    message another test left in the queue may reach the simulator too)."""

    answers: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, message_id: str) -> list[str]:
        with self.lock:
            return list(self.answers.get(message_id, []))

    def note(self, message_id: str, outcome: str) -> None:
        with self.lock:
            self.answers.setdefault(message_id, []).append(outcome)


@pytest.fixture
def provider_requests(monkeypatch: pytest.MonkeyPatch) -> ProviderRequests:
    recorded = ProviderRequests()
    create_message = twilio_client.create_message

    def recording(**kwargs: Any) -> twilio_client.HandoffResult:
        [message_id] = parse_qs(urlsplit(kwargs["status_callback"]).query)["message_id"]
        try:
            result = create_message(**kwargs)
        except Exception as exc:
            recorded.note(message_id, type(exc).__name__)
            raise
        recorded.note(message_id, type(result).__name__)
        return result

    monkeypatch.setattr(twilio_client, "create_message", recording)
    return recorded


@dataclass
class VisibilityChanges:
    """Each ChangeMessageVisibility the handoff function made: the receipt handle, the delay,
    and whether SQS took it. Recorded below the clients, so it survives `set_settings`
    (which replaces them) and sees every thread."""

    made: list[tuple[str, int, bool]] = field(default_factory=list)

    def of(self, record: dict[str, Any]) -> list[tuple[int, bool]]:
        """The changes made for one SQS record (by its receipt handle)."""
        return [(d, ok) for handle, d, ok in self.made if handle == record["ReceiptHandle"]]


@pytest.fixture
def visibility(monkeypatch: pytest.MonkeyPatch) -> VisibilityChanges:
    changes = VisibilityChanges()
    make_api_call = BaseClient._make_api_call  # type: ignore[attr-defined]

    def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation != "ChangeMessageVisibility" or iam.running_function() != "HandoffFunction":
            return make_api_call(client, operation, params)
        handle, delay = str(params["ReceiptHandle"]), int(params["VisibilityTimeout"])
        try:
            result = make_api_call(client, operation, params)
        except Exception:
            changes.made.append((handle, delay, False))
            raise
        changes.made.append((handle, delay, True))
        return result

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return changes


def readme_backoff(receive_count: int) -> int:
    """The delay README's "What happens when something fails" states for a record handed back
    on its `receive_count`th delivery: 10 s, 20 s, 40 s ... capped at 15 min."""
    return int(min(15 * 60, 10 * 2 ** (receive_count - 1)))


def sent_to(simulator: TwilioSimulator, number: str) -> int:
    """How many messages Twilio took for `number` (a message another test left in the queue
    may reach the simulator too, so its POST count says less)."""
    return [m["to"] for m in simulator.messages].count(number)


def stored(message_id: str) -> Any:
    current = message_store.get_message(message_id)
    assert current is not None
    return current


def emitted_metrics(stdout: str) -> Counter[str]:
    """The metrics the functions printed (CloudWatch embedded metric format), summed by name,
    counting only those in the namespace and with the dimensions the alarms use."""
    totals: Counter[str] = Counter()
    for line in stdout.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        if not isinstance(blob, dict) or "_aws" not in blob:
            continue
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            namespace = os.environ["POWERTOOLS_METRICS_NAMESPACE"]  # template.yaml's
            if directive["Namespace"] != namespace or directive["Dimensions"] != [["service"]]:
                continue
            assert blob["service"] == "sms-gateway"
            for metric in directive["Metrics"]:
                values = blob[metric["Name"]]
                totals[metric["Name"]] += sum(values) if isinstance(values, list) else values
    return totals


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """What the functions log (Powertools' handler on the service logger)."""
    captured = io.StringIO()
    handlers = [
        h for h in logging.getLogger(os.environ["POWERTOOLS_SERVICE_NAME"]).handlers
        if isinstance(h, logging.StreamHandler)
    ]  # fmt: skip
    assert handlers
    previous = [h.setStream(captured) for h in handlers]
    try:
        yield captured
    finally:
        for handler, stream in zip(handlers, previous, strict=True):
            handler.setStream(stream)


@contextmanager
def visibility_changes() -> Iterator[list[tuple[int, bool]]]:
    """Each ChangeMessageVisibility the handoff asks for: the delay, and whether SQS took it."""
    changes: list[tuple[int, bool]] = []
    requested: list[int] = []

    def before(params: dict[str, Any], **_: Any) -> None:
        requested.append(int(params["VisibilityTimeout"]))

    def after(http_response: Any, **_: Any) -> None:
        changes.append((requested[-1], http_response.status_code == 200))

    events = aws_clients.sqs().meta.events
    events.register("provide-client-params.sqs.ChangeMessageVisibility", before)
    events.register("after-call.sqs.ChangeMessageVisibility", after)
    try:
        yield changes
    finally:
        events.unregister("provide-client-params.sqs.ChangeMessageVisibility", before)
        events.unregister("after-call.sqs.ChangeMessageVisibility", after)


def test_pending_to_delivered_with_geomatch_and_segments(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, poller: SqsPoller,
    provider_requests: ProviderRequests,
) -> None:  # fmt: skip
    message_id = send(tenant, use_case, "+12125552671")
    assert poller.poll_once() == 1
    final = wait_for(tenant, message_id, {"delivered"})
    assert final["status"] == "delivered"
    assert final["from_number"] == "+12125550100"  # the pool's number in the recipient's area
    assert final["num_segments"] == 1
    assert final["message_sid"].startswith("SM")
    assert final["handed_off_at"] <= final["delivered_at"]
    assert provider_requests.of(message_id) == ["Accepted"]
    events = [(h["event"], h.get("provider_status")) for h in final["history"]]
    assert ("handed_off", None) in events and ("provider_status", "delivered") in events


def test_a_twice_delivered_sqs_message_sends_one_sms(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, poller: SqsPoller,
    aws: LocalStack, provider_requests: ProviderRequests,
) -> None:  # fmt: skip
    message_id = send(tenant, use_case, "+14155552671")
    # Given the same handoff message queued again (SQS is at-least-once)
    sqs = aws.client("sqs")
    sqs.send_message(
        QueueUrl=aws.refs["HandoffQueue"], MessageBody=f'{{"message_id": "{message_id}"}}'
    )
    while poller.poll_once():
        pass
    assert wait_for(tenant, message_id, {"delivered"})["status"] == "delivered"
    assert provider_requests.of(message_id) == ["Accepted"]


def test_a_crash_after_the_provider_answered_never_sends_twice(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None,
    poller: SqsPoller, monkeypatch: pytest.MonkeyPatch, provider_requests: ProviderRequests,
) -> None:  # fmt: skip
    # Given callbacks that never reach us (any of them would carry the MessageSid and prove the
    # acceptance), and a worker that dies before recording Twilio's answer
    lost = set_settings(PUBLIC_BASE_URL="http://127.0.0.1:9")
    message_id = send(tenant, use_case, "+14155552671")

    def crash(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("worker died")

    record_acceptance = transitions.record_acceptance
    monkeypatch.setattr(transitions, "record_acceptance", crash)
    poller.poll_once()
    restore_settings(lost)
    assert provider_requests.of(message_id) == ["Accepted"]
    # Only the crash is undone: the recorder of the provider's requests stays in place
    monkeypatch.setattr(transitions, "record_acceptance", record_acceptance)
    assert message(tenant, message_id)["status"] == "pending"
    # When SQS redelivers after the claim has gone stale
    # (the crashed batch is invisible for the 60 s visibility timeout: queue its twin instead)
    saved = set_settings(HANDOFF_CLAIM_TIMEOUT_SECONDS="0")
    try:
        poller._sqs.send_message(
            QueueUrl=poller._url, MessageBody=f'{{"message_id": "{message_id}"}}'
        )
        assert poller.poll_once() == 1
    finally:
        restore_settings(saved)
    # Then the message is failed as "outcome unknown", and no second SMS went out
    final = message(tenant, message_id)
    assert (final["status"], final["error_code"]) == ("failed", 99001)
    assert provider_requests.of(message_id) == ["Accepted"]


def _redeliver_now(poller: SqsPoller) -> None:
    """The crashed batch's message is invisible for the visibility timeout; make it visible."""
    sqs = poller._sqs
    for _ in range(50):
        for m in sqs.receive_message(QueueUrl=poller._url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            sqs.change_message_visibility(
                QueueUrl=poller._url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
            )
        if poller.poll_once():
            return
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("to", "code"),
    [("+15005550001", 21211), ("+15005550003", 21408), ("+15005550009", 21614)],
)
def test_a_rejected_message_fails_with_twilios_code(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None,
    poller: SqsPoller, to: str, code: int,
) -> None:  # fmt: skip
    message_id = send(tenant, use_case, to)
    poller.poll_once()
    final = message(tenant, message_id)
    assert (final["status"], final["error_code"]) == ("failed", code)
    assert final["errored_at"] is not None


def test_unsubscribed_recipient_fails_and_is_opted_out(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, poller: SqsPoller
) -> None:
    message_id = send(tenant, use_case, "+15005550004")
    poller.poll_once()
    # Twilio accepts it, then fails it by status callback (as it does through a service)
    assert wait_for(tenant, message_id, {"failed"})["error_code"] == 21610
    again = tenant.api.send(send_body(use_case, to_phone_number="+15005550004"))
    assert again.json()["error"]["code"] == "recipient_opted_out"


def test_busy_provider_is_retried_later_without_failing(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    provider_requests: ProviderRequests, visibility: VisibilityChanges,
) -> None:  # fmt: skip
    message_id = send(tenant, use_case, "+14155550429")  # the simulator answers 429
    record = queued_record(aws, message_id)
    result = run_handoff(aws, [record])
    # Then the record comes back after the first backoff, the message still pending, unclaimed
    assert result == {"batchItemFailures": [{"itemIdentifier": record["MessageId"]}]}
    assert visibility.of(record) == [(readme_backoff(1), True)]
    current = stored(message_id)
    assert current.status is MessageStatus.PENDING and current.error_code is None
    assert current.claimed_at is None
    # And the claim given back, the next delivery calls the provider again (a claim left behind
    # would be live for another minute: that delivery would wait instead)
    assert run_handoff(aws, [twin_record(aws, message_id, 2)])["batchItemFailures"]
    assert provider_requests.of(message_id) == ["RetryLater", "RetryLater"]
    assert stored(message_id).status is MessageStatus.PENDING


def test_a_read_timeout_fails_as_outcome_unknown(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, poller: SqsPoller,
    capsys: pytest.CaptureFixture[str], provider_requests: ProviderRequests,
) -> None:  # fmt: skip
    # Given a slow provider whose callbacks never reach us (a `queued` callback would carry the
    # MessageSid and prove acceptance, which rightly keeps the message pending)
    saved = set_settings(PROVIDER_READ_TIMEOUT_SECONDS="0.5", PUBLIC_BASE_URL="http://127.0.0.1:9")
    try:
        message_id = send(tenant, use_case, "+14155550777")
        poller.poll_once()
    finally:
        restore_settings(saved)
    final = message(tenant, message_id)
    assert (final["status"], final["error_code"]) == ("failed", 99001)
    assert provider_requests.of(message_id) == ["OutcomeUnknown"]
    assert emitted_metrics(capsys.readouterr().out)["HandoffOutcomeUnknown"] == 1


def test_connection_refused_is_retried(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    provider_requests: ProviderRequests, visibility: VisibilityChanges,
) -> None:  # fmt: skip
    # Given a provider that refuses the connection (nothing of the request left)
    message_id = send(tenant, use_case, "+14155552671")
    record = queued_record(aws, message_id)
    saved = set_settings(TWILIO_API_BASE_URL=f"http://127.0.0.1:{unused_port()}")
    try:
        result = run_handoff(aws, [record])
    finally:
        restore_settings(saved)
    # Then the record is handed back after the first backoff, with the claim given back
    assert result == {"batchItemFailures": [{"itemIdentifier": record["MessageId"]}]}
    assert visibility.of(record) == [(readme_backoff(1), True)]
    assert provider_requests.of(message_id) == ["RetryLater"]
    current = stored(message_id)
    assert current.status is MessageStatus.PENDING and current.claimed_at is None
    assert current.message_sid is None and current.error_code is None
    # And when the provider is reachable again, the next delivery sends it, once
    assert run_handoff(aws, [twin_record(aws, message_id, 2)]) == {"batchItemFailures": []}
    assert provider_requests.of(message_id) == ["RetryLater", "Accepted"]
    assert wait_for(tenant, message_id, {"delivered", "failed"})["status"] == "delivered"
    assert sent_to(simulator, "+14155552671") == 1


def test_logs_never_hold_a_whole_number_or_body(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None,
    poller: SqsPoller,
) -> None:  # fmt: skip
    # Given the handlers' log stream captured
    with captured_logs() as captured:
        logs = _one_message_life(tenant, use_case, simulator, poller, captured)
    # Then the logs tell its story without the person's number or the text
    assert "+12125550143" not in logs and "2125550143" not in logs
    assert "Secret code" not in logs and "424242" not in logs


def _one_message_life(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, poller: SqsPoller,
    captured: io.StringIO,
) -> str:  # fmt: skip
    body = "Secret code 424242 for Alice"
    response = tenant.api.send(send_body(use_case, to_phone_number="+12125550143", message=body))
    message_id = response.json()["id"]
    poller.poll_once()
    wait_for(tenant, message_id, {"delivered"})
    simulator.wait_idle()
    logs = captured.getvalue()
    assert message_id in logs and "handed off" in logs
    return logs


def test_records_that_no_longer_fit_in_the_invocation_wait_unclaimed(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    provider_requests: ProviderRequests, visibility: VisibilityChanges,
) -> None:  # fmt: skip
    # Given an invocation with less time left than one provider call may take
    message_id = send(tenant, use_case, "+14155552671")
    record = queued_record(aws, message_id)
    result = run_handoff(aws, [record], handoff_context(timeout_seconds=5))  # < one call
    # Then the record is handed back for later, unclaimed, and Twilio was not called
    assert result == {"batchItemFailures": [{"itemIdentifier": record["MessageId"]}]}
    [(_, accepted)] = visibility.of(record)
    assert accepted
    assert provider_requests.of(message_id) == []
    current = stored(message_id)
    assert current.status is MessageStatus.PENDING and current.claimed_at is None
    assert current.message_sid is None and current.error_code is None
    # And the next delivery, in an invocation with time for it, sends it once
    assert run_handoff(aws, [twin_record(aws, message_id, 2)]) == {"batchItemFailures": []}
    assert provider_requests.of(message_id) == ["Accepted"]
    assert wait_for(tenant, message_id, {"delivered", "failed"})["status"] == "delivered"


def test_the_last_delivery_to_a_busy_provider_fails_the_message_instead_of_the_dlq(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    capsys: pytest.CaptureFixture[str], provider_requests: ProviderRequests,
) -> None:  # fmt: skip
    message_id = send(tenant, use_case, "+14155550429")
    record = queued_record(aws, message_id, receive_count=15)  # the queue's last delivery
    result = run_handoff(aws, [record])
    assert result == {"batchItemFailures": []}
    final = message(tenant, message_id)
    assert (final["status"], final["error_code"]) == ("failed", 99003)
    assert provider_requests.of(message_id) == ["RetryLater"]
    assert emitted_metrics(capsys.readouterr().out)["HandoffGaveUp"] == 1


@pytest.mark.parametrize(
    "change",
    [
        {"active": False},
        {"brand_status": "suspended"},
        {
            "twilio_account_sid": "AC" + "f" * 32,
            "twilio_auth_token_secret": "sms/twilio/AC" + "f" * 32,
        },
        None,  # deleted (a soft delete: the record stays, still marked active)
    ],
    ids=["deactivated", "brand-suspended", "other-subaccount", "deleted"],
)
def test_a_use_case_changed_after_the_send_stops_the_handoff(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None,
    poller: SqsPoller, change: dict[str, Any] | None, provider_requests: ProviderRequests,
) -> None:  # fmt: skip
    message_id = send(tenant, use_case, "+14155552671")
    if change is None:
        delete_use_case(tenant.workspace_id, use_case.id)
    else:
        update_use_case(tenant.workspace_id, use_case.id, change)
    poller.poll_once()
    final = message(tenant, message_id)
    assert (final["status"], final["error_code"]) == ("failed", 99004)
    # The history a caller reads says why
    assert (final["history"][-1]["event"], final["history"][-1]["status"]) == (
        "use_case_no_longer_sendable", "failed",
    )  # fmt: skip
    assert provider_requests.of(message_id) == []


@pytest.mark.parametrize("opted_out_of", ["the-use-case", "its-messaging-service"])
def test_a_scheduled_message_to_a_number_that_opted_out_meanwhile_is_not_sent(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, poller: SqsPoller,
    provider_requests: ProviderRequests, opted_out_of: str,
) -> None:  # fmt: skip
    send_at = (datetime.now(UTC) + timedelta(minutes=5)).isoformat(timespec="seconds")
    response = tenant.api.send(send_body(use_case, to_phone_number="+14155552671", send_at=send_at))
    message_id = response.json()["id"]
    if opted_out_of == "the-use-case":
        opt_out_store.add_opt_out(opt_out_store.use_case_scope(use_case.id), "+14155552671", "test")
    else:
        # Twilio's STOP: a 21610 for another message through the use case's Messaging Service
        opt_out_store.add_provider_unsubscribed(use_case.messaging_service_sid, "+14155552671")
    assert scheduling.dispatch_scheduled(message_id)
    poller.poll_once()
    final = message(tenant, message_id)
    assert (final["status"], final["error_code"]) == ("failed", 21610)
    # The history a caller reads says why
    assert (final["history"][-1]["event"], final["history"][-1]["status"]) == (
        "recipient_opted_out", "failed",
    )  # fmt: skip
    assert provider_requests.of(message_id) == []


def test_a_test_key_never_reaches_the_carrier(
    gateway: Any, tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None,
    poller: SqsPoller, provider_requests: ProviderRequests,
) -> None:  # fmt: skip
    test_key = api_keys.issue_key(tenant.workspace_id, ("messages:send", "messages:read"), "test")
    api = Api(gateway, test_key.secret)
    response = api.send(send_body(use_case, to_phone_number="+14155552671"))
    assert response.status == 201 and response.json()["test"] is True
    poller.poll_once()
    final = api.request("GET", f"/v1/sms/{response.json()['id']}").json()
    assert final["status"] == "delivered" and final["test"] is True
    assert final["message_sid"].startswith("SM") and final["num_segments"] == 1
    assert final["from_number"] == "+14155550100"
    assert provider_requests.of(response.json()["id"]) == []
    # A live key's message from the same workspace is a real one
    live = tenant.api.send(send_body(use_case)).json()
    assert live["test"] is False


# --- The queue's last delivery: every message ends before SQS gives up on it -----------------


def test_a_claim_still_held_on_the_last_delivery_ends_the_message_as_outcome_unknown(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    capsys: pytest.CaptureFixture[str], provider_requests: ProviderRequests,
) -> None:  # fmt: skip
    # Given a message another delivery claimed a moment ago (its worker may be mid-call, or dead)
    message_id = send(tenant, use_case, "+14155552671")
    assert transitions.claim_for_handoff(message_id, now_iso())
    # When the queue delivers it for the last time
    result = run_handoff(aws, [queued_record(aws, message_id, receive_count=15)])
    # Then it is ended here, not moved to the dead-letter queue still pending, and never resent
    assert result == {"batchItemFailures": []}
    final = message(tenant, message_id)
    assert (final["status"], final["error_code"]) == ("failed", 99001)
    assert provider_requests.of(message_id) == []
    assert emitted_metrics(capsys.readouterr().out)["HandoffOutcomeUnknown"] == 1


def test_losing_the_claim_race_on_the_last_delivery_still_ends_the_message(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    monkeypatch: pytest.MonkeyPatch, provider_requests: ProviderRequests,
) -> None:  # fmt: skip
    # Given a twin delivery of the same message whose worker claims it first
    message_id = send(tenant, use_case, "+14155552671")
    claim = transitions.claim_for_handoff

    def claimed_by_a_twin_first(claimed_id: str, at: str, provider: str) -> bool:
        assert claim(claimed_id, now_iso(), provider)
        return claim(claimed_id, at, provider)

    monkeypatch.setattr(transitions, "claim_for_handoff", claimed_by_a_twin_first)
    result = run_handoff(aws, [queued_record(aws, message_id, receive_count=15)])
    assert result == {"batchItemFailures": []}
    final = message(tenant, message_id)
    assert (final["status"], final["error_code"]) == ("failed", 99001)
    assert provider_requests.of(message_id) == []


def test_no_time_left_on_the_last_delivery_fails_the_message_instead_of_the_dlq(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    capsys: pytest.CaptureFixture[str], provider_requests: ProviderRequests,
) -> None:  # fmt: skip
    message_id = send(tenant, use_case, "+14155552671")
    record = queued_record(aws, message_id, receive_count=15)
    result = run_handoff(aws, [record], handoff_context(timeout_seconds=5))  # < one call
    assert result == {"batchItemFailures": []}
    final = message(tenant, message_id)
    assert (final["status"], final["error_code"]) == ("failed", 99003)
    assert provider_requests.of(message_id) == []
    assert emitted_metrics(capsys.readouterr().out)["HandoffGaveUp"] == 1


def test_a_claim_found_on_the_second_to_last_delivery_is_waited_out_not_past_the_last(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
) -> None:  # fmt: skip
    # Given a claim taken a moment ago, found by the queue's second-to-last delivery
    message_id = send(tenant, use_case, "+14155552671")
    assert transitions.claim_for_handoff(message_id, now_iso())
    record = queued_record(aws, message_id, receive_count=14)
    before = datetime.now(UTC)
    with visibility_changes() as changes:
        result = run_handoff(aws, [record])
    # Then the record comes back once more, when the claim is stale: the last delivery ends it
    assert result == {"batchItemFailures": [{"itemIdentifier": record["MessageId"]}]}
    [(delay, accepted)] = changes
    claimed_at = datetime.fromisoformat(str(stored(message_id).claimed_at))
    stale_at = claimed_at + timedelta(seconds=60)  # HANDOFF_CLAIM_TIMEOUT_SECONDS
    assert accepted and stale_at <= before + timedelta(seconds=delay)
    assert message(tenant, message_id)["status"] == "pending"


def test_a_retry_is_never_delayed_past_sqs_12_hour_limit(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
) -> None:  # fmt: skip
    # Given a claim timeout longer than SQS lets a message stay invisible
    saved = set_settings(HANDOFF_CLAIM_TIMEOUT_SECONDS=str(24 * 3600))
    try:
        message_id = send(tenant, use_case, "+14155552671")
        assert transitions.claim_for_handoff(message_id, now_iso())
        record = queued_record(aws, message_id)
        with visibility_changes() as changes:
            result = run_handoff(aws, [record])
    finally:
        restore_settings(saved)
    # Then the record is handed back with the longest delay SQS takes, not an error
    assert result == {"batchItemFailures": [{"itemIdentifier": record["MessageId"]}]}
    [(delay, accepted)] = changes
    assert accepted and 3600 < delay <= 12 * 3600


# --- Nothing certainly unsent ends as "outcome unknown" ---------------------------------------


def test_a_tls_failure_gives_the_claim_back_so_a_later_delivery_sends_it(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None,
    poller: SqsPoller, tmp_path: Path,
) -> None:  # fmt: skip
    # Given a provider whose certificate is not trusted (the handshake fails: nothing was sent)
    with untrusted_tls_server(tmp_path) as provider:
        saved = set_settings(TWILIO_API_BASE_URL=provider.url, HANDOFF_RETRY_BASE_SECONDS="0")
        try:
            message_id = send(tenant, use_case, "+14155552671")
            assert poller.poll_once() >= 1
        finally:
            restore_settings(saved)
    assert stored(message_id).claimed_at is None
    # When the next delivery finds the provider reachable (and any claim left would be stale)
    saved = set_settings(HANDOFF_CLAIM_TIMEOUT_SECONDS="0")
    try:
        _redeliver_now(poller)
    finally:
        restore_settings(saved)
    # Then the message is sent, once, instead of failing as "outcome unknown"
    assert wait_for(tenant, message_id, {"delivered", "failed"})["status"] == "delivered"
    assert sent_to(simulator, "+14155552671") == 1


def test_an_error_before_the_request_left_gives_the_claim_back(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None,
    poller: SqsPoller, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # Given a provider client that fails while the message is claimed, before its request left
    def broken_pool() -> Any:
        raise ValueError("the HTTP client could not be set up")

    saved = set_settings(HANDOFF_RETRY_BASE_SECONDS="0", HANDOFF_CLAIM_TIMEOUT_SECONDS="0")
    try:
        monkeypatch.setattr(twilio_client, "_pool", broken_pool)
        message_id = send(tenant, use_case, "+14155552671")
        assert poller.poll_once() >= 1
        # Then the claim is given back, and the error counted
        assert stored(message_id).claimed_at is None
        assert emitted_metrics(capsys.readouterr().out)["HandoffUnexpectedError"] >= 1
        # And once the client works, the next delivery sends the message
        monkeypatch.undo()
        _redeliver_now(poller)
    finally:
        monkeypatch.undo()
        restore_settings(saved)
    assert wait_for(tenant, message_id, {"delivered", "failed"})["status"] == "delivered"
    assert sent_to(simulator, "+14155552671") == 1


def test_a_throttled_opt_out_check_leaves_the_message_for_a_later_delivery(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None,
    poller: SqsPoller, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Given a scheduled message whose opt-out re-check is throttled once
    message_id = send_scheduled(tenant, use_case, "+14155552671")
    make_api_call = BaseClient._make_api_call  # type: ignore[attr-defined]
    throttled: list[str] = []

    def throttle_once(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation == "BatchGetItem" and not throttled:
            throttled.append(operation)
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
                operation,
            )
        return make_api_call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", throttle_once)
    saved = set_settings(HANDOFF_RETRY_BASE_SECONDS="0", HANDOFF_CLAIM_TIMEOUT_SECONDS="0")
    try:
        assert poller.poll_once() == 1
        assert throttled and sent_to(simulator, "+14155552671") == 0
        assert stored(message_id).claimed_at is None
        _redeliver_now(poller)
    finally:
        restore_settings(saved)
    assert wait_for(tenant, message_id, {"delivered", "failed"})["status"] == "delivered"
    assert sent_to(simulator, "+14155552671") == 1


def test_the_time_left_is_checked_again_right_before_the_provider_call(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    monkeypatch: pytest.MonkeyPatch, provider_requests: ProviderRequests,
) -> None:  # fmt: skip
    # Given an invocation that had time for a record, but whose reads before the provider call
    # used most of it
    message_id = send(tenant, use_case, "+14155552671")
    record = queued_record(aws, message_id)
    context = handoff_context()
    looks = iter([30_000])
    monkeypatch.setattr(context, "get_remaining_time_in_millis", lambda: next(looks, 5_000))
    result = run_handoff(aws, [record], context)
    # Then the provider is not called (the function could be cut off mid-call) and the message
    # is handed back unclaimed
    assert result == {"batchItemFailures": [{"itemIdentifier": record["MessageId"]}]}
    assert provider_requests.of(message_id) == []
    current = stored(message_id)
    assert current.status is MessageStatus.PENDING and current.claimed_at is None
    # And the claim it had taken given back, the next delivery sends it (a claim left behind
    # would be live for another minute: that delivery would wait instead)
    monkeypatch.setattr(context, "get_remaining_time_in_millis", lambda: 30_000)
    assert run_handoff(aws, [twin_record(aws, message_id, 2)], context) == {"batchItemFailures": []}
    assert provider_requests.of(message_id) == ["Accepted"]


# --- A rotated auth token -----------------------------------------------------------------------


def test_a_rotated_auth_token_is_read_again_and_the_message_sent(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, poller: SqsPoller
) -> None:
    # Given a handoff that holds the subaccount's token in its cache
    first = send(tenant, use_case, "+14155552671")
    assert poller.poll_once() == 1
    assert wait_for(tenant, first, {"delivered"})["status"] == "delivered"
    # When the token is rotated (Secrets Manager first, then Twilio)
    rotated = uuid.uuid4().hex
    aws_clients.secretsmanager().put_secret_value(
        SecretId=use_case.twilio_auth_token_secret, SecretString=rotated
    )
    simulator.configure(accounts={use_case.twilio_account_sid: rotated})
    AUTH_TOKENS[use_case.twilio_account_sid] = rotated
    second = send(tenant, use_case, "+14155552672")
    assert poller.poll_once() == 1
    # Then the refused send is made again with the new token, and the message goes out once
    assert wait_for(tenant, second, {"delivered", "failed"})["status"] == "delivered"
    assert sent_to(simulator, "+14155552672") == 1


def test_a_refused_token_that_has_not_changed_fails_the_message(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    provider_requests: ProviderRequests,
) -> None:  # fmt: skip
    # Given Twilio refusing the subaccount's token while Secrets Manager still holds it
    simulator.configure(accounts={use_case.twilio_account_sid: uuid.uuid4().hex})
    message_id = send(tenant, use_case, "+14155552671")
    assert run_handoff(aws, [queued_record(aws, message_id)]) == {"batchItemFailures": []}
    final = message(tenant, message_id)
    assert (final["status"], final["error_code"]) == ("failed", 20003)
    assert provider_requests.of(message_id) == ["Rejected"]  # the same token is not tried twice


# --- What the alarms watch ------------------------------------------------------------------


def test_an_unexpected_error_is_counted_logged_without_the_number_and_retried(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    message_id = send(tenant, use_case, "+12125550143")
    record = queued_record(aws, message_id)

    def broken(use_case_id: str) -> UseCase:
        raise RuntimeError("the use cases table answered nonsense")

    monkeypatch.setattr(use_case_store, "get_use_case_cached", broken)
    with captured_logs() as logs, visibility_changes() as changes:
        result = run_handoff(aws, [record])
    # Then the record is retried later (with backoff), and the error is counted and logged
    assert result == {"batchItemFailures": [{"itemIdentifier": record["MessageId"]}]}
    assert changes == [(readme_backoff(1), True)]
    assert emitted_metrics(capsys.readouterr().out)["HandoffUnexpectedError"] == 1
    text = logs.getvalue()
    assert "RuntimeError" in text and "Traceback" in text and message_id in text
    assert "2125550143" not in text and "Your code" not in text
    current = stored(message_id)
    assert current.status is MessageStatus.PENDING and current.claimed_at is None


def test_records_on_their_last_delivery_get_the_invocation_time_first(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Given a batch with time for one provider call only, whose second record is on the queue's
    # last delivery
    first = send(tenant, use_case, "+14155552671")
    last_chance = send(tenant, use_case, "+14155552672")
    records = [queued_record(aws, first), queued_record(aws, last_chance, receive_count=15)]
    context = handoff_context()
    looks = iter([30_000, 30_000])
    monkeypatch.setattr(context, "get_remaining_time_in_millis", lambda: next(looks, 5_000))
    result = run_handoff(aws, records, context)
    # Then the record that cannot come back is handed off, and the other one waits
    assert result == {"batchItemFailures": [{"itemIdentifier": records[0]["MessageId"]}]}
    assert wait_for(tenant, last_chance, {"delivered", "failed"})["status"] == "delivered"
    waiting = stored(first)
    assert waiting.status is MessageStatus.PENDING and waiting.claimed_at is None
