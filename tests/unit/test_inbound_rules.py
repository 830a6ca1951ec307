"""The pure rules of inbound messages: keywords, ids, the reply index's order, the forwarded
texts, and the shape of a send's reply_forwarding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from sms_gateway.domain.clock import iso
from sms_gateway.domain.inbound import (
    KEYWORDS,
    InboundMessage,
    Keyword,
    forwarded_sms_body,
    inbound_id_for,
    keyword_of,
)
from sms_gateway.domain.reply_forwarding import ReplyForwarding, is_email_address
from sms_gateway.domain.reply_keys import reply_prefix, reply_sort, reply_window_start

WHITESPACE = st.text(alphabet=" \t\n\r", max_size=3)


@given(word=st.sampled_from(sorted(KEYWORDS)), before=WHITESPACE, after=WHITESPACE, data=st.data())
def test_a_keyword_in_any_case_with_spaces_around_is_that_keyword(
    word: str, before: str, after: str, data: st.DataObject
) -> None:
    cased = "".join(
        c.lower() if data.draw(st.booleans(), label=f"lower {i}") else c for i, c in enumerate(word)
    )
    assert keyword_of(f"{before}{cased}{after}") is KEYWORDS[word]


@given(body=st.text(max_size=40), word=st.sampled_from(sorted(KEYWORDS)))
def test_a_keyword_inside_other_words_is_no_keyword(body: str, word: str) -> None:
    assert keyword_of(f"please {body} now") is None
    assert keyword_of(f"{word} {word}") is None
    assert keyword_of(f"{word}.") is None


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", Keyword.STOP),
        ("stopall", Keyword.STOP),
        ("Revoke", Keyword.STOP),
        ("yes", Keyword.START),
        ("UNSTOP", Keyword.START),
        ("info", Keyword.HELP),
        ("STOP!", None),
        ("stop please", None),
        ("", None),
    ],
)
def test_the_keyword_table(body: str, keyword: Keyword | None) -> None:
    assert keyword_of(body) is keyword


def test_one_provider_message_is_one_inbound_id() -> None:
    first = inbound_id_for("AC1", "SM1")
    assert first == inbound_id_for("AC1", "SM1")
    assert first != inbound_id_for("AC1", "SM2")
    assert first != inbound_id_for("AC2", "SM1")


def test_the_reply_range_holds_one_workspace_mode_and_person_in_time_order() -> None:
    older = reply_sort("w1", False, "+14155552671", "2026-11-01T10:00:00.000Z", "b")
    newer = reply_sort("w1", False, "+14155552671", "2026-11-02T10:00:00.000Z", "a")
    prefix = reply_prefix("w1", False, "+14155552671")
    assert older.startswith(prefix) and newer.startswith(prefix)
    assert older < newer < prefix + "~"
    for other in (
        reply_sort("w2", False, "+14155552671", "2026-11-02T10:00:00.000Z", "a"),
        reply_sort("w1", True, "+14155552671", "2026-11-02T10:00:00.000Z", "a"),
        reply_sort("w1", False, "+141555526710", "2026-11-02T10:00:00.000Z", "a"),
    ):
        assert not other.startswith(prefix)


def test_the_reply_window_is_30_days() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert reply_window_start(now) == iso(now - timedelta(days=30))


def reply(body: str) -> InboundMessage:
    return InboundMessage(
        id="00000000-0000-0000-0000-000000000001",
        workspace_id="w1",
        use_case_id="00000000-0000-0000-0000-000000000002",
        from_number="+14155552671",
        to_number="+14155550100",
        body=body,
        received_at="2026-11-26T12:00:00.000Z",
        message_sid="SM1",
        account_sid="AC1",
        messaging_service_sid="MG1",
    )


@given(body=st.text(max_size=2000))
def test_a_forwarded_sms_never_exceeds_the_limit_and_names_the_replier(body: str) -> None:
    text = forwarded_sms_body(reply(body), 1600)
    assert len(text) <= 1600
    assert text.startswith("Reply from +14155552671: ")


@pytest.mark.parametrize(
    "forwarding",
    [
        {},
        {"webhook_method": "GET", "to_sms": "+14155552671"},
        {"to_sms": "+1415555267"},
        {"to_sms": "+1\uff14155552671"},  # a full-width digit
        {"to_email": "desk@"},
        {"to_email": "dé@example.com"},
        {"to_email": "desk@localhost"},
        {"webhook_url": "https://x.test/" + "a" * 2048},
        {"to_sms": "+14155552671", "other": "x"},
    ],
)
def test_a_reply_forwarding_of_the_wrong_shape_is_refused(forwarding: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        ReplyForwarding.model_validate(forwarding)


def test_channels_come_in_their_order() -> None:
    forwarding = ReplyForwarding.model_validate(
        {
            "to_email": "desk@example.com",
            "webhook_url": "https://x.test/h",
            "to_sms": "+14155552671",
        }
    )
    assert forwarding.channels() == ["webhook", "sms", "email"]


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("desk@example.com", True),
        ("first.last+tag@mail.example.co.uk", True),
        ("a" * 65 + "@example.com", False),
        ("desk@example", False),
        ("desk example@example.com", False),
        ("desk@-example.com", False),
    ],
)
def test_email_addresses(address: str, valid: bool) -> None:
    assert is_email_address(address) is valid
