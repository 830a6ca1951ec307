"""One delivery of a handoff record, decided without SQS (sms_gateway.logic.handoff_deliveries):
what comes back and when, what is counted as unexpected, and what the queue's last delivery does.
The handler's wiring of this decision to SQS is tested in test_handoff_decisions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sms_gateway.logic import handoff, handoff_deliveries
from sms_gateway.logic.handoff import HandoffOutcome, RetryHandoffLater
from tests.unit.settings import gateway_settings

LAST = 15  # HANDOFF_MAX_RECEIVES below


@pytest.fixture(autouse=True)
def _settings() -> Iterator[None]:
    with gateway_settings(
        HANDOFF_RETRY_BASE_SECONDS="10",
        HANDOFF_MAX_RECEIVES=str(LAST),
        PROVIDER_CONNECT_TIMEOUT_SECONDS="3",
        PROVIDER_READ_TIMEOUT_SECONDS="10",
    ):
        yield


@dataclass
class Queue:
    """What the delivery asked of the queue and the metrics, and what the handoff did."""

    hand_backs: list[int] = field(default_factory=list)
    unexpected: int = 0
    ended: list[str] = field(default_factory=list)
    handed_off: list[str] = field(default_factory=list)


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> Queue:
    state = Queue()

    def end_unfinished(message_id: str) -> HandoffOutcome:
        state.ended.append(message_id)
        return HandoffOutcome.GAVE_UP

    monkeypatch.setattr(handoff, "end_unfinished", end_unfinished)
    return state


def accepting(queue: Queue) -> Any:
    """A hand_off that Twilio accepts, noted in `queue`."""

    def hand_off(message_id: str, **_: Any) -> HandoffOutcome:
        queue.handed_off.append(message_id)
        return HandoffOutcome.ACCEPTED

    return hand_off


def raising(exc: Exception) -> Any:
    def hand_off(message_id: str, **_: Any) -> HandoffOutcome:
        raise exc

    return hand_off


def deliver(queue: Queue, receive_count: int, seconds_left: float = 60.0) -> HandoffOutcome:
    def unexpected() -> None:
        queue.unexpected += 1

    return handoff_deliveries.deliver(
        "msg-1",
        receive_count=receive_count,
        seconds_left=lambda: seconds_left,
        hand_back=queue.hand_backs.append,
        on_unexpected=unexpected,
    )


def test_a_message_handed_off_is_neither_handed_back_nor_ended(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handoff, "hand_off", accepting(queue))
    assert deliver(queue, 1) is HandoffOutcome.ACCEPTED
    assert (queue.handed_off, queue.hand_backs, queue.ended) == (["msg-1"], [], [])


@pytest.mark.parametrize(
    ("raised", "receive_count", "delay"),
    [
        (RetryHandoffLater("busy", backoff=True), 1, 10),
        (RetryHandoffLater("busy", backoff=True), 2, 20),
        (RetryHandoffLater("busy", backoff=True), LAST - 1, 900),
        (RetryHandoffLater("claimed", backoff=False, retry_in_seconds=61), 7, 61),
        (RetryHandoffLater("claimed", backoff=False, retry_in_seconds=10**6), 1, 12 * 3600 - 900),
        (RetryHandoffLater("claimed", backoff=False, retry_in_seconds=-5), 1, 0),
    ],
    ids=["backoff-1st", "backoff-2nd", "backoff-capped", "until-stale", "sqs-12-hours", "not-<0"],
)
def test_a_record_that_must_wait_is_handed_back_with_its_delay_and_not_counted(
    queue: Queue, monkeypatch: pytest.MonkeyPatch, raised: Exception, receive_count: int,
    delay: int,
) -> None:  # fmt: skip
    monkeypatch.setattr(handoff, "hand_off", raising(raised))
    with pytest.raises(RetryHandoffLater):
        deliver(queue, receive_count)
    assert queue.hand_backs == [delay]
    assert queue.unexpected == 0 and queue.ended == []


def test_an_unexpected_error_backs_off_and_is_left_to_the_handler_to_count(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handoff, "hand_off", raising(KeyError("bug")))
    with pytest.raises(KeyError):
        deliver(queue, 3)
    # Raised to the handler, which counts what it catches: counting here too would count twice
    assert queue.hand_backs == [40] and queue.unexpected == 0 and queue.ended == []


def test_too_little_time_left_hands_back_with_backoff_without_touching_the_message(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handoff, "hand_off", raising(AssertionError("must not be called")))
    with pytest.raises(RetryHandoffLater) as retry:
        deliver(queue, 2, seconds_left=handoff.provider_call_seconds() - 0.001)
    assert retry.value.backoff and queue.hand_backs == [20]


def test_a_record_with_exactly_the_time_for_one_provider_call_is_handed_off(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handoff, "hand_off", accepting(queue))
    exactly = handoff.provider_call_seconds()
    assert deliver(queue, 2, seconds_left=exactly) is HandoffOutcome.ACCEPTED
    assert (queue.handed_off, queue.hand_backs) == (["msg-1"], [])


@pytest.mark.parametrize(
    ("raised", "counted"),
    [(RetryHandoffLater("busy", backoff=True), 0), (RuntimeError("a dependency failed"), 1)],
    ids=["must-wait", "unexpected"],
)
def test_the_last_delivery_ends_the_message_and_counts_only_the_unexpected(
    queue: Queue, monkeypatch: pytest.MonkeyPatch, raised: Exception, counted: int
) -> None:
    monkeypatch.setattr(handoff, "hand_off", raising(raised))
    assert deliver(queue, LAST) is HandoffOutcome.GAVE_UP
    assert queue.ended == ["msg-1"] and queue.hand_backs == []
    assert queue.unexpected == counted


def test_a_delivery_past_the_last_still_ends_the_message(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQS's receive count can run past maxReceiveCount (a redrive, a record received twice)
    monkeypatch.setattr(handoff, "hand_off", raising(RetryHandoffLater("busy", backoff=True)))
    assert deliver(queue, LAST + 3) is HandoffOutcome.GAVE_UP
    assert queue.ended == ["msg-1"]


def test_the_backoff_doubles_from_the_base_and_stops_at_15_minutes() -> None:
    assert [handoff_deliveries.backoff_seconds(n) for n in (0, 1, 2, 3, 7, 8, 30)] == [
        10, 10, 20, 40, 640, 900, 900,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("exc", "described"),
    [(RetryHandoffLater("a claim is in progress", backoff=False), "a claim is in progress"),
     (ValueError("+14155552671 is not valid"), "ValueError")],
    ids=["our-reason", "any-other-error-by-type-only"],
)  # fmt: skip
def test_a_cause_is_described_without_an_exceptions_text(exc: Exception, described: str) -> None:
    # Another exception's text may hold a phone number or a body: only its type is logged
    assert handoff_deliveries.describe(exc) == described
