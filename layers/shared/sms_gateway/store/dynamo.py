"""Plain-Python <-> DynamoDB attribute values, for the low-level client (faster to create than
the resource API). Integral numbers come back as int, not Decimal."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


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
    return _serializer.serialize(value)


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def exact_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Deserialize keeping every number a Decimal, exactly as stored (amounts of money)."""
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


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
