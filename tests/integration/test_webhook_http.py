"""The outbound webhook request over real sockets, all on 127.0.0.1: a small HTTP(S) receiver that
records what it gets, raw servers that trickle bytes, and (where a host name is needed) a resolver
answering for made-up names instead of DNS."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sms_gateway.store import webhook_http
from sms_gateway.store.webhook_http import HttpAttempt, send

# A name only the fake resolver knows (.test is reserved: it never resolves for real).
HOOKS_NAME = "hooks.example.test"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Reply = Callable[[BaseHTTPRequestHandler], None]


class Receiver(ThreadingHTTPServer):
    """Plays a caller's webhook endpoint: records each request, then answers it with `reply`."""

    daemon_threads = True
    # A handler still sleeping or trickling is told to stop, not waited for.
    block_on_close = False

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.received: list[Recorded] = []
        self.reply: Reply = answer(200)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str = "/hook", scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def record(self, request: Recorded) -> None:
        with self._lock:
            self.received.append(request)

    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self.received)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up on a slow or endless answer is what these tests do on purpose.
        pass

    def close(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_GET(self) -> None:
        self._record_and_reply()

    def do_POST(self) -> None:
        self._record_and_reply()

    def _record_and_reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.record(Recorded(self.command, self.path, headers, body))
        self.server.reply(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def answer(status: int, **headers: str) -> Reply:
    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"ok")

    return reply


def sleep_then_answer(seconds: float) -> Reply:
    def reply(handler: BaseHTTPRequestHandler) -> None:
        stopping = handler.server.stopping  # type: ignore[attr-defined]
        stopping.wait(seconds)
        with suppress(OSError):
            answer(200)(handler)

    return reply


def endless_body(handler: BaseHTTPRequestHandler) -> None:
    stopping = handler.server.stopping  # type: ignore[attr-defined]
    handler.send_response(200)
    handler.send_header("Content-Length", str(10**10))
    handler.end_headers()
    with suppress(OSError):
        while not stopping.is_set():
            handler.wfile.write(b"x" * 65536)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


class Trickler:
    """A raw TCP server that answers each connection with `opening`, then one more byte every
    0.3 s for as long as the client listens."""

    def __init__(self, opening: bytes, byte: bytes) -> None:
        self._opening = opening
        self._byte = byte
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            with connection, suppress(OSError):
                connection.sendall(self._opening)
                while not self._stopping.wait(0.3):
                    connection.sendall(self._byte)

    def close(self) -> None:
        self._stopping.set()
        self._thread.join()
        self._listener.close()


@pytest.fixture
def trickler_of() -> Iterator[Callable[[bytes, bytes], Trickler]]:
    made: list[Trickler] = []

    def make(opening: bytes, byte: bytes) -> Trickler:
        made.append(Trickler(opening, byte))
        return made[-1]

    yield make
    for trickler in made:
        trickler.close()


class FakeResolver:
    """getaddrinfo for made-up names (any other name goes to the real one), counting lookups."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.answers: dict[str, list[str]] = {}
        self.failing: set[str] = set()
        self.slow: set[str] = set()
        self.lookups: list[str] = []
        self.released = threading.Event()
        self._real = real

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        known = self.answers.keys() | self.failing | self.slow
        if host not in known:
            return self._real(host, port, *args, **kwargs)
        self.lookups.append(host)
        if host in self.slow:
            self.released.wait(30)
        if host in self.failing:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, int(port)),
            )
            for address in self.answers.get(host, [])
        ]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeResolver]:
    fake = FakeResolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield fake
    fake.released.set()


def timed(call: Callable[[], HttpAttempt]) -> tuple[HttpAttempt, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(url: str, *, allow_loopback_http: bool = True, **kwargs: Any) -> HttpAttempt:
    return send(
        url,
        "POST",
        body=b"{}",
        headers={"Content-Type": "application/json"},
        allow_loopback_http=allow_loopback_http,
        **kwargs,
    )


# --- answers ------------------------------------------------------------------------------------


def test_post_delivers_the_body_and_headers(receiver: Receiver) -> None:
    body = b'{"type":"message.delivered"}'
    result = send(
        receiver.url("/hook/status"),
        "POST",
        body=body,
        headers={
            "Content-Type": "application/json",
            "webhook-id": "msg_1",
            "Host": "evil.example",
        },
        allow_loopback_http=True,
    )
    assert result == HttpAttempt(status=200, error=None)
    assert result.accepted
    [request] = receiver.requests()
    assert (request.method, request.path, request.body) == ("POST", "/hook/status", body)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == "msg_1"
    assert request.headers["content-length"] == str(len(body))
    # Ours, not the caller's: the URL's host and port.
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"


@pytest.mark.parametrize("status", [500, 404, 302, 301, 307])
def test_other_statuses_are_not_accepted_and_redirects_not_followed(
    receiver: Receiver, status: int
) -> None:
    receiver.reply = answer(status, Location=receiver.url("/elsewhere"))
    result = post(receiver.url())
    assert result == HttpAttempt(status=status, error=None)
    assert not result.accepted
    assert [r.path for r in receiver.requests()] == ["/hook"]


def test_every_2xx_is_accepted(receiver: Receiver) -> None:
    receiver.reply = answer(204)
    assert post(receiver.url()).accepted


def test_get_sends_the_query_and_no_body(receiver: Receiver) -> None:
    url = receiver.url("/hook?type=message.sent&to=%2B14155550100")
    result = send(url, "GET", body=None, headers={"webhook-id": "msg_2"}, allow_loopback_http=True)
    assert result.accepted
    [request] = receiver.requests()
    assert (request.method, request.path, request.body) == (
        "GET",
        "/hook?type=message.sent&to=%2B14155550100",
        b"",
    )
    assert "content-length" not in request.headers
    assert request.headers["webhook-id"] == "msg_2"


def test_a_big_body_is_not_read_on(receiver: Receiver) -> None:
    receiver.reply = endless_body
    result, took = timed(lambda: post(receiver.url(), timeout_seconds=5.0))
    assert result == HttpAttempt(status=200, error=None)
    assert took < 2.5


# --- the deadline -------------------------------------------------------------------------------


def test_a_slow_answer_is_cut_off_at_the_deadline(receiver: Receiver) -> None:
    receiver.reply = sleep_then_answer(3.0)
    result, took = timed(lambda: post(receiver.url(), timeout_seconds=0.5))
    assert result == HttpAttempt(status=None, error="timeout")
    assert took < 2.5


def test_headers_trickled_forever_are_cut_off_at_the_deadline(
    trickler_of: Callable[[bytes, bytes], Trickler],
) -> None:
    # Each byte comes well within any one socket timeout; only the deadline ends this.
    trickler = trickler_of(b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a")
    url = f"http://127.0.0.1:{trickler.port}/hook"
    result, took = timed(lambda: post(url, timeout_seconds=1.0))
    assert result == HttpAttempt(status=None, error="timeout")
    assert took < 2.5


def test_a_tls_handshake_trickled_forever_is_cut_off_at_the_deadline(
    trickler_of: Callable[[bytes, bytes], Trickler],
) -> None:
    # The header of a 16 KB handshake record, whose bytes then come one at a time.
    trickler = trickler_of(b"\x16\x03\x03\x40\x00", b"\x00")
    url = f"https://127.0.0.1:{trickler.port}/hook"
    result, took = timed(lambda: post(url, timeout_seconds=1.0))
    assert result == HttpAttempt(status=None, error="timeout")
    assert took < 2.5


def test_a_slow_lookup_is_cut_off_at_the_deadline(resolver: FakeResolver) -> None:
    resolver.slow.add(HOOKS_NAME)
    result, took = timed(lambda: post(f"https://{HOOKS_NAME}/hook", timeout_seconds=0.5))
    assert result == HttpAttempt(status=None, error="timeout")
    assert took < 2.5


# --- failures -----------------------------------------------------------------------------------


def test_a_closed_port_is_connection_refused() -> None:
    result = post(f"http://127.0.0.1:{closed_port()}/hook")
    assert result == HttpAttempt(status=None, error="connection_refused")


def test_https_to_a_server_without_tls_is_a_tls_error(receiver: Receiver) -> None:
    result = post(receiver.url(scheme="https"))
    assert result == HttpAttempt(status=None, error="tls_error")
    assert receiver.requests() == []


def test_a_name_that_does_not_resolve_is_dns_failed(resolver: FakeResolver) -> None:
    resolver.failing.add(HOOKS_NAME)
    assert post(f"https://{HOOKS_NAME}/hook") == HttpAttempt(status=None, error="dns_failed")
    resolver.answers["empty.example.test"] = []
    assert post("https://empty.example.test/") == HttpAttempt(status=None, error="dns_failed")


# --- SSRF ---------------------------------------------------------------------------------------


def test_without_loopback_nothing_is_sent_to_this_machine(receiver: Receiver) -> None:
    for url in (
        receiver.url(),
        receiver.url(scheme="https"),
        # localhost is refused by the URL's own rules, before any lookup.
        receiver.url(scheme="https", host="localhost"),
        receiver.url(scheme="https", host="2130706433"),
    ):
        assert post(url, allow_loopback_http=False) == HttpAttempt(None, "invalid_url"), url
    assert receiver.requests() == []


def test_a_name_that_resolves_to_a_refused_address_is_not_called(
    receiver: Receiver, resolver: FakeResolver
) -> None:
    resolver.answers[HOOKS_NAME] = ["127.0.0.1"]
    url = receiver.url(scheme="https", host=HOOKS_NAME)
    assert post(url, allow_loopback_http=False) == HttpAttempt(None, "address_refused")
    assert receiver.requests() == []


@pytest.mark.parametrize(
    "refused", ["10.0.0.1", "169.254.169.254", "::ffff:192.168.0.1", "fd00:ec2::254"]
)
def test_one_refused_address_among_those_resolved_refuses_the_attempt(
    receiver: Receiver, resolver: FakeResolver, refused: str
) -> None:
    # The first would be allowed (loopback is, here), but any of them could be the one a second
    # lookup gives: none is used.
    resolver.answers[HOOKS_NAME] = ["127.0.0.1", refused]
    url = receiver.url(scheme="https", host=HOOKS_NAME)
    assert post(url) == HttpAttempt(None, "address_refused")
    assert receiver.requests() == []


def test_an_invalid_url_is_neither_resolved_nor_called(resolver: FakeResolver) -> None:
    resolver.answers[HOOKS_NAME] = ["8.8.8.8"]
    for url in (f"http://{HOOKS_NAME}/", f"https://u:p@{HOOKS_NAME}/", f"https://{HOOKS_NAME}/#x"):
        assert post(url) == HttpAttempt(None, "invalid_url")
    assert resolver.lookups == []


# --- TLS to a pinned address --------------------------------------------------------------------


@dataclass
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext
    server_names: list[str | None]


def tls_for(name: str, directory: Path) -> Tls:
    """A server certificate for `name`, from a CA that only the returned client context trusts."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook test CA")])
    now = datetime.now(UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    chain = directory / "server.pem"
    chain.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(chain)
    server_names: list[str | None] = []
    server.sni_callback = lambda _socket, sni, _context: server_names.append(sni)
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return Tls(server, client, server_names)


@pytest.fixture
def tls_receiver_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], tuple[Receiver, Tls]]]:
    """An HTTPS receiver whose certificate names the given host; send trusts its CA only."""
    made: list[Receiver] = []

    def make(name: str) -> tuple[Receiver, Tls]:
        tls = tls_for(name, tmp_path)
        monkeypatch.setattr(webhook_http, "_tls_context", lambda: tls.client)
        made.append(Receiver(tls=tls.server))
        return made[-1], tls

    yield make
    for server in made:
        server.close()


def test_https_goes_to_the_checked_address_and_verifies_the_name(
    tls_receiver_for: Callable[[str], tuple[Receiver, Tls]], resolver: FakeResolver
) -> None:
    receiver, tls = tls_receiver_for(HOOKS_NAME)
    resolver.answers[HOOKS_NAME] = ["127.0.0.1"]
    result = post(receiver.url("/hook?x=1", scheme="https", host=HOOKS_NAME))
    assert result == HttpAttempt(status=200, error=None)
    # One lookup: the connection went to the address it gave, not to a second one.
    assert resolver.lookups == [HOOKS_NAME]
    assert tls.server_names == [HOOKS_NAME]
    [request] = receiver.requests()
    assert request.path == "/hook?x=1"
    assert request.headers["host"] == f"{HOOKS_NAME}:{receiver.port}"


def test_a_certificate_for_another_name_is_a_tls_error(
    tls_receiver_for: Callable[[str], tuple[Receiver, Tls]], resolver: FakeResolver
) -> None:
    receiver, _ = tls_receiver_for("other.example.test")
    resolver.answers[HOOKS_NAME] = ["127.0.0.1"]
    result = post(receiver.url(scheme="https", host=HOOKS_NAME))
    assert result == HttpAttempt(status=None, error="tls_error")
    assert receiver.requests() == []


def test_a_certificate_for_the_name_does_not_do_for_its_address(
    tls_receiver_for: Callable[[str], tuple[Receiver, Tls]],
) -> None:
    # Reached by address, the certificate must name the address.
    receiver, _ = tls_receiver_for(HOOKS_NAME)
    result = post(receiver.url(scheme="https"))
    assert result == HttpAttempt(status=None, error="tls_error")
