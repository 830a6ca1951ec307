"""The cursor of a newest-first listing read from an index: the last item's key, opaque to the
caller, and only valid to continue the listing it came from."""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from sms_gateway.domain.errors import ValidationError
from sms_gateway.store.dynamo import to_value

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef


def encode_cursor(item: dict[str, Any], partition_name: str, sort_name: str) -> str:
    key = {"id": item["id"], partition_name: item[partition_name], "s": item[sort_name]}
    raw = json.dumps(key, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(
    cursor: str | None, partition_name: str, partition_value: str, mode: str, sort_name: str
) -> dict[str, AttributeValueTypeDef] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
        valid = (
            isinstance(key, dict)
            and set(key) == {"id", partition_name, "s"}
            and all(isinstance(v, str) and v.isprintable() and v.isascii() for v in key.values())
        )
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        valid = False
    # A cursor only continues the listing it came from: it cannot open another partition, nor
    # the other mode's items.
    if not valid or key[partition_name] != partition_value or not key["s"].startswith(mode):
        raise ValidationError("cursor is not valid for this listing", field="cursor")
    return {
        "id": to_value(key["id"]),
        partition_name: to_value(key[partition_name]),
        sort_name: to_value(key["s"]),
    }
