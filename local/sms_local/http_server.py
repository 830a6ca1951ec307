"""Serves the HTTP API front over real HTTP on 127.0.0.1, one line of log per request."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from sms_local.gateway import HttpApiGateway, HttpResult
from sms_local.template import PROJECT_ROOT

log = logging.getLogger("sms_local.http")

# API Gateway takes bodies up to 10 MB.
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_LINE = 1024


class _Unreadable(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(status: int, message: str) -> HttpResult:
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return HttpResult(status, {"content-type": "application/json"}, body)


# Generated from the code by `make openapi`; served as the deployed docs would be.
OPENAPI = PROJECT_ROOT / "docs" / "openapi.json"


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _Unreadable as refused:
            # API Gateway's own answer; the connection cannot be reused after a broken framing.
            self.close_connection = True
            self._reply(_json(refused.status, refused.message))
            log.info("%s %s -> %d", self.command, urlsplit(self.path).path, refused.status)
            return
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

    def _read_body(self) -> bytes:
        """The request's body, chunked or not (_Unreadable if its framing is broken or it is
        larger than API Gateway takes)."""
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            return self._read_chunks()
        raw = (self.headers.get("content-length") or "0").strip()
        if not (raw.isascii() and raw.isdigit()):
            raise _Unreadable(400, "Bad Request")
        if len(raw) > len(str(MAX_BODY_BYTES)) or int(raw) > MAX_BODY_BYTES:
            raise _Unreadable(413, "Request Entity Too Large")
        length = int(raw)
        return self.rfile.read(length) if length else b""

    def _read_chunks(self) -> bytes:
        body = bytearray()
        while True:
            size_line = self.rfile.readline(MAX_LINE).split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise _Unreadable(400, "Bad Request") from None
            if size < 0:
                raise _Unreadable(400, "Bad Request")
            if len(body) + size > MAX_BODY_BYTES:
                raise _Unreadable(413, "Request Entity Too Large")
            if size == 0:
                while self.rfile.readline(MAX_LINE).strip():  # trailers, then the blank line
                    pass
                return bytes(body)
            body += self.rfile.read(size)
            self.rfile.readline(MAX_LINE)  # the CRLF after each chunk

    def _reply(self, result: HttpResult) -> None:
        self.send_response(result.status)
        for name, value in result.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(result.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(result.body)

    def __getattr__(self, name: str) -> Any:
        # Every method goes to the gateway, as API Gateway takes every method and answers one
        # no route has with 404 {"message":"Not Found"} (http.server would answer 501).
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

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
