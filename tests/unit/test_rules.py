"""Domain rules that need no AWS: numbers, use-case validation, send times, backoff, redaction,
cursors and the provider's answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from sms_gateway import config
from sms_gateway.domain import errors, redact
from sms_gateway.domain.messages import MessageStatus
from sms_gateway.domain.phone import check_destination
from sms_gateway.domain.status_table import TRANSITIONS
from sms_gateway.domain.use_cases import Sender, SenderKind, UseCaseSpec
from sms_gateway.logic import handoff_deliveries, scheduling
from sms_gateway.providers.twilio import client as twilio_client
from sms_gateway.providers.twilio.statuses import STATUSES as PROVIDER_STATUSES
from sms_gateway.store import message_store
from tests.unit.settings import gateway_settings

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("number", "region"),
    [("+14155552671", "US"), ("+16135550123", "CA"), ("+447400123456", "GB")],
)
def test_mobile_numbers_pass_with_their_country(number: str, region: str) -> None:
    destination = check_destination(number)
    assert (destination.e164, destination.region) == (number, region)


@pytest.mark.parametrize(
    "number", ["+1415555267", "+0014155552671", "+1 4155552671", "+19995552671"]
)
def test_malformed_or_unreal_numbers_are_phone_invalid(number: str) -> None:
    with pytest.raises(errors.PhoneInvalidError):
        check_destination(number)


def test_fixed_line_is_refused() -> None:
    with pytest.raises(errors.PhoneLandlineError):
        check_destination("+442071838750")


@pytest.mark.parametrize(
    ("sender", "kind"),
    [
        ("ACME", "alphanumeric"),
        ("Acme 2FA", "alphanumeric"),
        ("A", "alphanumeric"),  # the shortest
        ("ABCDEFGHIJK", "alphanumeric"),  # the longest: 11
        ("2FA", "alphanumeric"),  # digits, with a letter
        ("+14155550100", "long_code"),
        ("+16135550123", "long_code"),  # Canada
        ("+447400123456", "long_code"),  # a UK mobile
        ("+18005550100", "toll_free"),
        ("12345", "short_code"),
        ("123", "short_code"),  # the shortest
        ("12345678", "short_code"),  # the longest
    ],
)
def test_a_sender_that_matches_its_kind_is_accepted_as_given(sender: str, kind: str) -> None:
    accepted = Sender(sender=sender, kind=kind)

    # Stored exactly as written: the sender is what Twilio is asked to send from.
    assert accepted.model_dump(mode="json") == {"sender": sender, "kind": kind}
    assert accepted.kind is SenderKind(kind)


ALPHANUMERIC_RULE = (
    "an alphanumeric sender ID has 1 to 11 letters, digits or spaces, with at least one letter"
)
SHORT_CODE_RULE = "a short code is 3 to 8 digits"


@pytest.mark.parametrize(
    ("sender", "kind", "code", "message"),
    [
        ("12345678901", "alphanumeric", "sender_invalid", ALPHANUMERIC_RULE),  # no letter
        ("ABCDEFGHIJKL", "alphanumeric", "sender_invalid", ALPHANUMERIC_RULE),  # 12
        ("", "alphanumeric", "sender_invalid", ALPHANUMERIC_RULE),
        ("ACME!", "alphanumeric", "sender_invalid", ALPHANUMERIC_RULE),
        ("1", "short_code", "sender_invalid", SHORT_CODE_RULE),
        ("12", "short_code", "sender_invalid", SHORT_CODE_RULE),
        ("123456789", "short_code", "sender_invalid", SHORT_CODE_RULE),
        ("12a45", "short_code", "sender_invalid", SHORT_CODE_RULE),
        ("+18005550100", "long_code", "sender_kind_mismatch",
         "long_code does not match the number's type"),
        ("+14155550100", "toll_free", "sender_kind_mismatch",
         "toll_free does not match the number's type"),
        ("+19995552671", "long_code", "sender_invalid",
         "a long_code sender must be a valid E.164 number"),  # no such area code
        ("14155550100", "long_code", "sender_invalid",
         "a long_code sender must be a valid E.164 number"),  # no plus
        ("ACME", "toll_free", "sender_invalid", "a toll_free sender must be a valid E.164 number"),
    ],
)  # fmt: skip
def test_a_sender_that_does_not_match_its_kind_is_refused_with_its_code(
    sender: str, kind: str, code: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Sender(sender=sender, kind=kind)

    # The type and message are what the use-case API answers as each error's code and issue.
    assert [(e["type"], e["msg"], e["loc"]) for e in caught.value.errors()] == [(code, message, ())]


def test_us_long_code_needs_the_a2p_campaign_only_in_the_us() -> None:
    assert Sender(sender="+14155550100", kind="long_code").is_us_long_code
    assert not Sender(sender="+16135550123", kind="long_code").is_us_long_code
    assert not Sender(sender="+18005550100", kind="toll_free").is_us_long_code


def spec(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "x",
        "twilio_account_sid": "AC" + "a" * 32,
        "twilio_auth_token_secret": "sms/twilio/AC" + "a" * 32,
        "messaging_service_sid": "MG" + "b" * 32,
        **overrides,
    }


def test_use_case_spec_error_codes_are_stable() -> None:
    with pytest.raises(ValidationError) as caught:
        UseCaseSpec.model_validate(spec(twilio_account_sid="AC12", allowed_countries=["ZZ"]))
    assert {e["type"] for e in caught.value.errors()} == {"twilio_sid_invalid", "country_invalid"}


@pytest.mark.parametrize(
    ("raw", "scheduled"),
    [
        (None, None),
        ("2026-11-25T12:00:59Z", None),  # within the next minute: now
        ("2026-11-25T11:00:00Z", None),  # an hour late: now
        ("2026-11-25T12:01:01Z", datetime(2026, 11, 25, 12, 1, 1, tzinfo=UTC)),
        ("2026-11-25T14:01:01+02:00", datetime(2026, 11, 25, 12, 1, 1, tzinfo=UTC)),
        ("2026-12-25T12:00:00Z", datetime(2026, 12, 25, 12, 0, tzinfo=UTC)),
    ],
)
def test_send_at_decides_now_or_later(raw: str | None, scheduled: datetime | None) -> None:
    assert scheduling.parse_send_at(raw, NOW).scheduled_for == scheduled


@pytest.mark.parametrize("raw", ["2026-11-25T10:59:59Z", "2026-12-25T12:00:01Z"])
def test_send_at_out_of_range(raw: str) -> None:
    with pytest.raises(errors.SendAtOutOfRangeError):
        scheduling.parse_send_at(raw, NOW)


@pytest.mark.parametrize("raw", ["2026-11-25T12:30:00", "2026-11-26", "soon", ""])
def test_send_at_needs_a_full_timestamp_with_offset(raw: str) -> None:
    with pytest.raises(errors.ValidationError):
        scheduling.parse_send_at(raw, NOW)


def test_backoff_grows_and_is_capped() -> None:
    with gateway_settings() as env:
        env.delenv("HANDOFF_RETRY_BASE_SECONDS", raising=False)
        config.reset_settings()
        assert [handoff_deliveries.backoff_seconds(n) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
        assert handoff_deliveries.backoff_seconds(50) == 900


def test_redaction_keeps_numbers_apart_but_not_readable() -> None:
    masked = redact.mask_phone("+14155552671")
    assert masked == "+14*******71"
    assert redact.describe_body("Your code is 123456") == "<19 chars>"


def test_status_table_matches_the_design() -> None:
    allowed = {to: set(t.allowed_from) for to, t in TRANSITIONS.items()}
    s = MessageStatus
    assert allowed == {
        s.PENDING: {s.SCHEDULED},
        s.CANCELED: {s.SCHEDULED},
        s.SENT: {s.PENDING},
        s.FAILED: {s.PENDING},
        s.DELIVERED: {s.PENDING, s.SENT},
        s.UNDELIVERED: {s.PENDING, s.SENT},
    }
    assert PROVIDER_STATUSES["read"] is s.DELIVERED
    assert "queued" not in PROVIDER_STATUSES and "accepted" not in PROVIDER_STATUSES


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (201, b'{"sid": "SM1", "num_segments": "2", "from": "+14155550100"}',
         twilio_client.Accepted("SM1", 2, "+14155550100")),
        (400, b'{"code": 21211, "status": 400}', twilio_client.Rejected(21211, 400)),
        (401, b"not json", twilio_client.Rejected(30000, 401)),
        (429, b"{}", twilio_client.RetryLater("HTTP 429")),
        (503, b"{}", twilio_client.RetryLater("HTTP 503")),
        (500, b"{}", twilio_client.OutcomeUnknown("HTTP 500")),
        (502, b"", twilio_client.OutcomeUnknown("HTTP 502")),
    ],
)  # fmt: skip
def test_provider_answers_are_classified_by_what_they_prove(
    status: int, body: bytes, expected: object
) -> None:
    assert twilio_client._interpret(status, body) == expected


def test_cursor_cannot_open_another_partition() -> None:
    item = {"id": "m1", "workspace_id": "w1", "created_sort": "2026#m1"}
    cursor = message_store._encode_cursor(item, "workspace_id")
    assert message_store._decode_cursor(cursor, "workspace_id", "w1") is not None
    with pytest.raises(errors.ValidationError):
        message_store._decode_cursor(cursor, "workspace_id", "w2")
    with pytest.raises(errors.ValidationError):
        message_store._decode_cursor("bm90IGpzb24", "workspace_id", "w1")


def test_every_send_error_has_a_distinct_code() -> None:
    codes = [e.code for e in errors.SEND_ERRORS]
    assert len(set(codes)) == len(codes)
    assert all(e.status in (404, 422) for e in errors.SEND_ERRORS)
