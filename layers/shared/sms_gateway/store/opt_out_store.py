"""Data access for the opt-out list: numbers that must not be messaged through a use case or a
Messaging Service (filled by the CLI, by Twilio error 21610 and by inbound STOP)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sms_gateway.config import get_settings
from sms_gateway.domain.clock import now_iso
from sms_gateway.domain.errors import ServiceUnavailableError
from sms_gateway.store import aws_clients
from sms_gateway.store.dynamo import write_if

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        KeysAndAttributesUnionTypeDef,
    )


# Twilio's "attempt to send to unsubscribed recipient": the number answered STOP to a Messaging
# Service. Twilio says so either at once (400) or, through a service, in a failed callback.
UNSUBSCRIBED_ERROR_CODE = 21610


def add_twilio_unsubscribed(messaging_service_sid: str, phone_number: str) -> bool:
    """Record that Twilio refused the number as unsubscribed from the Messaging Service (it
    keeps STOP per service; so do we, to refuse at send time); False if it was already there."""
    return add_opt_out(service_scope(messaging_service_sid), phone_number, "twilio_21610")


def use_case_scope(use_case_id: str) -> str:
    return f"use_case#{use_case_id}"


def service_scope(messaging_service_sid: str) -> str:
    return f"service#{messaging_service_sid}"


def scopes_for(use_case_id: str, messaging_service_sid: str) -> list[str]:
    """A number may opt out of one use case, or (Twilio's STOP) of the whole service."""
    return [use_case_scope(use_case_id), service_scope(messaging_service_sid)]


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


def add_opt_out(scope: str, phone_number: str, reason: str) -> bool:
    """Record an opt-out; False if it was already there (the first reason is kept)."""
    written = write_if(
        lambda: aws_clients.dynamodb().put_item(
            TableName=get_settings().opt_outs_table,
            Item={
                "scope": {"S": scope},
                "phone_number": {"S": phone_number},
                "reason": {"S": reason},
                "created_at": {"S": now_iso()},
            },
            ConditionExpression="attribute_not_exists(phone_number)",
        )
    )
    return written is not None


def remove_opt_out(scope: str, phone_number: str) -> bool:
    response = aws_clients.dynamodb().delete_item(
        TableName=get_settings().opt_outs_table,
        Key={"scope": {"S": scope}, "phone_number": {"S": phone_number}},
        ReturnValues="ALL_OLD",
    )
    return "Attributes" in response
