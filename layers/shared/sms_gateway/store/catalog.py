"""The catalog table: what a workspace sends with (templates, sender IDs) and the operator's
prices. One table, keyed (pk, sk):

    workspace#<id>  template_slug#<slug>   a template, found by its slug (listing order)
    workspace#<id>  template_id#<uuid>     the same template, found by its id
    workspace#<id>  sender_id#<sender ID>  a registered alphanumeric sender ID
    prices          <country>              an operator's price for a destination country

A template is stored twice, so that a send finds it by slug or by id with one consistent read;
both copies are written, changed and deleted together in one transaction.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sms_gateway.config import get_settings
from sms_gateway.domain.errors import ValidationError
from sms_gateway.store import aws_clients
from sms_gateway.store.dynamo import from_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, QueryInputTypeDef


def table() -> str:
    return get_settings().catalog_table


def workspace_pk(workspace_id: str) -> str:
    return f"workspace#{workspace_id}"


def key(pk: str, sk: str) -> dict[str, AttributeValueTypeDef]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def get(pk: str, sk: str) -> dict[str, Any] | None:
    response = aws_clients.dynamodb().get_item(
        TableName=table(), Key=key(pk, sk), ConsistentRead=True
    )
    item = response.get("Item")
    return from_item(item) if item else None


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def query_page(pk: str, prefix: str, *, limit: int, cursor: str | None) -> Page:
    """One page of the items of `pk` whose sort key begins with `prefix`, in sort key order."""
    request: QueryInputTypeDef = {
        "TableName": table(),
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": prefix}},
        "Limit": limit,
        "ConsistentRead": True,
    }
    if cursor:
        request["ExclusiveStartKey"] = key(pk, _decode_cursor(cursor, prefix))
    response = aws_clients.dynamodb().query(**request)
    items = [from_item(raw) for raw in response.get("Items", [])]
    last = response.get("LastEvaluatedKey")
    next_cursor = _encode_cursor(str(last["sk"]["S"])) if last and items else None
    return Page(items, next_cursor)


def _encode_cursor(sort_key: str) -> str:
    raw = json.dumps({"s": sort_key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, prefix: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        sort_key = data["s"] if isinstance(data, dict) and set(data) == {"s"} else None
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        sort_key = None
    # A cursor only continues the listing it came from.
    if (
        not isinstance(sort_key, str)
        or not sort_key.startswith(prefix)
        or not sort_key.isprintable()
        or len(sort_key) > 256
    ):
        raise ValidationError("cursor is not valid for this listing", field="cursor")
    return sort_key
