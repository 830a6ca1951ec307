"""The HTTP server on loopback and ``TwilioSimulator``, which routes and answers its requests.

``TwilioSimulator`` owns the state (messages, sticky senders, counters, the callback and inbound
logs), applies the rules to a create request, schedules each message's timeline on the worker
thread and delivers its status callbacks, and posts incoming messages to the Inbound Request URL;
``_Handler`` carries requests to it and writes replies, on the plumbing of
``sms_local.simulator_http``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import secrets
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sms_gateway.domain.segments import count_segments
from sms_gateway.providers.twilio.signature import compute_signature
from sms_local.simulator_http import LoopbackSimulator, SimulatorHandler
from sms_local.twilio_simulator.callbacks import (
    CALLBACK_MAX_RETRIES,
    CALLBACK_RETRY_BACKOFF_SECONDS,
    _callback_params,
    _FormAnswer,
    _post_form,
    _post_form_answer,
    _should_retry,
)
from sms_local.twilio_simulator.config import SimulatorConfig
from sms_local.twilio_simulator.inbound import (
    INBOUND_PATH,
    _inbound_params,
    _InboundRequest,
    _parse_inbound,
)
from sms_local.twilio_simulator.messages import (
    API_VERSION,
    _Message,
    _message_uri,
    _timeline,
    _utcnow,
)
from sms_local.twilio_simulator.rules import (
    _SLOW_SUFFIX,
    _ApiError,
    _bad_request,
    _basic_credentials,
    _check_body,
    _check_from,
    _check_status_callback,
    _check_throttle,
    _check_to,
    _CreateRequest,
    _not_found,
    _outage,
    _parse_create,
    _parse_form,
    _pick_sender,
    _service_pool,
    _token_matches,
    _unauthorized,
    _unsubscribed_is_reported_later,
)
from sms_local.twilio_simulator.scheduler import _Scheduler

CONTROL_PATH: Final = "/_simulator/control"
_CONTROL_KNOBS: Final = (
    "duplicate_callbacks",
    "reorder_callbacks",
    "reject_unsubscribed_synchronously",
    "outage",
)
_MAX_REQUEST_BYTES: Final = 64 * 1024
_CREATE_PATH: Final = re.compile(rf"/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages\.json")
_FETCH_PATH: Final = re.compile(
    rf"/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json"
)


@dataclass(frozen=True)
class _Reply:
    status: int
    payload: dict[str, Any]
    slow: bool = False


# --- HTTP plumbing ------------------------------------------------------------------------------


class _Handler(SimulatorHandler["TwilioSimulator"]):
    server_version = "TwilioSimulator/1.0"

    def _dispatch(self, method: str) -> None:
        body = b""
        if method == "POST":
            # A longer body is cut at the limit, not refused.
            body = self.rfile.read(min(self._content_length(), _MAX_REQUEST_BYTES))
        simulator = self._simulator()
        reply = simulator._handle(method, self.path, self.headers.get("Authorization"), body)
        headers = [("Twilio-Request-Id", "RQ" + secrets.token_hex(16))]
        if reply.status == 401:
            headers.append(("WWW-Authenticate", 'Basic realm="Twilio API"'))
        content_type = "application/json; charset=utf-8"
        self._answer(reply.status, reply.payload, content_type, headers, slow=reply.slow)


# --- the simulator ------------------------------------------------------------------------------


class TwilioSimulator(LoopbackSimulator):
    """A Twilio Messaging API look-alike on loopback; see the package docstring for the contract."""

    def __init__(self, config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(
            host, port, _Handler, _Scheduler("twilio-simulator-callbacks"), "twilio-simulator-http"
        )
        self.config = config
        self._lock = threading.Lock()
        self._messages: dict[str, _Message] = {}
        self._sticky: dict[tuple[str, str], str] = {}
        self._create_count = 0
        self._callback_log: list[dict[str, Any]] = []
        self._inbound_log: list[dict[str, Any]] = []
        # Environment proxies must not capture callbacks aimed at loopback receivers.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # observation

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [message.to_json() for message in self._messages.values()]

    @property
    def callback_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{**entry, "params": dict(entry["params"])} for entry in self._callback_log]

    @property
    def inbound_log(self) -> list[dict[str, Any]]:
        """Every POST of an incoming message to the Inbound Request URL, in order."""
        with self._lock:
            return [{**entry, "params": dict(entry["params"])} for entry in self._inbound_log]

    def create_count(self) -> int:
        with self._lock:
            return self._create_count

    def configure(self, **changes: Any) -> None:
        """Change config fields at runtime, e.g. ``configure(duplicate_callbacks=True)``."""
        names = {config_field.name for config_field in dataclasses.fields(SimulatorConfig)}
        unknown = set(changes) - names
        if unknown:
            raise TypeError(f"unknown SimulatorConfig fields: {sorted(unknown)}")
        with self._lock:
            for name, value in changes.items():
                setattr(self.config, name, value)

    # request handling (called from request threads)

    def _handle(self, method: str, raw_path: str, authorization: str | None, body: bytes) -> _Reply:
        url = urllib.parse.urlsplit(raw_path)
        try:
            return self._route(method, url.path, url.query, authorization, body)
        except _ApiError as exc:
            return _Reply(exc.status, exc.to_json())

    def _route(
        self, method: str, path: str, query: str, authorization: str | None, body: bytes
    ) -> _Reply:
        if method == "POST" and (match := _CREATE_PATH.fullmatch(path)):
            with self._lock:
                self._create_count += 1
                outage = self.config.outage
            if outage:
                raise _outage()
            self._authenticate(authorization, match["account"])
            return self._create(match["account"], _parse_form(body))
        if method == "GET" and (match := _CREATE_PATH.fullmatch(path)):
            self._authenticate(authorization, match["account"])
            return _Reply(200, self._list(match["account"], path, query))
        if method == "GET" and (match := _FETCH_PATH.fullmatch(path)):
            self._authenticate(authorization, match["account"])
            return _Reply(200, self._fetch(match["account"], match["sid"]))
        if path == CONTROL_PATH:
            return self._control(method, body)
        if method == "POST" and path == INBOUND_PATH:
            return self._inbound(body)
        raise _not_found(path)

    def _control(self, method: str, body: bytes) -> _Reply:
        """Test control over HTTP (not a Twilio API): read counters, set the knobs."""
        if method == "POST":
            try:
                changes = json.loads(body or b"{}")
            except ValueError:
                changes = None
            if (
                not isinstance(changes, dict)
                or not set(changes) <= set(_CONTROL_KNOBS)
                or not all(isinstance(v, bool) for v in changes.values())
            ):
                raise _bad_request(
                    0, f"send a JSON object of booleans: {', '.join(_CONTROL_KNOBS)}"
                )
            self.configure(**changes)
        config = self._config_snapshot()
        with self._lock:
            counters = {"create_count": self._create_count, "accepted": len(self._messages)}
        return _Reply(200, {**counters, **{k: getattr(config, k) for k in _CONTROL_KNOBS}})

    def _config_snapshot(self) -> SimulatorConfig:
        with self._lock:
            config = self.config
            return dataclasses.replace(
                config,
                accounts=dict(config.accounts),
                services={sid: list(pool) for sid, pool in config.services.items()},
                service_accounts=dict(config.service_accounts),
            )

    def _authenticate(self, authorization: str | None, path_account: str) -> None:
        credentials = _basic_credentials(authorization)
        if credentials is None:
            raise _unauthorized()
        user, token = credentials
        with self._lock:
            expected = self.config.accounts.get(user)
        if not _token_matches(expected, token) or user != path_account:
            raise _unauthorized()

    def _create(self, account: str, form: Mapping[str, str]) -> _Reply:
        request = _parse_create(form)
        config = self._config_snapshot()
        pool = _service_pool(config.services, request.service_sid)
        _check_to(request.to, unsubscribed_later=_unsubscribed_is_reported_later(request, config))
        _check_from(request.sender, request.to)
        _check_body(request.body)
        _check_status_callback(request.status_callback)
        _check_throttle(request.to)
        sender = self._choose_sender(request, pool, config)
        payload = self._accept(account, request, sender, config)
        return _Reply(201, payload, slow=request.to.endswith(_SLOW_SUFFIX))

    def _choose_sender(
        self, request: _CreateRequest, pool: list[str], config: SimulatorConfig
    ) -> str:
        if request.sender is not None:
            return request.sender
        key = (request.service_sid or "", request.to)
        with self._lock:
            previous = self._sticky.get(key)
            if config.sticky_sender and previous is not None and previous in pool:
                return previous
            chosen = _pick_sender(pool, request.to, config.area_code_geomatch)
            if chosen is None:
                raise _bad_request(
                    21704,
                    f"The Messaging Service {request.service_sid} has no sender that can"
                    f" reach {request.to}.",
                )
            # Remembered even with sticky off, so switching it on honours earlier traffic.
            self._sticky[key] = chosen
            return chosen

    def _accept(
        self, account: str, request: _CreateRequest, sender: str, config: SimulatorConfig
    ) -> dict[str, Any]:
        now = _utcnow()
        message = _Message(
            sid="SM" + secrets.token_hex(16),
            account_sid=account,
            service_sid=request.service_sid,
            to=request.to,
            sender=sender,
            body=request.body,
            num_segments=count_segments(request.body).segments,
            status="accepted" if request.service_sid is not None else "queued",
            status_callback=request.status_callback,
            auth_token=config.accounts.get(account, ""),
            date_created=now,
            date_updated=now,
        )
        with self._lock:
            self._messages[message.sid] = message
            # Taken before the timeline starts so the 201 shows the initial status.
            payload = message.to_json()
        self._schedule_timeline(message.sid, request.to, config, request.validity_period)
        return payload

    def _fetch(self, account: str, sid: str) -> dict[str, Any]:
        with self._lock:
            message = self._messages.get(sid)
            if message is not None and message.account_sid == account:
                return message.to_json()
        raise _not_found(_message_uri(account, sid))

    def _list(self, account: str, path: str, query: str) -> dict[str, Any]:
        filters = {
            name: value
            for name, value in urllib.parse.parse_qsl(query)
            if name in ("To", "From") and value
        }
        with self._lock:
            found = [
                message.to_json()
                for message in reversed(self._messages.values())
                if message.account_sid == account
            ]
        found = [m for m in found if all(m[name.lower()] == v for name, v in filters.items())]
        uri = f"{path}?{urllib.parse.urlencode({**filters, 'PageSize': 1000, 'Page': 0})}"
        return {
            "messages": found,
            "page": 0,
            "page_size": 1000,
            "start": 0,
            "end": max(len(found) - 1, 0),
            "uri": uri,
            "first_page_uri": uri,
            "next_page_uri": None,
            "previous_page_uri": None,
        }

    def _inbound(self, body: bytes) -> _Reply:
        """A phone answers (not a Twilio API): post Twilio's incoming-message webhook now, once or
        twice, without retries, and report what the receiver answered."""
        request = _parse_inbound(body, self._config_snapshot())
        message_sid = "SM" + secrets.token_hex(16)
        params = _inbound_params(request, message_sid)
        signature = compute_signature(request.url, params, request.auth_token)
        attempts: list[dict[str, Any]] = []
        copies = 2 if request.duplicate else 1
        for attempt in range(1, copies + 1):
            answer = _post_form_answer(self._opener, request.url, params, signature)
            self._log_inbound(request, params, signature, answer, attempt)
            attempts.append(
                {
                    "http_status": answer.http_status,
                    "content_type": answer.content_type,
                    "body": answer.body,
                    "error": answer.error,
                }
            )
        return _Reply(200, {"message_sid": message_sid, "attempts": attempts})

    def _log_inbound(
        self,
        request: _InboundRequest,
        params: dict[str, str],
        signature: str,
        answer: _FormAnswer,
        attempt: int,
    ) -> None:
        with self._lock:
            self._inbound_log.append(
                {
                    "url": request.url,
                    "params": dict(params),
                    "signature": signature,
                    "http_status": answer.http_status,
                    "content_type": answer.content_type,
                    "body": answer.body,
                    "error": answer.error,
                    "attempt": attempt,
                    "message_sid": params["MessageSid"],
                    "timestamp": time.time(),
                }
            )

    # status changes and callbacks (called on the worker thread)

    def _schedule_timeline(
        self, sid: str, to: str, config: SimulatorConfig, validity_period: int | None = None
    ) -> None:
        copies = 2 if config.duplicate_callbacks else 1
        timeline = _timeline(to, config.callback_delays, config.reorder_callbacks, validity_period)
        for offset, status, code in timeline:
            fire = functools.partial(self._fire, sid, status, code, copies)
            self._scheduler.schedule(offset, fire)

    def _fire(self, sid: str, status: str, error_code: int | None, copies: int) -> None:
        with self._lock:
            message = self._messages[sid]
            message.advance(status, error_code, _utcnow())
            url = message.status_callback
            token = self.config.accounts.get(message.account_sid, message.auth_token)
            params = _callback_params(message, status, error_code)
        if url is None:
            return
        signature = compute_signature(url, params, token)
        for _ in range(copies):
            self._deliver(url, params, signature, attempt=1)

    def _deliver(self, url: str, params: dict[str, str], signature: str, attempt: int) -> None:
        http_status, error = _post_form(self._opener, url, params, signature)
        with self._lock:
            self._callback_log.append(
                {
                    "url": url,
                    "params": dict(params),
                    "signature": signature,
                    "http_status": http_status,
                    "error": error,
                    "attempt": attempt,
                    "message_sid": params["MessageSid"],
                    "message_status": params["MessageStatus"],
                    "timestamp": time.time(),
                }
            )
        if _should_retry(http_status) and attempt <= CALLBACK_MAX_RETRIES:
            retry = functools.partial(self._deliver, url, params, signature, attempt + 1)
            self._scheduler.schedule(CALLBACK_RETRY_BACKOFF_SECONDS * attempt, retry)
