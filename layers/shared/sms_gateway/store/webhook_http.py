"""The HTTP request that delivers one status webhook to a caller's URL.

SSRF: the URL was checked when the caller gave it, but a name may resolve anywhere, and to
something else at the next lookup (DNS rebinding). So each attempt checks the URL again,
resolves its host once, gives up if any address it resolved to is refused
(domain/callback_urls.address_refused), and connects to the first of those checked addresses
itself: nothing looks the name up a second time. TLS is still verified against the host name
(SNI and certificate), and the Host header names it.

The socket and the TLS handshake are the standard library's, not urllib3's: urllib3 makes its
socket and shakes hands inside one call, out of reach of the deadline below, while here the
deadline holds the socket from before it connects.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from sms_gateway.domain.callback_urls import CallbackTarget, address_refused, check_callback_url

ERRORS = (
    "invalid_url",
    "dns_failed",
    "address_refused",
    "connection_refused",
    "timeout",
    "tls_error",
    "connection_error",
)

# Only the status matters. A little of the body is read so that a short answer ends cleanly
# before we close; a big one is not read on.
_BODY_BYTES_READ = 4096

type _Resolved = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]


@dataclass(frozen=True, slots=True)
class HttpAttempt:
    """What one attempt got: a status, or the reason it got none."""

    status: int | None  # the HTTP status received, None when there was no response
    error: str | None  # None when a response came; else one of ERRORS

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _Failed(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def send(
    url: str,
    method: str,
    *,
    body: bytes | None,
    headers: Mapping[str, str],
    allow_loopback_http: bool,
    timeout_seconds: float = 10.0,
    query: str | None = None,
) -> HttpAttempt:
    """One attempt, no redirect followed, at most `timeout_seconds` in all (lookup, connection,
    TLS, request, status and headers). Never raises for a failure of the network or receiver.
    `query` (already encoded) goes after the URL's own query: the URL is what is checked, not
    the event's parameters, whose length is the message's."""
    target = check_callback_url(url, allow_loopback_http=allow_loopback_http)
    if isinstance(target, str):
        return HttpAttempt(status=None, error="invalid_url")
    if query:
        joiner = "&" if "?" in target.request_target else "?"
        target = replace(target, request_target=f"{target.request_target}{joiner}{query}")
    deadline = time.monotonic() + timeout_seconds
    try:
        resolved = _resolve(target, deadline)
        if any(_refused(entry, allow_loopback_http) for entry in resolved):
            raise _Failed("address_refused")
        status = _exchange(target, resolved[0], method, body, headers, deadline)
    except _Failed as failed:
        return HttpAttempt(status=None, error=failed.error)
    return HttpAttempt(status=status, error=None)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Failed("timeout")
    return left


def _resolve(target: CallbackTarget, deadline: float) -> Sequence[_Resolved]:
    """getaddrinfo has no timeout of its own: it runs on a daemon thread that we stop waiting
    for at the deadline (it ends by itself when the resolver gives up)."""
    answers: list[Sequence[_Resolved]] = []

    def look_up() -> None:
        with suppress(OSError, UnicodeError):
            answers.append(
                socket.getaddrinfo(
                    target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
                )
            )

    lookup = threading.Thread(target=look_up, name="webhook-dns", daemon=True)
    lookup.start()
    lookup.join(_remaining(deadline))
    if lookup.is_alive():
        raise _Failed("timeout")
    if not answers or not answers[0]:
        raise _Failed("dns_failed")
    return answers[0]


def _refused(entry: _Resolved, allow_loopback: bool) -> bool:
    family, _, _, _, sockaddr = entry
    if family not in (socket.AF_INET, socket.AF_INET6):
        return True
    try:
        address = ipaddress.ip_address(sockaddr[0])
    except ValueError:
        return True
    return address_refused(address, allow_loopback=allow_loopback)


def _exchange(
    target: CallbackTarget,
    entry: _Resolved,
    method: str,
    body: bytes | None,
    headers: Mapping[str, str],
    deadline: float,
) -> int:
    """The response's status, from the address `entry` (never the name)."""
    family, kind, proto, _, sockaddr = entry
    with socket.socket(family, kind, proto) as sock:
        watchdog = _Watchdog(sock, _remaining(deadline))
        try:
            # Each wait on the socket ends by the deadline; the watchdog ends a series of them.
            sock.settimeout(_remaining(deadline))
            sock.connect(sockaddr)
            stream = sock
            if target.scheme == "https":
                stream = _tls_context().wrap_socket(sock, server_hostname=target.host)
            with stream:
                return _status(stream, sockaddr, target, method, body, headers, watchdog)
        except (OSError, http.client.HTTPException) as exc:
            raise _Failed("timeout" if watchdog.fired else _error_code(exc)) from None
        finally:
            watchdog.stop()


def _status(
    stream: socket.socket,
    sockaddr: Any,
    target: CallbackTarget,
    method: str,
    body: bytes | None,
    headers: Mapping[str, str],
    watchdog: _Watchdog,
) -> int:
    # Given a connected socket and no auto_open, http.client never connects (nor resolves) by
    # itself: the address and port only name the connection.
    connection = http.client.HTTPConnection(sockaddr[0], sockaddr[1])
    connection.sock = stream
    connection.auto_open = 0
    connection.request(
        method, target.request_target, body=body, headers=_request_headers(target, headers)
    )
    with connection.getresponse() as response:
        # http.client takes the end of the stream for the end of the headers: headers cut off
        # by the deadline would pass for complete ones.
        if watchdog.fired:
            raise _Failed("timeout")
        # Read by the same deadline; the status is known already, so a failure here is none.
        with suppress(OSError, http.client.HTTPException):
            response.read(_BODY_BYTES_READ)
        return response.status


def _error_code(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, ssl.SSLError):
        return "tls_error"
    return "connection_error"


def _request_headers(target: CallbackTarget, headers: Mapping[str, str]) -> dict[str, str]:
    # The request goes to an address: the Host header is ours, naming the URL's host. And the
    # connection is used once.
    theirs = {n: v for n, v in headers.items() if n.lower() not in ("host", "connection")}
    return {**theirs, "Host": target.host_header, "Connection": "close"}


@cache
def _tls_context() -> ssl.SSLContext:
    """The system's trust store, certificates and host names verified (as urllib3 does for the
    Twilio client); made once, loading the store takes milliseconds."""
    return ssl.create_default_context()


class _Watchdog:
    """Shuts the connection down at the deadline, whatever it is waiting for. A socket timeout
    bounds one wait only, so a server that sends its answer a byte at a time would never let
    one run out; shutting the connection down ends the wait in progress at once.

    It holds a duplicate descriptor of the socket: shutdown acts on the connection, not on the
    descriptor, and the duplicate stays valid while ssl takes the original over (a connect in
    progress is not ended by it, but is bounded by its own timeout, set to the time left)."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self._handle = sock.dup()
        self._lock = threading.Lock()
        self._stopped = False
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self.fired = True
            with suppress(OSError):
                self._handle.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._stopped = True
            self._handle.close()
