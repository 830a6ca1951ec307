"""The handoff's decisions, each on its own with every store and Twilio faked (fast, no
network): what a claim found on a message means by its age, what a lost claim or a missing
secret does, when a claim is given back, and how long a record handed back waits (README,
"What happens when something fails": 10 s, 20 s, 40 s ... capped at 15 min).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from sms_gateway import (
    config,
    handoff,
    message_store,
    opt_out_store,
    provider_credentials,
    transitions,
    twilio_client,
    use_case_store,
)
from sms_gateway.clock import iso
from sms_gateway.handoff import HandoffOutcome, RetryHandoffLater
from sms_gateway.messages import Message, MessageStatus
from sms_gateway.use_cases import UseCase
from sms_local.template import PROJECT_ROOT

NOW = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
TIMEOUT = timedelta(seconds=60)  # HANDOFF_CLAIM_TIMEOUT_SECONDS below
SECRET = "sms/twilio/AC" + "1" * 32


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (
        "MESSAGES_TABLE", "USE_CASES_TABLE", "OPT_OUTS_TABLE", "API_KEYS_TABLE",
        "IDEMPOTENCY_TABLE",
    ):  # fmt: skip
        monkeypatch.setenv(name, "t")
    monkeypatch.setenv("HANDOFF_QUEUE_URL", "https://sqs.local/handoff")
    monkeypatch.setenv("HANDOFF_CLAIM_TIMEOUT_SECONDS", "60")
    monkeypatch.setenv("HANDOFF_RETRY_BASE_SECONDS", "10")
    monkeypatch.setenv("HANDOFF_MAX_RECEIVES", "15")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://sms.example.test")
    config.reset_settings()
    yield
    config.reset_settings()


def readme_backoff(receive_count: int) -> int:
    return int(min(15 * 60, 10 * 2 ** (receive_count - 1)))


def a_use_case() -> UseCase:
    return UseCase.model_validate(
        {
            "id": "uc-1",
            "workspace_id": "ws-1",
            "name": "Reminders",
            "twilio_account_sid": "AC" + "1" * 32,
            "twilio_auth_token_secret": SECRET,
            "messaging_service_sid": "MG" + "1" * 32,
            "sender_pool": [{"sender": "+14155550100", "kind": "long_code"}],
            "a2p_campaign_status": "verified",
            "brand_status": "active",
            "allowed_countries": ["US"],
            "created_at": iso(NOW),
            "updated_at": iso(NOW),
        }
    )


def a_message(claimed_at: str | None = None) -> Message:
    return Message(
        id="msg-1",
        workspace_id="ws-1",
        use_case_id="uc-1",
        to_number="+14155552671",
        body="Hello",
        status=MessageStatus.PENDING,
        account_sid="AC" + "1" * 32,
        claimed_at=claimed_at,
        created_at=iso(NOW),
        updated_at=iso(NOW),
    )


@dataclass
class World:
    """The stores and Twilio as the handoff sees them, and every write it asked for."""

    message: Message
    token: str | None = "token"
    claim_wins: bool = True
    answer: Any = field(default_factory=lambda: twilio_client.Accepted("SM1", 1, "+14155550100"))
    writes: list[tuple[Any, ...]] = field(default_factory=list)
    posts: int = 0


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    state = World(a_message())

    def claim(message_id: str, at: str) -> bool:
        state.writes.append(("claim", message_id, at))
        return state.claim_wins

    def create_message(**_: Any) -> Any:
        state.posts += 1
        if isinstance(state.answer, Exception):
            raise state.answer
        return state.answer

    def token(_: str, *, fresh: bool = False) -> str | None:
        return state.token

    def write(name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> bool:
            state.writes.append((name, *args, *sorted(kwargs.items())))
            return True

        return record

    monkeypatch.setattr(handoff, "utc_now", lambda: NOW)
    monkeypatch.setattr(handoff, "now_iso", lambda: iso(NOW))
    monkeypatch.setattr(message_store, "get_message", lambda _: state.message)
    monkeypatch.setattr(use_case_store, "get_use_case_cached", lambda _: a_use_case())
    monkeypatch.setattr(opt_out_store, "scopes_for", lambda *_: [])
    monkeypatch.setattr(provider_credentials, "auth_token", token)
    monkeypatch.setattr(twilio_client, "create_message", create_message)
    monkeypatch.setattr(transitions, "claim_for_handoff", claim)
    for name in ("release_claim", "record_acceptance", "fail", "fail_unsent"):
        monkeypatch.setattr(transitions, name, write(name))
    return state


# --- A claim found on the message ---------------------------------------------------------------


@pytest.mark.parametrize(
    "age",
    [timedelta(0), timedelta(seconds=1), TIMEOUT - timedelta(milliseconds=1)],
    ids=["just-taken", "a-second-old", "a-millisecond-before-stale"],
)
def test_a_live_claim_is_left_to_its_worker_until_it_would_be_stale(
    world: World, age: timedelta
) -> None:
    world.message = a_message(claimed_at=iso(NOW - age))
    with pytest.raises(RetryHandoffLater) as retry:
        handoff.hand_off("msg-1")
    # Nothing written, nothing sent: the worker holding it may be calling Twilio right now
    assert world.writes == [] and world.posts == 0
    # Back when the claim would be stale, not sooner, at most a second later
    left = (TIMEOUT - age).total_seconds()
    assert not retry.value.backoff
    assert left <= retry.value.retry_in_seconds <= left + 1


@pytest.mark.parametrize(
    "age", [TIMEOUT, TIMEOUT + timedelta(milliseconds=1), timedelta(days=1)],
    ids=["exactly-stale", "a-millisecond-past", "a-day-old"],
)  # fmt: skip
def test_a_stale_claim_ends_the_message_as_outcome_unknown(world: World, age: timedelta) -> None:
    claimed_at = iso(NOW - age)
    world.message = a_message(claimed_at=claimed_at)
    assert handoff.hand_off("msg-1") is HandoffOutcome.OUTCOME_UNKNOWN
    # Only while that very claim still holds it with no answer: a later claim is not ended
    assert world.writes == [
        ("fail", "msg-1", iso(NOW), 99001, ("claimed_at", claimed_at),
         ("reason", "handoff_outcome_unknown")),
    ]  # fmt: skip
    assert world.posts == 0


# --- The claim -----------------------------------------------------------------------------------


def test_a_claim_lost_to_another_worker_sends_nothing_and_comes_back_when_it_would_be_stale(
    world: World,
) -> None:
    world.claim_wins = False
    with pytest.raises(RetryHandoffLater) as retry:
        handoff.hand_off("msg-1")
    assert world.posts == 0
    assert [w[0] for w in world.writes] == ["claim"]  # and no release of another's claim
    assert not retry.value.backoff
    assert retry.value.retry_in_seconds == math.ceil(TIMEOUT.total_seconds()) + 1


def test_a_missing_secret_fails_the_message_unsent_without_claiming_it(world: World) -> None:
    world.token = None
    assert handoff.hand_off("msg-1") is HandoffOutcome.REJECTED
    assert world.writes == [
        ("fail_unsent", "msg-1", iso(NOW), 99002, ("reason", "credentials_unavailable"))
    ]
    assert world.posts == 0


def test_secrets_manager_unavailable_retries_with_backoff_without_claiming(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(_: str, *, fresh: bool = False) -> str | None:
        raise provider_credentials.CredentialsUnavailableError(SECRET)

    monkeypatch.setattr(provider_credentials, "auth_token", unavailable)
    with pytest.raises(RetryHandoffLater) as retry:
        handoff.hand_off("msg-1")
    assert retry.value.backoff
    assert world.writes == [] and world.posts == 0


@pytest.mark.parametrize(
    "answer",
    [twilio_client.RetryLater("HTTP 429"), ValueError("the HTTP client could not be set up")],
    ids=["provider-busy", "error-before-the-request-left"],
)
def test_a_claim_is_given_back_when_the_request_certainly_created_nothing(
    world: World, answer: Any
) -> None:
    world.answer = answer
    with pytest.raises(Exception) as raised:
        handoff.hand_off("msg-1")
    [claim, release] = world.writes
    assert claim[0] == "claim" and release == ("release_claim", "msg-1", claim[2])
    if isinstance(answer, twilio_client.RetryLater):
        assert isinstance(raised.value, RetryHandoffLater) and raised.value.backoff


def test_no_time_left_for_the_call_gives_the_claim_back(world: World) -> None:
    with pytest.raises(RetryHandoffLater):
        handoff.hand_off("msg-1", seconds_left=lambda: handoff.provider_call_seconds() - 0.01)
    [claim, release] = world.writes
    assert release == ("release_claim", "msg-1", claim[2])
    assert world.posts == 0


def test_an_answer_keeps_the_claim(world: World) -> None:
    assert handoff.hand_off("msg-1") is HandoffOutcome.ACCEPTED
    assert [w[0] for w in world.writes] == ["claim", "record_acceptance"]
    assert world.posts == 1


# --- How long a record handed back waits (functions/handoff/app.py) ----------------------------


@pytest.fixture(scope="module")
def app() -> ModuleType:
    path = PROJECT_ROOT / "functions/handoff/app.py"
    spec = importlib.util.spec_from_file_location("handoff_app_under_unit_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_backoff_is_the_readmes() -> None:
    assert [handoff.backoff_seconds(n) for n in range(1, 16)] == [
        10, 20, 40, 80, 160, 320, 640, 900, 900, 900, 900, 900, 900, 900, 900,
    ]  # fmt: skip
    assert [handoff.backoff_seconds(n) for n in range(1, 16)] == [
        readme_backoff(n) for n in range(1, 16)
    ]


class FakeSqs:
    def __init__(self) -> None:
        self.changes: list[dict[str, Any]] = []

    def change_message_visibility(self, **params: Any) -> None:
        self.changes.append(params)


def sqs_record(receive_count: int) -> SQSRecord:
    return SQSRecord(
        {
            "messageId": "m-1",
            "receiptHandle": "rh-1",
            "body": '{"message_id": "msg-1"}',
            "attributes": {"ApproximateReceiveCount": str(receive_count)},
        }
    )


@pytest.mark.parametrize(
    ("raised", "receive_count", "delay"),
    [
        (RetryHandoffLater("busy", backoff=True), 1, 10),
        (RetryHandoffLater("busy", backoff=True), 3, 40),
        (RetryHandoffLater("busy", backoff=True), 14, 900),
        (RuntimeError("a dependency failed"), 2, 20),
        (RetryHandoffLater("claimed", backoff=False, retry_in_seconds=61), 5, 61),
        (RetryHandoffLater("claimed", backoff=False, retry_in_seconds=10**6), 1, 12 * 3600 - 900),
        (RetryHandoffLater("claimed", backoff=False, retry_in_seconds=-5), 1, 0),
    ],
    ids=[
        "backoff-1st", "backoff-3rd", "backoff-capped", "unexpected-error", "until-stale",
        "never-past-sqs-12-hours", "never-negative",
    ],
)  # fmt: skip
def test_every_record_handed_back_changes_its_visibility(
    app: ModuleType, monkeypatch: pytest.MonkeyPatch, raised: Exception, receive_count: int,
    delay: int,
) -> None:  # fmt: skip
    sqs = FakeSqs()
    monkeypatch.setattr(app.aws_clients, "sqs", lambda: sqs)

    def hand_off(message_id: str, **_: Any) -> HandoffOutcome:
        raise raised

    monkeypatch.setattr(handoff, "hand_off", hand_off)
    with pytest.raises(type(raised)):
        app._handle(sqs_record(receive_count), None)
    assert sqs.changes == [
        {
            "QueueUrl": "https://sqs.local/handoff",
            "ReceiptHandle": "rh-1",
            "VisibilityTimeout": delay,
        }
    ]


def test_the_last_delivery_ends_the_message_instead_of_handing_it_back(
    app: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs = FakeSqs()
    monkeypatch.setattr(app.aws_clients, "sqs", lambda: sqs)

    def busy(message_id: str, **_: Any) -> HandoffOutcome:
        raise RetryHandoffLater("busy", backoff=True)

    monkeypatch.setattr(handoff, "hand_off", busy)
    monkeypatch.setattr(handoff, "end_unfinished", lambda _: HandoffOutcome.GAVE_UP)
    assert app._handle(sqs_record(15), None) is HandoffOutcome.GAVE_UP
    assert sqs.changes == []
