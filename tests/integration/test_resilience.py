"""What happens when a dependency fails at the worst moment: nothing is lost, nothing is sent
twice, and a passing outage is not mistaken for a forgery or a permanent failure."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import socket
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sms_gateway.domain.clock import now_iso
from sms_gateway.domain.errors import ServiceUnavailableError
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic import handoff
from sms_gateway.providers.twilio import client as twilio_client
from sms_gateway.store import aws_clients, opt_out_store, secrets, transitions
from sms_local.gateway import HttpApiGateway
from tests.integration.conftest import Tenant, restore_settings, set_settings
from tests.integration.test_send_api import drain_handoff_queue, send_body
from tests.integration.test_status_callback import callback


@pytest.fixture(autouse=True)
def _fresh() -> None:
    drain_handoff_queue()
    secrets.reset()


def test_a_secrets_outage_is_a_5xx_for_callbacks_not_a_forgery(
    gateway: HttpApiGateway, tenant: Tenant, use_case: UseCase
) -> None:
    message_id = tenant.api.send(send_body(use_case)).json()["id"]
    with Stubber(aws_clients.secretsmanager()) as stub:
        stub.add_client_error("get_secret_value", "ThrottlingException", http_status_code=400)
        result = callback(gateway, message_id, use_case.twilio_account_sid, "delivered")
    assert result.status == 503
    # And once Secrets Manager answers again, the same callback is applied
    assert callback(gateway, message_id, use_case.twilio_account_sid, "delivered").status == 204
    assert tenant.api.request("GET", f"/v1/sms/{message_id}").json()["status"] == "delivered"


def test_a_secrets_outage_makes_the_handoff_wait_not_fail(
    tenant: Tenant, use_case: UseCase
) -> None:
    message_id = tenant.api.send(send_body(use_case)).json()["id"]
    with (
        Stubber(aws_clients.secretsmanager()) as stub,
        pytest.raises(handoff.RetryHandoffLater),
    ):
        stub.add_client_error("get_secret_value", "InternalServiceError", http_status_code=500)
        handoff.hand_off(message_id)
    message: dict[str, Any] = tenant.api.request("GET", f"/v1/sms/{message_id}").json()
    assert message["status"] == "pending" and message["error_code"] is None
    # No claim is left behind, so the next delivery of the SQS message may try again.
    assert transitions.claim_for_handoff(message_id, now_iso())


def test_unknown_accounts_are_remembered_briefly(gateway: HttpApiGateway) -> None:
    calls: list[str] = []

    def count(event_name: str, **kwargs: Any) -> None:
        calls.append(event_name)

    client = aws_clients.secretsmanager()
    client.meta.events.register("before-call.secrets-manager.GetSecretValue", count)
    try:
        made_up = "AC" + uuid.uuid4().hex
        for _ in range(3):
            assert callback_from(gateway, made_up).status == 403
    finally:
        client.meta.events.unregister("before-call.secrets-manager.GetSecretValue", count)
    assert len(calls) == 1


def callback_from(gateway: HttpApiGateway, account_sid: str) -> Any:
    from tests.integration.test_status_callback import callback_params, post_signed

    params = callback_params(account_sid, "delivered")
    return post_signed(gateway, f"message_id={uuid.uuid4()}", params, "not-a-token")


# --- The opt-out list's BatchGetItem --------------------------------------------------------


def test_an_opt_out_lookup_left_unprocessed_is_asked_again_and_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a number opted out of a use case, and DynamoDB leaving the first lookup unprocessed
    # (it does so under load; moto never does, so the first answer is DynamoDB's, made up)
    scope = opt_out_store.use_case_scope(str(uuid.uuid4()))
    opt_out_store.add_opt_out(scope, "+14155552671", "test")
    table = os.environ["OPT_OUTS_TABLE"]
    real_call = BaseClient._make_api_call  # type: ignore[attr-defined]
    batch_gets: list[dict[str, Any]] = []

    def first_left_unprocessed(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation != "BatchGetItem":
            return real_call(client, operation, params)
        batch_gets.append(params)
        if len(batch_gets) == 1:
            return {"Responses": {table: []}, "UnprocessedKeys": params["RequestItems"]}
        return real_call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", first_left_unprocessed)
    pauses: list[float] = []
    # Then the unprocessed keys are asked for again, after a pause, and the real answer counts
    assert opt_out_store.is_opted_out([scope], "+14155552671", sleep=pauses.append)
    assert len(batch_gets) == 2 and len(pauses) == 1 and pauses[0] > 0


def test_an_opt_out_lookup_that_stays_unprocessed_is_unavailable_not_a_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = os.environ["OPT_OUTS_TABLE"]
    calls: list[str] = []

    def always_unprocessed(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        calls.append(operation)
        assert len(calls) < 50, "a tight loop"
        return {"Responses": {table: []}, "UnprocessedKeys": params["RequestItems"]}

    monkeypatch.setattr(BaseClient, "_make_api_call", always_unprocessed)
    with pytest.raises(ServiceUnavailableError):
        opt_out_store.is_opted_out(["use_case#x"], "+14155552671", sleep=lambda _: None)
    assert 1 < len(calls) <= opt_out_store.BATCH_GET_ATTEMPTS


# --- DynamoDB throttling the record of Twilio's answer --------------------------------------------


class ThrottledAnswerRecord:
    """Lets the handoff's claim through, then answers the next `times` UpdateItem calls on the
    messages table with DynamoDB's throttling error instead of making them (as the client raises
    it once botocore's own attempts are spent)."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.updates = 0
        self.refused = 0

    def __call__(self, params: dict[str, Any], **_: Any) -> Any:
        if json.loads(params["body"]).get("TableName") != os.environ["MESSAGES_TABLE"]:
            return None
        self.updates += 1
        if self.updates == 1 or self.refused == self.times:
            return None  # the claim, and whatever comes after the throttling
        self.refused += 1
        error = {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"}
        return AWSResponse("https://dynamodb", 400, HTTPHeaders(), None), {"Error": error}


@pytest.fixture
def twilio_accepts(monkeypatch: pytest.MonkeyPatch) -> str:
    """Twilio accepts every message (the adapter's answer, without a network call); its SID."""
    sid = "SM" + uuid.uuid4().hex
    accepted = twilio_client.Accepted(sid, 1, "+14155550100")
    monkeypatch.setattr(twilio_client, "create_message", lambda **_: accepted)
    return sid


@pytest.fixture
def backoff_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the handoff takes between its attempts at a write (recorded, not slept)."""
    pauses: list[float] = []
    monkeypatch.setattr(handoff, "time", SimpleNamespace(sleep=pauses.append))
    return pauses


def test_an_acceptance_whose_record_dynamodb_throttles_is_recorded_not_failed_later(
    tenant: Tenant, use_case: UseCase, twilio_accepts: str, backoff_pauses: list[float]
) -> None:
    # Given Twilio accepts the message and DynamoDB throttles recording that, three times
    message_id = tenant.api.send(send_body(use_case)).json()["id"]
    throttle = ThrottledAnswerRecord(times=3)
    events = aws_clients.dynamodb().meta.events
    events.register("before-call.dynamodb.UpdateItem", throttle)
    try:
        outcome = handoff.hand_off(message_id)
    finally:
        events.unregister("before-call.dynamodb.UpdateItem", throttle)

    # Then the answer is recorded after growing pauses
    assert outcome is handoff.HandoffOutcome.ACCEPTED
    assert (throttle.refused, backoff_pauses) == (3, [0.2, 0.4, 0.8])
    message = tenant.api.request("GET", f"/v1/sms/{message_id}").json()
    assert (message["status"], message["message_sid"]) == ("pending", twilio_accepts)
    # And a redelivery of the SQS message finds it handed off: never failed as outcome unknown
    assert handoff.hand_off(message_id) is handoff.HandoffOutcome.ALREADY_HANDLED


def test_an_acceptance_throttled_past_every_attempt_raises_dynamodbs_error(
    tenant: Tenant, use_case: UseCase, twilio_accepts: str, backoff_pauses: list[float]
) -> None:
    message_id = tenant.api.send(send_body(use_case)).json()["id"]
    throttle = ThrottledAnswerRecord(times=100)
    events = aws_clients.dynamodb().meta.events
    events.register("before-call.dynamodb.UpdateItem", throttle)
    try:
        with pytest.raises(ClientError) as caught:
            handoff.hand_off(message_id)
    finally:
        events.unregister("before-call.dynamodb.UpdateItem", throttle)

    # Four attempts, then DynamoDB's own error: the SQS message is retried, and the claim left
    # without an answer is resolved as the README says (99001 once stale).
    assert caught.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert (throttle.refused, backoff_pauses) == (4, [0.2, 0.4, 0.8])
    message = tenant.api.request("GET", f"/v1/sms/{message_id}").json()
    assert (message["status"], message["message_sid"]) == ("pending", None)


# --- The Twilio adapter against real sockets --------------------------------------------------
# Before a single byte of the request left, a failure certainly created nothing (RetryLater);
# after, the request may have reached Twilio (OutcomeUnknown). No urllib3 internals are mocked:
# each case is a real socket on this machine behaving as a failing network or server would.


@contextmanager
def provider_settings(**values: str) -> Iterator[None]:
    saved = set_settings(**values)
    try:
        yield
    finally:
        restore_settings(saved)


def create_message() -> twilio_client.HandoffResult:
    return twilio_client.create_message(
        account_sid="AC" + "0" * 32,
        auth_token="token",
        to="+14155552671",
        body="Hello",
        messaging_service_sid="MG" + "0" * 32,
        status_callback="https://sms.example.test/v1/webhook/twilio/sms-status?message_id=x",
    )


@dataclass
class Certificate:
    cert_file: Path
    key_file: Path


def self_signed_certificate(directory: Path) -> Certificate:
    """A certificate for 127.0.0.1 that no trust store holds."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sms-gateway test provider")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "provider.pem", directory / "provider.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_file, key_file)


@dataclass
class LocalServer:
    url: str
    # What each connection received once open (after its TLS handshake, when there is one).
    received: list[bytes] = field(default_factory=list)


def read_request(connection: socket.socket) -> bytes:
    """Everything up to the end of the request's headers and its body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
         if line.lower().startswith(b"content-length:")),
        0,
    )  # fmt: skip
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@contextmanager
def socket_server(
    handle: Callable[[socket.socket, threading.Event], bytes],
    *,
    tls: Certificate | None = None,
) -> Iterator[LocalServer]:
    """A one-connection-at-a-time server on 127.0.0.1; `handle` gets each open connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    port = listener.getsockname()[1]
    server = LocalServer(f"{'https' if tls else 'http'}://127.0.0.1:{port}")
    stop = threading.Event()
    context = None
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert_file, tls.key_file)

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            raw.settimeout(5)
            connection = raw
            try:
                connection = context.wrap_socket(raw, server_side=True) if context else raw
                server.received.append(handle(connection, stop))
            except (ssl.SSLError, OSError):
                pass  # the client gave up on the handshake: nothing of the request arrived
            finally:
                # The TLS socket took over raw's descriptor: closing only raw would leave the
                # connection open, and the client waiting out its read timeout for the hang-up.
                connection.close()
                raw.close()

    thread = threading.Thread(target=serve, name="test-provider", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def close_after_the_request(connection: socket.socket, stop: threading.Event) -> bytes:
    """Take the whole request, then hang up without a word (the server died mid-answer)."""
    return read_request(connection)


def never_speak(connection: socket.socket, stop: threading.Event) -> bytes:
    """Accept the connection and say nothing, not even the TLS server hello."""
    stop.wait()
    return b""


@contextmanager
def untrusted_tls_server(directory: Path) -> Iterator[LocalServer]:
    """A provider whose certificate the client does not trust."""
    with socket_server(close_after_the_request, tls=self_signed_certificate(directory)) as server:
        yield server


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_refused_connection_is_retried_later() -> None:
    with provider_settings(TWILIO_API_BASE_URL=f"http://127.0.0.1:{unused_port()}"):
        result = create_message()
    assert isinstance(result, twilio_client.RetryLater), result


def test_a_provider_name_that_does_not_resolve_is_retried_later() -> None:
    with provider_settings(TWILIO_API_BASE_URL="https://api.twilio.invalid"):
        result = create_message()
    assert isinstance(result, twilio_client.RetryLater), result


def test_a_connection_that_is_never_accepted_is_retried_later() -> None:
    # Given a listener whose accept queue is full: the kernel drops further connection attempts
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        queued = [socket.create_connection(("127.0.0.1", port), timeout=1) for _ in range(1)]
        try:
            with provider_settings(
                TWILIO_API_BASE_URL=f"http://127.0.0.1:{port}",
                PROVIDER_CONNECT_TIMEOUT_SECONDS="0.2",
            ):
                result = create_message()
        finally:
            for connection in queued:
                connection.close()
    assert isinstance(result, twilio_client.RetryLater), result


def test_an_untrusted_certificate_is_retried_later_before_any_request_byte(
    tmp_path: Path,
) -> None:
    with (
        untrusted_tls_server(tmp_path) as server,
        provider_settings(TWILIO_API_BASE_URL=server.url),
    ):
        result = create_message()
    assert isinstance(result, twilio_client.RetryLater), result
    assert server.received == []


def test_a_tls_handshake_that_never_completes_is_retried_later() -> None:
    # urllib3 reports a handshake timeout as a *read* timeout, yet no request byte has left
    with (
        socket_server(never_speak) as server,
        provider_settings(
            TWILIO_API_BASE_URL=server.url.replace("http://", "https://"),
            PROVIDER_CONNECT_TIMEOUT_SECONDS="0.2",
        ),
    ):
        result = create_message()
    assert isinstance(result, twilio_client.RetryLater), result


def test_a_connection_closed_after_the_request_left_is_outcome_unknown() -> None:
    with (
        socket_server(close_after_the_request) as server,
        provider_settings(TWILIO_API_BASE_URL=server.url),
    ):
        result = create_message()
    assert isinstance(result, twilio_client.OutcomeUnknown), result
    [request] = server.received
    assert request.startswith(b"POST /2010-04-01/Accounts/")


def test_a_tls_connection_closed_after_the_request_left_is_outcome_unknown(
    tmp_path: Path,
) -> None:
    # Given a provider this client trusts (its certificate is the trust store)
    certificate = self_signed_certificate(tmp_path)
    with (
        socket_server(close_after_the_request, tls=certificate) as server,
        provider_settings(TWILIO_API_BASE_URL=server.url, SSL_CERT_FILE=str(certificate.cert_file)),
    ):
        result = create_message()
    assert isinstance(result, twilio_client.OutcomeUnknown), result
    [request] = server.received
    assert request.startswith(b"POST /2010-04-01/Accounts/")
