"""The handoff's decisions, each on its own with every store and Twilio faked (fast, no
network): what a claim found on a message means by its age, what a lost claim or a missing
secret does, when a claim is given back, and how long a record handed back waits (README,
"What happens when something fails": 10 s, 20 s, 40 s ... capped at 15 min).
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import ClientError
from pydantic import TypeAdapter

from sms_gateway.domain import error_codes
from sms_gateway.domain.clock import iso
from sms_gateway.domain.messages import Message, MessageStatus
from sms_gateway.domain.provider_attempts import (
    MAX_PROVIDER_ATTEMPTS,
    AttemptOutcome,
    ProviderAttempt,
)
from sms_gateway.domain.provider_choices import ProviderChoice
from sms_gateway.domain.use_cases import Sender, SenderKind, UseCase
from sms_gateway.logic import handoff, handoff_deliveries
from sms_gateway.logic.handoff import HandoffOutcome, RetryHandoffLater
from sms_gateway.providers.twilio import client as twilio_client
from sms_gateway.providers.twilio import credentials as provider_credentials
from sms_gateway.store import (
    aws_clients,
    message_store,
    opt_out_store,
    provider_health,
    sms_voice,
    transitions,
    use_case_store,
)
from sms_local.template import PROJECT_ROOT
from tests.unit.settings import gateway_settings

NOW = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
TIMEOUT = timedelta(seconds=60)  # HANDOFF_CLAIM_TIMEOUT_SECONDS below
SECRET = "sms/twilio/AC" + "1" * 32


@pytest.fixture(autouse=True)
def _settings() -> Iterator[None]:
    with gateway_settings(
        HANDOFF_QUEUE_URL="https://sqs.local/handoff",
        HANDOFF_CLAIM_TIMEOUT_SECONDS="60",
        HANDOFF_RETRY_BASE_SECONDS="10",
        HANDOFF_MAX_RECEIVES="15",
        PUBLIC_BASE_URL="https://sms.example.test",
        EUM_CONFIGURATION_SET="sms-gateway-events",
    ):
        yield


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
    use_case: UseCase = field(default_factory=a_use_case)
    token: str | None = "token"
    claim_wins: bool = True
    answer: Any = field(default_factory=lambda: twilio_client.Accepted("SM1", 1, "+14155550100"))
    # Conditional writes whose condition fails (another worker got there first).
    refused: set[str] = field(default_factory=set)
    writes: list[tuple[Any, ...]] = field(default_factory=list)
    # What Twilio was asked, request by request.
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Answers to the requests after the first, in order (then `answer` again).
    later_answers: list[Any] = field(default_factory=list)
    fresh_token: str | None = "token"
    # The provider each claim named, and every provider attempt written.
    claimed_for: list[str] = field(default_factory=list)
    attempts: list[Any] = field(default_factory=list)
    failures_counted: list[str] = field(default_factory=list)

    @property
    def posts(self) -> int:
        return len(self.requests)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    state = World(a_message())

    def claim(message_id: str, at: str, provider: str) -> bool:
        state.writes.append(("claim", message_id, at))
        state.claimed_for.append(provider)
        return state.claim_wins

    def create_message(**request: Any) -> Any:
        state.requests.append(request)
        answer = (
            state.later_answers.pop(0)
            if len(state.requests) > 1 and state.later_answers
            else state.answer
        )
        if isinstance(answer, Exception):
            raise answer
        return answer

    def token(_: str, *, fresh: bool = False) -> str | None:
        return state.fresh_token if fresh else state.token

    def write(name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> bool:
            # The provider attempts a write adds are kept on their own (see `attempts`).
            attempt = kwargs.pop("attempt", None)
            kwargs.pop("provider", None)
            if attempt is not None:
                state.attempts.append(attempt)
            state.writes.append((name, *args, *sorted(kwargs.items())))
            return name not in state.refused

        return record

    monkeypatch.setattr(handoff, "utc_now", lambda: NOW)
    monkeypatch.setattr(handoff, "now_iso", lambda: iso(NOW))
    monkeypatch.setattr(message_store, "get_message", lambda _: state.message)
    monkeypatch.setattr(use_case_store, "get_use_case_cached", lambda _: state.use_case)
    monkeypatch.setattr(opt_out_store, "scopes_for", lambda *_, **__: [])
    monkeypatch.setattr(provider_credentials, "auth_token", token)
    monkeypatch.setattr(twilio_client, "create_message", create_message)
    monkeypatch.setattr(transitions, "claim_for_handoff", claim)
    monkeypatch.setattr(provider_health, "cooling", lambda _: frozenset())

    def record_failure(provider: str, _: datetime) -> bool:
        state.failures_counted.append(provider)
        return False

    monkeypatch.setattr(provider_health, "record_failure", record_failure)
    for name in (
        "release_claim", "record_acceptance", "fail", "fail_unsent", "apply_provider_event",
        "hand_to_next_provider",
    ):  # fmt: skip
        monkeypatch.setattr(transitions, name, write(name))
    # An attempt kept on its own changes nothing else: not among the writes.

    def record_attempt(*_: Any, attempt: Any) -> bool:
        state.attempts.append(attempt)
        return True

    monkeypatch.setattr(transitions, "record_attempt", record_attempt)
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
    assert retry.value.backoff is False
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
    assert retry.value.backoff is False
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


# --- What Twilio is asked -------------------------------------------------------------------------


def test_twilio_is_asked_to_send_the_message_through_the_use_cases_service_with_a_callback(
    world: World,
) -> None:
    assert handoff.hand_off("msg-1") is HandoffOutcome.ACCEPTED
    assert world.requests == [
        {
            "account_sid": "AC" + "1" * 32,
            "auth_token": "token",
            "to": "+14155552671",
            "body": "Hello",
            "messaging_service_sid": "MG" + "1" * 32,
            "status_callback": (
                "https://sms.example.test/v1/webhook/twilio/sms-status?message_id=msg-1"
            ),
            "sender_id": None,
            "validity_period": None,
        }
    ]


def test_an_applied_sender_id_is_sent_as_from_and_one_not_applied_is_not(world: World) -> None:
    world.message = a_message().model_copy(update={"sender_id": "Acme", "sender_id_applied": True})
    handoff.hand_off("msg-1")
    world.message = a_message().model_copy(update={"sender_id": "Acme", "sender_id_applied": False})
    handoff.hand_off("msg-1")
    assert [r["sender_id"] for r in world.requests] == ["Acme", None]


@pytest.mark.parametrize(
    ("waited", "left"),
    [(timedelta(0), 600), (timedelta(seconds=100.5), 499), (timedelta(seconds=599.2), 1)],
)
def test_twilio_gets_what_is_left_of_the_validity_period(
    world: World, waited: timedelta, left: int
) -> None:
    """Counted from the message's creation: the time it waited here is not Twilio's to spend."""
    world.message = a_message().model_copy(
        update={"validity_period": 600, "created_at": iso(NOW - waited)}
    )
    assert handoff.hand_off("msg-1") is HandoffOutcome.ACCEPTED
    assert world.requests[0]["validity_period"] == left


@pytest.mark.parametrize("late", [timedelta(0), timedelta(seconds=1)])
def test_a_message_past_its_validity_period_is_failed_unsent(world: World, late: timedelta) -> None:
    world.message = a_message().model_copy(
        update={"validity_period": 60, "created_at": iso(NOW - timedelta(seconds=60) - late)}
    )
    assert handoff.hand_off("msg-1") is HandoffOutcome.REJECTED
    assert world.posts == 0
    [(name, message_id, _, code, reason)] = world.writes
    assert (name, message_id, code) == ("fail_unsent", "msg-1", error_codes.VALIDITY_PERIOD_EXPIRED)
    assert reason == ("reason", "validity_period_expired")


def test_a_scheduled_message_s_validity_counts_from_its_send_at(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(opt_out_store, "is_opted_out", lambda *_: False)
    world.message = a_message().model_copy(
        update={
            "validity_period": 60,
            "created_at": iso(NOW - timedelta(days=2)),
            "send_at": iso(NOW - timedelta(seconds=59)),
        }
    )
    assert handoff.hand_off("msg-1") is HandoffOutcome.ACCEPTED
    assert world.requests[0]["validity_period"] == 1


def test_a_refused_token_that_was_rotated_is_read_again_and_the_message_sent_with_the_new_one(
    world: World,
) -> None:
    world.answer = twilio_client.Rejected(error_code=20003, http_status=401)
    world.later_answers = [twilio_client.Accepted("SM2", 1, "+14155550100")]
    world.fresh_token = "rotated"
    assert handoff.hand_off("msg-1") is HandoffOutcome.ACCEPTED
    assert [r["auth_token"] for r in world.requests] == ["token", "rotated"]


def test_a_refused_token_that_did_not_change_is_not_tried_twice(world: World) -> None:
    world.answer = twilio_client.Rejected(error_code=20003, http_status=401)
    assert handoff.hand_off("msg-1") is HandoffOutcome.REJECTED
    assert world.posts == 1
    assert world.writes[-1][:4] == ("fail", "msg-1", iso(NOW), 20003)


def test_a_provider_call_needs_both_timeouts_and_the_time_to_record_its_answer() -> None:
    # Defaults: 3.05 s to connect, 10 s to read, 2 s to write the answer down
    assert handoff.provider_call_seconds() == pytest.approx(3.05 + 10.0 + 2.0)


def test_a_call_that_exactly_fits_in_the_time_left_is_made(world: World) -> None:
    exactly = handoff.provider_call_seconds()
    assert handoff.hand_off("msg-1", seconds_left=lambda: exactly) is HandoffOutcome.ACCEPTED
    assert world.posts == 1


# --- Twilio's answer, as stored ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_segments", "segments"), [(3, 3), (None, 2)], ids=["twilios-count", "counted-from-body"]
)
def test_an_acceptance_stores_twilios_sid_sender_and_segment_count(
    world: World, num_segments: int | None, segments: int
) -> None:
    # A 200-character GSM-7 body takes 2 parts: our count when Twilio's answer has none
    world.message = a_message().model_copy(update={"body": "a" * 200})
    world.answer = twilio_client.Accepted("SM9", num_segments, "+14155550199")
    assert handoff.hand_off("msg-1") is HandoffOutcome.ACCEPTED
    assert world.writes[1:] == [
        ("record_acceptance", "msg-1", iso(NOW), "SM9", segments, "+14155550199"),
    ]


def test_a_rejection_fails_the_message_under_its_claim_with_twilios_code(world: World) -> None:
    world.answer = twilio_client.Rejected(error_code=21211, http_status=400)
    assert handoff.hand_off("msg-1") is HandoffOutcome.REJECTED
    [claim, failed] = world.writes
    # Only while this claim holds it with no answer; the history entry says Twilio refused it
    assert failed == (
        "fail", "msg-1", iso(NOW), 21211, ("claimed_at", claim[2]), ("reason", "provider_rejected"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("other_delivery_won", "outcome"),
    [(False, HandoffOutcome.OUTCOME_UNKNOWN), (True, HandoffOutcome.ALREADY_HANDLED)],
    ids=["still-ours", "answer-recorded-meanwhile"],
)
def test_no_answer_after_sending_fails_the_message_only_under_its_own_claim(
    world: World, other_delivery_won: bool, outcome: HandoffOutcome
) -> None:
    # Twilio may have created the message: a callback or another delivery may record its answer
    # meanwhile, and then the message must not be failed
    world.answer = twilio_client.OutcomeUnknown("no answer after sending: ReadTimeoutError")
    if other_delivery_won:
        world.refused = {"fail"}
    assert handoff.hand_off("msg-1") is outcome
    [claim, failed] = world.writes
    assert failed == (
        "fail", "msg-1", iso(NOW), 99001, ("claimed_at", claim[2]),
        ("reason", "handoff_outcome_unknown"),
    )  # fmt: skip
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
    assert [handoff_deliveries.backoff_seconds(n) for n in range(1, 16)] == [
        10, 20, 40, 80, 160, 320, 640, 900, 900, 900, 900, 900, 900, 900, 900,
    ]  # fmt: skip
    assert [handoff_deliveries.backoff_seconds(n) for n in range(1, 16)] == [
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
        # Without backoff and without a delay given, the record comes back at once
        (RetryHandoffLater("retry now", backoff=False), 4, 0),
    ],
    ids=[
        "backoff-1st", "backoff-3rd", "backoff-capped", "unexpected-error", "until-stale",
        "never-past-sqs-12-hours", "never-negative", "no-delay-given-means-at-once",
    ],
)  # fmt: skip
def test_every_record_handed_back_changes_its_visibility(
    app: ModuleType, monkeypatch: pytest.MonkeyPatch, raised: Exception, receive_count: int,
    delay: int,
) -> None:  # fmt: skip
    sqs = FakeSqs()
    monkeypatch.setattr(aws_clients, "sqs", lambda: sqs)

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


def test_a_retry_that_names_no_delay_comes_back_at_once(
    app: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The retry is made while the test runs, not when the module is collected: a retry built
    # by a parametrize list would not reach a changed default of RetryHandoffLater.
    sqs = FakeSqs()
    monkeypatch.setattr(aws_clients, "sqs", lambda: sqs)

    def retry_now(message_id: str, **_: Any) -> HandoffOutcome:
        raise RetryHandoffLater("retry now", backoff=False)

    monkeypatch.setattr(handoff, "hand_off", retry_now)
    with pytest.raises(RetryHandoffLater):
        app._handle(sqs_record(4), None)
    assert [change["VisibilityTimeout"] for change in sqs.changes] == [0]


def test_the_last_delivery_ends_the_message_instead_of_handing_it_back(
    app: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs = FakeSqs()
    monkeypatch.setattr(aws_clients, "sqs", lambda: sqs)

    def busy(message_id: str, **_: Any) -> HandoffOutcome:
        raise RetryHandoffLater("busy", backoff=True)

    monkeypatch.setattr(handoff, "hand_off", busy)
    monkeypatch.setattr(handoff, "end_unfinished", lambda _: HandoffOutcome.GAVE_UP)
    assert app._handle(sqs_record(15), None) is HandoffOutcome.GAVE_UP
    assert sqs.changes == []


# --- A stale claim another worker resolved first -------------------------------------------------


def test_a_stale_claim_whose_answer_came_meanwhile_is_not_reported_as_outcome_unknown(
    world: World,
) -> None:
    # Given a stale claim whose worker records Twilio's answer just before this one fails it
    world.message = a_message(claimed_at=iso(NOW - TIMEOUT))
    world.refused = {"fail"}
    # Then the message is someone else's to report: not counted as ended outcome unknown
    assert handoff.hand_off("msg-1") is HandoffOutcome.ALREADY_HANDLED
    assert world.posts == 0


# --- A test key's message ------------------------------------------------------------------------


def test_a_test_message_of_a_use_case_with_no_phone_number_sender_is_delivered_without_one(
    world: World,
) -> None:
    # Given a use case that sends only from a sender ID and a short code (no "+" number)
    world.use_case = a_use_case().model_copy(
        update={
            "sender_pool": [
                Sender(sender="Acme", kind=SenderKind.ALPHANUMERIC),
                Sender(sender="12345", kind=SenderKind.SHORT_CODE),
            ]
        }
    )
    world.message = a_message().model_copy(update={"test": True})
    # Then its test message is still accepted and delivered, with no sender recorded
    assert handoff.hand_off("msg-1") is HandoffOutcome.ACCEPTED
    [claim, accepted, delivered] = world.writes
    assert claim[0] == "claim"
    assert accepted[0] == "record_acceptance" and accepted[-1] is None
    assert delivered[0] == "apply_provider_event"
    assert (
        delivered[2].provider_status == "delivered" and delivered[2].account_sid == "AC" + "1" * 32
    )
    assert world.posts == 0


# --- The queue's last delivery (end_unfinished) -------------------------------------------------


@pytest.mark.parametrize(
    "found",
    [
        a_message().model_copy(update={"status": MessageStatus.FAILED, "error_code": 21610}),
        a_message(claimed_at=iso(NOW)).model_copy(update={"message_sid": "SM1"}),
    ],
    ids=["ended-without-a-sid", "pending-with-twilios-answer"],
)
def test_the_last_delivery_leaves_a_message_already_ended_or_answered_as_it_is(
    world: World, found: Message
) -> None:
    world.message = found
    assert handoff.end_unfinished("msg-1") is HandoffOutcome.ALREADY_HANDLED
    assert world.writes == []


def test_the_last_delivery_gives_up_an_unclaimed_message_as_provider_unavailable(
    world: World,
) -> None:
    assert handoff.end_unfinished("msg-1") is HandoffOutcome.GAVE_UP
    # The history entry a caller reads says why (GET /messages/{id} with its history)
    assert world.writes == [
        ("fail_unsent", "msg-1", iso(NOW), 99003, ("reason", "handoff_gave_up")),
    ]


def test_the_last_delivery_ends_a_claimed_message_only_under_that_same_claim(
    world: World,
) -> None:
    claimed_at = iso(NOW - timedelta(seconds=5))
    world.message = a_message(claimed_at=claimed_at)
    assert handoff.end_unfinished("msg-1") is HandoffOutcome.OUTCOME_UNKNOWN
    # Conditional on that claim: a worker that gives it back or answers first is not overruled
    assert world.writes == [
        ("fail", "msg-1", iso(NOW), 99001, ("claimed_at", claimed_at),
         ("reason", "handoff_outcome_unknown")),
    ]  # fmt: skip


def test_the_last_delivery_looks_again_when_the_claims_worker_answered_first(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a claim whose worker records Twilio's answer between this look and this write
    looks = iter(
        [
            a_message(claimed_at=iso(NOW)),
            a_message(claimed_at=iso(NOW)).model_copy(update={"message_sid": "SM1"}),
        ]
    )
    monkeypatch.setattr(message_store, "get_message", lambda _: next(looks))
    world.refused = {"fail"}
    # Then the message is not reported as outcome unknown: it was handed off
    assert handoff.end_unfinished("msg-1") is HandoffOutcome.ALREADY_HANDLED
    assert [w[0] for w in world.writes] == ["fail"]


def test_a_message_that_keeps_changing_under_its_last_delivery_is_named_in_the_error(
    world: World,
) -> None:
    # Every write loses to another worker, look after look: the error logged names the message
    world.message = a_message(claimed_at=iso(NOW))
    world.refused = {"fail"}
    with pytest.raises(RuntimeError) as raised:
        handoff.end_unfinished("msg-1")
    assert str(raised.value) == "message msg-1 kept changing under its last delivery"
    assert len(world.writes) == handoff.LAST_DELIVERY_LOOKS


# --- Why a message was ended, as the last delivery's log tells operators ------------------------


@contextmanager
def app_logs() -> Iterator[io.StringIO]:
    """What the functions log (Powertools' handler on the service logger)."""
    captured = io.StringIO()
    handlers = [
        h for h in logging.getLogger(os.environ["POWERTOOLS_SERVICE_NAME"]).handlers
        if isinstance(h, logging.StreamHandler)
    ]  # fmt: skip
    assert handlers
    previous = [h.setStream(captured) for h in handlers]
    try:
        yield captured
    finally:
        for handler, stream in zip(handlers, previous, strict=True):
            handler.setStream(stream)


@pytest.mark.parametrize(
    ("claimed_at", "claim_wins", "cause"),
    [
        (None, False, "claimed by another worker"),
        (iso(NOW - timedelta(seconds=5)), True, "a claim is in progress"),
    ],
    ids=["claim-lost-to-a-twin", "live-claim-found"],
)
def test_the_last_delivery_log_says_why_the_message_could_not_be_handed_off(
    app: ModuleType, world: World, monkeypatch: pytest.MonkeyPatch, claimed_at: str | None,
    claim_wins: bool, cause: str,
) -> None:  # fmt: skip
    world.message = a_message(claimed_at=claimed_at)
    world.claim_wins = claim_wins
    monkeypatch.setattr(handoff, "end_unfinished", lambda _: HandoffOutcome.OUTCOME_UNKNOWN)
    with app_logs() as logs:
        assert app._handle(sqs_record(15), None) is HandoffOutcome.OUTCOME_UNKNOWN
    [ended] = [
        entry for entry in map(json.loads, logs.getvalue().splitlines())
        if entry["message"] == "last delivery ended the message"
    ]  # fmt: skip
    assert (ended["outcome"], ended["cause"]) == ("outcome_unknown", cause)


class Invocation:
    """A Lambda invocation's clock: `looks` milliseconds left at its first looks, then 5 s (less
    than one provider call takes)."""

    def __init__(self, *looks: int) -> None:
        self.looks = iter(looks)

    def get_remaining_time_in_millis(self) -> int:
        return next(self.looks, 5_000)


@pytest.mark.parametrize(
    ("fault", "cause", "posts"),
    [
        ("secrets-manager-unavailable", "credentials unavailable now", 0),
        ("provider-busy", "HTTP 503", 1),
        ("no-time-for-the-record", "not enough time left in this invocation", 0),
        ("no-time-for-the-provider-call", "not enough time left in this invocation", 0),
    ],
    ids=[
        "secrets-manager-unavailable", "provider-busy", "no-time-for-the-record",
        "no-time-for-the-provider-call",
    ],
)  # fmt: skip
def test_the_last_delivery_log_says_what_kept_the_message_from_being_sent(
    app: ModuleType, world: World, monkeypatch: pytest.MonkeyPatch, fault: str, cause: str,
    posts: int,
) -> None:  # fmt: skip
    context: Invocation | None = None
    if fault == "secrets-manager-unavailable":

        def unavailable(_: str, *, fresh: bool = False) -> str | None:
            raise provider_credentials.CredentialsUnavailableError(SECRET)

        monkeypatch.setattr(provider_credentials, "auth_token", unavailable)
    elif fault == "provider-busy":
        world.answer = twilio_client.RetryLater("HTTP 503")
    elif fault == "no-time-for-the-record":
        context = Invocation()
    else:
        context = Invocation(30_000)  # time for the record, not for the call after its reads
    with app_logs() as logs:
        assert app._handle(sqs_record(15), context) is HandoffOutcome.GAVE_UP
    # Certainly not sent, so ended as given up (99003), not left pending in the dead-letter queue
    assert world.writes[-1] == (
        "fail_unsent", "msg-1", iso(NOW), 99003, ("reason", "handoff_gave_up"),
    )  # fmt: skip
    assert world.posts == posts
    [ended] = [
        entry for entry in map(json.loads, logs.getvalue().splitlines())
        if entry["message"] == "last delivery ended the message"
    ]  # fmt: skip
    assert (ended["outcome"], ended["cause"]) == ("gave_up", cause)


@pytest.mark.parametrize(("body", "segments"), [("Hello", 1), ("a" * 161, 2)])
def test_a_test_message_stored_without_a_count_gets_one_counted(
    world: World, body: str, segments: int
) -> None:
    """Messages stored before the send counted segments have none: the simulated acceptance
    counts them from the body, as a real one does when the provider gives no count."""
    world.message = a_message().model_copy(update={"test": True, "body": body, "segments": None})
    assert handoff.hand_off("msg-1") is HandoffOutcome.ACCEPTED
    [_, accepted, _] = world.writes
    assert accepted[0] == "record_acceptance" and accepted[4] == segments


# --- Failover to AWS End User Messaging SMS -----------------------------------------------------

EUM_CHOICE = {"name": "aws_eum", "origination_identity": "pool-0123456789abcdef"}


@pytest.fixture
def eum_requests(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """SendTextMessage's requests; each is answered with a MessageId (or `eum_answer`)."""
    sent: list[dict[str, Any]] = []

    def send_text_message(params: dict[str, Any]) -> Any:
        sent.append(params)
        return {"MessageId": f"eum-{len(sent)}"}

    monkeypatch.setattr(sms_voice, "send_text_message", send_text_message)
    return sent


def with_providers(world: World, *choices: dict[str, str]) -> None:
    world.use_case = world.use_case.model_copy(
        update={
            "providers": [TypeAdapter(ProviderChoice).validate_python(choice) for choice in choices]
        }
    )


def test_a_busy_twilio_hands_the_message_to_aws_at_once_under_the_same_claim(
    world: World, eum_requests: list[dict[str, Any]]
) -> None:
    with_providers(world, {"name": "twilio"}, EUM_CHOICE)
    world.answer = twilio_client.RetryLater("HTTP 503", 20503)

    assert handoff.hand_off("msg-1") is HandoffOutcome.ACCEPTED

    [claim, next_provider, accepted] = world.writes
    assert world.claimed_for == ["twilio"]
    # Twilio's refusal is written with the next provider's name, under the claim, before AWS
    assert next_provider[:3] == ("hand_to_next_provider", "msg-1", claim[2])
    assert accepted[:4] == ("record_acceptance", "msg-1", iso(NOW), "eum-1")
    assert [(a.provider, a.outcome, a.error_code) for a in world.attempts] == [
        ("twilio", "retry_later", 20503),
        ("aws_eum", "accepted", None),
    ]
    assert world.attempts[1].provider_message_id == "eum-1"
    [request] = eum_requests
    assert request == {
        "DestinationPhoneNumber": "+14155552671",
        "OriginationIdentity": "pool-0123456789abcdef",
        "MessageBody": "Hello",
        "MessageType": "TRANSACTIONAL",
        "ConfigurationSetName": "sms-gateway-events",
        "Context": {"message_id": "msg-1"},
    }
    # Twilio's unavailability counts against its health
    assert world.failures_counted == ["twilio"]


def test_a_provider_cooling_down_is_tried_last(
    world: World, eum_requests: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with_providers(world, {"name": "twilio"}, EUM_CHOICE)
    monkeypatch.setattr(provider_health, "cooling", lambda _: frozenset({"twilio"}))

    assert handoff.hand_off("msg-1") is HandoffOutcome.ACCEPTED

    assert world.claimed_for == ["aws_eum"] and world.posts == 0 and len(eum_requests) == 1


@pytest.mark.parametrize(
    "answer",
    [
        twilio_client.Rejected(21211, 400, recipient=True),
        twilio_client.OutcomeUnknown("no answer after sending: ReadTimeoutError"),
    ],
    ids=["recipient-error", "unknown-outcome"],
)
def test_no_failover_after_a_recipient_error_or_an_unknown_outcome(
    world: World, eum_requests: list[dict[str, Any]], answer: Any
) -> None:
    with_providers(world, {"name": "twilio"}, EUM_CHOICE)
    world.answer = answer

    handoff.hand_off("msg-1")

    assert eum_requests == []
    assert [w[0] for w in world.writes] == ["claim", "fail"]


def test_when_every_provider_refuses_for_good_the_first_refusal_fails_the_message(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_providers(world, {"name": "twilio"}, EUM_CHOICE)
    world.answer = twilio_client.Rejected(21606, 400)

    def refused(params: dict[str, Any]) -> Any:
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, "SendTextMessage"
        )

    monkeypatch.setattr(sms_voice, "send_text_message", refused)

    assert handoff.hand_off("msg-1") is HandoffOutcome.REJECTED
    assert world.writes[-1][:4] == ("fail", "msg-1", iso(NOW), 21606)
    assert [(a.provider, a.outcome, a.error_code) for a in world.attempts] == [
        ("twilio", "refused", 21606),
        ("aws_eum", "refused", 20003),
    ]
    # A refusal says nothing of a provider's health
    assert world.failures_counted == []


def test_a_lost_claim_stops_the_failover_before_the_next_provider(
    world: World, eum_requests: list[dict[str, Any]]
) -> None:
    with_providers(world, {"name": "twilio"}, EUM_CHOICE)
    world.answer = twilio_client.RetryLater("HTTP 503", 20503)
    world.refused = {"hand_to_next_provider"}

    with pytest.raises(RetryHandoffLater):
        handoff.hand_off("msg-1")

    assert eum_requests == []


def test_a_message_holding_all_the_attempts_it_may_gets_no_more(
    world: World, eum_requests: list[dict[str, Any]]
) -> None:
    full = [
        ProviderAttempt(provider="twilio", at=iso(NOW), outcome=AttemptOutcome.RETRY_LATER)
    ] * MAX_PROVIDER_ATTEMPTS
    world.message = world.message.model_copy(update={"provider_attempts": full})
    with_providers(world, {"name": "twilio"}, EUM_CHOICE)
    world.answer = twilio_client.RetryLater("HTTP 503", 20503)

    assert handoff.hand_off("msg-1") is HandoffOutcome.ACCEPTED
    assert world.attempts == []


@pytest.mark.parametrize(
    ("validity_left", "time_to_live"), [(3, 5), (600, 600), (400_000, 259_200)]
)
def test_aws_keeps_the_message_no_longer_than_its_validity_within_its_bounds(
    world: World, eum_requests: list[dict[str, Any]], validity_left: int, time_to_live: int
) -> None:
    with_providers(world, EUM_CHOICE)
    world.message = world.message.model_copy(update={"validity_period": validity_left})

    handoff.hand_off("msg-1")

    assert eum_requests[0]["TimeToLive"] == time_to_live


def test_an_answer_from_aws_without_a_message_id_is_an_unknown_outcome(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 200 whose body botocore could not read (it parses it as {}): AWS may have taken it
    with_providers(world, EUM_CHOICE, {"name": "twilio"})
    monkeypatch.setattr(sms_voice, "send_text_message", lambda params: {})

    assert handoff.hand_off("msg-1") is HandoffOutcome.OUTCOME_UNKNOWN

    assert world.posts == 0  # never sent through Twilio after it
    assert [(a.provider, a.outcome) for a in world.attempts] == [("aws_eum", "unknown")]


def test_a_message_with_a_sender_id_is_not_sent_through_aws(
    world: World, eum_requests: list[dict[str, Any]]
) -> None:
    with_providers(world, EUM_CHOICE, {"name": "twilio"})
    world.message = world.message.model_copy(
        update={"sender_id": "ACME", "sender_id_applied": True}
    )

    assert handoff.hand_off("msg-1") is HandoffOutcome.ACCEPTED

    assert eum_requests == []
    assert world.requests[0]["sender_id"] == "ACME"
    assert [(a.provider, a.outcome, a.error_code) for a in world.attempts] == [
        ("aws_eum", "refused", 21606),
        ("twilio", "accepted", None),
    ]


def test_a_failover_write_that_keeps_failing_gives_the_claim_back_unsent(
    world: World, eum_requests: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with_providers(world, {"name": "twilio"}, EUM_CHOICE)
    world.answer = twilio_client.RetryLater("HTTP 503", 20503)
    monkeypatch.setattr(time, "sleep", lambda _: None)

    def throttled(*_: Any, **__: Any) -> bool:
        raise ClientError(
            {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem"
        )

    monkeypatch.setattr(transitions, "hand_to_next_provider", throttled)

    with pytest.raises(ClientError):
        handoff.hand_off("msg-1")

    # AWS never asked; the claim given back with Twilio's attempt, so a retry sends it
    assert eum_requests == []
    assert world.writes[-1][:3] == ("release_claim", "msg-1", world.writes[0][2])
    assert [(a.provider, a.outcome) for a in world.attempts] == [("twilio", "retry_later")]
