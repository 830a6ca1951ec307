"""The Twilio simulator makes a phone answer: ``POST /_simulator/inbound`` posts Twilio's
incoming-message webhook to the Inbound Request URL, signed as Twilio signs it.

Everything runs on 127.0.0.1: the simulator, and a small receiver that plays the gateway's
inbound webhook. The simulator posts before it answers, so when its answer is back the receiver
has seen every request: nothing here waits on a clock.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from sms_gateway.providers.twilio.signature import is_valid_signature
from sms_local.twilio_simulator import (
    SimulatorConfig,
    TwilioSimulator,
    _build_parser,
    _config_from_args,
)
from tests.integration.test_twilio_simulator import Received, Receiver

ACCOUNT = "AC0123456789abcdef0123456789abcdef"
TOKEN = "token-for-account-one-0123456789"
OTHER_ACCOUNT = "ACfedcba9876543210fedcba9876543210"
OTHER_TOKEN = "token-for-account-two-0123456789"
SERVICE = "MG0123456789abcdef0123456789abcdef"
SERVICE_POOL = ["+14155550100", "+12125550100"]
OTHER_SERVICE = "MGdddddddddddddddddddddddddddddddd"  # owned by an account with no token
ORPHAN_SERVICE = "MGeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"  # in no service_accounts entry
ALPHA_SERVICE = "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
UNKNOWN_ACCOUNT = "AC99999999999999999999999999999999"
PHONE = "+16465551234"
FORM_KEYS = {
    "MessageSid",
    "SmsMessageSid",
    "SmsSid",
    "AccountSid",
    "MessagingServiceSid",
    "From",
    "To",
    "Body",
    "NumSegments",
    "NumMedia",
    "SmsStatus",
    "ApiVersion",
    "FromCountry",
    "FromState",
    "FromCity",
    "FromZip",
    "ToCountry",
    "ToState",
    "ToCity",
    "ToZip",
}

# Proxies from the environment must not intercept loopback traffic.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """Plays the gateway's inbound webhook: answers an empty TwiML document."""
    server = Receiver("/twilio/inbound", 200, "text/xml", b"<Response/>")
    yield server
    server.close()


def _config(inbound_url: str | None) -> SimulatorConfig:
    return SimulatorConfig(
        accounts={ACCOUNT: TOKEN, OTHER_ACCOUNT: OTHER_TOKEN},
        services={
            SERVICE: list(SERVICE_POOL),
            OTHER_SERVICE: ["+13105550100"],
            ORPHAN_SERVICE: ["+17185550100"],
            ALPHA_SERVICE: ["ACME", "+447700900100"],
        },
        callback_delays=(0.01, 0.01),
        inbound_url=inbound_url,
        service_accounts={
            SERVICE: ACCOUNT,
            OTHER_SERVICE: UNKNOWN_ACCOUNT,
            ALPHA_SERVICE: OTHER_ACCOUNT,
        },
    )


@pytest.fixture
def sim(receiver: Receiver) -> Iterator[TwilioSimulator]:
    simulator = TwilioSimulator(_config(receiver.url()))
    simulator.start()
    yield simulator
    simulator.stop()


def _inbound(sim: TwilioSimulator, request: Any) -> tuple[int, dict[str, Any]]:
    data = request if isinstance(request, bytes) else json.dumps(request).encode()
    # The simulator's own http:// base_url.
    http_request = urllib.request.Request(  # noqa: S310, RUF100
        f"{sim.base_url}/_simulator/inbound",
        data=data,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with _OPENER.open(http_request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def _answer(sim: TwilioSimulator, request: dict[str, Any]) -> dict[str, Any]:
    status, payload = _inbound(sim, request)
    assert status == 200, payload
    return payload


def _signed_by(received: Received, token: str) -> bool:
    signature = received.headers.get("X-Twilio-Signature")
    return is_valid_signature(received.url, received.pairs, signature, token)


# --- the webhook --------------------------------------------------------------------------------


def test_the_receiver_gets_twilios_incoming_message_form_signed(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    answer = _answer(sim, {"from": PHONE, "to": "+12125550100", "body": "STOP"})

    sid = answer["message_sid"]
    assert re.fullmatch(r"SM[0-9a-f]{32}", sid)
    [received] = receiver.requests()
    assert received.url == receiver.url()
    assert received.params == {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "AccountSid": ACCOUNT,
        "MessagingServiceSid": SERVICE,
        "From": PHONE,
        "To": "+12125550100",
        "Body": "STOP",
        "NumSegments": "1",
        "NumMedia": "0",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
        "FromCountry": "US",
        "FromState": "",
        "FromCity": "",
        "FromZip": "",
        "ToCountry": "US",
        "ToState": "",
        "ToCity": "",
        "ToZip": "",
    }
    assert len(received.pairs) == len(FORM_KEYS)  # each field once
    assert received.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert received.headers["User-Agent"] == "TwilioProxy/1.1"
    assert _signed_by(received, TOKEN)
    assert not _signed_by(received, OTHER_TOKEN)
    assert answer["attempts"] == [
        {"http_status": 200, "content_type": "text/xml", "body": "<Response/>", "error": None}
    ]
    [logged] = sim.inbound_log
    assert logged["message_sid"] == sid
    assert logged["url"] == receiver.url()
    assert logged["params"] == received.params
    assert logged["http_status"] == 200
    # An incoming message is not an outgoing one: nothing is created, no callback goes out.
    assert sim.messages == []
    assert sim.create_count() == 0
    assert sim.callback_log == []


def test_the_sender_s_country_is_its_region_or_empty(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    _answer(sim, {"from": "+33612345678", "to": "+14155550100", "body": "oui"})
    # +44 7700 900xxx is reserved for drama: phonenumbers knows no region for it.
    _answer(sim, {"from": "+447700900123", "to": "+14155550100", "body": "yes"})

    first, second = receiver.requests()
    assert (first.params["FromCountry"], first.params["ToCountry"]) == ("FR", "US")
    assert (second.params["FromCountry"], second.params["ToCountry"]) == ("", "US")


def test_the_first_service_listing_the_number_owns_it(receiver: Receiver) -> None:
    config = _config(receiver.url())
    config.services = {SERVICE: ["+14155550100"], ALPHA_SERVICE: ["+14155550100"]}
    with TwilioSimulator(config) as simulator:
        _answer(simulator, {"from": PHONE, "to": "+14155550100", "body": "hi"})

    [received] = receiver.requests()
    assert received.params["MessagingServiceSid"] == SERVICE
    assert received.params["AccountSid"] == ACCOUNT
    assert _signed_by(received, TOKEN)


def test_a_service_of_another_account_is_signed_with_that_account_s_token(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    _answer(sim, {"from": PHONE, "to": "+447700900100", "body": "hi"})

    [received] = receiver.requests()
    assert received.params["AccountSid"] == OTHER_ACCOUNT
    assert received.params["MessagingServiceSid"] == ALPHA_SERVICE
    assert _signed_by(received, OTHER_TOKEN)
    assert not _signed_by(received, TOKEN)


@pytest.mark.parametrize(
    ("path", "expected_path"),
    [
        ("/twilio/inbound", "/twilio/inbound?mode=test"),
        ("/twilio/inbound?tenant=a", "/twilio/inbound?tenant=a&mode=test"),
    ],
)
def test_a_test_message_adds_mode_test_to_the_signed_url(
    receiver: Receiver, path: str, expected_path: str
) -> None:
    with TwilioSimulator(_config(receiver.url(path))) as simulator:
        answer = _answer(
            simulator, {"from": PHONE, "to": "+14155550100", "body": "hi", "test": True}
        )
        logged_url = simulator.inbound_log[0]["url"]

    [received] = receiver.requests()
    assert received.url == receiver.url(expected_path)
    assert logged_url == receiver.url(expected_path)
    assert _signed_by(received, TOKEN)
    # Signed over the URL with mode=test, not the configured one.
    assert not is_valid_signature(
        receiver.url(path), received.pairs, received.headers["X-Twilio-Signature"], TOKEN
    )
    assert answer["attempts"][0]["http_status"] == 200


def test_test_false_posts_to_the_url_as_configured(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    _answer(sim, {"from": PHONE, "to": "+14155550100", "body": "hi", "test": False})

    [received] = receiver.requests()
    assert received.url == receiver.url()


def test_duplicate_posts_the_same_message_twice(sim: TwilioSimulator, receiver: Receiver) -> None:
    answer = _answer(sim, {"from": PHONE, "to": "+14155550100", "body": "hi", "duplicate": True})

    first, second = receiver.requests()
    assert first.params == second.params
    assert first.params["MessageSid"] == answer["message_sid"]
    assert first.headers["X-Twilio-Signature"] == second.headers["X-Twilio-Signature"]
    assert _signed_by(second, TOKEN)
    assert len(answer["attempts"]) == 2
    assert [entry["message_sid"] for entry in sim.inbound_log] == [answer["message_sid"]] * 2
    assert [entry["attempt"] for entry in sim.inbound_log] == [1, 2]


def test_each_message_gets_a_new_sid(sim: TwilioSimulator, receiver: Receiver) -> None:
    first = _answer(sim, {"from": PHONE, "to": "+14155550100", "body": "one"})
    second = _answer(sim, {"from": PHONE, "to": "+14155550100", "body": "two"})

    assert first["message_sid"] != second["message_sid"]
    assert [r.params["MessageSid"] for r in receiver.requests()] == [
        first["message_sid"],
        second["message_sid"],
    ]


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (200, "application/xml", "<Response><Message>Bye</Message></Response>"),
        (204, None, ""),
        (403, "text/plain; charset=utf-8", "forbidden: bad signature"),
        (500, "application/json", '{"error": "boom"}'),
    ],
)
def test_the_answer_reports_what_the_receiver_answered(
    sim: TwilioSimulator,
    receiver: Receiver,
    status: int,
    content_type: str | None,
    body: str,
) -> None:
    receiver.reply_status = status
    receiver.reply_content_type = content_type
    receiver.reply_body = body.encode()

    answer = _answer(sim, {"from": PHONE, "to": "+14155550100", "body": "hi"})

    # Posted once: an error answer is not retried.
    assert len(receiver.requests()) == 1
    assert answer["attempts"] == [
        {"http_status": status, "content_type": content_type, "body": body, "error": None}
    ]


def test_the_answer_keeps_the_first_2000_characters_of_a_long_body(
    sim: TwilioSimulator, receiver: Receiver
) -> None:
    receiver.reply_content_type = "text/plain; charset=utf-8"
    receiver.reply_body = ("é" * 1999 + "ж" + "x" * 3000).encode()

    answer = _answer(sim, {"from": PHONE, "to": "+14155550100", "body": "hi"})

    assert answer["attempts"][0]["body"] == "é" * 1999 + "ж"


def test_an_unreachable_inbound_url_is_reported_as_an_error(receiver: Receiver) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    with TwilioSimulator(_config(f"http://127.0.0.1:{dead_port}/in")) as simulator:
        answer = _answer(simulator, {"from": PHONE, "to": "+14155550100", "body": "hi"})
        log = simulator.inbound_log

    [attempt] = answer["attempts"]
    assert attempt["http_status"] is None
    assert attempt["content_type"] is None
    assert attempt["body"] == ""
    assert isinstance(attempt["error"], str)
    assert attempt["error"]
    assert [entry["error"] for entry in log] == [attempt["error"]]


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, "1"),
        ("a" * 161, "2"),
        ("a" * 1600, "11"),
        ("ж" * 70, "1"),
        ("Привет, " * 9, "2"),  # 72 characters outside GSM-7
    ],
)
def test_num_segments_follows_the_encoding(
    sim: TwilioSimulator, receiver: Receiver, body: str, segments: str
) -> None:
    _answer(sim, {"from": PHONE, "to": "+14155550100", "body": body})

    [received] = receiver.requests()
    assert received.params["NumSegments"] == segments
    assert received.params["Body"] == body
    assert _signed_by(received, TOKEN)


# --- refusals -----------------------------------------------------------------------------------

_VALID = {"from": PHONE, "to": "+14155550100", "body": "hi"}


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"", id="empty"),
        pytest.param([_VALID], id="a-list"),
        pytest.param({**_VALID, "media": "x"}, id="unknown-key"),
        pytest.param({"to": "+14155550100", "body": "hi"}, id="no-from"),
        pytest.param({"from": PHONE, "body": "hi"}, id="no-to"),
        pytest.param({"from": PHONE, "to": "+14155550100"}, id="no-body"),
        pytest.param({**_VALID, "from": "16465551234"}, id="from-without-plus"),
        pytest.param({**_VALID, "from": "+06465551234"}, id="from-leading-zero"),
        pytest.param({**_VALID, "from": "+1"}, id="from-too-short"),
        pytest.param({**_VALID, "from": "+1234567890123456"}, id="from-too-long"),
        pytest.param(
            {
                **_VALID,
                "from": "+1" + "\u0666\u0664\u0666\u0665\u0665\u0665\u0661\u0662\u0663\u0664",
            },
            id="from-non-ascii-digits",
        ),
        pytest.param({**_VALID, "from": "+1646555123a"}, id="from-letter"),
        pytest.param({**_VALID, "from": 16465551234}, id="from-a-number"),
        pytest.param({**_VALID, "to": "+16465559999"}, id="to-in-no-pool"),
        pytest.param({**_VALID, "to": "ACME"}, id="to-alphanumeric"),
        pytest.param({**_VALID, "to": None}, id="to-null"),
        pytest.param({**_VALID, "to": "+17185550100"}, id="service-without-account"),
        pytest.param({**_VALID, "to": "+13105550100"}, id="account-without-token"),
        pytest.param({**_VALID, "body": ""}, id="body-empty"),
        pytest.param({**_VALID, "body": "a" * 1601}, id="body-too-long"),
        pytest.param({**_VALID, "body": ["hi"]}, id="body-not-a-string"),
        pytest.param({**_VALID, "test": "true"}, id="test-not-a-boolean"),
        pytest.param({**_VALID, "duplicate": 1}, id="duplicate-not-a-boolean"),
        pytest.param({**_VALID, "test": None}, id="test-null"),
    ],
)
def test_a_bad_request_gets_400_and_posts_nothing(
    sim: TwilioSimulator, receiver: Receiver, request_: Any
) -> None:
    status, payload = _inbound(sim, request_)

    _assert_refused(status, payload)
    assert receiver.requests() == []
    assert sim.inbound_log == []


@pytest.mark.parametrize("inbound_url", [None, "/twilio/inbound", "ftp://127.0.0.1/in"])
def test_without_a_usable_inbound_url_the_request_gets_400(
    receiver: Receiver, inbound_url: str | None
) -> None:
    with TwilioSimulator(_config(inbound_url)) as simulator:
        status, payload = _inbound(simulator, _VALID)
        log = simulator.inbound_log

    _assert_refused(status, payload)
    assert log == []


def test_inbound_url_and_service_accounts_can_be_configured_at_runtime(
    receiver: Receiver,
) -> None:
    config = _config(None)
    config.service_accounts = {}
    with TwilioSimulator(config) as simulator:
        status, _ = _inbound(simulator, _VALID)
        assert status == 400
        simulator.configure(inbound_url=receiver.url(), service_accounts={SERVICE: ACCOUNT})
        answer = _answer(simulator, _VALID)

    [received] = receiver.requests()
    assert received.params["MessageSid"] == answer["message_sid"]
    assert _signed_by(received, TOKEN)


def test_only_post_reaches_the_endpoint(sim: TwilioSimulator, receiver: Receiver) -> None:
    request = urllib.request.Request(  # noqa: S310, RUF100 - the simulator's own http:// URL
        f"{sim.base_url}/_simulator/inbound", method="GET"
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        _OPENER.open(request, timeout=5)
    with raised.value as error:
        assert error.code == 404
    assert receiver.requests() == []


def _assert_refused(status: int, payload: dict[str, Any]) -> None:
    assert status == 400
    assert payload["code"] == 0
    assert payload["status"] == 400
    assert isinstance(payload["message"], str)
    assert payload["message"]


# --- command line -------------------------------------------------------------------------------


def test_command_line_sets_the_inbound_url_and_the_only_account_owns_every_service() -> None:
    args = _build_parser().parse_args(
        [
            "--account",
            f"{ACCOUNT}:{TOKEN}",
            "--service",
            f"{SERVICE}:+14155550100",
            "--service",
            f"{ALPHA_SERVICE}:ACME",
            "--inbound-url",
            "http://127.0.0.1:3000/twilio/inbound",
        ]
    )

    config = _config_from_args(args)

    assert config.inbound_url == "http://127.0.0.1:3000/twilio/inbound"
    assert config.service_accounts == {SERVICE: ACCOUNT, ALPHA_SERVICE: ACCOUNT}


def test_command_line_with_several_accounts_takes_service_accounts() -> None:
    args = _build_parser().parse_args(
        [
            "--account",
            f"{ACCOUNT}:{TOKEN}",
            "--account",
            f"{OTHER_ACCOUNT}:{OTHER_TOKEN}",
            "--service",
            f"{SERVICE}:+14155550100",
            "--service",
            f"{ALPHA_SERVICE}:ACME",
            "--service-account",
            f"{ALPHA_SERVICE}:{OTHER_ACCOUNT}",
        ]
    )

    config = _config_from_args(args)

    assert config.inbound_url is None
    assert config.service_accounts == {ALPHA_SERVICE: OTHER_ACCOUNT}


def test_command_line_refuses_a_malformed_service_account() -> None:
    with pytest.raises(SystemExit):
        _build_parser().parse_args(
            ["--account", f"{ACCOUNT}:{TOKEN}", "--service-account", SERVICE]
        )
