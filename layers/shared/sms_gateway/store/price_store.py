"""The operator's prices per destination country, in the catalog table, over the bundled table.

A send reads its country's price through a short per-container cache (the use cases' TTL): a
price the operator sets applies to sends within that time, and a warm function pays no read for
a country it priced a moment ago.
"""

from __future__ import annotations

import time
from typing import Any

from sms_gateway.config import get_settings
from sms_gateway.domain.pricing import Price, bundled_price
from sms_gateway.store import aws_clients, catalog
from sms_gateway.store.dynamo import from_item

PK = "prices"

# country -> (monotonic expiry, price or None)
_cache: dict[str, tuple[float, Price | None]] = {}


def _operator_price(item: dict[str, Any]) -> Price:
    return Price(str(item["sk"]), str(item["unit_price"]), str(item["currency"]), "operator")


def operator_price(country: str) -> Price | None:
    item = catalog.get(PK, country)
    return _operator_price(item) if item is not None else None


def price_for(country: str | None) -> Price | None:
    """The price of one segment to `country`: the operator's, else the bundled one, else None."""
    if country is None:
        return None
    now = time.monotonic()
    hit = _cache.get(country)
    if hit and hit[0] > now:
        return hit[1]
    price = operator_price(country) or bundled_price(country)
    ttl = get_settings().use_case_cache_ttl_seconds
    if ttl > 0:
        _cache[country] = (now + ttl, price)
    return price


def clear_cache() -> None:
    _cache.clear()


def set_price(country: str, unit_price: str, currency: str, updated_at: str) -> None:
    aws_clients.dynamodb().put_item(
        TableName=catalog.table(),
        Item={
            **catalog.key(PK, country),
            "unit_price": {"S": unit_price},
            "currency": {"S": currency},
            "updated_at": {"S": updated_at},
        },
    )
    _cache.pop(country, None)


def unset_price(country: str) -> None:
    aws_clients.dynamodb().delete_item(TableName=catalog.table(), Key=catalog.key(PK, country))
    _cache.pop(country, None)


def operator_prices() -> list[Price]:
    paginator = aws_clients.dynamodb().get_paginator("query")
    prices: list[Price] = []
    for page in paginator.paginate(
        TableName=catalog.table(),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": PK}},
    ):
        prices.extend(_operator_price(from_item(item)) for item in page.get("Items", []))
    return prices
