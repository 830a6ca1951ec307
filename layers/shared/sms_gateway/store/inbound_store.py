"""Data access for the inbound messages table: one item per message a person sent us, stored
once whatever the provider's redeliveries, listed newest first per workspace, use case or
sender, and marked as each forwarding channel is carried out. The table's stream is the
forwarding's outbox (ReplyForwardingPipe)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from sms_gateway.config import get_settings
from sms_gateway.domain.inbound import InboundMessage
from sms_gateway.store import aws_clients
from sms_gateway.store.dynamo import cancellation_reasons, from_item, to_item, write_if
from sms_gateway.store.index_pages import Listing, read_page

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        PutTypeDef,
        TransactWriteItemTypeDef,
    )

BY_WORKSPACE_INDEX = "by_workspace"
BY_USE_CASE_INDEX = "by_use_case"
BY_SENDER_INDEX = "by_sender"
SORT_ATTRIBUTE = "received_sort"


class Stored(StrEnum):
    NEW = "new"
    # The provider delivered this message before: nothing was written.
    DUPLICATE = "duplicate"
    # The opt-out list changed between its read and this write: read it again and retry.
    LIST_CHANGED = "list_changed"
    # Another transaction held an item, or DynamoDB throttled: retry after a pause.
    CONTENDED = "contended"


_RETRYABLE_REASONS = frozenset({"TransactionConflict", "ThrottlingError"})


def _mode_prefix(test: bool) -> str:
    return "test#" if test else "live#"


def _sender_key(workspace_id: str, from_number: str) -> str:
    return f"{workspace_id}#{from_number}"


def inbound_to_item(inbound: InboundMessage) -> dict[str, AttributeValueTypeDef]:
    data = inbound.model_dump(mode="json")
    if data["reply_forwarding"]:
        data["reply_forwarding"] = {
            k: v for k, v in data["reply_forwarding"].items() if v is not None
        }
    data[SORT_ATTRIBUTE] = f"{_mode_prefix(inbound.test)}{inbound.received_at}#{inbound.id}"
    data["sender_key"] = _sender_key(inbound.workspace_id, inbound.from_number)
    if inbound.forward_channels:
        # Each channel's outcome goes in here once it is carried out (mark_forwarded).
        data["forwarded"] = {}
    else:
        data.pop("forwarded", None)
    return to_item(data)


def store(
    inbound: InboundMessage, list_writes: list[TransactWriteItemTypeDef] | None = None
) -> Stored:
    """Store a new inbound message and, in the same transaction, what its keyword does to an
    opt-out list (opt_out_store.change_writes, or state_check when the list already is as the
    keyword wants): a redelivery changes the list no more than it stores the message twice, and
    a list changed since it was read fails the whole write (LIST_CHANGED). Without a keyword,
    one conditional put (a transaction would cost twice the write units)."""
    put: PutTypeDef = {
        "TableName": get_settings().inbound_table,
        "Item": inbound_to_item(inbound),
        "ConditionExpression": "attribute_not_exists(id)",
    }
    if not list_writes:
        written = write_if(lambda: aws_clients.dynamodb().put_item(**put))
        return Stored.NEW if written is not None else Stored.DUPLICATE
    writes: list[TransactWriteItemTypeDef] = [{"Put": put}, *list_writes]
    try:
        aws_clients.dynamodb().transact_write_items(TransactItems=writes)
    except ClientError as exc:
        reasons = cancellation_reasons(exc)
        if reasons is None:
            raise
        if reasons and reasons[0] == "ConditionalCheckFailed":
            return Stored.DUPLICATE
        if "ConditionalCheckFailed" in reasons:
            return Stored.LIST_CHANGED
        if any(r in _RETRYABLE_REASONS for r in reasons):
            # Another transaction on the same opt-out item at the same moment (a STOP and a
            # START of one number, a redelivery), or throttling: try again shortly.
            return Stored.CONTENDED
        raise
    return Stored.NEW


def get_inbound(inbound_id: str) -> InboundMessage | None:
    response = aws_clients.dynamodb().get_item(
        TableName=get_settings().inbound_table,
        Key={"id": {"S": inbound_id}},
        ConsistentRead=True,
    )
    item = response.get("Item")
    return InboundMessage.model_validate(from_item(item)) if item else None


def mark_forwarded(inbound_id: str, channel: str, outcome: str) -> bool:
    """Record what one channel's forwarding came to; False if it was recorded before (another
    delivery of the same job got there first)."""
    written = write_if(
        lambda: aws_clients.dynamodb().update_item(
            TableName=get_settings().inbound_table,
            Key={"id": {"S": inbound_id}},
            UpdateExpression="SET #f.#c = :o",
            ConditionExpression="attribute_exists(#f) AND attribute_not_exists(#f.#c)",
            ExpressionAttributeNames={"#f": "forwarded", "#c": channel},
            ExpressionAttributeValues={":o": {"S": outcome}},
        )
    )
    return written is not None


@dataclass(frozen=True, slots=True)
class InboundPage:
    items: list[InboundMessage]
    next_cursor: str | None


def list_inbound(
    *,
    workspace_id: str,
    test: bool,
    use_case_id: str | None,
    from_number: str | None,
    limit: int,
    cursor: str | None,
) -> InboundPage:
    """Newest first from an index (store.index_pages), one mode's only."""
    equal: dict[str, str] = {}
    if from_number is not None:
        index, partition_name = BY_SENDER_INDEX, "sender_key"
        partition_value = _sender_key(workspace_id, from_number)
        if use_case_id is not None:
            equal["use_case_id"] = use_case_id
    elif use_case_id is not None:
        index, partition_name, partition_value = BY_USE_CASE_INDEX, "use_case_id", use_case_id
        # A use case id of another workspace must look empty, never leak its messages.
        equal["workspace_id"] = workspace_id
    else:
        index, partition_name, partition_value = BY_WORKSPACE_INDEX, "workspace_id", workspace_id
    listing = Listing(
        table=get_settings().inbound_table,
        index=index,
        partition_name=partition_name,
        partition_value=partition_value,
        sort_name=SORT_ATTRIBUTE,
        mode=_mode_prefix(test),
        equal=equal,
    )
    found, next_cursor = read_page(listing, limit, cursor)
    return InboundPage([InboundMessage.model_validate(data) for data in found], next_cursor)
