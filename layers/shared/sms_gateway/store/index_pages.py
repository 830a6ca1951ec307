"""A newest-first listing read from an index (never a Scan): one mode's items of one partition
(the sort key begins with the mode), optionally filtered, a page at a time; and its cursor, the
last item's key, opaque to the caller and only valid to continue the listing it came from.

An index that holds only keys (and attributes that never change) is written once, when an item
enters it, instead of at every write of the item: its listing reads the items themselves from
the table, in one BatchGetItem per index page, and filters on what changes (a status) there."""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sms_gateway.domain.errors import ServiceUnavailableError, ValidationError
from sms_gateway.store import aws_clients
from sms_gateway.store.dynamo import from_item, to_value

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        KeysAndAttributesUnionTypeDef,
        QueryInputTypeDef,
    )

# Index pages read for one listing page before answering with what was found.
MAX_QUERIES_PER_PAGE = 10
# With a filter, each query reads at least this many items (a filter may match few of them).
FILTERED_QUERY_LIMIT = 25
# BatchGetItem reads at most 100 keys; what it leaves unprocessed (throttling) is asked again,
# after a jittered pause, this many times in all.
BATCH_GET_MAX_KEYS = 100
BATCH_GET_ATTEMPTS = 5
BATCH_GET_BACKOFF_SECONDS = 0.05


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
    # Filters on attributes the index holds (FilterExpression on the query).
    equal: dict[str, str] = field(default_factory=dict)
    # Set when the index holds keys only: the items are read from the table by `key_name`
    # (the table's partition key), and `item_equal` filters them there.
    key_name: str | None = None
    item_equal: dict[str, str] = field(default_factory=dict)


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

    filtered = bool(filters or listing.item_equal)
    items: list[dict[str, Any]] = []
    for _ in range(MAX_QUERIES_PER_PAGE):
        request["Limit"] = max(limit, FILTERED_QUERY_LIMIT) if filtered else limit - len(items)
        if start_key:
            request["ExclusiveStartKey"] = start_key
        response = aws_clients.dynamodb().query(**request)
        entries = [from_item(raw) for raw in response.get("Items", [])]
        last_key = response.get("LastEvaluatedKey")
        page = _with_items(listing, entries)
        for position, (entry, data) in enumerate(page):
            if data is None:
                continue
            items.append(data)
            if len(items) == limit:
                more = position < len(page) - 1 or last_key is not None
                next_cursor = encode_cursor(entry, listing.partition_name, listing.sort_name)
                return items, next_cursor if more else None
        if not last_key:
            return items, None
        start_key = dict(last_key)
    last = from_item(start_key or {})
    return items, encode_cursor(last, listing.partition_name, listing.sort_name)


def _with_items(
    listing: Listing, entries: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Each index entry with the item to list for it: the entry itself from an index that holds
    the items; else the table's item (strongly consistent: an item the index already lists is
    never missed), None when it is gone or `item_equal` does not match."""
    if listing.key_name is None:
        return [(entry, entry) for entry in entries]
    keys = [str(entry[listing.key_name]) for entry in entries]
    found = batch_get(listing.table, listing.key_name, keys)
    page: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for entry, key in zip(entries, keys, strict=True):
        data = found.get(key)
        if data is not None and any(data.get(k) != v for k, v in listing.item_equal.items()):
            data = None
        page.append((entry, data))
    return page


def batch_get(
    table: str,
    key_name: str,
    keys: Sequence[str],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, dict[str, Any]]:
    """The items of `table` whose partition key `key_name` is one of `keys` (string keys),
    strongly consistent, by key; a key without an item is left out."""
    found: dict[str, dict[str, Any]] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), BATCH_GET_MAX_KEYS):
        chunk: Sequence[Mapping[str, AttributeValueTypeDef]] = [
            {key_name: {"S": key}} for key in unique[start : start + BATCH_GET_MAX_KEYS]
        ]
        requests: dict[str, KeysAndAttributesUnionTypeDef] = {
            table: {"Keys": chunk, "ConsistentRead": True}
        }
        for attempt in range(BATCH_GET_ATTEMPTS):
            if attempt:
                ceiling = BATCH_GET_BACKOFF_SECONDS * 2 ** (attempt - 1)
                sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not a secret
            response = aws_clients.dynamodb().batch_get_item(RequestItems=requests)
            for raw in response.get("Responses", {}).get(table, []):
                data = from_item(raw)
                found[str(data[key_name])] = data
            unprocessed = response.get("UnprocessedKeys", {})
            if not unprocessed:
                break
            requests = dict(unprocessed)
        else:
            raise ServiceUnavailableError("the listing could not be read; retry later")
    return found


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
