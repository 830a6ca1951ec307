"""The Twilio simulator speaks Twilio's wire format, so the gateway's adapter can be tested on it.

Everything runs on 127.0.0.1: the simulator, and a small receiver that plays the gateway's
status-callback webhook. Signatures are checked with the twilio SDK's own RequestValidator.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException  # type: ignore[import-untyped, unused-ignore]
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped, unused-ignore]
from twilio.rest import Client  # type: ignore[import-untyped, unused-ignore]

from sms_local.twilio_simulator import (
    SimulatorConfig,
    TwilioSimulator,
    _build_parser,
    _config_from_args,
)

ACCOUNT = "AC0123456789abcdef0123456789abcdef"
TOKEN = "token-for-account-one-0123456789"
OTHER_ACCOUNT = "ACfedcba9876543210fedcba9876543210"
OTHER_TOKEN = "token-for-account-two-0123456789"
SERVICE = "MG0123456789abcdef0123456789abcdef"
SERVICE_POOL = ["+14155550100", "+12125550100", "+13105550100"]
ALPHA_SERVICE = "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
ALPHA_ONLY_SERVICE = "MGbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
UNKNOWN_SERVICE = "MGcccccccccccccccccccccccccccccccc"
PLAIN_TO = "+16465551234"  # area code 646 is in no pool, and the number hits no magic suffix

# Proxies from the environment must not intercept loopback traffic.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- fixtures and helpers -----------------------------------------------------------------------


def _config(**overrides: Any) -> SimulatorConfig:
    config = SimulatorConfig(
        accounts={ACCOUNT: TOKEN, OTHER_ACCOUNT: OTHER_TOKEN},
        services={
            SERVICE: list(SERVICE_POOL),
            ALPHA_SERVICE: ["ACME", "+447700900100"],
            ALPHA_ONLY_SERVICE: ["ACME"],
        },
        callback_delays=(0.01, 0.01),
    )
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


@pytest.fixture
def sim() -> Iterator[TwilioSimulator]:
    simulator = TwilioSimulator(_config())
    simulator.start()
    yield simulator
    simulator.stop()


@dataclass(frozen=True)
class Received:
    url: str  # as the receiver was reached: scheme, host, port, path and query
    pairs: list[tuple[str, str]]
    headers: Message

    @property
    def params(self) -> dict[str, str]:
        return dict(self.pairs)


class Receiver:
    """Plays one of the gateway's Twilio webhooks (the status callbacks by default, `path` and
    the answer's fields otherwise) and remembers every request, in order."""

    def __init__(
        self,
        path: str = "/twilio/status",
        reply_status: int = 204,
        reply_content_type: str | None = None,
        reply_body: bytes = b"",
    ) -> None:
        self.received: list[Received] = []
        self.path = path
        self.reply_status = reply_status
        self.reply_content_type = reply_content_type
        self.reply_body = reply_body
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str | None = None) -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path or self.path}"

    def requests(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def statuses(self) -> list[str]:
        with self._lock:
            return [item.params["MessageStatus"] for item in self.received]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _record(self, item: Received) -> tuple[int, str | None, bytes]:
        with self._lock:
            self.received.append(item)
            return self.reply_status, self.reply_content_type, self.reply_body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8")
                pairs = urllib.parse.parse_qsl(body, keep_blank_values=True)
                url = f"http://127.0.0.1:{receiver._server.server_port}{self.path}"
                status, content_type, reply = receiver._record(Received(url, pairs, self.headers))
                self.send_response(status)
                if content_type is not None:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _call(
    url: str,
    form: Mapping[str, str] | None = None,
    authorization: str | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, Any], Message]:
    data = None if form is None else urllib.parse.urlencode(form).encode()
    # Every URL here is built from the simulator's own http:// base_url.
    method = "GET" if form is None else "POST"
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310, RUF100
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read()), exc.headers


def _messages_url(sim: TwilioSimulator, account: str = ACCOUNT) -> str:
    return f"{sim.base_url}/2010-04-01/Accounts/{account}/Messages.json"


def _create(
    sim: TwilioSimulator,
    form: Mapping[str, str],
    account: str = ACCOUNT,
    authorization: str | None = None,
) -> tuple[int, dict[str, Any]]:
    auth = _basic(ACCOUNT, TOKEN) if authorization is None else authorization
    status, payload, _ = _call(_messages_url(sim, account), form, auth)
    return status, payload


def _send(
    sim: TwilioSimulator, to: str, callback: str | None = None, service: str = SERVICE
) -> dict[str, Any]:
    form = {"To": to, "Body": "Your code is 123456", "MessagingServiceSid": service}
    if callback is not None:
        form["StatusCallback"] = callback
    status, payload = _create(sim, form)
    assert status == 201, payload
    return payload


def _fetch(
    sim: TwilioSimulator, sid: str, account: str = ACCOUNT, token: str = TOKEN
) -> tuple[int, dict[str, Any]]:
    url = f"{sim.base_url}/2010-04-01/Accounts/{account}/Messages/{sid}.json"
    status, payload, _ = _call(url, authorization=_basic(account, token))
    return status, payload


def _assert_twilio_error(payload: dict[str, Any], status: int, code: int) -> None:
    assert set(payload) == {"code", "message", "more_info", "status"}
    assert payload["code"] == code
    assert payload["status"] == status
    assert payload["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert isinstance(payload["message"], str)
    assert payload["message"]


# --- authentication -----------------------------------------------------------------------------


def test_missing_credentials_get_twilios_401(sim: TwilioSimulator) -> None:
    status, payload, headers = _call(_messages_url(sim), {"To": PLAIN_TO, "Body": "hi"})

    assert status == 401
    assert payload == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    ("path_account", "authorization"),
    [
        pytest.param(ACCOUNT, _basic(ACCOUNT, "wrong-token"), id="wrong-token"),
        pytest.param(ACCOUNT, _basic("AC" + "0" * 32, TOKEN), id="unknown-account"),
        pytest.param(ACCOUNT, _basic(OTHER_ACCOUNT, OTHER_TOKEN), id="path-is-another-account"),
        pytest.param(ACCOUNT, "Basic !!not-base64!!", id="garbled-header"),
        pytest.param(ACCOUNT, f"Bearer {TOKEN}", id="not-basic"),
    ],
)
def test_bad_credentials_get_twilios_401(
    sim: TwilioSimulator, path_account: str, authorization: str
) -> None:
    form = {"To": PLAIN_TO, "Body": "hi", "MessagingServiceSid": SERVICE}
    status, payload = _create(sim, form, account=path_account, authorization=authorization)

    assert status == 401
    _assert_twilio_error(payload, 401, 20003)
    assert sim.messages == []


def test_fetch_requires_credentials(sim: TwilioSimulator) -> None:
    sid = _send(sim, PLAIN_TO)["sid"]

    status, payload, _ = _call(f"{sim.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}.json")

    assert status == 401
    _assert_twilio_error(payload, 401, 20003)


# --- validation and magic numbers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "code"),
    [
        pytest.param({"Body": "hi", "MessagingServiceSid": SERVICE}, 21604, id="no-to"),
        pytest.param({"To": PLAIN_TO, "MessagingServiceSid": SERVICE}, 21602, id="no-body"),
        pytest.param({"To": PLAIN_TO, "Body": "", "From": "+14155550100"}, 21602, id="empty-body"),
        pytest.param({"To": PLAIN_TO, "Body": "hi"}, 21603, id="no-sender"),
        pytest.param(
            {"To": PLAIN_TO, "Body": "hi", "MessagingServiceSid": UNKNOWN_SERVICE},
            21701,
            id="unknown-service",
        ),
        pytest.param(
            {"To": "6465551234", "Body": "hi", "MessagingServiceSid": SERVICE}, 21211, id="no-plus"
        ),
        pytest.param(
            {"To": "+0465551234", "Body": "hi", "MessagingServiceSid": SERVICE},
            21211,
            id="leading-zero",
        ),
        pytest.param(
            {"To": PLAIN_TO, "Body": "x" * 1601, "MessagingServiceSid": SERVICE},
            21617,
            id="body-too-long",
        ),
        pytest.param(
            {
                "To": PLAIN_TO,
                "Body": "hi",
                "MessagingServiceSid": SERVICE,
                "StatusCallback": "ftp://example.test/cb",
            },
            21609,
            id="bad-status-callback",
        ),
    ],
)
def test_invalid_requests_get_twilios_400(
    sim: TwilioSimulator, form: dict[str, str], code: int
) -> None:
    status, payload = _create(sim, form)

    assert status == 400
    _assert_twilio_error(payload, 400, code)
    assert sim.messages == []


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+15005550001", 21211),
        ("+15005550002", 21612),
        ("+15005550003", 21408),
        ("+15005550009", 21614),
    ],
)
def test_twilio_magic_numbers_get_their_documented_errors(
    sim: TwilioSimulator, to: str, code: int
) -> None:
    status, payload = _create(sim, {"To": to, "Body": "hi", "MessagingServiceSid": SERVICE})

    assert status == 400
    _assert_twilio_error(payload, 400, code)
    assert sim.messages == []


@pytest.mark.parametrize(
    ("to", "status", "code"),
    [("+14155550429", 429, 20429), ("+14155550503", 503, 20503)],
)
def test_retry_knobs_answer_with_a_retryable_error(
    sim: TwilioSimulator, to: str, status: int, code: int
) -> None:
    answer, payload = _create(sim, {"To": to, "Body": "hi", "MessagingServiceSid": SERVICE})

    assert answer == status
    _assert_twilio_error(payload, status, code)
    assert sim.messages == []


def test_create_count_includes_rejected_requests(sim: TwilioSimulator) -> None:
    form = {"To": PLAIN_TO, "Body": "hi", "MessagingServiceSid": SERVICE}
    _create(sim, form, authorization=_basic(ACCOUNT, "wrong"))
    _create(sim, {**form, "To": "+15005550001"})
    _create(sim, {**form, "To": "+14155550429"})
    _create(sim, form)

    assert sim.create_count() == 4
    assert len(sim.messages) == 1


# --- the created message ------------------------------------------------------------------------


def test_create_answers_with_twilios_message_json(sim: TwilioSimulator) -> None:
    status, message = _create(
        sim, {"To": "+12125551234", "Body": "Your code is 123456", "MessagingServiceSid": SERVICE}
    )

    assert status == 201
    sid = message["sid"]
    assert len(sid) == 34
    assert sid.startswith("SM")
    int(sid[2:], 16)
    assert message["account_sid"] == ACCOUNT
    assert message["messaging_service_sid"] == SERVICE
    assert message["to"] == "+12125551234"
    assert message["from"] == "+12125550100"
    assert message["body"] == "Your code is 123456"
    assert message["status"] == "accepted"
    assert message["num_segments"] == "1"
    assert message["num_media"] == "0"
    assert message["direction"] == "outbound-api"
    assert message["api_version"] == "2010-04-01"
    assert message["price"] is None
    assert message["price_unit"] == "USD"
    assert message["error_code"] is None
    assert message["error_message"] is None
    assert message["uri"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}.json"
    assert message["subresource_uris"]["media"] == (
        f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}/Media.json"
    )
    created = parsedate_to_datetime(message["date_created"])
    assert created.utcoffset() is not None
    assert message["date_created"].endswith(" +0000")
    parsedate_to_datetime(message["date_updated"])
    assert message["date_sent"] is None
    assert [stored["sid"] for stored in sim.messages] == [sid]


def test_create_with_from_only_is_queued_without_a_service(sim: TwilioSimulator) -> None:
    status, message = _create(sim, {"To": PLAIN_TO, "Body": "hi", "From": "+14155550199"})

    assert status == 201
    assert message["status"] == "queued"
    assert message["from"] == "+14155550199"
    assert message["messaging_service_sid"] is None


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("x" * 160, "1"),
        ("x" * 161, "2"),
        ("Привет", "1"),
        ("П" * 71, "2"),
    ],
)
def test_num_segments_follows_the_encoding(sim: TwilioSimulator, body: str, segments: str) -> None:
    _, message = _create(sim, {"To": PLAIN_TO, "Body": body, "MessagingServiceSid": SERVICE})

    assert message["num_segments"] == segments


def test_twilio_sdk_client_can_create_and_fetch(
    sim: TwilioSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests honours proxy variables; loopback must bypass any that the environment sets.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    client = Client(ACCOUNT, TOKEN)
    # The SDK builds every URL from this Domain attribute, so this is its supported override.
    client.api.base_url = sim.base_url

    message = client.messages.create(to="+12125551234", messaging_service_sid=SERVICE, body="hi")
    fetched = client.messages(message.sid).fetch()
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to="+15005550001", messaging_service_sid=SERVICE, body="hi")

    assert message.status == "accepted"
    assert message.from_ == "+12125550100"
    assert message.num_segments == "1"
    assert isinstance(message.date_created, datetime)
    assert fetched.sid == message.sid
    assert raised.value.status == 400
    assert raised.value.code == 21211


def test_list_filters_an_account_s_messages_by_to_and_from_newest_first(
    sim: TwilioSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given messages to two numbers from two senders, and one in another account
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    client = Client(ACCOUNT, TOKEN)
    client.api.base_url = sim.base_url
    first = _send(sim, "+13105559876")["sid"]  # from the 310 sender
    second = _send(sim, "+12125559876")["sid"]  # from the 212 sender
    third = _send(sim, "+13105559876")["sid"]
    other = Client(OTHER_ACCOUNT, OTHER_TOKEN)
    other.api.base_url = sim.base_url
    other.messages.create(to="+13105559876", from_="+13105550100", body="hi")

    # Then the SDK lists what the account sent, to one number or from one sender
    to_310 = [m.sid for m in client.messages.list(to="+13105559876")]
    from_212 = [m.sid for m in client.messages.list(from_="+12125550100")]
    assert to_310 == [third, first]
    assert from_212 == [second]
    assert [m.sid for m in client.messages.list()] == [third, second, first]
    assert client.messages.list(to=PLAIN_TO) == []
    # ... and only to its own credentials
    status, payload, _ = _call(_messages_url(sim), authorization=_basic(ACCOUNT, "wrong"))
    _assert_twilio_error(payload, 401, 20003)
    assert status == 401


# --- sender selection ---------------------------------------------------------------------------


def test_geomatch_picks_the_sender_with_the_recipients_area_code(sim: TwilioSimulator) -> None:
    assert _send(sim, "+13105559876")["from"] == "+13105550100"
    assert _send(sim, "+12125559876")["from"] == "+12125550100"
    assert _send(sim, PLAIN_TO)["from"] == SERVICE_POOL[0]


def test_without_geomatch_the_first_sender_is_used(sim: TwilioSimulator) -> None:
    sim.configure(area_code_geomatch=False)

    assert _send(sim, "+13105559876")["from"] == SERVICE_POOL[0]


def test_sticky_sender_reuses_the_earlier_sender(sim: TwilioSimulator) -> None:
    sim.configure(services={SERVICE: ["+14155550100", "+12125550100"]})
    first = _send(sim, "+13105551111")["from"]
    # A geomatching sender and a new pool order would both pick someone else now.
    sim.configure(services={SERVICE: ["+12125550100", "+14155550100", "+13105550100"]})

    again = _send(sim, "+13105551111")["from"]
    someone_new = _send(sim, PLAIN_TO)["from"]
    sim.configure(sticky_sender=False)
    not_sticky = _send(sim, "+13105551111")["from"]

    assert first == "+14155550100"
    assert again == first
    assert someone_new == "+12125550100"
    assert not_sticky == "+13105550100"


def test_alphanumeric_senders_never_reach_north_america(sim: TwilioSimulator) -> None:
    uk = _send(sim, "+447700900123", service=ALPHA_SERVICE)["from"]
    us = _send(sim, PLAIN_TO, service=ALPHA_SERVICE)["from"]
    status, payload = _create(
        sim, {"To": PLAIN_TO, "Body": "hi", "MessagingServiceSid": ALPHA_ONLY_SERVICE}
    )

    assert uk == "ACME"
    assert us == "+447700900100"
    assert status == 400
    _assert_twilio_error(payload, 400, 21704)


# --- status callbacks ---------------------------------------------------------------------------


def _callbacks_for(receiver: Receiver, sid: str) -> list[Received]:
    return [item for item in receiver.received if item.params["MessageSid"] == sid]


def test_callbacks_arrive_in_order_and_are_signed_like_twilio(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    # The query string is part of what Twilio signs.
    callback = receiver.url("/twilio/status?tenant=acme&attempt=1")
    message = _send(sim, "+12125551234", callback)

    assert sim.wait_idle()
    received = _callbacks_for(receiver, message["sid"])
    assert [item.params["MessageStatus"] for item in received] == ["queued", "sent", "delivered"]
    validator = RequestValidator(TOKEN)
    for item in received:
        signature = item.headers["X-Twilio-Signature"]
        assert item.url == callback
        assert validator.validate(item.url, item.params, signature)
        assert not RequestValidator(OTHER_TOKEN).validate(item.url, item.params, signature)
        assert item.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert item.headers["User-Agent"] == "TwilioProxy/1.1"
        assert item.params == {
            "AccountSid": ACCOUNT,
            "ApiVersion": "2010-04-01",
            "From": "+12125550100",
            "MessageSid": message["sid"],
            "MessageStatus": item.params["MessageStatus"],
            "MessagingServiceSid": SERVICE,
            "SmsSid": message["sid"],
            "SmsStatus": item.params["MessageStatus"],
            "To": "+12125551234",
        }
    log = sim.callback_log
    assert [entry["http_status"] for entry in log] == [204, 204, 204]
    assert [entry["signature"] for entry in log] == [
        item.headers["X-Twilio-Signature"] for item in received
    ]
    assert all(entry["url"] == callback and entry["error"] is None for entry in log)


@pytest.mark.parametrize(
    ("to", "statuses", "error_code"),
    [
        pytest.param("+14155550030", ["queued", "sent", "undelivered"], 30003, id="30003"),
        pytest.param("+14155550031", ["queued", "sent", "undelivered"], 30005, id="30005"),
        pytest.param("+14155550050", ["queued", "failed"], 30007, id="filtered"),
    ],
)
def test_failure_outcomes_carry_their_error_code(
    sim: TwilioSimulator, receiver: Receiver, to: str, statuses: list[str], error_code: int
) -> None:
    message = _send(sim, to, receiver.url())

    assert sim.wait_idle()
    received = _callbacks_for(receiver, message["sid"])
    assert [item.params["MessageStatus"] for item in received] == statuses
    expected_codes = [None] * (len(statuses) - 1) + [str(error_code)]
    assert [item.params.get("ErrorCode") for item in received] == expected_codes
    status, fetched = _fetch(sim, message["sid"])
    assert status == 200
    assert fetched["status"] == statuses[-1]
    assert fetched["error_code"] == error_code
    assert isinstance(fetched["error_message"], str)
    assert (fetched["date_sent"] is None) == (statuses[-1] == "failed")


UNSUBSCRIBED = "+15005550004"


def test_unsubscribed_recipient_through_a_service_is_accepted_then_failed_by_callback(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    # Twilio accepts a Messaging Service send to a number that answered STOP, and reports the
    # opt-out later, in the status callback.
    message = _send(sim, UNSUBSCRIBED, receiver.url())

    assert (message["status"], message["error_code"]) == ("accepted", None)
    assert sim.wait_idle()
    [failed] = _callbacks_for(receiver, message["sid"])
    assert failed.params == {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "ErrorCode": "21610",
        "From": message["from"],
        "MessageSid": message["sid"],
        "MessageStatus": "failed",
        "MessagingServiceSid": SERVICE,
        "SmsSid": message["sid"],
        "SmsStatus": "failed",
        "To": UNSUBSCRIBED,
    }
    assert RequestValidator(TOKEN).validate(
        failed.url, failed.params, failed.headers["X-Twilio-Signature"]
    )
    _, fetched = _fetch(sim, message["sid"])
    assert (fetched["status"], fetched["error_code"]) == ("failed", 21610)
    assert fetched["error_message"] == "Attempt to send to unsubscribed recipient"
    assert fetched["date_sent"] is None


def test_unsubscribed_recipient_without_a_service_is_refused_at_once(sim: TwilioSimulator) -> None:
    status, payload = _create(sim, {"To": UNSUBSCRIBED, "Body": "hi", "From": "+14155550199"})

    assert status == 400
    _assert_twilio_error(payload, 400, 21610)
    assert sim.messages == []


def _set_control(sim: TwilioSimulator, knobs: dict[str, bool]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310, RUF100 - the simulator's own http:// URL
        f"{sim.base_url}/_simulator/control", data=json.dumps(knobs).encode(), method="POST"
    )
    with _OPENER.open(request, timeout=5) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def test_synchronous_knob_refuses_service_sends_to_an_unsubscribed_recipient(
    sim: TwilioSimulator,
) -> None:
    # For checks of the synchronous 21610 path; end-to-end tests reach the knob over HTTP.
    answer = _set_control(sim, {"reject_unsubscribed_synchronously": True})
    assert answer["reject_unsubscribed_synchronously"] is True

    status, payload = _create(
        sim, {"To": UNSUBSCRIBED, "Body": "hi", "MessagingServiceSid": SERVICE}
    )

    assert status == 400
    _assert_twilio_error(payload, 400, 21610)
    assert sim.messages == []
    assert (
        _set_control(sim, {"reject_unsubscribed_synchronously": False})[
            "reject_unsubscribed_synchronously"
        ]
        is False
    )
    assert _send(sim, UNSUBSCRIBED)["status"] == "accepted"


def _get_control(sim: TwilioSimulator) -> dict[str, Any]:
    status, payload, _ = _call(f"{sim.base_url}/_simulator/control")
    assert status == 200, payload
    return payload


def test_outage_knob_refuses_every_create_until_it_is_turned_off(sim: TwilioSimulator) -> None:
    assert _get_control(sim)["outage"] is False
    assert _set_control(sim, {"outage": True})["outage"] is True
    assert _get_control(sim)["outage"] is True
    form = {"To": PLAIN_TO, "Body": "hi", "MessagingServiceSid": SERVICE}

    # Refused before authentication: good and bad credentials alike get the 503.
    answers = [
        _create(sim, form),
        _create(sim, form, authorization=_basic(ACCOUNT, "wrong")),
        _create(sim, {**form, "To": "+15005550001"}),
    ]

    for status, payload in answers:
        assert status == 503
        _assert_twilio_error(payload, 503, 20503)
        assert payload["message"] == "Service unavailable"
    assert sim.messages == []
    assert sim.create_count() == 3
    assert _get_control(sim)["accepted"] == 0

    assert _set_control(sim, {"outage": False})["outage"] is False
    created = _send(sim, PLAIN_TO)

    assert created["status"] == "accepted"
    assert [message["sid"] for message in sim.messages] == [created["sid"]]
    assert sim.create_count() == 4


def test_outage_knob_can_be_set_in_python_too(sim: TwilioSimulator) -> None:
    sim.configure(outage=True)
    status, payload = _create(sim, {"To": PLAIN_TO, "Body": "hi", "MessagingServiceSid": SERVICE})

    assert status == 503
    _assert_twilio_error(payload, 503, 20503)
    assert _get_control(sim)["outage"] is True
    assert sim.messages == []


def test_no_delivery_receipt_leaves_the_message_at_sent(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    message = _send(sim, "+14155550040", receiver.url())

    assert sim.wait_idle()
    assert receiver.statuses() == ["queued", "sent"]
    _, fetched = _fetch(sim, message["sid"])
    assert fetched["status"] == "sent"
    assert fetched["error_code"] is None
    parsedate_to_datetime(fetched["date_sent"])


def test_fetch_reflects_the_final_status(sim: TwilioSimulator, receiver: Receiver) -> None:
    message = _send(sim, "+12125551234", receiver.url())

    assert sim.wait_idle()
    status, fetched = _fetch(sim, message["sid"])

    assert status == 200
    assert fetched["status"] == "delivered"
    assert fetched["sid"] == message["sid"]
    assert fetched["date_created"] == message["date_created"]
    parsedate_to_datetime(fetched["date_sent"])
    assert sim.messages == [fetched]


def test_status_advances_without_a_status_callback(sim: TwilioSimulator) -> None:
    message = _send(sim, "+12125551234")

    assert sim.wait_idle()
    _, fetched = _fetch(sim, message["sid"])

    assert fetched["status"] == "delivered"
    assert sim.callback_log == []


def test_fetch_of_unknown_or_foreign_message_is_404(sim: TwilioSimulator) -> None:
    sid = _send(sim, PLAIN_TO)["sid"]

    unknown_status, unknown = _fetch(sim, "SM" + "0" * 32)
    foreign_status, foreign = _fetch(sim, sid, account=OTHER_ACCOUNT, token=OTHER_TOKEN)

    assert unknown_status == 404
    _assert_twilio_error(unknown, 404, 20404)
    assert foreign_status == 404
    _assert_twilio_error(foreign, 404, 20404)


def test_duplicate_knob_sends_every_callback_twice(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    sim.config.duplicate_callbacks = True
    _send(sim, "+12125551234", receiver.url())

    assert sim.wait_idle()
    assert receiver.statuses() == ["queued", "queued", "sent", "sent", "delivered", "delivered"]
    signatures = [item.headers["X-Twilio-Signature"] for item in receiver.received]
    assert signatures[0::2] == signatures[1::2]


def test_reorder_knob_sends_the_final_status_first(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    sim.configure(reorder_callbacks=True)
    message = _send(sim, "+12125551234", receiver.url())

    assert sim.wait_idle()
    assert receiver.statuses() == ["delivered", "sent", "queued"]
    # Late callbacks must not move the resource backwards.
    _, fetched = _fetch(sim, message["sid"])
    assert fetched["status"] == "delivered"


def test_failed_callbacks_are_retried_at_most_twice(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    receiver.reply_status = 500
    _send(sim, "+14155550040", receiver.url())

    assert sim.wait_idle()
    log = sim.callback_log
    # Each status is retried on its own schedule, so the two retry series may interleave.
    assert sorted((entry["message_status"], entry["attempt"]) for entry in log) == [
        ("queued", 1),
        ("queued", 2),
        ("queued", 3),
        ("sent", 1),
        ("sent", 2),
        ("sent", 3),
    ]
    assert {entry["http_status"] for entry in log} == {500}


def test_client_errors_from_the_receiver_are_not_retried(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    receiver.reply_status = 403
    _send(sim, "+14155550040", receiver.url())

    assert sim.wait_idle()
    assert [entry["http_status"] for entry in sim.callback_log] == [403, 403]


def test_unreachable_receiver_is_logged_as_an_error(sim: TwilioSimulator) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    _send(sim, "+14155550050", f"http://127.0.0.1:{dead_port}/status")

    assert sim.wait_idle()
    log = sim.callback_log
    assert sorted((entry["message_status"], entry["attempt"]) for entry in log) == [
        ("failed", 1),
        ("failed", 2),
        ("failed", 3),
        ("queued", 1),
        ("queued", 2),
        ("queued", 3),
    ]
    assert all(entry["http_status"] is None and entry["error"] for entry in log)


# --- timeouts, lifecycle, command line ----------------------------------------------------------


def test_slow_number_is_accepted_but_answered_too_late(sim: TwilioSimulator) -> None:
    form = {"To": "+14155550777", "Body": "hi", "MessagingServiceSid": SERVICE}

    # The answer comes SLOW_RESPONSE_SECONDS later: a client that waits 0.3 s gives up first.
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        _call(_messages_url(sim), form, _basic(ACCOUNT, TOKEN), timeout=0.3)
    # (the request may still be on its way into the simulator when the client gives up)
    assert _eventually(lambda: len(sim.messages) == 1)
    started = time.monotonic()
    sim.stop()

    assert time.monotonic() - started < 5  # stopping does not wait for the slow answer
    assert [message["to"] for message in sim.messages] == ["+14155550777"]
    assert sim.create_count() == 1


def test_stop_leaves_no_threads_running() -> None:
    before = set(threading.enumerate())
    receiver = Receiver()
    simulator = TwilioSimulator(_config())
    simulator.start()
    _send(simulator, "+12125551234", receiver.url())
    assert simulator.wait_idle()
    # Pending callbacks far in the future must not hold stop() up.
    simulator.configure(callback_delays=(30.0, 30.0))
    _send(simulator, "+12125551234", receiver.url())
    assert _eventually(lambda: len(receiver.received) == 4)
    assert not simulator.wait_idle(timeout=0.1)

    started = time.monotonic()
    simulator.stop()
    simulator.stop()
    stop_seconds = time.monotonic() - started
    receiver.close()

    assert stop_seconds < 5
    assert receiver.statuses() == ["queued", "sent", "delivered", "queued"]

    # A request thread that has just answered may still be on its way out: wait for it, bounded.
    def leftover() -> list[threading.Thread]:
        return [thread for thread in threading.enumerate() if thread not in before]

    assert _eventually(lambda: leftover() == []), leftover()


@pytest.mark.parametrize("host", ["192.0.2.10", "::", "example.test"])
def test_simulator_refuses_to_bind_beyond_loopback(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        TwilioSimulator(_config(), host=host)


def test_command_line_builds_the_config() -> None:
    args = _build_parser().parse_args(
        [
            "--port",
            "0",
            "--account",
            f"{ACCOUNT}:{TOKEN}",
            "--account",
            f"{OTHER_ACCOUNT}:{OTHER_TOKEN}",
            "--service",
            f"{SERVICE}:+14155550100,+12125550100",
            "--reorder-callbacks",
            "--no-sticky-sender",
            "--reject-unsubscribed-synchronously",
        ]
    )

    config = _config_from_args(args)

    assert config.accounts == {ACCOUNT: TOKEN, OTHER_ACCOUNT: OTHER_TOKEN}
    assert config.services == {SERVICE: ["+14155550100", "+12125550100"]}
    assert config.reorder_callbacks
    assert not config.sticky_sender
    assert config.area_code_geomatch
    assert not config.duplicate_callbacks
    assert config.reject_unsubscribed_synchronously
    assert not _config_from_args(
        _build_parser().parse_args(["--account", f"{ACCOUNT}:{TOKEN}"])
    ).reject_unsubscribed_synchronously


# --- From as an alphanumeric sender ID, and ValidityPeriod ---------------------------------------


def test_an_alphanumeric_from_beside_a_service_is_the_sender(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    form = {
        "To": "+447700900123",
        "Body": "hi",
        "MessagingServiceSid": SERVICE,
        "From": "Acme Shop",
        "StatusCallback": receiver.url(),
    }
    status, payload = _create(sim, form)

    assert status == 201, payload
    assert payload["from"] == "Acme Shop"
    assert sim.wait_idle()
    assert {item.params["From"] for item in _callbacks_for(receiver, payload["sid"])} == {
        "Acme Shop"
    }


@pytest.mark.parametrize(
    ("sender", "to", "code"),
    [
        pytest.param("Acme", PLAIN_TO, 21612, id="alphanumeric-to-north-america"),
        pytest.param("123456", "+447700900123", 21212, id="digits-only"),
        pytest.param("TwelveChars1", "+447700900123", 21212, id="too-long"),
        pytest.param("Acme!", "+447700900123", 21212, id="bad-character"),
    ],
)
def test_a_from_twilio_would_refuse_gets_its_error(
    sim: TwilioSimulator, sender: str, to: str, code: int
) -> None:
    status, payload = _create(
        sim, {"To": to, "Body": "hi", "MessagingServiceSid": SERVICE, "From": sender}
    )

    assert status == 400
    _assert_twilio_error(payload, 400, code)
    assert sim.messages == []


@pytest.mark.parametrize("period", ["0", "36001", "-5", "1.5", "ten", "\uff16\uff10"])
def test_a_validity_period_out_of_twilio_s_range_is_refused(
    sim: TwilioSimulator, period: str
) -> None:
    form = {"To": PLAIN_TO, "Body": "hi", "MessagingServiceSid": SERVICE, "ValidityPeriod": period}
    status, payload = _create(sim, form)

    assert status == 400
    _assert_twilio_error(payload, 400, 21624)


def test_a_message_queued_past_its_validity_period_fails_with_30036(receiver: Receiver) -> None:
    """The queue holds it 2 s before a sender takes it; a 1 s validity period runs out first."""
    with TwilioSimulator(_config(callback_delays=(2.0, 0.01))) as simulator:
        expiring = _create(
            simulator,
            {
                "To": PLAIN_TO,
                "Body": "hi",
                "MessagingServiceSid": SERVICE,
                "StatusCallback": receiver.url(),
                "ValidityPeriod": "1",
            },
        )[1]
        lasting = _create(
            simulator,
            {
                "To": PLAIN_TO,
                "Body": "hi",
                "MessagingServiceSid": SERVICE,
                "StatusCallback": receiver.url(),
                "ValidityPeriod": "3",
            },
        )[1]
        assert simulator.wait_idle()

    expired = _callbacks_for(receiver, expiring["sid"])
    assert [c.params["MessageStatus"] for c in expired] == ["queued", "failed"]
    assert expired[-1].params["ErrorCode"] == "30036"
    assert [c.params["MessageStatus"] for c in _callbacks_for(receiver, lasting["sid"])] == [
        "queued",
        "sent",
        "delivered",
    ]
