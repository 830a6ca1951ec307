"""Handoff against the Twilio simulator: at most one SMS per message, whatever happens."""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sms_gateway import api_keys, opt_out_store, scheduling, transitions
from sms_gateway.use_case_admin import update_use_case
from sms_gateway.use_cases import UseCase
from sms_local import template as tpl
from sms_local.aws_resources import LocalStack
from sms_local.gateway import HttpApiGateway
from sms_local.http_server import ApiServer
from sms_local.lambda_runtime import LambdaContext, load_handler, reset_cached_state
from sms_local.sqs_poller import SqsPoller, sqs_event
from sms_local.twilio_simulator import SimulatorConfig, TwilioSimulator
from tests.integration.conftest import AUTH_TOKENS, Api, Tenant
from tests.integration.test_send_api import drain_handoff_queue, send_body


def set_settings(**values: str) -> dict[str, str | None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    reset_cached_state()
    return saved


def restore_settings(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    reset_cached_state()


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
def server(gateway: HttpApiGateway) -> Iterator[ApiServer]:
    api = ApiServer(gateway)
    api.start()
    yield api
    api.stop()


@pytest.fixture
def wired(simulator: TwilioSimulator, server: ApiServer) -> Iterator[None]:
    """Point the handoff at the simulator and the callbacks at the local HTTP server."""
    saved = set_settings(TWILIO_API_BASE_URL=simulator.base_url, PUBLIC_BASE_URL=server.url)
    drain_handoff_queue()
    yield
    restore_settings(saved)


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


def test_pending_to_delivered_with_geomatch_and_segments(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, poller: SqsPoller
) -> None:
    message_id = send(tenant, use_case, "+12125552671")
    assert poller.poll_once() == 1
    final = wait_for(tenant, message_id, {"delivered"})
    assert final["status"] == "delivered"
    assert final["from_number"] == "+12125550100"  # the pool's number in the recipient's area
    assert final["num_segments"] == 1
    assert final["message_sid"].startswith("SM")
    assert final["handed_off_at"] <= final["delivered_at"]
    assert simulator.create_count() == 1
    events = [(h["event"], h.get("provider_status")) for h in final["history"]]
    assert ("handed_off", None) in events and ("provider_status", "delivered") in events


def test_a_twice_delivered_sqs_message_sends_one_sms(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, poller: SqsPoller,
    aws: LocalStack,
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
    assert simulator.create_count() == 1


def test_a_crash_after_the_provider_answered_never_sends_twice(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None,
    poller: SqsPoller, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Given callbacks that never reach us (any of them would carry the MessageSid and prove the
    # acceptance), and a worker that dies before recording Twilio's answer
    lost = set_settings(PUBLIC_BASE_URL="http://127.0.0.1:9")
    message_id = send(tenant, use_case, "+14155552671")

    def crash(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("worker died")

    monkeypatch.setattr(transitions, "record_acceptance", crash)
    poller.poll_once()
    restore_settings(lost)
    assert simulator.create_count() == 1
    monkeypatch.undo()
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
    assert simulator.create_count() == 1


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
    assert message(tenant, message_id)["error_code"] == 21610
    again = tenant.api.send(send_body(use_case, to_phone_number="+15005550004"))
    assert again.json()["error"]["code"] == "recipient_opted_out"


def test_busy_provider_is_retried_later_without_failing(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, poller: SqsPoller
) -> None:
    message_id = send(tenant, use_case, "+14155550429")
    saved = set_settings(HANDOFF_RETRY_BASE_SECONDS="0")
    try:
        poller.poll_once()
    finally:
        restore_settings(saved)
    current = message(tenant, message_id)
    assert current["status"] == "pending" and current["error_code"] is None
    # The claim was released, so the redelivery may call the provider again.
    _redeliver_now(poller)
    assert simulator.create_count() == 2
    assert message(tenant, message_id)["status"] == "pending"


def test_a_read_timeout_fails_as_outcome_unknown(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, poller: SqsPoller
) -> None:
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
    assert simulator.create_count() == 1


def test_connection_refused_is_retried(
    tenant: Tenant, use_case: UseCase, wired: None, poller: SqsPoller
) -> None:
    saved = set_settings(TWILIO_API_BASE_URL="http://127.0.0.1:9")
    try:
        message_id = send(tenant, use_case, "+14155552671")
        poller.poll_once()
    finally:
        restore_settings(saved)
    current = message(tenant, message_id)
    assert current["status"] == "pending" and current["message_sid"] is None
    drain_handoff_queue()


def test_logs_never_hold_a_whole_number_or_body(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None,
    poller: SqsPoller,
) -> None:  # fmt: skip
    # Given the handlers' log stream (Powertools' handler on the service logger) captured
    captured = io.StringIO()
    handlers = [
        h for h in logging.getLogger(os.environ["POWERTOOLS_SERVICE_NAME"]).handlers
        if isinstance(h, logging.StreamHandler)
    ]  # fmt: skip
    assert handlers
    previous = [h.setStream(captured) for h in handlers]
    try:
        logs = _one_message_life(tenant, use_case, simulator, poller, captured)
    finally:
        for handler, stream in zip(handlers, previous, strict=True):
            handler.setStream(stream)
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
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack
) -> None:
    # Given an invocation with less time left than one provider call may take
    message_id = send(tenant, use_case, "+14155552671")
    [record] = aws.client("sqs").receive_message(
        QueueUrl=aws.refs["HandoffQueue"], AttributeNames=["All"]
    )["Messages"]
    spec = tpl.functions(tpl.project_template())["HandoffFunction"]
    load_handler(spec)
    context = LambdaContext(function_name="HandoffFunction", timeout_seconds=5)  # < one call
    result = load_handler(spec)(sqs_event([record], aws.attributes["HandoffQueue"]["Arn"]), context)
    # Then the record is handed back for later, unclaimed, and Twilio was not called
    assert result == {"batchItemFailures": [{"itemIdentifier": record["MessageId"]}]}
    assert simulator.create_count() == 0
    current = message(tenant, message_id)
    assert current["status"] == "pending" and current["message_sid"] is None
    drain_handoff_queue()


def test_the_last_delivery_to_a_busy_provider_fails_the_message_instead_of_the_dlq(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, aws: LocalStack
) -> None:
    message_id = send(tenant, use_case, "+14155550429")
    [record] = aws.client("sqs").receive_message(
        QueueUrl=aws.refs["HandoffQueue"], AttributeNames=["All"]
    )["Messages"]
    record["Attributes"]["ApproximateReceiveCount"] = "15"  # the queue's last delivery
    spec = tpl.functions(tpl.project_template())["HandoffFunction"]
    context = LambdaContext(function_name="HandoffFunction", timeout_seconds=spec.timeout)
    result = load_handler(spec)(sqs_event([record], aws.attributes["HandoffQueue"]["Arn"]), context)
    assert result == {"batchItemFailures": []}
    final = message(tenant, message_id)
    assert (final["status"], final["error_code"]) == ("failed", 99003)
    assert simulator.create_count() == 1


@pytest.mark.parametrize(
    "change",
    [
        {"active": False},
        {"brand_status": "suspended"},
        {
            "twilio_account_sid": "AC" + "f" * 32,
            "twilio_auth_token_secret": "sms/twilio/AC" + "f" * 32,
        },
    ],
    ids=["deactivated", "brand-suspended", "other-subaccount"],
)
def test_a_use_case_changed_after_the_send_stops_the_handoff(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None,
    poller: SqsPoller, change: dict[str, Any],
) -> None:  # fmt: skip
    message_id = send(tenant, use_case, "+14155552671")
    update_use_case(tenant.workspace_id, use_case.id, change)
    poller.poll_once()
    final = message(tenant, message_id)
    assert (final["status"], final["error_code"]) == ("failed", 99004)
    assert simulator.create_count() == 0


def test_a_scheduled_message_to_a_number_that_opted_out_meanwhile_is_not_sent(
    tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None, poller: SqsPoller
) -> None:
    send_at = (datetime.now(UTC) + timedelta(minutes=5)).isoformat(timespec="seconds")
    response = tenant.api.send(send_body(use_case, to_phone_number="+14155552671", send_at=send_at))
    message_id = response.json()["id"]
    opt_out_store.add_opt_out(opt_out_store.use_case_scope(use_case.id), "+14155552671", "test")
    assert scheduling.dispatch_scheduled(message_id)
    poller.poll_once()
    final = message(tenant, message_id)
    assert (final["status"], final["error_code"]) == ("failed", 21610)
    assert simulator.create_count() == 0


def test_a_test_key_never_reaches_the_carrier(
    gateway: Any, tenant: Tenant, use_case: UseCase, simulator: TwilioSimulator, wired: None,
    poller: SqsPoller,
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
    assert simulator.create_count() == 0
    # A live key's message from the same workspace is a real one
    live = tenant.api.send(send_body(use_case)).json()
    assert live["test"] is False
