"""Data access for the use cases table, with a short per-container read cache for the send path."""

from __future__ import annotations

import time
from typing import Any

from sms_gateway.config import get_settings
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.store import aws_clients
from sms_gateway.store.dynamo import from_item, to_item, to_value, write_if

BY_WORKSPACE_INDEX = "by_workspace"

# use case id -> (monotonic expiry, record). Misses are not cached, so a use case created a
# moment ago is usable at once; changes to an existing one show within the TTL (documented).
_cache: dict[str, tuple[float, UseCase]] = {}


class UseCaseConflictError(Exception):
    """The conditional write found the use case missing or already deleted."""


def get_use_case(use_case_id: str) -> UseCase | None:
    response = aws_clients.dynamodb().get_item(
        TableName=get_settings().use_cases_table,
        Key={"id": {"S": use_case_id}},
        ConsistentRead=True,
    )
    item = response.get("Item")
    return UseCase.model_validate(from_item(item)) if item else None


def get_use_case_cached(use_case_id: str) -> UseCase | None:
    ttl = get_settings().use_case_cache_ttl_seconds
    now = time.monotonic()
    hit = _cache.get(use_case_id)
    if hit and hit[0] > now:
        return hit[1]
    use_case = get_use_case(use_case_id)
    if use_case is not None and ttl > 0:
        _cache[use_case_id] = (now + ttl, use_case)
    return use_case


def clear_cache() -> None:
    _cache.clear()


def put_new_use_case(use_case: UseCase) -> None:
    aws_clients.dynamodb().put_item(
        TableName=get_settings().use_cases_table,
        Item=to_item(use_case.model_dump(mode="json")),
        ConditionExpression="attribute_not_exists(id)",
    )


def update_use_case(use_case_id: str, changes: dict[str, Any], updated_at: str) -> UseCase:
    """Apply `changes` to a live (not deleted) use case in one conditional write."""
    values = {**changes, "updated_at": updated_at}
    names = {f"#f{i}": name for i, name in enumerate(values)}
    attrs = {f":v{i}": to_value(value) for i, value in enumerate(values.values())}
    assignments = ", ".join(f"#f{i} = :v{i}" for i in range(len(values)))
    response = write_if(
        lambda: aws_clients.dynamodb().update_item(
            TableName=get_settings().use_cases_table,
            Key={"id": {"S": use_case_id}},
            UpdateExpression=f"SET {assignments}",
            ConditionExpression="attribute_exists(id) AND #deleted = :false",
            ExpressionAttributeNames={**names, "#deleted": "deleted"},
            ExpressionAttributeValues={**attrs, ":false": {"BOOL": False}},
            ReturnValues="ALL_NEW",
        )
    )
    if response is None:
        raise UseCaseConflictError(use_case_id)
    _cache.pop(use_case_id, None)
    return UseCase.model_validate(from_item(response["Attributes"]))


def list_use_cases(workspace_id: str, *, include_deleted: bool = False) -> list[UseCase]:
    client = aws_clients.dynamodb()
    paginator = client.get_paginator("query")
    found: list[UseCase] = []
    for page in paginator.paginate(
        TableName=get_settings().use_cases_table,
        IndexName=BY_WORKSPACE_INDEX,
        KeyConditionExpression="workspace_id = :w",
        ExpressionAttributeValues={":w": {"S": workspace_id}},
    ):
        found.extend(UseCase.model_validate(from_item(item)) for item in page.get("Items", []))
    return [u for u in found if include_deleted or not u.deleted]
