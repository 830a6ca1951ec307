"""store.dynamo converts values exactly as boto3's TypeSerializer and TypeDeserializer do (it
writes them out to spare a cold start boto3's import): same attribute values, same errors."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from sms_gateway.store import dynamo

_boto_serializer = TypeSerializer()
_boto_deserializer = TypeDeserializer()


class Colour(StrEnum):
    RED = "red"


numbers = st.integers(-(10**40), 10**40) | st.decimals(allow_nan=True, allow_infinity=True)
scalars = (
    st.none()
    | st.booleans()
    | numbers
    | st.text()
    | st.sampled_from(list(Colour))
    | st.floats(allow_nan=False)
)
sets = (
    st.frozensets(st.integers(-(10**6), 10**6), max_size=4)
    | st.frozensets(st.text(max_size=5), max_size=4)
    | st.frozensets(st.integers() | st.text(max_size=3), max_size=4)
)
values = st.recursive(
    scalars | sets,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


def _outcome(convert: Any, value: Any) -> tuple[str, Any]:
    try:
        return "value", convert(value)
    except Exception as exc:
        return "error", type(exc)


@given(value=values)
def test_values_serialize_as_boto3_serializes_them(value: Any) -> None:
    ours = _outcome(dynamo._serialize, value)
    theirs = _outcome(_boto_serializer.serialize, value)
    if ours[0] == "value" and theirs[0] == "value" and isinstance(value, (set, frozenset)):
        # A set's members come out in the set's iteration order in both: compare as sets.
        ((kind, members),) = ours[1].items()
        ((their_kind, their_members),) = theirs[1].items()
        assert (kind, sorted(map(str, members))) == (their_kind, sorted(map(str, their_members)))
        return
    assert ours == theirs


@given(value=values)
def test_stored_values_read_back_as_boto3_reads_them(value: Any) -> None:
    try:
        stored = _boto_serializer.serialize(value)
    except Exception:
        return
    ours = _outcome(dynamo._deserialize, stored)
    # repr: a NaN equals nothing, not even itself.
    assert repr(ours) == repr(_outcome(_boto_deserializer.deserialize, stored))


@pytest.mark.parametrize("stored", [{}, {"X": "1"}])
def test_a_value_of_no_known_type_is_refused_as_boto3_refuses_it(stored: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        _boto_deserializer.deserialize(stored)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dynamo._deserialize(stored)


def test_items_keep_exact_numbers_or_plain_ones() -> None:
    item = dynamo.to_item({"n": 3, "d": Decimal("0.1"), "f": 0.5, "gone": None, "m": {"k": [1]}})
    assert "gone" not in item
    assert dynamo.from_item(item) == {"n": 3, "d": 0.1, "f": 0.5, "m": {"k": [1]}}
    assert dynamo.exact_item(item)["d"] == Decimal("0.1")
