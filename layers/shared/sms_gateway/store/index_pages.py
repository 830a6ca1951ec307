"""A newest-first listing read from an index (never a Scan): one mode's items of one partition
(the sort key begins with the mode), optionally filtered, a page at a time; and its cursor, the
last item's key, opaque to the caller and only valid to continue the listing it came from."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sms_gateway.domain.errors import ValidationError
from sms_gateway.store import aws_clients
from sms_gateway.store.dynamo import from_item, to_value

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, QueryInputTypeDef

# Index pages read for one listing page before answering with what was found.
MAX_QUERIES_PER_PAGE = 10
# With a filter, each query reads at least this many items (a filter may match few of them).
FILTERED_QUERY_LIMIT = 25


@dataclass(frozen=True, slots=True)
class Listing:
    """Which items a listing reads: a partition of an index, one mode's, and each attribute of
    `equal` with its value."""

    table: str
    index: str
    partition_name: str
    partition_value: str
    sort_name: str
    mode: str
    equal: dict[str, str] = field(default_factory=dict)


def read_page(
    listing: Listing, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to `limit` items, newest first, and the cursor of the next page (None: no more). A
    filter may leave DynamoDB's pages short, so querying goes on until `limit` match or the
    partition ends; a sparse filter does not hold the request for long: after
    MAX_QUERIES_PER_PAGE queries, what was found is answered with a cursor where reading
    stopped."""
    start_key = decode_cursor(
        cursor, listing.partition_name, listing.partition_value, listing.mode, listing.sort_name
    )
    names = {"#p": listing.partition_name, "#s": listing.sort_name}
    values: dict[str, AttributeValueTypeDef] = {
        ":p": {"S": listing.partition_value},
        ":mode": {"S": listing.mode},
    }
    request: QueryInputTypeDef = {
        "TableName": listing.table,
        "IndexName": listing.index,
        "KeyConditionExpression": "#p = :p AND begins_with(#s, :mode)",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
    }
    filters = []
    for i, (attribute, value) in enumerate(listing.equal.items()):
        names[f"#f{i}"] = attribute
        values[f":f{i}"] = {"S": value}
        filters.append(f"#f{i} = :f{i}")
    if filters:
        request["FilterExpression"] = " AND ".join(filters)

    items: list[dict[str, Any]] = []
    for _ in range(MAX_QUERIES_PER_PAGE):
        request["Limit"] = max(limit, FILTERED_QUERY_LIMIT) if filters else limit - len(items)
        if start_key:
            request["ExclusiveStartKey"] = start_key
        response = aws_clients.dynamodb().query(**request)
        page = response.get("Items", [])
        last_key = response.get("LastEvaluatedKey")
        for position, raw in enumerate(page):
            data = from_item(raw)
            items.append(data)
            if len(items) == limit:
                more = position < len(page) - 1 or last_key is not None
                next_cursor = encode_cursor(data, listing.partition_name, listing.sort_name)
                return items, next_cursor if more else None
        if not last_key:
            return items, None
        start_key = dict(last_key)
    last = from_item(start_key or {})
    return items, encode_cursor(last, listing.partition_name, listing.sort_name)


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
