"""HTTP plumbing and lifecycle shared by the provider simulators (Twilio, End User Messaging SMS).

Both bind to an IPv4 loopback address only and serve on a ``LoopbackServer`` from a thread of its
own; their handlers, built on ``SimulatorHandler``, read ``Content-Length`` the same way and write a
JSON reply through ``_answer``, which holds a slow answer for ``SLOW_RESPONSE_SECONDS`` or drops it
unanswered when the simulator stops first. ``LoopbackSimulator`` starts once and stops for good:
the server, its thread and the simulator's worker scheduler. Routing, request parsing, body limits,
replies and their headers stay in each simulator's ``server`` module.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final, Self, cast

if TYPE_CHECKING:
    # For typing only: importing twilio_simulator at run time would import its server, and with it
    # this module, before this module has finished.
    from sms_local.twilio_simulator.scheduler import _Scheduler

SLOW_RESPONSE_SECONDS: Final = 30.0


def require_loopback(host: str) -> None:
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(f"the simulator binds only to an IPv4 loopback address, not {host!r}")


class LoopbackServer(ThreadingHTTPServer):
    # server_close() then joins every request thread, which is what lets stop() leave none behind.
    block_on_close = True

    def __init__(
        self,
        address: tuple[str, int],
        simulator: LoopbackSimulator,
        handler: type[SimulatorHandler[Any]],
    ) -> None:
        self.simulator = simulator
        super().__init__(address, handler)


class SimulatorHandler[S: LoopbackSimulator](BaseHTTPRequestHandler):
    """What the simulators' handlers share; a subclass routes each request in ``_dispatch``."""

    # A client that connects and never sends must not pin a thread that stop() has to join.
    timeout = 10

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        raise NotImplementedError

    def log_message(self, format: str, *args: Any) -> None:
        self._logger().debug("%s - %s", self.address_string(), format % args)

    def _logger(self) -> logging.Logger:
        # The subclass's module: each simulator's lines keep the logger name they always had.
        return logging.getLogger(type(self).__module__)

    def _simulator(self) -> S:
        return cast(S, cast(LoopbackServer, self.server).simulator)

    def _content_length(self) -> int:
        """The request's Content-Length; 0 when it is missing, not a number, or negative."""
        try:
            return max(int(self.headers.get("Content-Length") or 0), 0)
        except ValueError:
            return 0

    def _answer(
        self,
        status: int,
        payload: Mapping[str, Any],
        content_type: str,
        headers: Iterable[tuple[str, str]],
        *,
        slow: bool = False,
    ) -> None:
        """Write ``payload`` as JSON with Content-Type, Content-Length, then ``headers``."""
        if slow and self._simulator()._stopping.wait(SLOW_RESPONSE_SECONDS):
            # Shutting down: drop the connection unanswered, as a dying upstream would.
            self.close_connection = True
            return
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self._logger().debug("client went away before the %s reply", status)


class LoopbackSimulator:
    """A simulator's lifecycle: ``start()`` once, ``stop()`` for good (idempotent, joins every
    thread it started), and the context manager."""

    def __init__(
        self,
        host: str,
        port: int,
        handler: type[SimulatorHandler[Any]],
        scheduler: _Scheduler,
        thread_name: str,
    ) -> None:
        require_loopback(host)
        self._address = (host, port)
        self._handler = handler
        self._scheduler = scheduler
        self._thread_name = thread_name
        self._stopping = threading.Event()
        self._server: LoopbackServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._port: int | None = None

    def start(self) -> None:
        if self._server is not None or self._stopping.is_set():
            raise RuntimeError("a simulator can be started only once")
        server = LoopbackServer(self._address, self, self._handler)
        self._server = server
        self._port = server.server_port
        self._scheduler.start()
        self._serve_thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self._thread_name,
            daemon=True,
        )
        self._serve_thread.start()

    def stop(self) -> None:
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._serve_thread is not None:
            self._serve_thread.join()
        self._scheduler.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the simulator has not been started")
        return f"http://{self._address[0]}:{self._port}"

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until the worker has run every scheduled job (a status change, callback or event,
        published or failed); False when ``timeout`` passes first."""
        return self._scheduler.wait_idle(timeout)
