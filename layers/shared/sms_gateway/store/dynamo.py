"""Plain-Python <-> DynamoDB attribute values, for the low-level client (faster to create than
the resource API). Integral numbers come back as int, not Decimal.

The conversion is boto3's (boto3.dynamodb.types' TypeSerializer and TypeDeserializer, which a
property test holds this module to), written out here: importing boto3.dynamodb.types imports
boto3's compatibility module and with it s3transfer and multiprocessing, about a twentieth of a
function's cold start, and its serializer dispatches through getattr for every value of every
write. Binary values, which nothing here stores, come back as bytes, not boto3's Binary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

# DynamoDB's numbers: 38 digits, exponents -128..126; anything that would be rounded or
# clamped is an error, never a silently different number (boto3's DYNAMODB_CONTEXT).
DYNAMODB_CONTEXT = Context(
    Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow]
)
_BINARY = (bytes, bytearray)


def _number(value: int | Decimal) -> str:
    number = str(DYNAMODB_CONTEXT.create_decimal(value))
    if number in ("Infinity", "NaN"):
        raise TypeError("Infinity and NaN not supported")
    return number


def _is_number(value: Any) -> bool:
    if isinstance(value, float):
        raise TypeError("Float types are not supported. Use Decimal types instead.")
    return isinstance(value, (int, Decimal))


def _serialize(value: Any) -> Any:
    """boto3's TypeSerializer.serialize, in its order of checks."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if _is_number(value):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, _BINARY):
        return {"B": value}
    if isinstance(value, Set):
        if all(_is_number(v) for v in value):
            return {"NS": [_number(v) for v in value]}
        if all(isinstance(v, str) for v in value):
            return {"SS": list(value)}
        if all(isinstance(v, _BINARY) for v in value):
            return {"BS": list(value)}
    if isinstance(value, Mapping):
        return {"M": {k: _serialize(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [_serialize(v) for v in value]}
    raise TypeError(f'Unsupported type "{type(value)}" for value "{value}"')


def _deserialize(value: Mapping[str, Any]) -> Any:
    """boto3's TypeDeserializer.deserialize (numbers as Decimal)."""
    if not value:
        raise TypeError("Value must be a nonempty dictionary whose key is a valid dynamodb type.")
    kind = next(iter(value))
    reader = _READERS.get(kind)
    if reader is None:
        raise TypeError(f"Dynamodb type {kind} is not supported")
    return reader(value[kind])


_READERS: dict[str, Callable[[Any], Any]] = {
    "S": lambda v: v,
    "N": DYNAMODB_CONTEXT.create_decimal,
    "BOOL": lambda v: v,
    "NULL": lambda v: None,
    "B": bytes,
    "SS": set,
    "NS": lambda v: {DYNAMODB_CONTEXT.create_decimal(n) for n in v},
    "BS": lambda v: {bytes(b) for b in v},
    "L": lambda v: [_deserialize(x) for x in v],
    "M": lambda v: {k: _deserialize(x) for k, x in v.items()},
}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_item(data: Mapping[str, Any]) -> dict[str, AttributeValueTypeDef]:
    """Serialize, dropping None at the top level: an absent attribute is our null."""
    return {k: to_value(v) for k, v in data.items() if v is not None}


def to_value(value: Any) -> AttributeValueTypeDef:
    if isinstance(value, float):
        value = Decimal(str(value))
    return cast("AttributeValueTypeDef", _serialize(value))


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(_deserialize(v)) for k, v in item.items()}


def exact_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Deserialize keeping every number a Decimal, exactly as stored (amounts of money)."""
    return {k: _deserialize(v) for k, v in item.items()}


def condition_failed(exc: ClientError) -> bool:
    """Whether DynamoDB refused a write because its condition did not hold: for a conditional
    write that is an answer (a duplicate, a lost race), not an error."""
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"


def write_if[T](write: Callable[[], T]) -> T | None:
    """Run one conditional write: its response, or None when its condition did not hold."""
    try:
        return write()
    except ClientError as exc:
        if condition_failed(exc):
            return None
        raise


def cancellation_reasons(exc: ClientError) -> list[str] | None:
    """Why DynamoDB canceled a transaction, one code per item in the request's order ("None"
    for an item that was fine, "ConditionalCheckFailed" for one whose condition did not hold);
    None when the error is not a canceled transaction."""
    if exc.response["Error"]["Code"] != "TransactionCanceledException":
        return None
    reasons = cast("dict[str, Any]", exc.response).get("CancellationReasons") or []
    return [str(reason.get("Code", "None")) for reason in reasons]
