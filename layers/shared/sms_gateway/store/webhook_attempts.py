"""The attempts to deliver a message's status webhooks, one item each, in their own table:

    message_id  <sequence, 4 digits>#<attempted_at>#<nonce>

so a message's attempts are one Query, in event order then time order. An item expires
(TTL) long after its message stopped changing; a message has at most one event per status and
each event a bounded number of attempts, so the list cannot grow without bound.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from sms_gateway.config import get_settings
from sms_gateway.store import aws_clients
from sms_gateway.store.dynamo import from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import QueryInputTypeDef

# How long an attempt is kept.
RETENTION_SECONDS = 90 * 24 * 3600
# The most attempts a listing reads: far more than a message can make (5 events, each retried
# along the schedule), so it only bounds a read.
MAX_LISTED = 500


@dataclass(frozen=True, slots=True)
class Attempt:
    message_id: str
    webhook_id: str
    type: str
    sequence: int
    attempt: int
    attempted_at: str
    status_code: int | None
    error: str | None
    next_attempt_at: str | None
    delivered: bool


_FIELDS = tuple(f.name for f in fields(Attempt))


def _sequence_prefix(sequence: int) -> str:
    return f"{sequence:04d}#"


def record(attempt: Attempt) -> None:
    data: dict[str, Any] = {
        **asdict(attempt),
        # The nonce keeps two deliveries of one job in the same millisecond apart.
        "attempt_key": f"{_sequence_prefix(attempt.sequence)}{attempt.attempted_at}#"
        f"{secrets.token_hex(4)}",
        "expiration": int(time.time()) + RETENTION_SECONDS,
    }
    aws_clients.dynamodb().put_item(
        TableName=get_settings().webhook_attempts_table, Item=to_item(data)
    )


@dataclass(frozen=True, slots=True)
class EventAttempts:
    """What was tried of one event so far, by every job that carried it."""

    made: int
    delivered: bool


def attempts_at(message_id: str, sequence: int) -> EventAttempts:
    """The attempts recorded for one event (a handful: the schedule bounds them)."""
    response = aws_clients.dynamodb().query(
        TableName=get_settings().webhook_attempts_table,
        KeyConditionExpression="message_id = :m AND begins_with(attempt_key, :p)",
        ExpressionAttributeValues={
            ":m": {"S": message_id},
            ":p": {"S": _sequence_prefix(sequence)},
        },
        ProjectionExpression="delivered",
        ConsistentRead=True,
    )
    items = response.get("Items", [])
    return EventAttempts(
        made=len(items),
        delivered=any(item.get("delivered", {}).get("BOOL") for item in items),
    )


def list_attempts(message_id: str) -> list[Attempt]:
    request: QueryInputTypeDef = {
        "TableName": get_settings().webhook_attempts_table,
        "KeyConditionExpression": "message_id = :m",
        "ExpressionAttributeValues": {":m": {"S": message_id}},
        "ConsistentRead": True,
    }
    found: list[Attempt] = []
    while len(found) < MAX_LISTED:
        response = aws_clients.dynamodb().query(**request)
        for raw in response.get("Items", []):
            item = from_item(raw)
            values: dict[str, Any] = {name: item.get(name) for name in _FIELDS}
            found.append(Attempt(**values))
        last = response.get("LastEvaluatedKey")
        if not last:
            break
        request["ExclusiveStartKey"] = last
    return found[:MAX_LISTED]
