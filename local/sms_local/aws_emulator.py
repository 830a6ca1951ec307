"""AWS on this machine: moto in server mode on 127.0.0.1, made as atomic as DynamoDB.

DynamoDB applies the condition and the update of one item as one step, and no read sees half of
a write. moto's server serves requests on several threads and its DynamoDB backend checks a
condition and applies an update without any isolation, so two conditional writes to one item can
both pass their condition, and two list_append updates can lose one of the two entries: states
that AWS never produces, and that would make every race test (and every race in the local stack)
a test of moto instead of our code. So every DynamoDB and DynamoDB Streams request runs alone,
behind one lock, from the parsing of its body to the last byte of its answer. That is stricter
than DynamoDB (which isolates per item, not per table), which no caller can tell apart: each
request's outcome is one DynamoDB could have produced. The other services stay concurrent.

The tests, the local stack and the benchmarks all start AWS through `start_local_aws`, so none of
them can forget this. `serialize_dynamodb=False` exists for one reader: the benchmark that
measures what the lock costs, against the same server without it.
"""

from __future__ import annotations

import functools
import io
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto import backends
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

# moto's backend names (the Flask app's `service`) whose data DynamoDB keeps per item.
SERIALIZED_BACKENDS = frozenset({"dynamodb", "dynamodb_v20111205", "dynamodbstreams"})

StartResponse = Callable[..., Any]


class AtomicDynamoDBDispatcher(DomainDispatcherApplication):
    """moto's WSGI dispatcher, running each DynamoDB request to completion before the next."""

    def __init__(self, serialized_backends: frozenset[str] = SERIALIZED_BACKENDS) -> None:
        super().__init__(create_backend_app)
        self.serialized_backends = serialized_backends
        self.dynamodb_lock = threading.Lock()

    def get_backend_for_host(self, host: str | None) -> Any:
        """moto's own answer, with its list of backends read once: moto lists its package
        directory (a listdir and an isdir per service) on every request to ask whether the Host
        names a backend, among the largest self-time entries in a profile of the end-to-end
        benchmark."""
        if host is None:
            return None
        if host == "moto_api" or host in _moto_modules():
            return host
        for backend, pattern in self.backend_url_patterns:
            if pattern.match(f"http://{host}"):
                return backend
        return None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        app = self.get_application(environ)
        if getattr(app, "service", None) not in self.serialized_backends:
            result: Iterable[bytes] = app(environ, start_response)
            return result
        _buffer_body(environ)  # a slow sender must not hold the lock while its body arrives
        with self.dynamodb_lock:
            # The body is produced inside the lock too: a lazily built answer must not be read
            # while the next write changes the item under it.
            answer = app(environ, start_response)
            try:
                return [b"".join(answer)]
            finally:
                close = getattr(answer, "close", None)
                if close is not None:
                    close()


@functools.cache
def _moto_modules() -> frozenset[str]:
    return frozenset(backends.list_of_moto_modules())


def _buffer_body(environ: dict[str, Any]) -> None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return  # moto answers the malformed request as it would have
    if length > 0:
        environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length))


class LocalAws:
    """moto's server on a free port of 127.0.0.1, on a thread of this process."""

    def __init__(self, *, serialize_dynamodb: bool = True) -> None:
        self.dispatcher = AtomicDynamoDBDispatcher(
            SERIALIZED_BACKENDS if serialize_dynamodb else frozenset()
        )
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self.dispatcher, threaded=True, request_handler=MotoRequestHandler
        )
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-aws", daemon=True
        )

    def start(self) -> LocalAws:
        # moto keeps its backends in module globals, not in the server: a server started after
        # another in the same process (mutation testing runs the suite several times in one
        # process) would find the last one's tables. A new server starts empty, as a new
        # account would.
        moto_api_backend.reset()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


def start_local_aws(*, serialize_dynamodb: bool = True) -> LocalAws:
    """Start moto on 127.0.0.1 (a free port) with DynamoDB's per-item atomicity; see the module."""
    return LocalAws(serialize_dynamodb=serialize_dynamodb).start()
