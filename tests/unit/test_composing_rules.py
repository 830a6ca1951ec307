"""The rules of composing a message, without AWS: templates, smart encoding, sender IDs, costs
and the send body's new fields."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms_gateway.domain import pricing, sender_ids, smart_encoding, templates
from sms_gateway.domain.errors import (
    SenderIdInvalidError,
    TemplateVariableMissingError,
    TemplateVariableUnknownError,
    ValidationError,
)
from sms_gateway.domain.segments import is_gsm7
from sms_gateway.logic import sending

# --- templates ----------------------------------------------------------------------------------


def test_placeholders_are_listed_once_in_order_of_first_use() -> None:
    assert templates.placeholders("{{b}} {{a}} {{b}} {{_c1}}") == ["b", "a", "_c1"]


@pytest.mark.parametrize(
    "body", ["{{", "a {{B}}", "{{ a }}", "{{a}", "{{1a}}", "{{a-b}}", "{{{{a}}", "x{{}}"]
)
def test_a_body_with_a_malformed_placeholder_is_refused(body: str) -> None:
    with pytest.raises(ValidationError):
        templates.check_body(body)


@pytest.mark.parametrize("body", ["plain", "{{a}} and {{b_2}}", "{ {a} }", "}} {", "{{{a}}}"])
def test_a_body_with_well_formed_placeholders_or_none_is_taken(body: str) -> None:
    templates.check_body(body)


@pytest.mark.parametrize(
    "slug",
    ["", "A", "a_b", "a b", "é", "a" * 65, "123e4567-e89b-12d3-a456-426614174000",
     "123e4567e89b12d3a456426614174000"],
)  # fmt: skip
def test_slugs_that_break_the_rule_or_read_as_uuids_are_refused(slug: str) -> None:
    with pytest.raises(ValidationError):
        templates.check_slug(slug)


@pytest.mark.parametrize("slug", ["a", "otp-code", "2fa", "a" * 64, "-"])
def test_slugs_that_follow_the_rule_are_taken(slug: str) -> None:
    templates.check_slug(slug)


names = st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True)
values = st.text(alphabet=st.sampled_from("ab{}x_ 😀"), max_size=12)


@given(st.dictionaries(names, values, min_size=1, max_size=5), st.text(max_size=5))
def test_rendering_inserts_each_value_as_text_once(variables: dict[str, str], glue: str) -> None:
    glue = glue.replace("{", "(")
    body = glue.join(f"{{{{{name}}}}}" for name in variables)
    rendered = templates.render(body, variables)
    assert rendered == glue.join(variables.values())


def test_missing_variables_are_named_in_order_and_unknown_ones_sorted() -> None:
    with pytest.raises(TemplateVariableMissingError) as missing:
        templates.render("{{b}} {{a}} {{c}}", {"a": "1"})
    with pytest.raises(TemplateVariableUnknownError) as unknown:
        templates.render("{{a}}", {"a": "1", "z": "2", "y": "3"})
    assert missing.value.details == {"missing": ["b", "c"]}
    assert unknown.value.details == {"unknown": ["y", "z"]}


# --- smart encoding -------------------------------------------------------------------------------


def test_every_replacement_is_gsm7() -> None:
    for code_point, replacement in smart_encoding._REPLACEMENTS.items():
        assert is_gsm7(replacement), hex(code_point)
        assert not is_gsm7(chr(code_point)) or chr(code_point) == "`", hex(code_point)


@pytest.mark.parametrize(
    ("pasted", "sent"),
    [
        ("\u201cQuoted\u201d", '"Quoted"'),
        ("it\u2019s", "it's"),
        ("a \u2013 b \u2014 c", "a - b - c"),
        ("wait\u2026", "wait..."),
        ("10\u00a0000", "10 000"),
        ("\u2039x\u203a", "<x>"),
        ("\uff21\uff11", "A1"),
        ("zero\u200bwidth", "zerowidth"),
    ],
)
def test_look_alikes_become_their_gsm7_equivalents(pasted: str, sent: str) -> None:
    assert smart_encoding.smart_encode(pasted) == sent


@given(st.text(max_size=60))
def test_smart_encoding_gives_gsm7_or_leaves_the_text_as_it_was(text: str) -> None:
    encoded = smart_encoding.smart_encode(text)
    assert encoded == text or (is_gsm7(encoded) and not is_gsm7(text))


# --- sender IDs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sender_id", ["A", "Acme", "Acme Shop 1", "a1", "ABCDEFGHIJK"])
def test_sender_ids_that_follow_the_rule(sender_id: str) -> None:
    sender_ids.check_sender_id(sender_id)


@pytest.mark.parametrize(
    "sender_id", ["", "ABCDEFGHIJKL", "123", " ", "Acme!", "Acmé", "Acme\n", "Ac-me", "\uff21"]
)
def test_sender_ids_that_break_the_rule(sender_id: str) -> None:
    with pytest.raises(SenderIdInvalidError):
        sender_ids.check_sender_id(sender_id)


def test_north_america_and_unknown_countries_do_not_take_alphanumeric_senders() -> None:
    assert not sender_ids.accepts_alphanumeric_sender("US")
    assert not sender_ids.accepts_alphanumeric_sender("CA")
    assert not sender_ids.accepts_alphanumeric_sender(None)
    assert sender_ids.accepts_alphanumeric_sender("GB")
    assert all(re.fullmatch(r"[A-Z]{2}", c) for c in sender_ids.NO_ALPHANUMERIC_SENDER)
    assert len(sender_ids.NO_ALPHANUMERIC_SENDER) == 38


# --- cost ---------------------------------------------------------------------------------------

prices = st.from_regex(pricing.UNIT_PRICE_PATTERN, fullmatch=True)


@given(prices, st.integers(min_value=1, max_value=30))
def test_a_cost_is_exactly_unit_price_times_segments(unit_price: str, segments: int) -> None:
    price = pricing.Price("GB", unit_price, "EUR", "operator")
    cost = pricing.cost_of(price, segments, test=False)
    assert cost is not None
    assert Decimal(cost.amount) == Decimal(unit_price) * segments
    assert "E" not in cost.amount and "e" not in cost.amount
    assert (cost.currency, cost.unit_price, cost.segments) == ("EUR", unit_price, segments)


def test_a_test_message_costs_nothing_and_an_unpriced_one_has_no_cost() -> None:
    price = pricing.Price("GB", "0.04", "EUR", "operator")
    free = pricing.cost_of(price, 3, test=True)
    assert free is not None and (free.amount, free.unit_price, free.currency) == ("0", "0", "EUR")
    assert pricing.cost_of(None, 3, test=False) is None
    assert pricing.cost_of(None, 3, test=True) is not None


@pytest.mark.parametrize("text", ["0.0400", "1", "123456.123456"])
def test_unit_prices_that_are_taken(text: str) -> None:
    assert pricing.is_unit_price(text)


@pytest.mark.parametrize("text", ["", ".5", "1.", "-1", "1e-3", "1234567", "0.1234567", "\u0661"])
def test_unit_prices_that_are_refused(text: str) -> None:
    assert not pricing.is_unit_price(text)


# --- the send body --------------------------------------------------------------------------------

BASE = {"use_case_id": "u", "to_phone_number": "+1"}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"message": "m", "template": "t"}, None),
        ({}, None),
        ({"message": "m", "variables": {}}, None),
        ({"template": "t", "variables": {"a": 1}}, "variables.a"),
        ({"message": "m", "country": "ZZ"}, "country"),
        ({"message": "m", "country": "us"}, "country"),
        ({"message": "m", "validity_period": 0}, "validity_period"),
        ({"message": "m", "validity_period": 36_001}, "validity_period"),
        ({"message": "m", "external_id": "x" * 256}, "external_id"),
        ({"message": "m", "external_id": "a\tb"}, "external_id"),
    ],
)
def test_the_send_body_s_shape_is_a_validation_error(
    extra: dict[str, Any], field: str | None
) -> None:
    with pytest.raises(ValidationError) as refused:
        sending.parse_send_request({**BASE, **extra})
    assert [e["field"] for e in refused.value.details["errors"]] == [field]


def test_the_new_fields_bounds_are_taken() -> None:
    request = sending.parse_send_request(
        {**BASE, "template": "t", "variables": {}, "country": "GB", "validity_period": 1,
         "external_id": "x" * 255, "smart_encoding": True, "sender_id": "Acme"}
    )  # fmt: skip
    assert (request.validity_period, request.country, len(request.external_id or "")) == (
        1,
        "GB",
        255,
    )
    assert sending.parse_send_request({**BASE, "message": "m", "validity_period": 36_000})
