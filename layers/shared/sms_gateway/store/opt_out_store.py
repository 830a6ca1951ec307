"""Data access for the opt-out lists: numbers that must not be messaged through a use case or a
Messaging Service (filled by the CLI, by Twilio error 21610 and by inbound STOP, emptied by the
CLI and by inbound START), and the record of every change made to them."""

from __future__ import annotations

import random
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from sms_gateway.config import get_settings
from sms_gateway.domain.clock import now_iso
from sms_gateway.domain.errors import ServiceUnavailableError
from sms_gateway.store import aws_clients
from sms_gateway.store.dynamo import cancellation_reasons, from_item, to_item

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        KeysAndAttributesUnionTypeDef,
        QueryInputTypeDef,
        TransactWriteItemTypeDef,
    )


# Twilio's "attempt to send to unsubscribed recipient": the number answered STOP to a Messaging
# Service. Twilio says so either at once (400) or, through a service, in a failed callback.
UNSUBSCRIBED_ERROR_CODE = 21610


def add_provider_unsubscribed(
    messaging_service_sid: str,
    phone_number: str,
    message_id: str | None = None,
    *,
    source: OptOutSource | None = None,
) -> bool:
    """Record that a provider refused the number as opted out (by default Twilio, whose 21610
    says so), on the list of the use case's Messaging Service (Twilio keeps STOP per service;
    so do we, to refuse at send time); False if it was already there."""
    source = source or OptOutSource.PROVIDER
    return add_opt_out(
        service_scope(messaging_service_sid),
        phone_number,
        source.value,
        source=source,
        cause_id=message_id,
    )


def use_case_scope(use_case_id: str) -> str:
    return f"use_case#{use_case_id}"


def service_scope(messaging_service_sid: str, *, test: bool = False) -> str:
    """A Messaging Service's list. A test reply's STOP (a simulated one) goes to the service's
    test list, which only test sends read: it never stops a live message."""
    return f"{'test#' if test else ''}service#{messaging_service_sid}"


def scopes_for(use_case_id: str, messaging_service_sid: str, *, test: bool = False) -> list[str]:
    """A number may opt out of one use case, or (STOP) of the whole service; a test send also
    reads the service's test list."""
    scopes = [use_case_scope(use_case_id), service_scope(messaging_service_sid)]
    if test:
        scopes.append(service_scope(messaging_service_sid, test=True))
    return scopes


# Keys DynamoDB leaves unprocessed (throttling, or a partition over its limit) are asked for
# again after a pause, as AWS advises for batch operations: exponential, with full jitter so that
# workers throttled together do not come back together, and bounded, since a send request or a
# handoff has only seconds to spend: about 0.05 + 0.1 + 0.2 + 0.4 s at most.
BATCH_GET_ATTEMPTS = 5
BATCH_GET_BACKOFF_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class OptOutRead:
    """Whether the number opted out, and the other item read in the same request (or None)."""

    opted_out: bool
    other: dict[str, AttributeValueTypeDef] | None = None


def is_opted_out(
    scopes: list[str], phone_number: str, *, sleep: Callable[[float], None] = time.sleep
) -> bool:
    """One BatchGetItem for all scopes, so the send path pays one read, not one per scope.
    ServiceUnavailableError when DynamoDB leaves keys unprocessed through every attempt."""
    return read_opt_outs(scopes, phone_number, sleep=sleep).opted_out


def read_opt_outs(
    scopes: list[str],
    phone_number: str,
    *,
    other: tuple[str, Mapping[str, AttributeValueTypeDef]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> OptOutRead:
    """is_opted_out, reading in the same BatchGetItem one `other` item (table, key) that the
    caller needs next (the send: its workspace's limits), eventually consistent: one round trip
    for both."""
    table = get_settings().opt_outs_table
    keys: list[Mapping[str, AttributeValueTypeDef]] = [
        {"scope": {"S": s}, "phone_number": {"S": phone_number}} for s in dict.fromkeys(scopes)
    ]
    requests: dict[str, KeysAndAttributesUnionTypeDef] = {
        table: {"Keys": keys, "ConsistentRead": True}
    }
    if other is not None:
        requests[other[0]] = {"Keys": [other[1]], "ConsistentRead": False}
    found: dict[str, AttributeValueTypeDef] | None = None
    for attempt in range(BATCH_GET_ATTEMPTS):
        if attempt:
            sleep(_jittered_pause(attempt))
        response = aws_clients.dynamodb().batch_get_item(RequestItems=requests)
        answers = response.get("Responses", {})
        if answers.get(table):
            return OptOutRead(True)
        if other is not None and answers.get(other[0]):
            found = dict(answers[other[0]][0])
        unprocessed = response.get("UnprocessedKeys", {})
        if not unprocessed:
            return OptOutRead(False, found)
        requests = dict(unprocessed)
    raise ServiceUnavailableError("the opt-out list could not be read; retry later")


def _jittered_pause(attempt: int) -> float:
    ceiling = BATCH_GET_BACKOFF_SECONDS * 2 ** (attempt - 1)
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret


# Every change of a list is recorded beside it (scope "changes#<scope>", sort key
# "<number>#<write time in ns>#<nonce>"), and kept this long (TTL): TCPA claims can be brought
# for four years, so the record of who opted out or back in, when and how, outlives them.
CHANGE_RETENTION_SECONDS = 4 * 366 * 24 * 3600
CHANGES_PREFIX = "changes#"


class OptOutSource(StrEnum):
    """What changed a list: a keyword the person texted, a provider refusing the number
    (Twilio's 21610, AWS End User Messaging SMS's DESTINATION_PHONE_NUMBER_OPTED_OUT), or an
    operator."""

    KEYWORD = "keyword"
    PROVIDER = "twilio_21610"
    AWS_EUM = "aws_eum_opted_out"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class OptOutChange:
    """One change of one list: the number added to it (opted out) or removed (opted back in)."""

    scope: str
    phone_number: str
    opted_out: bool
    source: OptOutSource
    at: str
    # What caused it, when there is a record of it: the keyword's inbound message id, or the
    # message Twilio refused.
    cause_id: str | None = None
    # The operator's reason (the CLI's --reason).
    reason: str | None = None


def change_writes(change: OptOutChange) -> list[TransactWriteItemTypeDef]:
    """The two writes of a change, for one transaction: the list's item (only if the change
    changes it, so a repeated STOP records nothing) and the change's record."""
    table = get_settings().opt_outs_table
    key: dict[str, AttributeValueTypeDef] = {
        "scope": {"S": change.scope},
        "phone_number": {"S": change.phone_number},
    }
    list_write: TransactWriteItemTypeDef
    if change.opted_out:
        list_write = {
            "Put": {
                "TableName": table,
                "Item": {
                    **key,
                    "reason": {"S": change.reason or change.source.value},
                    "created_at": {"S": change.at},
                },
                "ConditionExpression": "attribute_not_exists(phone_number)",
            }
        }
    else:
        list_write = {
            "Delete": {
                "TableName": table,
                "Key": key,
                "ConditionExpression": "attribute_exists(phone_number)",
            }
        }
    # The time of the write, in nanoseconds, orders the changes (two within one millisecond
    # included): a change's `at` may be when its cause happened, earlier.
    written_ns = time.time_ns()
    record = {
        "scope": CHANGES_PREFIX + change.scope,
        "phone_number": f"{change.phone_number}#{written_ns:020d}#{secrets.token_hex(4)}",
        "written_ns": written_ns,
        "number": change.phone_number,
        "action": "opted_out" if change.opted_out else "opted_in",
        "source": change.source.value,
        "at": change.at,
        "cause_id": change.cause_id,
        "reason": change.reason,
        "expiration": int(time.time()) + CHANGE_RETENTION_SECONDS,
    }
    return [list_write, {"Put": {"TableName": table, "Item": to_item(record)}}]


def state_check(scope: str, phone_number: str, *, listed: bool) -> TransactWriteItemTypeDef:
    """A transaction's check that the number still is (or still is not) on the list: a write
    that changes nothing because the list already was so must fail if the list changed since."""
    return {
        "ConditionCheck": {
            "TableName": get_settings().opt_outs_table,
            "Key": {"scope": {"S": scope}, "phone_number": {"S": phone_number}},
            "ConditionExpression": (
                "attribute_exists(phone_number)" if listed else "attribute_not_exists(phone_number)"
            ),
        }
    }


def record_change(change: OptOutChange) -> bool:
    """Apply a change and record it, in one transaction; False when the list already was so
    (the number already listed, or not listed): nothing is written then."""
    try:
        aws_clients.dynamodb().transact_write_items(TransactItems=change_writes(change))
    except ClientError as exc:
        # Only the list's own condition means "already so"; a throttled or conflicting
        # transaction is an error the caller must see (a 503, a retry), never a silent no-op.
        reasons = cancellation_reasons(exc)
        if reasons and reasons[0] == "ConditionalCheckFailed":
            return False
        raise
    return True


def add_opt_out(
    scope: str,
    phone_number: str,
    reason: str = OptOutSource.OPERATOR.value,
    *,
    source: OptOutSource = OptOutSource.OPERATOR,
    cause_id: str | None = None,
) -> bool:
    """Record an opt-out; False if it was already there (the first reason is kept)."""
    change = OptOutChange(
        scope, phone_number, True, source, now_iso(), cause_id=cause_id, reason=reason
    )
    return record_change(change)


def remove_opt_out(
    scope: str, phone_number: str, source: OptOutSource = OptOutSource.OPERATOR
) -> bool:
    """Lift an opt-out; False if the number was not listed."""
    return record_change(OptOutChange(scope, phone_number, False, source, now_iso()))


def is_listed(scope: str, phone_number: str) -> bool:
    """Whether the number is on this one list now (read consistently)."""
    response = aws_clients.dynamodb().get_item(
        TableName=get_settings().opt_outs_table,
        Key={"scope": {"S": scope}, "phone_number": {"S": phone_number}},
        ConsistentRead=True,
        ProjectionExpression="phone_number",
    )
    return "Item" in response


# The most changes one listing returns.
MAX_LISTED_CHANGES = 1000


def list_changes(scope: str, phone_number: str | None = None) -> list[dict[str, Any]]:
    """A list's recorded changes, oldest first (of one number, when given). At most
    MAX_LISTED_CHANGES: without a number, the first read in the numbers' order, then sorted."""
    condition = "#s = :s"
    values: dict[str, AttributeValueTypeDef] = {":s": {"S": CHANGES_PREFIX + scope}}
    if phone_number is not None:
        condition += " AND begins_with(#n, :n)"
        values[":n"] = {"S": f"{phone_number}#"}
    request: QueryInputTypeDef = {
        "TableName": get_settings().opt_outs_table,
        "KeyConditionExpression": condition,
        "ExpressionAttributeNames": {
            "#s": "scope",
            **({"#n": "phone_number"} if phone_number else {}),
        },
        "ExpressionAttributeValues": values,
    }
    found: list[dict[str, Any]] = []
    while len(found) < MAX_LISTED_CHANGES:
        response = aws_clients.dynamodb().query(**request)
        for raw in response.get("Items", []):
            item = from_item(raw)
            found.append(
                {
                    "scope": scope,
                    "phone_number": item["number"],
                    "action": item["action"],
                    "source": item["source"],
                    "at": item["at"],
                    "cause_id": item.get("cause_id"),
                    "reason": item.get("reason"),
                    "written_ns": int(item.get("written_ns") or 0),
                }
            )
        last = response.get("LastEvaluatedKey")
        if not last:
            break
        request["ExclusiveStartKey"] = last
    found.sort(key=lambda change: int(change.pop("written_ns")))
    return found[:MAX_LISTED_CHANGES]
