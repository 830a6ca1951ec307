"""Local stand-in for the slice of Twilio's Messaging REST API that the gateway uses.

The gateway's real HTTP adapter is pointed at it in tests, so it answers the way Twilio does: the
same paths, HTTP Basic auth (user = AccountSid, password = auth token), form-encoded requests,
Twilio's Message JSON and error JSON, and status callbacks signed with X-Twilio-Signature exactly
as Twilio signs them. It listens on loopback only.

    python -m sms_local.twilio_simulator --account AC...:token --service MG...:+14155550100

Endpoints
---------
``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (To, Body, MessagingServiceSid or From,
optional StatusCallback) answers 201 with the Message JSON. ``GET .../Messages/{Sid}.json``
answers 200 with the message as it is now, or 404/20404 when the sid is unknown to that account.
``GET .../Messages.json`` lists the account's messages, newest first, on one page of Twilio's list
JSON (``messages`` and the paging keys), filtered by To and From when given, so a test can count
what was sent to a number of its own while other tests send too. Any other path is 404/20404.
Every POST to the create path counts in ``create_count()``, whatever its outcome (401s
included).

Rejections, checked in this order (error JSON: code, message, more_info, status)
---------------------------------------------------------------------------------
======  =====  ==========================================================================
status  code   when
======  =====  ==========================================================================
401     20003  Basic auth missing or wrong, or the path AccountSid is not the auth user
400     21604  To missing or empty
400     21602  Body missing or empty
400     21603  neither From nor MessagingServiceSid
400     21701  MessagingServiceSid not configured
400     21211  To is not E.164 (``+`` then 2-15 digits, no leading zero)
400     21617  Body longer than 1600 characters
400     21609  StatusCallback is not an absolute http(s) URL
400     (*)    Twilio's magic test numbers for To, see below (``+15005550004`` only without a
               Messaging Service, or with ``reject_unsubscribed_synchronously``)
429     20429  To ends in ``5550429`` (retry knob)
503     20503  To ends in ``5550503`` (retry knob)
400     21704  no sender in the service pool can reach To (simulator's choice of code)
======  =====  ==========================================================================

Magic numbers and suffixes for To -- a contract the end-to-end tests rely on
---------------------------------------------------------------------------
=================  ========================================================================
To                 result
=================  ========================================================================
+15005550001       400 21211 invalid 'To' number (Twilio test number)
+15005550002       400 21612 cannot route to this number (Twilio test number)
+15005550003       400 21408 no permission for the region (Twilio test number)
+15005550004       recipient unsubscribed (Twilio test number). Through a Messaging Service it
                   is accepted (201, ``accepted``) and then failed by callback with ErrorCode
                   21610, as Twilio reports a STOP for service sends; with From only, or with
                   the ``reject_unsubscribed_synchronously`` knob on, 400 21610 at once
+15005550009       400 21614 not a mobile number (Twilio test number)
...5550429         429 20429 Too Many Requests; nothing is created
...5550503         503 20503 Service unavailable; nothing is created
...5550777         accepted (stored, callbacks scheduled, outcome "delivered") but the 201 is
                   held back for 30 s, or until stop(), so a client hits its read timeout
...5550030         callbacks queued, sent, undelivered with ErrorCode 30003
...5550031         callbacks queued, sent, undelivered with ErrorCode 30005
...5550040         callbacks queued, sent; no delivery receipt, the message rests at "sent"
...5550050         callbacks queued, failed with ErrorCode 30007 (no "sent")
anything else      callbacks queued, sent, delivered
=================  ========================================================================

Timeline: ``queued`` fires right after acceptance, ``sent`` after ``callback_delays[0]``, the
final status ``callback_delays[1]`` later (``failed`` for ``5550050`` fires when ``sent``
would have; the unsubscribed number's ``failed`` is its only callback, fired right after
acceptance: Twilio refuses it before queueing it to a sender). The message's status advances as
these fire, whether or not a StatusCallback was given, and never moves backwards, so with
``reorder_callbacks`` the receiver sees the final status first while the fetched message still
ends at it. A message created with a MessagingServiceSid starts as ``accepted``, one created with
From only as ``queued``.

Callbacks go out one at a time from a single worker thread, form-encoded, with Twilio's
parameters (AccountSid, ApiVersion, From, MessageSid, MessageStatus, MessagingServiceSid when a
service was used, SmsSid, SmsStatus, To, and ErrorCode on failed/undelivered), User-Agent
``TwilioProxy/1.1`` and X-Twilio-Signature computed over the StatusCallback URL exactly as given.
An attempt that gets no HTTP answer or a 5xx is retried at most twice (0.1 s, then 0.2 s later);
every attempt is appended to ``callback_log``.

Knobs
-----
``GET /_simulator/control`` answers the counters (create_count, accepted) and the knobs;
``POST /_simulator/control`` with a JSON object such as ``{"duplicate_callbacks": true}`` sets
them, so end-to-end tests that reach the simulator only over HTTP can turn them.

``duplicate_callbacks`` sends every callback twice in a row; ``reorder_callbacks`` sends the
final status first, then ``sent``, then ``queued``. Both are read when a message is accepted.
``reject_unsubscribed_synchronously`` answers a Messaging Service send to ``+15005550004`` with
400 21610 instead of accepting it (the synchronous answer a send without a service gets), for
checks of a client's synchronous 21610 handling.
They, and the rest of the config, may be changed at runtime with ``configure(...)`` or by
assigning to ``sim.config``'s attributes; the simulator only reads the config under its lock.

Sender selection for a Messaging Service
----------------------------------------
From, when given, is used as is. Otherwise, in order: sticky sender (the sender last used for
this service and To, if it is still in the pool and ``sticky_sender`` is on); area-code geomatch
for a +1 destination (the first +1 sender whose area code equals the recipient's, when
``area_code_geomatch`` is on); else the first sender in pool order that can reach To. A +1
destination can only be reached from an E.164 sender, never from an alphanumeric ID.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import email.utils
import functools
import heapq
import hmac
import http.client
import ipaddress
import itertools
import json
import logging
import re
import secrets
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Final, cast

from sms_gateway.segments import count_segments
from sms_gateway.twilio_signature import compute_signature

__all__ = ["API_VERSION", "SimulatorConfig", "TwilioSimulator", "main"]

logger = logging.getLogger(__name__)

API_VERSION: Final = "2010-04-01"
SLOW_RESPONSE_SECONDS: Final = 30.0
CALLBACK_TIMEOUT_SECONDS: Final = 5.0
CALLBACK_MAX_RETRIES: Final = 2
CALLBACK_RETRY_BACKOFF_SECONDS: Final = 0.1
USER_AGENT: Final = "TwilioProxy/1.1"
CONTROL_PATH: Final = "/_simulator/control"
_CONTROL_KNOBS: Final = (
    "duplicate_callbacks",
    "reorder_callbacks",
    "reject_unsubscribed_synchronously",
)

_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
_MAX_BODY_CHARS: Final = 1600
_MAX_REQUEST_BYTES: Final = 64 * 1024
_E164: Final = re.compile(r"\+[1-9]\d{1,14}")
_NANP: Final = re.compile(r"\+1\d{10}")
_CREATE_PATH: Final = re.compile(rf"/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages\.json")
_FETCH_PATH: Final = re.compile(
    rf"/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json"
)

_UNSUBSCRIBED_TO: Final = "+15005550004"
_UNSUBSCRIBED_ERROR: Final = (21610, "Attempt to send to unsubscribed recipient")
_MAGIC_TO_ERRORS: Final[Mapping[str, tuple[int, str]]] = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: {to}, is not currently reachable via SMS."),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the"
        " 'To' number: {to}.",
    ),
    _UNSUBSCRIBED_TO: _UNSUBSCRIBED_ERROR,
    "+15005550009": (21614, "'To' number {to} is not a valid mobile number"),
}
_THROTTLE_SUFFIXES: Final[Mapping[str, tuple[int, int, str]]] = {
    "5550429": (429, 20429, "Too Many Requests"),
    "5550503": (503, 20503, "Service unavailable"),
}
_SLOW_SUFFIX: Final = "5550777"

# Callbacks can be delivered out of order; the resource itself must only ever move forward.
_STATUS_RANK: Final[Mapping[str, int]] = {
    "accepted": 0,
    "queued": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
}
_DELIVERY_ERRORS: Final[Mapping[int, str]] = {
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30007: "Message filtered",
    _UNSUBSCRIBED_ERROR[0]: _UNSUBSCRIBED_ERROR[1],
}


@dataclass(frozen=True)
class _Outcome:
    final_status: str | None  # None: the carrier never sends a delivery receipt
    error_code: int | None = None
    via_sent: bool = True
    via_queued: bool = True


_DELIVERED: Final = _Outcome("delivered")
_OUTCOME_SUFFIXES: Final[Mapping[str, _Outcome]] = {
    "5550030": _Outcome("undelivered", 30003),
    "5550031": _Outcome("undelivered", 30005),
    "5550040": _Outcome(None),
    "5550050": _Outcome("failed", 30007, via_sent=False),
}
# Reached only through a Messaging Service (otherwise refused at once, see _check_to).
_UNSUBSCRIBED: Final = _Outcome("failed", _UNSUBSCRIBED_ERROR[0], via_sent=False, via_queued=False)


@dataclass
class SimulatorConfig:
    accounts: dict[str, str]  # AccountSid -> auth token
    services: dict[str, list[str]]  # MessagingServiceSid -> sender pool, in priority order
    sticky_sender: bool = True
    area_code_geomatch: bool = True
    callback_delays: tuple[float, float] = (0.05, 0.05)  # queued->sent, sent->final (seconds)
    duplicate_callbacks: bool = False
    reorder_callbacks: bool = False
    reject_unsubscribed_synchronously: bool = False


class _ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def _bad_request(code: int, message: str) -> _ApiError:
    return _ApiError(400, code, message)


def _unauthorized() -> _ApiError:
    return _ApiError(401, 20003, "Authenticate")


def _not_found(path: str) -> _ApiError:
    return _ApiError(404, 20404, f"The requested resource {path} was not found")


@dataclass(frozen=True)
class _Reply:
    status: int
    payload: dict[str, Any]
    slow: bool = False


@dataclass(frozen=True)
class _CreateRequest:
    to: str
    body: str
    sender: str | None
    service_sid: str | None
    status_callback: str | None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _rfc2822(moment: datetime | None) -> str | None:
    return None if moment is None else email.utils.format_datetime(moment)


def _message_uri(account_sid: str, sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"


@dataclass
class _Message:
    sid: str
    account_sid: str
    service_sid: str | None
    to: str
    sender: str
    body: str
    num_segments: int
    status: str
    status_callback: str | None
    auth_token: str  # fallback for signing if the account disappears from the config
    date_created: datetime
    date_updated: datetime
    date_sent: datetime | None = None
    error_code: int | None = None

    def advance(self, status: str, error_code: int | None, now: datetime) -> None:
        if _STATUS_RANK[status] <= _STATUS_RANK[self.status]:
            return
        self.status = status
        self.date_updated = now
        if error_code is not None:
            self.error_code = error_code
        # A message the carrier refused outright was never handed over, so it has no send date.
        if self.date_sent is None and status != "failed" and _STATUS_RANK[status] >= 2:
            self.date_sent = now

    def to_json(self) -> dict[str, Any]:
        uri = _message_uri(self.account_sid, self.sid)
        media_base = uri.removesuffix(".json")
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": _rfc2822(self.date_created),
            "date_sent": _rfc2822(self.date_sent),
            "date_updated": _rfc2822(self.date_updated),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": _DELIVERY_ERRORS.get(self.error_code or 0),
            "from": self.sender,
            "messaging_service_sid": self.service_sid,
            "num_media": "0",
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {
                "media": f"{media_base}/Media.json",
                "feedback": f"{media_base}/Feedback.json",
            },
            "to": self.to,
            "uri": uri,
        }


# --- request parsing and validation -------------------------------------------------------------


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, separator, password = decoded.partition(":")
    return (user, password) if separator else None


def _token_matches(expected: str | None, given: str) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def _parse_form(body: bytes) -> dict[str, str]:
    form: dict[str, str] = {}
    text = body.decode("utf-8", errors="replace")
    for name, value in urllib.parse.parse_qsl(text, keep_blank_values=True):
        form.setdefault(name, value)
    return form


def _parse_create(form: Mapping[str, str]) -> _CreateRequest:
    to = form.get("To", "")
    if not to:
        raise _bad_request(21604, "A 'To' phone number is required.")
    body = form.get("Body", "")
    if not body:
        raise _bad_request(21602, "Message body is required.")
    sender = form.get("From") or None
    service_sid = form.get("MessagingServiceSid") or None
    if sender is None and service_sid is None:
        raise _bad_request(21603, "A 'From' phone number is required.")
    return _CreateRequest(to, body, sender, service_sid, form.get("StatusCallback") or None)


def _service_pool(services: Mapping[str, list[str]], service_sid: str | None) -> list[str]:
    if service_sid is None:
        return []
    pool = services.get(service_sid)
    if pool is None:
        raise _bad_request(21701, f"The Messaging Service Sid {service_sid} is invalid.")
    return pool


def _unsubscribed_is_reported_later(request: _CreateRequest, config: SimulatorConfig) -> bool:
    """Twilio answers a Messaging Service send to an opted-out number with 201 and fails it in
    the status callback; only a send without a service is refused synchronously."""
    return request.service_sid is not None and not config.reject_unsubscribed_synchronously


def _check_to(to: str, *, unsubscribed_later: bool) -> None:
    magic = _MAGIC_TO_ERRORS.get(to)
    if magic is not None and not (unsubscribed_later and to == _UNSUBSCRIBED_TO):
        code, template = magic
        raise _bad_request(code, template.format(to=to))
    if not _E164.fullmatch(to):
        raise _bad_request(21211, f"The 'To' number {to} is not a valid phone number.")


def _check_body(body: str) -> None:
    if len(body) > _MAX_BODY_CHARS:
        raise _bad_request(
            21617, f"The concatenated message body exceeds the {_MAX_BODY_CHARS} character limit."
        )


def _check_status_callback(url: str | None) -> None:
    if url is None:
        return
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _bad_request(21609, f"The StatusCallback URL {url} is not a valid URL.")


def _check_throttle(to: str) -> None:
    for suffix, (status, code, message) in _THROTTLE_SUFFIXES.items():
        if to.endswith(suffix):
            raise _ApiError(status, code, message)


# --- sender selection and delivery timeline ------------------------------------------------------


def _can_reach(sender: str, to: str) -> bool:
    # US/CA handsets cannot receive from alphanumeric sender IDs.
    return not to.startswith("+1") or _E164.fullmatch(sender) is not None


def _pick_sender(pool: Sequence[str], to: str, geomatch: bool) -> str | None:
    eligible = [sender for sender in pool if _can_reach(sender, to)]
    if geomatch and _NANP.fullmatch(to):
        area_code = to[2:5]
        for sender in eligible:
            if _NANP.fullmatch(sender) and sender[2:5] == area_code:
                return sender
    return eligible[0] if eligible else None


def _outcome_for(to: str) -> _Outcome:
    if to == _UNSUBSCRIBED_TO:
        return _UNSUBSCRIBED
    for suffix, outcome in _OUTCOME_SUFFIXES.items():
        if to.endswith(suffix):
            return outcome
    return _DELIVERED


def _timeline(
    to: str, delays: tuple[float, float], reorder: bool
) -> list[tuple[float, str, int | None]]:
    """(offset seconds, status, error code) of every status change, in firing order."""
    outcome = _outcome_for(to)
    to_sent, to_final = (max(0.0, delay) for delay in delays)
    if not outcome.via_queued:
        # Refused before it was queued to a sender: its final status is its only change.
        assert outcome.final_status is not None
        return [(0.0, outcome.final_status, outcome.error_code)]
    steps: list[tuple[str, int | None]] = [("queued", None)]
    offsets = [0.0]
    if outcome.via_sent:
        steps.append(("sent", None))
        offsets.append(to_sent)
    if outcome.final_status is not None:
        steps.append((outcome.final_status, outcome.error_code))
        offsets.append(to_sent + to_final if outcome.via_sent else to_sent)
    if reorder:
        # The offsets stay ascending so the reversed statuses still fire one per step.
        steps.reverse()
    return [(offset, status, code) for offset, (status, code) in zip(offsets, steps, strict=True)]


def _callback_params(message: _Message, status: str, error_code: int | None) -> dict[str, str]:
    params = {
        "AccountSid": message.account_sid,
        "ApiVersion": API_VERSION,
        "From": message.sender,
        "MessageSid": message.sid,
        "MessageStatus": status,
        "SmsSid": message.sid,
        "SmsStatus": status,
        "To": message.to,
    }
    if message.service_sid is not None:
        params["MessagingServiceSid"] = message.service_sid
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params


def _post_form(
    opener: urllib.request.OpenerDirector, url: str, params: Mapping[str, str], signature: str
) -> tuple[int | None, str | None]:
    """POST a callback; returns (HTTP status, None) or (None, why no HTTP answer came back)."""
    # The scheme was checked to be http(s) when the message was accepted.
    request = urllib.request.Request(  # noqa: S310, RUF100
        url,
        data=urllib.parse.urlencode(params).encode("utf-8"),
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": USER_AGENT,
            "X-Twilio-Signature": signature,
        },
    )
    try:
        with opener.open(request, timeout=CALLBACK_TIMEOUT_SECONDS) as response:
            response.read()
            return int(response.status), None
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _should_retry(http_status: int | None) -> bool:
    return http_status is None or http_status >= 500


# --- background work ----------------------------------------------------------------------------


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    action: Callable[[], None] = field(compare=False)


class _Scheduler:
    """Runs timed jobs in due order on one worker thread, so no thread is spawned per message."""

    def __init__(self, name: str) -> None:
        self._cond = threading.Condition()
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._pending = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def schedule(self, delay: float, action: Callable[[], None]) -> None:
        with self._cond:
            if self._stopped:
                return
            job = _Job(time.monotonic() + delay, next(self._seq), action)
            heapq.heappush(self._heap, job)
            self._pending += 1
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._pending = 0
            self._cond.notify_all()
        if self._thread.ident is not None:
            self._thread.join()

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            try:
                job.action()
            except Exception:
                logger.exception("simulator background job failed")
            finally:
                self._finish_job()

    def _next_job(self) -> _Job | None:
        with self._cond:
            while not self._stopped:
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0].due - time.monotonic()
                if delay <= 0:
                    return heapq.heappop(self._heap)
                self._cond.wait(delay)
            return None

    def _finish_job(self) -> None:
        with self._cond:
            # stop() already zeroed the count for everything it dropped, this job included.
            if not self._stopped:
                self._pending -= 1
            self._cond.notify_all()


# --- HTTP plumbing ------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    # server_close() then joins every request thread, which is what lets stop() leave none behind.
    block_on_close = True

    def __init__(self, address: tuple[str, int], simulator: TwilioSimulator) -> None:
        self.simulator = simulator
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server_version = "TwilioSimulator/1.0"
    # A client that connects and never sends must not pin a thread that stop() has to join.
    timeout = 10

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def _simulator(self) -> TwilioSimulator:
        return cast(_Server, self.server).simulator

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(min(max(length, 0), _MAX_REQUEST_BYTES))

    def _dispatch(self, method: str) -> None:
        simulator = self._simulator()
        body = self._read_body() if method == "POST" else b""
        reply = simulator._handle(method, self.path, self.headers.get("Authorization"), body)
        if reply.slow and simulator._stopping.wait(SLOW_RESPONSE_SECONDS):
            # Shutting down: drop the connection unanswered, as a dying upstream would.
            self.close_connection = True
            return
        try:
            self._send_reply(reply)
        except OSError:
            logger.debug("client went away before the %s reply", reply.status)

    def _send_reply(self, reply: _Reply) -> None:
        data = json.dumps(reply.payload).encode("utf-8")
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Twilio-Request-Id", "RQ" + secrets.token_hex(16))
        if reply.status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
        self.end_headers()
        self.wfile.write(data)


def _require_loopback(host: str) -> None:
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(f"the simulator binds only to an IPv4 loopback address, not {host!r}")


# --- the simulator ------------------------------------------------------------------------------


class TwilioSimulator:
    """A Twilio Messaging API look-alike on loopback; see the module docstring for the contract."""

    def __init__(self, config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        _require_loopback(host)
        self.config = config
        self._address = (host, port)
        self._lock = threading.Lock()
        self._messages: dict[str, _Message] = {}
        self._sticky: dict[tuple[str, str], str] = {}
        self._create_count = 0
        self._callback_log: list[dict[str, Any]] = []
        self._stopping = threading.Event()
        self._scheduler = _Scheduler("twilio-simulator-callbacks")
        # Environment proxies must not capture callbacks aimed at loopback receivers.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._port: int | None = None

    # lifecycle

    def start(self) -> None:
        if self._server is not None or self._stopping.is_set():
            raise RuntimeError("a simulator can be started only once")
        server = _Server(self._address, self)
        self._server = server
        self._port = server.server_port
        self._scheduler.start()
        self._serve_thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="twilio-simulator-http",
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

    def __enter__(self) -> TwilioSimulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # observation

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the simulator has not been started")
        return f"http://{self._address[0]}:{self._port}"

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [message.to_json() for message in self._messages.values()]

    @property
    def callback_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{**entry, "params": dict(entry["params"])} for entry in self._callback_log]

    def create_count(self) -> int:
        with self._lock:
            return self._create_count

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return self._scheduler.wait_idle(timeout)

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
        self._schedule_timeline(message.sid, request.to, config)
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

    # status changes and callbacks (called on the worker thread)

    def _schedule_timeline(self, sid: str, to: str, config: SimulatorConfig) -> None:
        copies = 2 if config.duplicate_callbacks else 1
        for offset, status, code in _timeline(to, config.callback_delays, config.reorder_callbacks):
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


# --- command line -------------------------------------------------------------------------------


def _account_arg(text: str) -> tuple[str, str]:
    sid, separator, token = text.partition(":")
    if not separator or not sid or not token:
        raise argparse.ArgumentTypeError(f"expected SID:TOKEN, got {text!r}")
    return sid, token


def _service_arg(text: str) -> tuple[str, list[str]]:
    sid, separator, senders = text.partition(":")
    pool = [sender.strip() for sender in senders.split(",") if sender.strip()]
    if not separator or not sid or not pool:
        raise argparse.ArgumentTypeError(f"expected MG...:SENDER[,SENDER...], got {text!r}")
    return sid, pool


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sms_local.twilio_simulator",
        description="Run the Twilio Messaging API simulator on 127.0.0.1 until Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--account", type=_account_arg, action="append", required=True)
    parser.add_argument("--service", type=_service_arg, action="append", default=[])
    parser.add_argument("--no-sticky-sender", action="store_true")
    parser.add_argument("--no-area-code-geomatch", action="store_true")
    parser.add_argument("--duplicate-callbacks", action="store_true")
    parser.add_argument("--reorder-callbacks", action="store_true")
    parser.add_argument(
        "--reject-unsubscribed-synchronously",
        action="store_true",
        help="answer a service send to +15005550004 with 400 21610 instead of a failed callback",
    )
    parser.add_argument(
        "--callback-delays",
        type=float,
        nargs=2,
        default=(0.05, 0.05),
        metavar=("TO_SENT", "TO_FINAL"),
    )
    return parser


def _config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        accounts=dict(args.account),
        services=dict(args.service),
        sticky_sender=not args.no_sticky_sender,
        area_code_geomatch=not args.no_area_code_geomatch,
        callback_delays=(args.callback_delays[0], args.callback_delays[1]),
        duplicate_callbacks=args.duplicate_callbacks,
        reorder_callbacks=args.reorder_callbacks,
        reject_unsubscribed_synchronously=args.reject_unsubscribed_synchronously,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    simulator = TwilioSimulator(_config_from_args(args), port=args.port)
    simulator.start()
    print(f"Twilio simulator listening on {simulator.base_url} (Ctrl-C to stop)", flush=True)
    try:
        _wait_for_termination()
    finally:
        simulator.stop()
    return 0


def _wait_for_termination() -> None:
    done = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    # Installed explicitly: a shell starting us in the background leaves SIGINT ignored, and
    # SIGTERM (docker stop, kill) deserves the same clean shutdown as Ctrl-C.
    previous = {signum: signal.signal(signum, request_stop) for signum in _STOP_SIGNALS}
    try:
        # A bounded wait keeps the main thread returning to the interpreter to run the handler.
        while not done.wait(0.5):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    raise SystemExit(main())
