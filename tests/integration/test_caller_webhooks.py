"""Status webhooks to callers, through the local stack's real parts: a send names a receiver on
127.0.0.1, the status changes are written as the callbacks write them, the messages stream feeds
UsageFunction, whose jobs CallerWebhookFunction takes from its SQS queue and sends,
signed, to the receiver. Each receiver verifies with the Standard Webhooks reference library."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from standardwebhooks import Webhook

from sms_gateway.config import get_settings
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic import caller_webhook_events, webhook_secrets
from sms_gateway.logic.use_case_admin import create_use_case
from sms_gateway.store import aws_clients, caller_webhook_queue, webhook_attempts
from sms_local import template as tpl
from sms_local.aws_resources import LocalStack
from sms_local.gateway import HttpApiGateway
from sms_local.lambda_runtime import LambdaContext, invoke, load_handler
from sms_local.sqs_poller import SqsPoller, sqs_event
from sms_local.stream_poller import pump_all
from tests.integration.conftest import (
    Tenant,
    create_twilio_secret,
    make_tenant,
    restore_settings,
    set_settings,
    use_case_spec,
)
from tests.integration.test_send_api import drain_handoff_queue, send_body
from tests.integration.test_send_crashes import Killed
from tests.integration.test_status_callback import callback

FUNCTION = "CallerWebhookFunction"


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def signed_payload(self) -> bytes:
        return self.body if self.method == "POST" else self.query.encode()


@dataclass
class Receiver:
    """An HTTP receiver on 127.0.0.1: answers each request with the next status of `script`
    (then `default`), and records what it got."""

    script: list[int] = field(default_factory=list)
    default: int = 204
    received: list[Received] = field(default_factory=list)
    # While set to an Event, each request waits for it before answering (a slow receiver).
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def answer(self) -> int:
        return self.script.pop(0) if self.script else self.default


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _take(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            receiver.received.append(
                Received(
                    self.command,
                    parts.path,
                    parts.query,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
            )
            receiver.arrived.set()
            if receiver.hold is not None:
                receiver.hold.wait(30)
            self.send_response(receiver.answer())
            self.send_header("content-length", "0")
            self.end_headers()

        do_POST = _take
        do_GET = _take

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    servers: list[ThreadingHTTPServer] = []

    def start(**kwargs: Any) -> Receiver:
        receiver = Receiver(**kwargs)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/sms"
        return receiver

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def local_receivers_and_quick_retries() -> Iterator[None]:
    """As the local stack runs it: receivers on 127.0.0.1, and retries without waiting."""
    saved = set_settings(
        CALLER_WEBHOOK_ALLOW_LOOPBACK_HTTP="true", CALLER_WEBHOOK_RETRY_DELAYS="0,0,0"
    )
    yield
    drain_webhook_queue()
    restore_settings(saved)


def webhook_poller(aws: LocalStack) -> SqsPoller:
    template = tpl.project_template()
    [source] = [s for s in tpl.sqs_sources(template) if s.function == FUNCTION]
    return SqsPoller(aws, source, tpl.functions(template)[FUNCTION])


def run_webhooks(aws: LocalStack, rounds: int = 10) -> None:
    """Let the stream catch up, then run the webhook queue until it is empty (a failed job comes
    back at once: the schedule's delays are 0 here)."""
    pump_all()
    poller = webhook_poller(aws)
    for _ in range(rounds):
        if poller.poll_once(catch_up=False) == 0:
            return


def receive_jobs(count: int) -> list[dict[str, Any]]:
    """Take `count` jobs off the queue as the event source mapping would, leaving them in it."""
    sqs = aws_clients.sqs()
    url = get_settings().caller_webhook_queue_url
    jobs: list[dict[str, Any]] = []
    while len(jobs) < count:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
        jobs += [dict(m) for m in batch.get("Messages", [])]
    return jobs


def run_function_on(jobs: list[dict[str, Any]], context: LambdaContext | None = None) -> Any:
    """CallerWebhookFunction on a batch of received jobs (with Lambda's context, or `context`)."""
    spec = tpl.functions(tpl.project_template())[FUNCTION]
    event = sqs_event(jobs, "arn:aws:sqs:us-east-1:123456789012:CallerWebhookQueue")
    return invoke(spec, event) if context is None else load_handler(spec)(event, context)


def show_again(job: dict[str, Any]) -> None:
    """What the end of a job's visibility timeout does, at once."""
    aws_clients.sqs().change_message_visibility(
        QueueUrl=get_settings().caller_webhook_queue_url,
        ReceiptHandle=job["ReceiptHandle"],
        VisibilityTimeout=0,
    )


def drain_webhook_queue() -> list[dict[str, Any]]:
    sqs = aws_clients.sqs()
    bodies = []
    for url in (
        get_settings().caller_webhook_queue_url,
        get_settings().caller_webhook_dead_letter_queue_url,
    ):
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in batch:
                bodies.append({"queue": url, **json.loads(message["Body"])})
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def secret_of(tenant: Tenant) -> str:
    response = tenant.api.request("GET", "/v1/webhook-secret")
    assert response.status == 200, response.json()
    secret: str = response.json()["secret"]
    return secret


def verified(tenant: Tenant, receiver: Receiver) -> list[dict[str, Any]]:
    """Every request the receiver got, verified by the reference library, as (webhook-id,
    payload) in arrival order."""
    webhook = Webhook(secret_of(tenant))
    out = []
    for request in receiver.received:
        payload = webhook.verify(
            request.signed_payload(), request.headers, json_parse=request.method == "POST"
        )
        out.append({"webhook_id": request.headers["webhook-id"], "payload": payload})
    return out


def send_with_receipts(tenant: Tenant, use_case: UseCase, url: str, **fields: Any) -> str:
    response = tenant.api.send(send_body(use_case, status_callback_url=url, **fields))
    assert response.status == 201, response.json()
    drain_handoff_queue()
    message_id: str = response.json()["id"]
    return message_id


def attempts(tenant: Tenant, message_id: str) -> list[dict[str, Any]]:
    response = tenant.api.request("GET", f"/v1/sms/{message_id}/webhook-attempts")
    assert response.status == 200, response.json()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# --- what the receiver gets -----------------------------------------------------------------


def test_each_status_change_reaches_the_receiver_once_signed_and_in_sequence(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    use_case: UseCase,
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers()
    message_id = send_with_receipts(tenant, use_case, receiver.url)
    run_webhooks(aws)
    assert receiver.received == []  # pending is no event
    for status in ("sent", "delivered"):
        assert callback(gateway, message_id, use_case.twilio_account_sid, status).status == 204
    run_webhooks(aws)
    events = verified(tenant, receiver)
    assert [e["payload"]["type"] for e in events] == ["message.sent", "message.delivered"]
    assert [e["payload"]["data"]["sequence"] for e in events] == [2, 3]
    stored = tenant.api.request("GET", f"/v1/sms/{message_id}").json()
    delivered = events[1]["payload"]["data"]
    assert delivered == {**{k: v for k, v in stored.items() if k != "history"}, "sequence": 3}
    assert events[0]["payload"]["data"]["status"] == "sent"  # as the event saw it
    assert len({e["webhook_id"] for e in events}) == 2
    assert {r.headers["content-type"] for r in receiver.received} == {"application/json"}
    listed = attempts(tenant, message_id)
    assert [(a["type"], a["status_code"], a["next_attempt_at"]) for a in listed] == [
        ("message.sent", 204, None),
        ("message.delivered", 204, None),
    ]


def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_attempt_with_one_id(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    use_case: UseCase,
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers(script=[500, 503])
    message_id = send_with_receipts(tenant, use_case, receiver.url)
    callback(gateway, message_id, use_case.twilio_account_sid, "delivered")
    run_webhooks(aws)
    events = verified(tenant, receiver)
    assert [e["payload"]["type"] for e in events] == ["message.delivered"] * 3
    assert len({e["webhook_id"] for e in events}) == 1
    listed = attempts(tenant, message_id)
    assert [(a["attempt"], a["status_code"]) for a in listed] == [(1, 500), (2, 503), (3, 204)]
    assert [a["next_attempt_at"] is not None for a in listed] == [True, True, False]
    assert {a["webhook_id"] for a in listed} == {events[0]["webhook_id"]}


def test_after_its_last_attempt_a_job_goes_to_the_dead_letter_queue(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    use_case: UseCase,
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers(default=500)
    message_id = send_with_receipts(tenant, use_case, receiver.url)
    callback(gateway, message_id, use_case.twilio_account_sid, "failed")
    run_webhooks(aws)
    assert len(receiver.received) == 4  # the first attempt and the schedule's 3 retries
    listed = attempts(tenant, message_id)
    assert [a["status_code"] for a in listed] == [500] * 4
    assert listed[-1]["next_attempt_at"] is None
    left = drain_webhook_queue()
    assert [(job["queue"], job["message_id"]) for job in left] == [
        (get_settings().caller_webhook_dead_letter_queue_url, message_id)
    ]


def test_a_get_receiver_gets_the_fields_as_parameters_signed(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    use_case: UseCase,
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers()
    message_id = send_with_receipts(tenant, use_case, receiver.url, status_callback_method="GET")
    callback(gateway, message_id, use_case.twilio_account_sid, "undelivered")
    run_webhooks(aws)
    [request] = receiver.received
    assert request.method == "GET" and request.body == b""
    verified(tenant, receiver)
    assert "type=message.undelivered" in request.query
    assert f"id={message_id}" in request.query


def test_the_use_case_s_url_serves_its_messages_and_delivery_receipt_false_silences_one(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    use_case: UseCase,
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers()
    changed = tenant.api.request(
        "PATCH", f"/v1/sms/use-cases/{use_case.id}", json_body={"status_callback_url": receiver.url}
    )
    assert changed.status == 200, changed.json()
    loud = tenant.api.send(send_body(use_case)).json()
    quiet = tenant.api.send(send_body(use_case, delivery_receipt=False)).json()
    assert loud["status_callback_url"] == receiver.url and loud["delivery_receipt"] is True
    assert quiet["delivery_receipt"] is False
    drain_handoff_queue()
    for message in (loud, quiet):
        callback(gateway, message["id"], use_case.twilio_account_sid, "delivered")
    run_webhooks(aws)
    assert [e["payload"]["data"]["id"] for e in verified(tenant, receiver)] == [loud["id"]]


# --- never lost, never twice ----------------------------------------------------------------


def test_a_stream_consumer_killed_before_queuing_still_delivers_the_event(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    use_case: UseCase,
    receivers: Callable[..., Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = receivers()
    message_id = send_with_receipts(tenant, use_case, receiver.url)
    pump_all()
    real_enqueue = caller_webhook_queue.enqueue

    def killed(*args: Any) -> None:
        raise Killed

    # The status is written; the function that turns it into an event dies before queuing.
    callback(gateway, message_id, use_case.twilio_account_sid, "delivered")
    monkeypatch.setattr(caller_webhook_queue, "enqueue", killed)
    with pytest.raises(Killed):
        pump_all()
    assert drain_webhook_queue() == []
    monkeypatch.setattr(caller_webhook_queue, "enqueue", real_enqueue)
    run_webhooks(aws)  # Lambda gives the stream batch again
    assert [e["payload"]["type"] for e in verified(tenant, receiver)] == ["message.delivered"]


def test_a_delivery_killed_after_the_receiver_took_it_is_sent_again_with_the_same_id(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    use_case: UseCase,
    receivers: Callable[..., Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = receivers()
    message_id = send_with_receipts(tenant, use_case, receiver.url)
    callback(gateway, message_id, use_case.twilio_account_sid, "delivered")
    real_record = webhook_attempts.record

    def killed(*args: Any) -> None:
        raise Killed

    monkeypatch.setattr(webhook_attempts, "record", killed)
    pump_all()
    [job] = receive_jobs(1)
    with pytest.raises(Killed):
        run_function_on([job])
    monkeypatch.setattr(webhook_attempts, "record", real_record)
    show_again(job)
    run_webhooks(aws)
    events = verified(tenant, receiver)
    assert [e["payload"]["type"] for e in events] == ["message.delivered"] * 2
    assert len({e["webhook_id"] for e in events}) == 1  # the receiver dedupes on it


def test_a_job_queued_twice_is_delivered_once(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    use_case: UseCase,
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers()
    message_id = send_with_receipts(tenant, use_case, receiver.url)
    callback(gateway, message_id, use_case.twilio_account_sid, "delivered")
    run_webhooks(aws)
    assert len(receiver.received) == 1
    item = aws_clients.dynamodb().get_item(
        TableName=get_settings().messages_table, Key={"id": {"S": message_id}}
    )["Item"]
    # The stream batch given again after its events were taken (Lambda's retry).
    record = {
        "eventName": "MODIFY",
        "dynamodb": {"OldImage": {**item, "status": {"S": "sent"}}, "NewImage": item},
    }
    assert caller_webhook_events.enqueue_events([record]) == 1
    run_webhooks(aws)
    assert len(receiver.received) == 1


def test_a_hanging_receiver_does_not_hold_up_another_workspace_s_webhook(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    use_case: UseCase,
    receivers: Callable[..., Receiver],
) -> None:
    slow = receivers(hold=threading.Event())
    fast = receivers()
    other = make_tenant(gateway)
    other_use_case = create_use_case(other.workspace_id, use_case_spec())
    create_twilio_secret(other_use_case.twilio_account_sid)
    slow_id = send_with_receipts(tenant, use_case, slow.url)
    fast_id = send_with_receipts(other, other_use_case, fast.url)
    callback(gateway, slow_id, use_case.twilio_account_sid, "delivered")
    callback(gateway, fast_id, other_use_case.twilio_account_sid, "delivered")
    pump_all()
    received = receive_jobs(2)
    # Both jobs in one batch, the hanging receiver's first.
    received.sort(key=lambda m: json.loads(m["Body"])["message_id"] != slow_id)
    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(run_function_on(received)), daemon=True)
    worker.start()
    try:
        assert fast.arrived.wait(20), "the other workspace's webhook waited for the slow one"
        assert slow.arrived.wait(20)
        assert not done  # the batch is still held by the hanging receiver
    finally:
        assert slow.hold is not None
        slow.hold.set()
        worker.join(30)
    assert done == [{"batchItemFailures": []}]
    for message in received:
        aws_clients.sqs().delete_message(
            QueueUrl=get_settings().caller_webhook_queue_url, ReceiptHandle=message["ReceiptHandle"]
        )


# --- the API --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hooks",
        "https://10.0.0.7/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hooks",
        "https://192.168.1.1/",
        "ftp://example.com/",
        "not a url",
    ],
)
def test_a_url_that_is_not_https_or_names_a_private_address_is_refused(
    tenant: Tenant, use_case: UseCase, url: str
) -> None:
    saved = set_settings(CALLER_WEBHOOK_ALLOW_LOOPBACK_HTTP="false")
    try:
        response = tenant.api.send(send_body(use_case, status_callback_url=url))
        use_case_change = tenant.api.request(
            "PATCH", f"/v1/sms/use-cases/{use_case.id}", json_body={"status_callback_url": url}
        )
    finally:
        restore_settings(saved)
    assert response.status == 422
    assert response.json()["error"]["code"] == "callback_url_invalid"
    assert use_case_change.status == 422
    assert use_case_change.json()["error"]["code"] == "callback_url_invalid"
    assert tenant.api.request("GET", "/v1/sms/").json()["items"] == []


def test_a_method_other_than_post_or_get_is_a_validation_error(
    tenant: Tenant, use_case: UseCase
) -> None:
    response = tenant.api.send(
        send_body(
            use_case,
            status_callback_url="https://hooks.example.com/x",
            status_callback_method="PUT",
        )
    )
    assert response.status == 422 and response.json()["error"]["code"] == "validation_error"


def test_the_secret_is_stable_until_rotated_and_then_both_sign_for_a_day(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    use_case: UseCase,
    receivers: Callable[..., Receiver],
) -> None:
    first = secret_of(tenant)
    assert first.startswith("whsec_") and secret_of(tenant) == first
    rotated = tenant.api.request("POST", "/v1/webhook-secret/rotate")
    assert rotated.status == 200
    second = rotated.json()["secret"]
    assert second != first and secret_of(tenant) == second
    receiver = receivers()
    message_id = send_with_receipts(tenant, use_case, receiver.url)
    callback(gateway, message_id, use_case.twilio_account_sid, "sent")
    run_webhooks(aws)
    [request] = receiver.received
    for secret in (first, second):
        Webhook(secret).verify(request.body, request.headers)
    assert secret_of(make_tenant(gateway)) not in (first, second)  # per workspace


def test_the_secret_needs_the_manage_scope(gateway: HttpApiGateway) -> None:
    reader = make_tenant(gateway, scopes=("messages:read",))
    assert reader.api.request("GET", "/v1/webhook-secret").status == 403
    assert reader.api.request("POST", "/v1/webhook-secret/rotate").status == 403


def test_another_workspace_s_message_has_no_attempts_to_show(
    gateway: HttpApiGateway, tenant: Tenant, use_case: UseCase
) -> None:
    message_id = send_with_receipts(tenant, use_case, "https://hooks.example.com/x")
    other = make_tenant(gateway)
    response = other.api.request("GET", f"/v1/sms/{message_id}/webhook-attempts")
    assert response.status == 404
    assert response.json()["error"]["code"] == "message_not_found"
    assert attempts(tenant, message_id) == []


# --- what the review found ------------------------------------------------------------------


def test_characters_sqs_refuses_in_a_body_still_reach_the_receiver(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    use_case: UseCase,
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers()
    text = "code 4242 \ufffe\uffff"  # SQS takes neither as such: the job escapes them
    message_id = send_with_receipts(tenant, use_case, receiver.url, message=text)
    callback(gateway, message_id, use_case.twilio_account_sid, "delivered")
    run_webhooks(aws)  # the stream is not stuck behind the message: it raised nothing
    [event] = verified(tenant, receiver)
    assert event["payload"]["data"]["body"] == text


def test_a_get_receiver_gets_a_long_message_whose_parameters_outgrow_any_url_limit(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    use_case: UseCase,
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers()
    text = "Привет " * 200  # 1400 characters, each 12 bytes once percent-encoded
    message_id = send_with_receipts(
        tenant, use_case, receiver.url, message=text, status_callback_method="GET"
    )
    callback(gateway, message_id, use_case.twilio_account_sid, "delivered")
    run_webhooks(aws)
    [request] = receiver.received
    assert len(request.query) > 2048  # more than a URL may hold
    verified(tenant, receiver)
    assert [a["status_code"] for a in attempts(tenant, message_id)] == [204]


def test_a_delivery_that_failed_before_its_attempt_uses_up_no_retry(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    use_case: UseCase,
    receivers: Callable[..., Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    saved = set_settings(CALLER_WEBHOOK_RETRY_DELAYS="0")  # two attempts in all
    try:
        receiver = receivers(script=[500])
        message_id = send_with_receipts(tenant, use_case, receiver.url)
        callback(gateway, message_id, use_case.twilio_account_sid, "delivered")
        pump_all()
        real = webhook_secrets.signing_secrets

        def unavailable(workspace_id: str) -> list[str]:
            raise RuntimeError("DynamoDB is unavailable")

        monkeypatch.setattr(webhook_secrets, "signing_secrets", unavailable)
        [job] = receive_jobs(1)
        # Each workspace is a tenant of the fair queue: a slow one is served after the others.
        assert job["Attributes"]["MessageGroupId"] == tenant.workspace_id
        result = run_function_on([job])
        assert result == {"batchItemFailures": [{"itemIdentifier": job["MessageId"]}]}
        monkeypatch.setattr(webhook_secrets, "signing_secrets", real)
        show_again(job)
        run_webhooks(aws)  # SQS has delivered it twice and will a third time: 500, then 204
    finally:
        restore_settings(saved)
    assert [r.method for r in receiver.received] == ["POST", "POST"]
    assert [(a["attempt"], a["status_code"]) for a in attempts(tenant, message_id)] == [
        (1, 500),
        (2, 204),
    ]


def test_jobs_an_invocation_has_no_time_left_for_are_handed_back_untried(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    use_case: UseCase,
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers()
    message_id = send_with_receipts(tenant, use_case, receiver.url)
    callback(gateway, message_id, use_case.twilio_account_sid, "delivered")
    pump_all()
    [job] = receive_jobs(1)
    # Less than one attempt (10 s) and its reads and writes left.
    short = LambdaContext(function_name=FUNCTION, timeout_seconds=12)
    result = run_function_on([job], short)
    assert result == {"batchItemFailures": [{"itemIdentifier": job["MessageId"]}]}
    assert receiver.received == [] and attempts(tenant, message_id) == []
    run_webhooks(aws)  # handed back visible at once, not after the queue's visibility timeout
    assert len(receiver.received) == 1
