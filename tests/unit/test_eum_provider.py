"""AWS End User Messaging SMS in our terms, without the network: what SendTextMessage's answers
and exceptions prove (may the next provider be tried? may it be retried?), what each delivery
event means, and the order providers are tried in."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    ReadTimeoutError,
)
from hypothesis import given
from hypothesis import strategies as st

from sms_gateway.domain.messages import MessageStatus
from sms_gateway.domain.provider_choices import AwsEumChoice, TwilioChoice
from sms_gateway.domain.provider_routing import route
from sms_gateway.providers.aws_eum import answers, events
from sms_gateway.providers.results import OutcomeUnknown, Rejected, RetryLater
from sms_gateway.store.sms_voice import NotSentError

MESSAGE_ID = "5f0c7a2e-3b1d-4e8f-a6c9-00000000000a"


def client_error(
    code: str, status: int = 400, **members: Any
) -> dict[str, Any]:  # the response botocore parses
    return {
        "Error": {"Code": code, "Message": "..."},
        "ResponseMetadata": {"HTTPStatusCode": status},
        **members,
    }


# --- SendTextMessage's answers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        # Certainly not taken, worth retrying: the next provider at once, this one later.
        # (A throttle is the account's rate, not AWS's health.)
        (
            client_error("ThrottlingException"),
            RetryLater("throttled", 20429, provider_unavailable=False),
        ),
        (client_error("ServiceUnavailableException", 503), RetryLater("HTTP 503", 20503)),
        # The request reached AWS: it may have created the message.
        (
            client_error("InternalServerException", 500),
            OutcomeUnknown("HTTP 500 InternalServerException"),
        ),
        (client_error("BadGateway", 502), OutcomeUnknown("HTTP 502 BadGateway")),
        # The recipient's: the message fails, no other provider may send it.
        (
            client_error("ConflictException", Reason="DESTINATION_PHONE_NUMBER_OPTED_OUT"),
            Rejected(21610, 400, recipient=True),
        ),
        (
            client_error(
                "ValidationException",
                Reason="INVALID_PARAMETER",
                Fields=[{"Name": "DestinationPhoneNumber", "Message": "invalid"}],
            ),
            Rejected(21211, 400, recipient=True),
        ),
        # The account's or the route's: the next provider may take it.
        (
            client_error("ValidationException", Reason="DESTINATION_COUNTRY_BLOCKED"),
            Rejected(21408, 400),
        ),
        (
            client_error("ValidationException", Reason="SENDER_ID_NOT_REGISTERED"),
            Rejected(21606, 400),
        ),
        (client_error("AccessDeniedException", Reason="ACCOUNT_DISABLED"), Rejected(20003, 400)),
        (
            client_error("ResourceNotFoundException", ResourceType="pool", ResourceId="pool-1"),
            Rejected(21606, 400),
        ),
        (
            client_error("ResourceNotFoundException", ResourceType="configuration-set"),
            Rejected(99006, 400),
        ),
        (
            client_error(
                "ServiceQuotaExceededException", Reason="MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT"
            ),
            Rejected(99006, 400),
        ),
        (
            client_error("ConflictException", Reason="DESTINATION_PHONE_NUMBER_NOT_VERIFIED"),
            Rejected(99006, 400),
        ),
        # A validation error about anything but the destination is ours, not the recipient's.
        (
            client_error(
                "ValidationException",
                Reason="FIELD_VALIDATION_FAILED",
                Fields=[{"Name": "MessageBody", "Message": "too long"}],
            ),
            Rejected(99006, 400),
        ),
    ],
)
def test_an_answer_is_classified_by_what_it_proves(response: dict[str, Any], expected: Any) -> None:
    assert answers.from_client_error(response) == expected


def not_sent(cause: Exception) -> NotSentError:
    """What store.sms_voice raises for a failure before the request was sent."""
    try:
        raise NotSentError(type(cause).__name__) from cause
    except NotSentError as exc:
        return exc


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="https://sms-voice.example"),
        ConnectTimeoutError(endpoint_url="https://sms-voice.example"),
    ],
    ids=type,
)
def test_a_connection_that_failed_may_be_retried(exc: Exception) -> None:
    assert isinstance(answers.from_error(exc), RetryLater)


def test_credentials_missing_before_sending_are_retried_without_blaming_aws() -> None:
    assert answers.from_error(not_sent(NoCredentialsError())) == RetryLater(
        "not sent: NoCredentialsError", provider_unavailable=False
    )


@pytest.mark.parametrize(
    "cause",
    [ParamValidationError(report="ConfigurationSetName: too short"), NoRegionError()],
    ids=type,
)
def test_a_request_botocore_would_not_send_is_this_stacks_refusal(cause: Exception) -> None:
    # Nothing reached AWS, and no retry would change it: the next provider may take it
    assert answers.from_error(not_sent(cause)) == Rejected(99006, 0)


@pytest.mark.parametrize(
    "exc",
    [
        ReadTimeoutError(endpoint_url="https://sms-voice.example"),
        ConnectionClosedError(endpoint_url="https://sms-voice.example"),
        ValueError("an answer botocore could not parse"),
    ],
    ids=type,
)
def test_a_failure_after_the_request_left_is_an_unknown_outcome(exc: Exception) -> None:
    assert isinstance(answers.from_error(exc), OutcomeUnknown)


# --- delivery events ----------------------------------------------------------------------------


def event(event_type: str = "TEXT_DELIVERED", **changes: Any) -> dict[str, Any]:
    """An SMS event as AWS's user guide shows one ("Example SMS event data")."""
    data: dict[str, Any] = {
        "eventType": event_type,
        "eventVersion": "1.0",
        "eventTimestamp": 1795608001377,
        "isFinal": True,
        "originationPhoneNumber": "+12065550100",
        "destinationPhoneNumber": "+14155552671",
        "isoCountryCode": "US",
        "messageId": "ed23196c-75ce-4727-93ee-7bf72b64998f",
        "messageRequestTimestamp": 1795608000978,
        "messageEncoding": "GSM",
        "messageType": "TRANSACTIONAL",
        "messageStatus": "DELIVERED",
        "context": {"message_id": MESSAGE_ID},
        "totalMessageParts": 2,
        "totalMessagePrice": 0.00581,
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("event_type", "status", "error_code"),
    [
        ("TEXT_DELIVERED", MessageStatus.DELIVERED, None),
        ("TEXT_SUCCESSFUL", MessageStatus.DELIVERED, None),
        ("TEXT_PENDING", MessageStatus.SENT, None),
        ("TEXT_QUEUED", None, None),
        ("TEXT_UNREACHABLE", MessageStatus.UNDELIVERED, 30003),
        ("TEXT_BLOCKED", MessageStatus.UNDELIVERED, 30004),
        ("TEXT_SPAM", MessageStatus.UNDELIVERED, 30007),
        ("TEXT_TTL_EXPIRED", MessageStatus.UNDELIVERED, 99005),
        ("TEXT_SOMETHING_NEW", None, None),
    ],
)
def test_each_event_type_maps_to_our_status(
    event_type: str, status: MessageStatus | None, error_code: int | None
) -> None:
    delivery = events.read_event(json.dumps(event(event_type)))

    assert delivery.message_id == MESSAGE_ID
    assert (delivery.event.status, delivery.event.error_code) == (status, error_code)
    assert delivery.event.provider == "aws_eum"
    assert delivery.event.provider_status == event_type
    assert delivery.event.message_sid == "ed23196c-75ce-4727-93ee-7bf72b64998f"
    assert delivery.event.from_number == "+12065550100"
    assert delivery.event.num_segments == 2
    assert delivery.event.at == "2026-11-25T12:00:01.377Z"


def test_an_event_sns_wrapped_is_read_like_a_raw_one() -> None:
    raw = json.dumps(event())
    wrapped = json.dumps({"Type": "Notification", "Message": raw, "TopicArn": "arn:..."})
    assert events.read_event(wrapped) == events.read_event(raw)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        json.dumps(event(context={})),
        json.dumps(event(context={"message_id": "not-a-uuid"})),
        json.dumps(event("VOICE_COMPLETED")),
        json.dumps({k: v for k, v in event().items() if k != "messageId"}),
        json.dumps(event(eventTimestamp="yesterday")),
        json.dumps(event(eventTimestamp=10**20)),
    ],
)
def test_an_event_that_is_not_ours_is_unreadable(body: str) -> None:
    with pytest.raises(events.EventUnreadableError):
        events.read_event(body)


@given(
    st.text()
    | st.recursive(
        st.none() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    ).map(json.dumps)
)
def test_any_body_is_read_or_refused_never_raises_anything_else(body: str) -> None:
    with contextlib.suppress(events.EventUnreadableError):
        events.read_event(body)


@given(
    fields=st.dictionaries(
        st.sampled_from(list(event())),
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    )
)
def test_any_field_of_any_type_is_read_or_refused(fields: dict[str, Any]) -> None:
    try:
        delivery = events.read_event(json.dumps(event(**fields)))
    except events.EventUnreadableError:
        return
    assert delivery.message_id == MESSAGE_ID


# --- the order providers are tried in -----------------------------------------------------------

TWILIO = TwilioChoice()
EUM = AwsEumChoice(origination_identity="pool-0123")


@given(
    choices=st.permutations([TWILIO, EUM]).map(list),
    cooling=st.sets(st.sampled_from(["twilio", "aws_eum"])),
)
def test_a_cooling_provider_goes_last_and_nothing_else_moves(
    choices: list[Any], cooling: set[str]
) -> None:
    ordered = route(choices, cooling)

    assert sorted(c.name for c in ordered) == sorted(c.name for c in choices)
    healthy = [c for c in choices if c.name not in cooling]
    assert ordered[: len(healthy)] == healthy
    assert ordered[len(healthy) :] == [c for c in choices if c.name in cooling]


def test_with_every_provider_cooling_the_use_cases_order_stands() -> None:
    assert route([TWILIO, EUM], {"twilio", "aws_eum"}) == [TWILIO, EUM]
    assert route([TWILIO, EUM], {"twilio"}) == [EUM, TWILIO]


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("TEXT_CARRIER_UNREACHABLE", None),
        ("TEXT_UNREACHABLE", None),
        ("TEXT_SUCCESSFUL", MessageStatus.SENT),
        ("TEXT_DELIVERED", MessageStatus.SENT),
        ("TEXT_PENDING", MessageStatus.SENT),
    ],
)
def test_an_event_that_is_not_final_never_ends_a_message(
    event_type: str, status: MessageStatus | None
) -> None:
    delivery = events.read_event(json.dumps(event(event_type, isFinal=False)))
    assert (delivery.event.status, delivery.event.error_code) == (status, None)
    assert delivery.event.provider_status == event_type
