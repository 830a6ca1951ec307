"""Serves the HTTP API front over real HTTP on 127.0.0.1, one line of log per request."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from sms_local.gateway import HttpApiGateway, HttpResult
from sms_local.template import PROJECT_ROOT

log = logging.getLogger("sms_local.http")

# Generated from the code by `make openapi`; served as the deployed docs would be.
OPENAPI = PROJECT_ROOT / "docs" / "openapi.json"


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        if self.command == "GET" and parts.path == "/openapi.json":
            self._reply(HttpResult(200, {"content-type": "application/json"}, OPENAPI.read_bytes()))
            return
        result = self.server.gateway.handle(
            self.command,
            parts.path,
            parts.query,
            {name: value for name, value in self.headers.items()},
            body,
            source_ip=self.client_address[0],
        )
        self._reply(result)
        log.info("%s %s -> %d", self.command, parts.path, result.status)

    def _reply(self, result: HttpResult) -> None:
        self.send_response(result.status)
        for name, value in result.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(result.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(result.body)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: _serve logs one line per request without the query string (it may hold ids)."""


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, gateway: HttpApiGateway, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.gateway = gateway
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="api-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread:  # shutdown() would wait forever for a loop that never ran
            self.shutdown()
            self._thread.join(timeout=5)
        self.server_close()
