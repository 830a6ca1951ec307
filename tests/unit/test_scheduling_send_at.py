"""logic.scheduling.parse_send_at: what a caller's `send_at` means (now, or a schedule), the
edges of the accepted window, and the exact validation errors the send API answers with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from sms_gateway.domain.clock import utc_now
from sms_gateway.domain.errors import SendAtOutOfRangeError, ValidationError
from sms_gateway.logic.scheduling import SendTime, parse_send_at

NOW = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)

NOT_RFC_3339 = (
    "send_at must be an RFC 3339 date-time with an offset, e.g. 2026-12-01T09:00:00Z",
    [{"field": "send_at", "code": "datetime_parsing", "issue": "not RFC 3339"}],
)
NO_OFFSET = (
    "send_at must carry a time and a UTC offset (Z or +hh:mm)",
    [{"field": "send_at", "code": "timezone_missing", "issue": "no offset"}],
)
OUT_OF_RANGE = "send_at must be between one hour ago and 30 days ahead"


def at(delta: timedelta) -> str:
    return (NOW + delta).isoformat()


def test_no_send_at_sends_now() -> None:
    assert parse_send_at(None, NOW) == SendTime(None)


@pytest.mark.parametrize(
    "raw",
    [
        "tomorrow",
        "2026-13-01T09:00:00Z",
        "",
        "2026-W09-7T10:00:00Z",  # an ISO week date
        "2026-060T10:00:00Z",  # an ISO ordinal date
        "20260301T100000Z",  # ISO basic format
        "2026-03-01T10:00:00+0100",  # an offset without its colon
        "2026-03-01T10:00+00:00",  # no seconds
        "2026-03-01T10:00:00+01",  # an offset of hours only
        "2026-03-01T24:00:00Z",
        "2026-03-01T10:00:00.Z",
        "\uff12026-03-01T10:00:00Z",  # a full-width digit
    ],
)
def test_a_send_at_that_is_not_a_date_time_is_refused(raw: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_send_at(raw, NOW)
    assert (refused.value.message, refused.value.details["errors"]) == NOT_RFC_3339
    assert refused.value.details.keys() == {"errors"}


@pytest.mark.parametrize(
    "raw",
    [
        "2026-03-01T10:00:00",  # no offset: whose 10:00?
        "2026-03-02",  # a date, no time
        "2026-03-01 10:00:00+00:00",  # offset, but not RFC 3339's T
    ],
)
def test_a_send_at_without_a_time_and_an_offset_is_refused(raw: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_send_at(raw, NOW)
    assert (refused.value.message, refused.value.details["errors"]) == NO_OFFSET
    assert refused.value.details.keys() == {"errors"}


@pytest.mark.parametrize(
    "raw",
    [
        "2026-03-01t10:00:00+00:00",
        "2026-03-01T10:00:00z",
        "2026-03-01t10:00:00z",
        "2026-03-01T10:00:00.000000001Z",  # any number of fraction digits
        "2026-03-01T11:00:00+01:00",
        "2026-03-01T10:00:00-00:00",  # RFC 3339's "offset unknown", the same instant
    ],
)
def test_rfc_3339_in_any_of_its_spellings_is_accepted(raw: str) -> None:
    # RFC 3339 (5.6, NOTE) allows "t" and "z" for "T" and "Z".
    assert parse_send_at(raw, NOW) == SendTime(NOW + timedelta(hours=1))


@pytest.mark.parametrize(
    "delta",
    [-timedelta(hours=1, seconds=1), timedelta(days=30, seconds=1)],
    ids=["more-than-an-hour-late", "more-than-30-days-ahead"],
)
def test_a_send_at_outside_the_window_is_refused_naming_it(delta: timedelta) -> None:
    raw = at(delta)
    with pytest.raises(SendAtOutOfRangeError) as refused:
        parse_send_at(raw, NOW)
    assert refused.value.message == OUT_OF_RANGE
    assert refused.value.details == {"send_at": raw}


@pytest.mark.parametrize(
    ("delta", "scheduled"),
    [
        (-timedelta(hours=1), False),  # an hour late: still sent, now
        (timedelta(0), False),
        (timedelta(minutes=1), False),  # within the next minute: now
        (timedelta(minutes=1, seconds=1), True),
        (timedelta(days=30), True),  # the furthest allowed
    ],
    ids=["an-hour-late", "now", "a-minute-ahead", "just-over-a-minute", "30-days-ahead"],
)
def test_the_window_s_edges(delta: timedelta, scheduled: bool) -> None:
    expected = NOW + delta if scheduled else None
    assert parse_send_at(at(delta), NOW) == SendTime(expected)


def test_a_scheduled_moment_keeps_its_instant_whatever_its_offset() -> None:
    raw = "2026-03-01T12:00:00+02:00"  # 10:00 UTC
    send_time = parse_send_at(raw, NOW)
    assert send_time.scheduled_for == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert send_time.scheduled_for.utcoffset() == timedelta(hours=2)  # as the caller wrote it
    assert parse_send_at("2026-03-01T10:00:00Z", NOW) == send_time


def test_without_a_given_now_the_clock_decides() -> None:
    # The API passes no `now`: the window is around the current time.
    soon = utc_now() + timedelta(minutes=10)
    assert parse_send_at(soon.isoformat()) == SendTime(soon)
    tz = timezone(timedelta(hours=-5))
    with pytest.raises(SendAtOutOfRangeError):
        parse_send_at((utc_now() - timedelta(hours=2)).astimezone(tz).isoformat())
