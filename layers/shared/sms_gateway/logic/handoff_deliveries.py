"""One delivery of a handoff record from the queue: hand the message off, or say when the record
should come back, or, on the queue's last delivery, end the message whatever went wrong (past
that one, SQS would move the record to the dead-letter queue with its message still pending,
where nothing ends it).

The queue itself stays with the handler: it is told how long to hide the record (`hand_back`),
and when an error that is not one of the handoff's own reasons to wait happened
(`on_unexpected`, called while that error is being handled, so it can log its traceback).
"""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools import Logger

from sms_gateway.config import get_settings
from sms_gateway.domain.queue_delays import MAX_RETRY_DELAY_SECONDS
from sms_gateway.logic import handoff
from sms_gateway.logic.handoff import HandoffOutcome, RetryHandoffLater

logger = Logger(child=True)


def deliver(
    message_id: str,
    *,
    receive_count: int,
    seconds_left: Callable[[], float],
    hand_back: Callable[[int], None],
    on_unexpected: Callable[[], None],
) -> HandoffOutcome:
    """The outcome of this delivery; raises what stopped it after asking `hand_back` for the
    delay, unless this is the last delivery, which ends the message instead."""
    try:
        # A record is only started when a whole provider call still fits (hand_off looks again
        # right before the call): a function cut off mid-call would leave the outcome unknown.
        if seconds_left() < handoff.provider_call_seconds():
            # With the backoff, as the README promises: invocations that keep running short
            # must not use up the 15 deliveries in minutes while the provider is fine.
            raise RetryHandoffLater("not enough time left in this invocation", backoff=True)
        return handoff.hand_off(message_id, seconds_left=seconds_left)
    except Exception as exc:
        if not is_last_delivery(receive_count):
            hand_back(retry_delay(exc, receive_count))
            raise
        if not isinstance(exc, RetryHandoffLater):
            on_unexpected()  # about to be ended, so never raised: counted here
        outcome = handoff.end_unfinished(message_id)
        logger.warning(
            "last delivery ended the message",
            extra={"outcome": outcome.value, "cause": describe(exc)},
        )
        return outcome


def is_last_delivery(receive_count: int) -> bool:
    return receive_count >= get_settings().handoff_max_receives


def retry_delay(exc: Exception, receive_count: int) -> int:
    """How long the record stays hidden before its next delivery."""
    if isinstance(exc, RetryHandoffLater) and not exc.backoff:
        delay = exc.retry_in_seconds
    else:
        # The provider or a dependency is failing: wait longer each time.
        delay = backoff_seconds(receive_count)
    return max(0, min(delay, MAX_RETRY_DELAY_SECONDS))


def backoff_seconds(receive_count: int) -> int:
    """Exponential backoff through SQS visibility: 10 s, 20 s, 40 s ... capped at 15 minutes."""
    base = get_settings().handoff_retry_base_seconds
    return int(min(900, base * 2 ** max(0, receive_count - 1)))


def describe(exc: Exception) -> str:
    # Our own reasons for a retry say what happened; any other exception is named by its type.
    return str(exc) if isinstance(exc, RetryHandoffLater) else type(exc).__name__
