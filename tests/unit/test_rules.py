"""Domain rules that need no AWS: numbers, use-case validation, send times, backoff, redaction,
cursors and the provider's answers."""

from __future__ import annotations

import base64
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
from sms_gateway.providers.twilio import values as twilio_values
from sms_gateway.providers.twilio.statuses import STATUSES as PROVIDER_STATUSES
from sms_gateway.store import index_pages
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
    "number",
    [
        "+1415555267",
        "+0014155552671",
        "+1 4155552671",
        "+19995552671",
        "+" + "\uff11" + "4155552671",  # a full-width 1: a digit to Python, not in E.164
        "+1415555267\u0661",  # an Arabic-Indic 1
    ],
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


def full_width(digits: str) -> str:
    """The same digits as full-width characters ('1' -> U+FF11), which Python counts as digits."""
    return digits.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"})


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
        (full_width("12345"), "short_code", "sender_invalid", SHORT_CODE_RULE),  # full-width digits
        ("+14155550100", "short_code", "sender_invalid", SHORT_CODE_RULE),  # a number
        ("+" + full_width("14155550100"), "long_code", "sender_invalid",
         "a long_code sender must be a valid E.164 number"),  # full-width digits
        ("+4407400123456", "long_code", "sender_invalid",
         "a long_code sender must be written in E.164 as +447400123456"),  # trunk 0 kept
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
        (
            400,
            b'{"code": 21211, "status": 400}',
            twilio_client.Rejected(21211, 400, recipient=True),
        ),
        (401, b"not json", twilio_client.Rejected(30000, 401)),
        # One account's rate: retried, but not counted against Twilio's health
        (429, b"{}", twilio_client.RetryLater("HTTP 429", provider_unavailable=False)),
        (503, b"{}", twilio_client.RetryLater("HTTP 503")),
        (500, b"{}", twilio_client.OutcomeUnknown("HTTP 500")),
        (502, b"", twilio_client.OutcomeUnknown("HTTP 502")),
        # Values no store could keep are dropped, never a reason to fail the handoff
        (201, '{"sid": "SM1", "num_segments": "\u00b2"}'.encode(),
         twilio_client.Accepted("SM1", None, None)),
        (201, b'{"sid": "SM1", "num_segments": "' + b"9" * 5000 + b'"}',
         twilio_client.Accepted("SM1", None, None)),
        (201, b'{"sid": "SM1", "num_segments": 3}', twilio_client.Accepted("SM1", 3, None)),
        (400, b'{"code": 1' + b"0" * 40 + b'}', twilio_client.Rejected(30000, 400)),
        (400, b'{"code": true}', twilio_client.Rejected(30000, 400)),
    ],
)  # fmt: skip
def test_provider_answers_are_classified_by_what_they_prove(
    status: int, body: bytes, expected: object
) -> None:
    assert twilio_client._interpret(status, body) == expected


def test_cursor_cannot_open_another_partition_nor_the_other_mode() -> None:
    item = {"id": "m1", "workspace_id": "w1", "created_sort": "live#2026#m1"}
    cursor = index_pages.encode_cursor(item, "workspace_id", "created_sort")
    assert (
        index_pages.decode_cursor(cursor, "workspace_id", "w1", "live#", "created_sort") is not None
    )
    with pytest.raises(errors.ValidationError):
        index_pages.decode_cursor(cursor, "workspace_id", "w2", "live#", "created_sort")
    with pytest.raises(errors.ValidationError):
        index_pages.decode_cursor(cursor, "workspace_id", "w1", "test#", "created_sort")
    with pytest.raises(errors.ValidationError):
        index_pages.decode_cursor("bm90IGpzb24", "workspace_id", "w1", "live#", "created_sort")


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 100_000,  # deeper than the parser can follow
        b'{"id": "\\ud800", "workspace_id": "w1", "s": "live#x"}',  # a lone surrogate
        '{"id": "m1", "workspace_id": "w1", "s": "live#\u00e9"}'.encode(),
    ],
)
def test_a_forged_cursor_is_a_validation_error(payload: bytes) -> None:
    cursor = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    with pytest.raises(errors.ValidationError):
        index_pages.decode_cursor(cursor, "workspace_id", "w1", "live#", "created_sort")


def test_every_send_error_has_a_distinct_code() -> None:
    codes = [e.code for e in errors.SEND_ERRORS]
    assert len(set(codes)) == len(codes)
    assert all(e.status in (404, 422) for e in errors.SEND_ERRORS)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2", 2),
        ("30008", 30008),
        ("9999999999", 9999999999),  # ten digits: still a number
        ("99999999999", None),  # eleven: no count or code of Twilio's
        ("9" * 5000, None),  # more digits than int() takes
        ("\u00b2", None),  # a digit to str.isdigit(), not to int()
        ("-1", None),
        ("", None),
        (None, None),
        (7, 7),
        (-7, None),
        (True, None),
    ],
)
def test_twilio_counts_and_codes_are_read_only_when_small(
    raw: object, expected: int | None
) -> None:
    assert twilio_values.small_int(raw) == expected


def test_twilio_words_and_ids_are_bounded() -> None:
    assert twilio_values.word("undelivered") == "undelivered"
    assert len(twilio_values.word("x" * 100_000)) == twilio_values.MAX_WORD_CHARS
    assert twilio_values.identifier("SM" + "0" * 32) == "SM" + "0" * 32
    assert twilio_values.identifier("S" * 65) is None
    assert twilio_values.identifier("") is None
