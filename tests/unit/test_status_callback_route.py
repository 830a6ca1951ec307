"""POST /v1/webhook/twilio/sms-status answered by the route, with its dependencies replaced.

The integration tests run the whole callback against moto; these pin, without the network, what
they leave loose: the exact answer Twilio (and an operator reading the access log) gets on every
refusal and failure, what is recorded when a 21610 lacks its scope or number, which signature
URL is checked for each form of PUBLIC_BASE_URL, how fresh reads of the auth token are budgeted,
and the reason an operator reads for each refusal.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from twilio.request_validator import RequestValidator

from sms_gateway import config
from sms_gateway.api import webhook_routes
from sms_gateway.api.http import build_resolver
from sms_gateway.domain.provider_events import ProviderEvent
from sms_gateway.logic import handoff, status_updates
from sms_gateway.providers.twilio import callbacks as status_callback
from sms_gateway.providers.twilio import credentials as provider_credentials
from sms_gateway.store import opt_out_store, transitions
from sms_local import http_events

PATH = status_callback.CALLBACK_PATH
HOST = "abc123defg.execute-api.us-east-1.amazonaws.com"
BASE_URL = "https://sms.example.com"
ACCOUNT = "AC" + "1" * 32
OTHER_ACCOUNT = "AC" + "2" * 32
SERVICE = "MG" + "3" * 32
MOBILE_US = "+14155552671"
UNSUBSCRIBED = "21610"


# --- what the route depends on, replaced ------------------------------------------------------


@dataclass
class Secrets:
    """Secrets Manager as provider_credentials.auth_token presents it: a per-container cache in
    front of the stored secrets, bypassed by a fresh read."""

    stored: dict[str, str] = field(default_factory=dict)
    cached: dict[str, str | None] = field(default_factory=dict)
    reads: list[tuple[str, bool]] = field(default_factory=list)
    unavailable: bool = False

    def auth_token(self, secret_name: str, *, fresh: bool = False) -> str | None:
        self.reads.append((secret_name, fresh))
        if self.unavailable:
            raise provider_credentials.CredentialsUnavailableError(secret_name)
        if fresh or secret_name not in self.cached:
            self.cached[secret_name] = self.stored.get(secret_name)
        return self.cached[secret_name]


@dataclass
class Recorder:
    """What reached the status machine and the opt-out store."""

    events: list[tuple[str, ProviderEvent]] = field(default_factory=list)
    opt_outs: list[tuple[str, str]] = field(default_factory=list)
    opt_out_error: ClientError | None = None

    def apply_provider_event(self, message_id: str, event: ProviderEvent) -> bool:
        self.events.append((message_id, event))
        return True

    def add_provider_unsubscribed(
        self, service_sid: str, number: str, message_id: str | None = None
    ) -> bool:
        if self.opt_out_error is not None:
            raise self.opt_out_error
        self.opt_outs.append((service_sid, number))
        return True


@dataclass
class LogRecorder:
    """The status callback's log lines, as (level, message, extra)."""

    lines: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def _log(self, level: str, message: str, extra: dict[str, Any] | None) -> None:
        self.lines.append((level, message, dict(extra or {})))

    def info(self, message: str, *, extra: dict[str, Any] | None = None) -> None:
        self._log("info", message, extra)

    def warning(self, message: str, *, extra: dict[str, Any] | None = None) -> None:
        self._log("warning", message, extra)

    def error(self, message: str, *, extra: dict[str, Any] | None = None) -> None:
        self._log("error", message, extra)

    def refusals(self) -> list[dict[str, Any]]:
        return [extra for _, message, extra in self.lines if message == "status callback refused"]


class FrozenClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Stack:
    secrets: Secrets
    recorder: Recorder
    log: LogRecorder
    clock: FrozenClock


def secret(account_sid: str) -> str:
    return provider_credentials.secret_name_for_account(account_sid)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The environment template.yaml gives the function; no AWS call is made with it here."""
    for name in (
        "MESSAGES_TABLE",
        "USE_CASES_TABLE",
        "OPT_OUTS_TABLE",
        "API_KEYS_TABLE",
        "IDEMPOTENCY_TABLE",
        "CATALOG_TABLE",
    ):
        monkeypatch.setenv(name, f"unit-{name.lower()}")
    monkeypatch.setenv("PUBLIC_BASE_URL", BASE_URL)
    monkeypatch.delenv("TWILIO_SECRET_PREFIX", raising=False)
    config.reset_settings()
    yield
    monkeypatch.undo()
    config.reset_settings()


@pytest.fixture
def stack(settings: None, monkeypatch: pytest.MonkeyPatch) -> Stack:
    secrets = Secrets(
        stored={secret(ACCOUNT): uuid.uuid4().hex, secret(OTHER_ACCOUNT): uuid.uuid4().hex}
    )
    recorder = Recorder()
    log = LogRecorder()
    clock = FrozenClock()
    monkeypatch.setattr(provider_credentials, "auth_token", secrets.auth_token)
    monkeypatch.setattr(transitions, "apply_provider_event", recorder.apply_provider_event)
    monkeypatch.setattr(
        opt_out_store, "add_provider_unsubscribed", recorder.add_provider_unsubscribed
    )
    monkeypatch.setattr(status_callback, "logger", log)
    monkeypatch.setattr(status_updates, "logger", log)
    monkeypatch.setattr(
        status_callback,
        "fresh_reads",
        status_callback.FreshReadLimiter(status_callback.FRESH_READ_INTERVAL_SECONDS, clock=clock),
    )
    return Stack(secrets, recorder, log, clock)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


def callback_params(
    account_sid: str = ACCOUNT, status: str = "delivered", **extra: str
) -> dict[str, str]:
    params = {
        "AccountSid": account_sid,
        "MessageSid": "SM" + "0" * 32,
        "MessageStatus": status,
        "From": "+14155550100",
        "To": MOBILE_US,
    }
    params.update(extra)
    return params


def sign(url: str, params: dict[str, str], token: str) -> str:
    signature: str = RequestValidator(token).compute_signature(url, params)
    return signature


def post(
    query: str, params: dict[str, str], signature: str | None, *, body: bytes | None = None
) -> Answer:
    """The request as API Gateway hands it to StatusCallbackFunction, answered by its route.
    `body`: sent instead of the form of `params`."""
    headers = {"host": HOST, "content-type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["x-twilio-signature"] = signature
    event = http_events.http_event(
        method="POST",
        raw_path=PATH,
        raw_query=query,
        headers=headers,
        body=urlencode(params).encode() if body is None else body,
        route_key=f"POST {PATH}",
    )
    app = build_resolver()
    app.include_router(webhook_routes.router)
    result = app.resolve(event, LambdaContext())
    body = json.loads(result["body"]) if result.get("body") else None
    return Answer(result["statusCode"], body, dict(result.get("headers") or {}))


def genuine(
    stack: Stack,
    message_id: str,
    params: dict[str, str],
    *,
    token: str | None = None,
    url: str | None = None,
) -> Answer:
    """Signed as Twilio signs: over the URL the handoff gave it, with the subaccount's token."""
    query = urlencode({"message_id": message_id})
    signed_over = handoff.status_callback_url(message_id) if url is None else url
    token = stack.secrets.stored[secret(params["AccountSid"])] if token is None else token
    return post(query, params, sign(signed_over, params, token))


def forged(message_id: str, params: dict[str, str]) -> Answer:
    query = urlencode({"message_id": message_id})
    return post(query, params, sign(handoff.status_callback_url(message_id), params, "forger"))


FORBIDDEN = {"error": {"code": "forbidden", "message": "invalid Twilio signature"}}


# --- the exact answers -------------------------------------------------------------------------


def test_every_refusal_is_the_same_403_body(stack: Stack) -> None:
    """One answer for every cause (so nobody can probe which account SIDs are ours), with the
    message text Twilio's debugger shows."""
    message_id = str(uuid.uuid4())
    stranger = "AC" + uuid.uuid4().hex

    answers = [
        forged(message_id, callback_params()),  # mismatch, past the fresh read
        forged(message_id, callback_params()),  # mismatch, fresh read not allowed again
        post(urlencode({"message_id": message_id}), callback_params(), None),  # unsigned
        genuine(stack, message_id, callback_params(stranger), token="any"),  # unknown account
        genuine(stack, message_id, callback_params("AC123"), token="any"),  # malformed account
        # a form that is not UTF-8 (passed on base64-encoded), so cannot be Twilio's
        post(urlencode({"message_id": message_id}), {}, "sig", body=b"AccountSid=\xc3\x28"),
    ]

    assert [(a.status, a.body) for a in answers] == [(403, FORBIDDEN)] * len(answers)
    assert stack.recorder.events == []


def test_an_unreadable_auth_token_is_a_503_the_caller_may_retry(stack: Stack) -> None:
    """Secrets Manager failing is not a forgery: 503 with its own message and a Retry-After."""
    stack.secrets.unavailable = True

    answer = genuine(stack, str(uuid.uuid4()), callback_params(), token="any")

    assert answer.status == 503
    assert answer.body == {
        "error": {"code": "service_unavailable", "message": "cannot verify the signature now"}
    }
    assert answer.headers["Retry-After"] == "5"
    assert stack.recorder.events == []


def test_an_opt_out_that_cannot_be_written_is_a_503_naming_it(stack: Stack) -> None:
    stack.recorder.opt_out_error = ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
        "PutItem",
    )
    params = callback_params(
        status="failed", ErrorCode=UNSUBSCRIBED, MessagingServiceSid=SERVICE, To=MOBILE_US
    )

    answer = genuine(stack, str(uuid.uuid4()), params)

    assert answer.status == 503
    assert answer.body == {
        "error": {"code": "service_unavailable", "message": "cannot record the opt-out now"}
    }
    assert answer.headers["Retry-After"] == "5"


# --- a 21610 without what the opt-out needs ----------------------------------------------------


def test_a_21610_records_the_opt_out_under_its_service_and_number(stack: Stack) -> None:
    """The control for the cases below: with both present, the opt-out is written."""
    params = callback_params(
        status="failed", ErrorCode=UNSUBSCRIBED, MessagingServiceSid=SERVICE, To=MOBILE_US
    )

    assert genuine(stack, str(uuid.uuid4()), params).status == 204

    assert stack.recorder.opt_outs == [(SERVICE, MOBILE_US)]


@pytest.mark.parametrize(
    "service_sid",
    [
        None,  # no MessagingServiceSid field at all
        "",
        "MG123",  # not a service SID: no scope a send is ever checked against
        "XX" + "3" * 32,
    ],
)
def test_a_21610_without_a_messaging_service_is_acknowledged_and_opts_nobody_out(
    stack: Stack, service_sid: str | None
) -> None:
    params = callback_params(status="failed", ErrorCode=UNSUBSCRIBED, To=MOBILE_US)
    if service_sid is not None:
        params["MessagingServiceSid"] = service_sid
    message_id = str(uuid.uuid4())

    answer = genuine(stack, message_id, params)

    assert (answer.status, answer.body) == (204, None)
    assert [m for m, _ in stack.recorder.events] == [message_id]  # the status still applies
    assert stack.recorder.opt_outs == []


@pytest.mark.parametrize(
    "to",
    [
        None,  # no To field at all
        "",
        "not a number",
        "+14155550",  # too short to be valid
    ],
)
def test_a_21610_without_a_usable_to_is_acknowledged_and_opts_nobody_out(
    stack: Stack, to: str | None
) -> None:
    params = callback_params(status="failed", ErrorCode=UNSUBSCRIBED, MessagingServiceSid=SERVICE)
    if to is None:
        del params["To"]
    else:
        params["To"] = to
    message_id = str(uuid.uuid4())

    answer = genuine(stack, message_id, params)

    assert (answer.status, answer.body) == (204, None)
    assert [m for m, _ in stack.recorder.events] == [message_id]
    assert stack.recorder.opt_outs == []


# --- the URL that was signed -------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "https://sms.example.com/",  # a trailing slash is not doubled
        "https://sms.example.com/FAX",  # nor is anything but '/' stripped
        "https://sms.example.com/FAX/",
        "https://sms.example.com",
    ],
)
def test_a_callback_signed_over_the_url_the_handoff_gave_twilio_is_accepted(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, base_url: str
) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", base_url)
    config.reset_settings()
    message_id = str(uuid.uuid4())

    answer = genuine(stack, message_id, callback_params())

    assert (answer.status, answer.body) == (204, None)
    assert [m for m, _ in stack.recorder.events] == [message_id]


# --- fresh reads of a rotated token ------------------------------------------------------------


def test_a_forgery_naming_one_subaccount_does_not_use_up_anothers_fresh_read(
    stack: Stack,
) -> None:
    """Each subaccount has its own budget: a flood of forgeries for one cannot delay the
    rotation check of another (whose genuine callbacks would otherwise be refused for 30 s)."""
    first_id, other_id = str(uuid.uuid4()), str(uuid.uuid4())
    assert genuine(stack, other_id, callback_params(OTHER_ACCOUNT, "sent")).status == 204
    assert forged(first_id, callback_params(ACCOUNT)).status == 403  # ACCOUNT's fresh read
    stack.secrets.stored[secret(OTHER_ACCOUNT)] = uuid.uuid4().hex  # OTHER_ACCOUNT rotated

    answer = genuine(stack, other_id, callback_params(OTHER_ACCOUNT, "delivered"))

    assert (answer.status, answer.body) == (204, None)
    assert [(m, e.provider_status) for m, e in stack.recorder.events] == [
        (other_id, "sent"),
        (other_id, "delivered"),
    ]


def test_a_forgery_right_after_a_rotation_is_refused_by_the_fresh_token_too(
    stack: Stack,
) -> None:
    """The cached token is stale and the fresh one differs: the forgery must still match the
    fresh one to pass, and it does not."""
    message_id = str(uuid.uuid4())
    assert genuine(stack, message_id, callback_params(status="sent")).status == 204
    stack.secrets.stored[secret(ACCOUNT)] = uuid.uuid4().hex  # rotated; old one still cached

    answer = forged(message_id, callback_params(status="delivered"))

    assert (answer.status, answer.body) == (403, FORBIDDEN)
    assert (secret(ACCOUNT), True) in stack.secrets.reads  # the fresh read did happen
    assert [e.provider_status for _, e in stack.recorder.events] == ["sent"]


def test_a_callback_for_a_subaccount_whose_secret_was_deleted_is_refused(stack: Stack) -> None:
    """The cached token still exists but the secret is gone: a mismatch reads it again, finds
    nothing, and refuses (403, not a 500)."""
    message_id = str(uuid.uuid4())
    old = stack.secrets.stored[secret(ACCOUNT)]
    assert genuine(stack, message_id, callback_params(status="sent")).status == 204
    del stack.secrets.stored[secret(ACCOUNT)]

    answer = genuine(stack, message_id, callback_params(status="delivered"), token=old + "x")

    assert (answer.status, answer.body) == (403, FORBIDDEN)
    assert [e.provider_status for _, e in stack.recorder.events] == ["sent"]


# --- what an operator reads about a refusal ----------------------------------------------------


def test_each_refusal_logs_its_reason_and_the_account(stack: Stack) -> None:
    """The 403 is the same for every cause; the log line is where an operator tells a made-up
    account from a bad signature, and which subaccount it named."""
    message_id = str(uuid.uuid4())
    stranger = "AC" + uuid.uuid4().hex
    query = urlencode({"message_id": message_id})

    assert genuine(stack, message_id, callback_params(stranger), token="any").status == 403
    assert post(query, callback_params(ACCOUNT), None).status == 403  # unsigned: no fresh read
    assert forged(message_id, callback_params(ACCOUNT)).status == 403  # read again, still wrong
    assert forged(message_id, callback_params(ACCOUNT)).status == 403  # within the interval
    assert post(query, callback_params("AC123"), "sig").status == 403

    assert stack.log.refusals() == [
        {"reason": "unknown account", "account_sid": stranger},
        {"reason": "signature mismatch", "account_sid": ACCOUNT},
        {"reason": "signature mismatch", "account_sid": ACCOUNT, "secret_read_again": True},
        {"reason": "signature mismatch", "account_sid": ACCOUNT},
        {"reason": "no valid AccountSid"},
    ]
