"""When DynamoDB throttles the writes that record Twilio's answer or give a claim back, the handoff
tries again (handoff._with_retries) with growing pauses, a bounded number of times; then it raises
DynamoDB's own error. Losing such a write would later fail a message as outcome unknown (99001)
although Twilio's answer had come.

DynamoDB is moto's, in this process (tests.unit.test_transitions). The throttling is DynamoDB's
error answered in place of the call, as the client raises it once botocore's own attempts are
spent; no pause is really slept.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError

from sms_gateway.domain.messages import Message
from sms_gateway.domain.provider_choices import TwilioChoice
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic import handoff
from sms_gateway.providers.twilio import client as twilio_client
from sms_gateway.store import aws_clients, transitions
from tests.unit.test_transitions import (  # noqa: F401 - messages_table is a fixture
    ACCOUNT,
    messages_table,
    new_item,
    store,
    stored,
)

CLAIMED_AT = "2026-03-01T10:00:00.000Z"
SID = "SM" + "5" * 32
# What DynamoDB answers a caller it throttles (or fails on its side): each is worth another try.
THROTTLING = (
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
)


def record_answer(message: Message, result: Any) -> handoff.HandoffOutcome:
    """The handoff's recording of Twilio's answer, for a message claimed at CLAIMED_AT."""
    delivery = handoff._Handoff(message, USE_CASE, CLAIMED_AT, handoff.no_deadline, {})
    return delivery.record_answer(TwilioChoice(), result, None)


class Throttled:
    """Answers the next `times` UpdateItem calls with DynamoDB's error `code` instead of making
    them; later calls reach the table. Counts every call."""

    def __init__(self, times: int, code: str) -> None:
        self.times = times
        self.code = code
        self.calls = 0

    def __call__(self, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        self.calls += 1
        if self.calls > self.times:
            return None
        error = {"Code": self.code, "Message": "Rate of requests exceeds the allowed throughput."}
        response = AWSResponse("https://dynamodb.us-east-1.amazonaws.com", 400, HTTPHeaders(), None)
        return response, {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}


@pytest.fixture
def throttle(messages_table: None) -> Iterator[list[Throttled]]:  # noqa: F811
    """Install a Throttled with `throttle.append(Throttled(...))` (at most one)."""
    installed: list[Throttled] = []

    def hook(**kwargs: Any) -> Any:
        return installed[0](**kwargs) if installed else None

    events = aws_clients.dynamodb().meta.events
    events.register("before-call.dynamodb.UpdateItem", hook, unique_id="throttle")
    yield installed
    events.unregister("before-call.dynamodb.UpdateItem", unique_id="throttle")


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the handoff takes between attempts (recorded, not slept)."""
    taken: list[float] = []
    monkeypatch.setattr(handoff, "time", SimpleNamespace(sleep=taken.append))
    return taken


def claimed_message() -> Message:
    """A pending message a worker has claimed, about to call Twilio."""
    item = new_item()
    store(item)
    assert transitions.claim_for_handoff(item["id"], CLAIMED_AT)
    current = stored(item["id"])
    assert current is not None
    return Message.model_validate(current)


USE_CASE = UseCase(
    id="u1",
    workspace_id="w1",
    name="Appointment reminders",
    twilio_account_sid=ACCOUNT,
    twilio_auth_token_secret=f"sms/twilio/{ACCOUNT}",
    messaging_service_sid="MG" + "6" * 32,
    created_at=CLAIMED_AT,
    updated_at=CLAIMED_AT,
)


@pytest.mark.parametrize("code", THROTTLING)
def test_twilios_acceptance_is_recorded_through_throttling(
    throttle: list[Throttled], pauses: list[float], code: str
) -> None:
    message = claimed_message()
    throttle.append(Throttled(3, code))  # every attempt but the last

    outcome = record_answer(message, twilio_client.Accepted(SID, 2, "+14155550100"))

    assert outcome is handoff.HandoffOutcome.ACCEPTED
    after = stored(message.id)
    assert after is not None
    assert (after["status"], after["message_sid"], after["num_segments"]) == ("pending", SID, 2)
    # Four attempts in all, with growing pauses between them.
    assert throttle[0].calls == 4
    assert pauses == [0.2, 0.4, 0.8]


def test_twilios_rejection_is_recorded_through_throttling(
    throttle: list[Throttled], pauses: list[float]
) -> None:
    message = claimed_message()
    throttle.append(Throttled(2, "ProvisionedThroughputExceededException"))

    outcome = record_answer(message, twilio_client.Rejected(21211, 400))

    assert outcome is handoff.HandoffOutcome.REJECTED
    after = stored(message.id)
    assert after is not None
    assert (after["status"], after["error_code"]) == ("failed", 21211)
    assert throttle[0].calls == 3
    assert pauses == [0.2, 0.4]


def test_a_claim_is_given_back_through_throttling(
    throttle: list[Throttled], pauses: list[float]
) -> None:
    # As hand_off gives back its claim when the request certainly did not leave.
    message = claimed_message()
    throttle.append(Throttled(1, "ThrottlingException"))

    assert handoff._with_retries(lambda: transitions.release_claim(message.id, CLAIMED_AT))

    after = stored(message.id)
    assert after is not None and "claimed_at" not in after
    assert (throttle[0].calls, pauses) == (2, [0.2])


@pytest.mark.parametrize("code", THROTTLING)
def test_a_write_throttled_on_every_attempt_gives_up_with_dynamodbs_error(
    throttle: list[Throttled], pauses: list[float], code: str
) -> None:
    message = claimed_message()
    before = stored(message.id)
    throttle.append(Throttled(100, code))

    with pytest.raises(ClientError) as caught:
        record_answer(message, twilio_client.Accepted(SID, 1, "+14155550100"))

    # DynamoDB's own error, after four attempts and no pause after the last one.
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.operation_name == "UpdateItem"
    assert throttle[0].calls == 4
    assert pauses == [0.2, 0.4, 0.8]
    # Nothing was written: the claim still holds the message, with no answer recorded.
    assert stored(message.id) == before


def test_a_refused_condition_is_an_answer_not_retried(
    throttle: list[Throttled], pauses: list[float]
) -> None:
    # Another worker's claim, or an answer already recorded: DynamoDB refused the condition.
    message = claimed_message()
    throttle.append(Throttled(0, "unused"))

    assert not handoff._with_retries(lambda: transitions.release_claim(message.id, "not-mine"))

    assert (throttle[0].calls, pauses) == (1, [])
