"""The HTTP server on loopback and ``EumSimulator``, which routes and answers its requests.

``EumSimulator`` owns the state (accepted messages, counters, the event log), applies the rules to
a SendTextMessage request, and publishes each message's events to its configuration set's SNS
topic on the worker thread; ``_Handler`` carries requests to it and writes replies, on the
plumbing of ``sms_local.simulator_http``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from email.message import Message
from typing import Any, Final

import boto3
from botocore.config import Config

from sms_gateway.domain.segments import count_segments
from sms_local.eum_simulator.config import EumSimulatorConfig
from sms_local.eum_simulator.events import _event_json, _EventKind, _Message, _now_ms, _timeline
from sms_local.eum_simulator.rules import (
    JSON_CONTENT_TYPE,
    SEND_TEXT_MESSAGE,
    TARGET_PREFIX,
    _AwsError,
    _check_authorization,
    _check_content_type,
    _check_destination_rules,
    _configuration_set_topic,
    _is_slow,
    _not_found,
    _operation,
    _origination_number,
    _parse_send,
    _SendRequest,
    _service_unavailable,
    _too_large,
    _validation,
)
from sms_local.simulator_http import LoopbackSimulator, SimulatorHandler
from sms_local.twilio_simulator.scheduler import _Scheduler

logger = logging.getLogger(__name__)

CONTROL_PATH: Final = "/_simulator/control"
MESSAGES_PATH: Final = "/_simulator/messages"
_CONTROL_KNOBS: Final = ("outage", "duplicate_events", "reorder_events")
_MAX_REQUEST_BYTES: Final = 64 * 1024
_MAX_DISCARDED_BYTES: Final = 1024 * 1024
# Publishing runs on the one worker thread: a dead SNS endpoint must not hold it up for long.
_SNS_CLIENT_CONFIG: Final = Config(
    retries={"total_max_attempts": 2, "mode": "standard"},
    connect_timeout=2,
    read_timeout=10,
    proxies={},  # loopback traffic must not go through the environment's proxies
)


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    headers: Message
    body: bytes
    too_large: bool = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass(frozen=True)
class _Reply:
    status: int
    payload: dict[str, Any]
    error_code: str | None = None
    slow: bool = False


# --- HTTP plumbing ------------------------------------------------------------------------------


class _Handler(SimulatorHandler["EumSimulator"]):
    server_version = "EumSimulator/1.0"

    def _read_body(self) -> tuple[bytes, bool]:
        length = self._content_length()
        if length <= _MAX_REQUEST_BYTES:
            return self.rfile.read(length), False
        # Refused unparsed. Read and dropped when it is not huge, so that the client, still
        # sending, gets the answer rather than a reset; the connection is closed after it.
        self.close_connection = True
        remaining = length if length <= _MAX_DISCARDED_BYTES else 0
        while remaining > 0 and (chunk := self.rfile.read(min(remaining, _MAX_REQUEST_BYTES))):
            remaining -= len(chunk)
        return b"", True

    def _dispatch(self, method: str) -> None:
        body, too_large = self._read_body() if method == "POST" else (b"", False)
        path = urllib.parse.urlsplit(self.path).path
        reply = self._simulator()._handle(_Request(method, path, self.headers, body, too_large))
        headers = [("x-amzn-RequestId", str(uuid.uuid4()))]
        if reply.error_code is not None:
            headers.append(("x-amzn-ErrorType", reply.error_code))
        self._answer(reply.status, reply.payload, JSON_CONTENT_TYPE, headers, slow=reply.slow)


# --- the simulator ------------------------------------------------------------------------------


class EumSimulator(LoopbackSimulator):
    """An End User Messaging SMS (pinpoint-sms-voice-v2) look-alike on loopback; see the package
    docstring for the contract."""

    def __init__(self, config: EumSimulatorConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(
            host, port, _Handler, _Scheduler("eum-simulator-events"), "eum-simulator-http"
        )
        self.config = config
        self._lock = threading.Lock()
        self._messages: dict[str, _Message] = {}
        self._send_count = 0
        self._publish_failures = 0
        self._event_log: list[dict[str, Any]] = []
        self._sns_clients: dict[tuple[str, str], Any] = {}

    def stop(self) -> None:
        super().stop()
        # Their kept-alive connections would keep a request thread of the SNS server alive.
        clients, self._sns_clients = list(self._sns_clients.values()), {}
        for client in clients:
            client.close()

    # observation

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every accepted message, in order of acceptance."""
        with self._lock:
            return [message.to_json() for message in self._messages.values()]

    @property
    def event_log(self) -> list[dict[str, Any]]:
        """Every event the simulator emitted (each copy), in order, and where it went."""
        with self._lock:
            return [{**entry, "event": dict(entry["event"])} for entry in self._event_log]

    def send_count(self) -> int:
        """Every SendTextMessage request, whatever its outcome."""
        with self._lock:
            return self._send_count

    def publish_failures(self) -> int:
        """Events that had a topic but could not be published to it."""
        with self._lock:
            return self._publish_failures

    def configure(self, **changes: Any) -> None:
        """Change config fields at runtime, e.g. ``configure(duplicate_events=True)``."""
        names = {config_field.name for config_field in dataclasses.fields(EumSimulatorConfig)}
        unknown = set(changes) - names
        if unknown:
            raise TypeError(f"unknown EumSimulatorConfig fields: {sorted(unknown)}")
        with self._lock:
            for name, value in changes.items():
                setattr(self.config, name, value)

    # request handling (called from request threads)

    def _handle(self, request: _Request) -> _Reply:
        try:
            return self._route(request)
        except _AwsError as exc:
            return _Reply(exc.status, exc.to_json(), error_code=exc.code)

    def _route(self, request: _Request) -> _Reply:
        if request.path == CONTROL_PATH and request.method in ("GET", "POST"):
            return self._control(request)
        if request.path == MESSAGES_PATH and request.method == "GET":
            return _Reply(200, {"messages": self.messages})
        if request.path == "/" and request.method == "POST":
            return self._api(request)
        raise _not_found(request.path)

    def _api(self, request: _Request) -> _Reply:
        target = request.header("X-Amz-Target")
        if target == f"{TARGET_PREFIX}.{SEND_TEXT_MESSAGE}":
            with self._lock:
                self._send_count += 1
        with self._lock:
            outage = self.config.outage
        if outage:
            raise _service_unavailable()
        _check_authorization(request.header("Authorization"))
        _operation(target)
        if request.too_large:
            raise _too_large(_MAX_REQUEST_BYTES)
        _check_content_type(request.header("Content-Type"))
        return self._send_text_message(_parse_send(request.body))

    def _send_text_message(self, request: _SendRequest) -> _Reply:
        config = self._config_snapshot()
        origination_number = _origination_number(config, request.origination_identity)
        topic_arn = _configuration_set_topic(config, request.configuration_set)
        _check_destination_rules(request.destination)
        message_id = str(uuid.uuid4())
        if not request.dry_run:
            self._accept(message_id, request, origination_number, topic_arn, config)
        return _Reply(200, {"MessageId": message_id}, slow=_is_slow(request.destination))

    def _accept(
        self,
        message_id: str,
        request: _SendRequest,
        origination_number: str,
        topic_arn: str | None,
        config: EumSimulatorConfig,
    ) -> None:
        segments = count_segments(request.body)
        message = _Message(
            message_id=message_id,
            destination=request.destination,
            origination_identity=request.origination_identity,
            origination_number=origination_number,
            configuration_set=request.configuration_set,
            topic_arn=topic_arn,
            body=request.body,
            message_type=request.message_type,
            time_to_live=request.time_to_live,
            context=request.context,
            encoding=segments.encoding,
            parts=segments.segments,
            request_timestamp=_now_ms(),
        )
        with self._lock:
            self._messages[message_id] = message
        copies = 2 if config.duplicate_events else 1
        timeline = _timeline(request.destination, config.event_delays, config.reorder_events)
        for offset, kind, is_final in timeline:
            emit = functools.partial(self._emit, message_id, kind, is_final, copies)
            self._scheduler.schedule(offset, emit)

    def _control(self, request: _Request) -> _Reply:
        """Test control over HTTP (not an AWS API): read counters, set the knobs."""
        if request.method == "POST":
            try:
                changes = json.loads(request.body or b"{}")
            except ValueError:
                changes = None
            if (
                request.too_large
                or not isinstance(changes, dict)
                or not set(changes) <= set(_CONTROL_KNOBS)
                or not all(isinstance(v, bool) for v in changes.values())
            ):
                message = f"send a JSON object of booleans: {', '.join(_CONTROL_KNOBS)}"
                raise _validation("INVALID_PARAMETER", message, [])
            self.configure(**changes)
        config = self._config_snapshot()
        with self._lock:
            counters = {"send_count": self._send_count, "accepted": len(self._messages)}
        return _Reply(200, {**counters, **{k: getattr(config, k) for k in _CONTROL_KNOBS}})

    def _config_snapshot(self) -> EumSimulatorConfig:
        with self._lock:
            config = self.config
            return dataclasses.replace(
                config,
                origination_identities=dict(config.origination_identities),
                configuration_sets=dict(config.configuration_sets),
            )

    # events (called on the worker thread)

    def _emit(self, message_id: str, kind: _EventKind, is_final: bool, copies: int) -> None:
        with self._lock:
            message = self._messages[message_id]
            event = _event_json(message, kind, is_final, _now_ms())
            topic_arn = message.topic_arn
            endpoint, region = self.config.sns_endpoint_url, self.config.region
        for _ in range(copies):
            error = self._publish(topic_arn, endpoint, region, event)
            published = topic_arn is not None and error is None
            with self._lock:
                self._event_log.append(
                    {
                        "message_id": message_id,
                        "event_type": kind.event_type,
                        "topic_arn": topic_arn,
                        "published": published,
                        "error": error,
                        "event": dict(event),
                        "timestamp": time.time(),
                    }
                )
                if published:
                    message.events.append(kind.event_type)
                elif error is not None:
                    self._publish_failures += 1

    def _publish(
        self, topic_arn: str | None, endpoint: str | None, region: str, event: dict[str, Any]
    ) -> str | None:
        """Publish one event; None when it went out (or there is no destination), else why not.
        Never raises: the worker thread must go on with the next event."""
        if topic_arn is None:
            return None
        if endpoint is None:
            return "no sns_endpoint_url is configured"
        try:
            self._sns_client(endpoint, region).publish(
                TopicArn=topic_arn, Message=json.dumps(event)
            )
        except Exception as exc:
            logger.warning("could not publish %s to %s: %r", event["eventType"], topic_arn, exc)
            return repr(exc)
        return None

    def _sns_client(self, endpoint: str, region: str) -> Any:
        key = (endpoint, region)
        client = self._sns_clients.get(key)
        if client is None:
            # A session of its own: boto3's default session is not safe to share across threads.
            session: Any = boto3.session.Session()
            client = session.client(
                "sns",
                endpoint_url=endpoint,
                region_name=region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",  # noqa: S106 - moto's fixed fake credentials
                config=_SNS_CLIENT_CONFIG,
            )
            self._sns_clients[key] = client
        return client
