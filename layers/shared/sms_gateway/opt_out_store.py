"""Data access for the opt-out list: numbers that must not be messaged through a use case or a
Messaging Service (filled by the CLI, by Twilio error 21610 and by inbound STOP)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from sms_gateway import aws_clients
from sms_gateway.clock import now_iso
from sms_gateway.config import get_settings

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef


def use_case_scope(use_case_id: str) -> str:
    return f"use_case#{use_case_id}"


def service_scope(messaging_service_sid: str) -> str:
    return f"service#{messaging_service_sid}"


def scopes_for(use_case_id: str, messaging_service_sid: str) -> list[str]:
    """A number may opt out of one use case, or (Twilio's STOP) of the whole service."""
    return [use_case_scope(use_case_id), service_scope(messaging_service_sid)]


def is_opted_out(scopes: list[str], phone_number: str) -> bool:
    """One BatchGetItem for all scopes, so the send path pays one read, not one per scope."""
    table = get_settings().opt_outs_table
    keys: list[Mapping[str, AttributeValueTypeDef]] = [
        {"scope": {"S": s}, "phone_number": {"S": phone_number}} for s in dict.fromkeys(scopes)
    ]
    while keys:
        response = aws_clients.dynamodb().batch_get_item(
            RequestItems={table: {"Keys": keys, "ConsistentRead": True}}
        )
        if response.get("Responses", {}).get(table):
            return True
        unprocessed = response.get("UnprocessedKeys", {}).get(table)
        keys = list(unprocessed["Keys"]) if unprocessed else []
    return False


def add_opt_out(scope: str, phone_number: str, reason: str) -> bool:
    """Record an opt-out; False if it was already there (the first reason is kept)."""
    try:
        aws_clients.dynamodb().put_item(
            TableName=get_settings().opt_outs_table,
            Item={
                "scope": {"S": scope},
                "phone_number": {"S": phone_number},
                "reason": {"S": reason},
                "created_at": {"S": now_iso()},
            },
            ConditionExpression="attribute_not_exists(phone_number)",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def remove_opt_out(scope: str, phone_number: str) -> bool:
    response = aws_clients.dynamodb().delete_item(
        TableName=get_settings().opt_outs_table,
        Key={"scope": {"S": scope}, "phone_number": {"S": phone_number}},
        ReturnValues="ALL_OLD",
    )
    return "Attributes" in response
