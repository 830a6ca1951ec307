"""Data access for the messages table. Every status change is one conditional write."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from sms_gateway.config import get_settings
from sms_gateway.domain.messages import Message, MessageStatus, history_item
from sms_gateway.domain.reply_forwarding import ReplyForwarding
from sms_gateway.domain.reply_keys import reply_prefix, reply_sort
from sms_gateway.store import aws_clients
from sms_gateway.store.dynamo import condition_failed, from_item, to_item
from sms_gateway.store.index_pages import Listing, read_page

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

BY_WORKSPACE_INDEX = "by_workspace"
BY_USE_CASE_INDEX = "by_use_case"
BY_EXTERNAL_ID_INDEX = "by_external_id"
BY_REPLY_INDEX = "by_reply"


class MessageAlreadyExistsError(Exception):
    """A message with this id is already stored: a retried send (its id derives from its
    Idempotency-Key, or the SDK retried a put that had gone through). Holds the stored one."""

    def __init__(self, existing: Message) -> None:
        super().__init__(existing.id)
        self.existing = existing


def _mode_prefix(test: bool) -> str:
    return "test#" if test else "live#"


def _created_sort(message: Message) -> str:
    """The indexes' sort key. It starts with the message's mode, so that a listing reads one
    mode's messages only (a test key never reads a live message, nor pays for skipping one);
    created_at alone can tie within a millisecond, so the id makes the key unique."""
    return f"{_mode_prefix(message.test)}{message.created_at}#{message.id}"


def _external_key(workspace_id: str, test: bool, external_id: str) -> str:
    """The external-id index's partition: one workspace's messages of one mode with that id."""
    return f"{workspace_id}#{_mode_prefix(test)}{external_id}"


def message_to_item(message: Message) -> dict[str, AttributeValueTypeDef]:
    data = message.model_dump(mode="json")
    # A history entry's defaults (no status, applied) are left out: the item stays small.
    data["history"] = [history_item(entry) for entry in message.history]
    # The defaults of a message's status webhooks are stored as absent attributes: a message
    # that asks for nothing special pays no write bytes for them.
    if data["delivery_receipt"]:
        del data["delivery_receipt"]
    if data["reply_forwarding"]:
        data["reply_forwarding"] = {
            k: v for k, v in data["reply_forwarding"].items() if v is not None
        }
    data["created_sort"] = _created_sort(message)
    # The reply index's sort key: the message enters the index (keyed by its sender) once the
    # provider has chosen that sender, in the write that records it. Its time is when the
    # message goes out: a scheduled one's send_at, not when it was accepted.
    data["reply_sort"] = reply_sort(
        message.workspace_id,
        message.test,
        message.to_number,
        message.send_at or message.created_at,
        message.id,
    )
    if message.external_id is not None:
        data["external_key"] = _external_key(
            message.workspace_id, message.test, message.external_id
        )
    return to_item(data)


def put_new_message(message: Message) -> None:
    """Store a new message; MessageAlreadyExistsError (with the stored message, read by the
    same write, not by another call) if its id is taken."""
    try:
        aws_clients.dynamodb().put_item(
            TableName=get_settings().messages_table,
            Item=message_to_item(message),
            ConditionExpression="attribute_not_exists(id)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if not condition_failed(exc):
            raise
        item = cast("dict[str, Any]", exc.response).get("Item")
        if not item:
            raise
        raise MessageAlreadyExistsError(Message.model_validate(from_item(item))) from exc


def get_message(message_id: str, *, consistent: bool = True) -> Message | None:
    response = aws_clients.dynamodb().get_item(
        TableName=get_settings().messages_table,
        Key={"id": {"S": message_id}},
        ConsistentRead=consistent,
    )
    item = response.get("Item")
    return Message.model_validate(from_item(item)) if item else None


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """The message a reply answers, as the reply index holds it."""

    message_id: str
    use_case_id: str
    reply_forwarding: ReplyForwarding | None


def latest_sent_to(
    *, workspace_id: str, test: bool, sender: str, person: str, since: str
) -> ReplyTarget | None:
    """The workspace's latest message of one mode from `sender` to `person` created at or after
    `since`: one item read from the reply index (eventually consistent, like every index; a
    reply comes seconds after its message at the earliest)."""
    prefix = reply_prefix(workspace_id, test, person)
    response = aws_clients.dynamodb().query(
        TableName=get_settings().messages_table,
        IndexName=BY_REPLY_INDEX,
        KeyConditionExpression="#f = :f AND #r BETWEEN :since AND :end",
        ExpressionAttributeNames={"#f": "from_number", "#r": "reply_sort"},
        ExpressionAttributeValues={
            ":f": {"S": sender},
            ":since": {"S": prefix + since},
            # '~' sorts after every character of a timestamp and an id.
            ":end": {"S": prefix + "~"},
        },
        ScanIndexForward=False,
        Limit=1,
    )
    items = response.get("Items", [])
    if not items:
        return None
    item = from_item(items[0])
    forwarding = item.get("reply_forwarding")
    return ReplyTarget(
        message_id=str(item["id"]),
        use_case_id=str(item["use_case_id"]),
        reply_forwarding=ReplyForwarding.model_validate(forwarding) if forwarding else None,
    )


@dataclass(frozen=True, slots=True)
class MessagePage:
    items: list[Message]
    next_cursor: str | None


def list_messages(
    *,
    workspace_id: str,
    test: bool,
    use_case_id: str | None,
    status: MessageStatus | None,
    limit: int,
    cursor: str | None,
    external_id: str | None = None,
) -> MessagePage:
    """Newest first from an index (store.index_pages). Only messages of the mode `test` are
    read (the sort key begins with it). The indexes hold the keys and what never changes (the
    use case's index its workspace, the external-id index its use case), so that no status
    change writes them; the messages are read from the table and filtered by status there."""
    equal: dict[str, str] = {}
    if external_id is not None:
        index, partition_name = BY_EXTERNAL_ID_INDEX, "external_key"
        partition_value = _external_key(workspace_id, test, external_id)
        if use_case_id:
            equal["use_case_id"] = use_case_id
    elif use_case_id:
        index, partition_name, partition_value = BY_USE_CASE_INDEX, "use_case_id", use_case_id
        # A use case id of another workspace must look empty, never leak its messages: its
        # entries are passed over in the index, never read from the table.
        equal["workspace_id"] = workspace_id
    else:
        index, partition_name, partition_value = BY_WORKSPACE_INDEX, "workspace_id", workspace_id
    listing = Listing(
        table=get_settings().messages_table,
        index=index,
        partition_name=partition_name,
        partition_value=partition_value,
        sort_name="created_sort",
        mode=_mode_prefix(test),
        equal=equal,
        key_name="id",
        item_equal={"status": status.value} if status is not None else {},
    )
    found, next_cursor = read_page(listing, limit, cursor)
    return MessagePage([Message.model_validate(data) for data in found], next_cursor)


def unclaimed_pending_ids(*, updated_before: str) -> Iterator[str]:
    """Ids of pending messages never claimed nor accepted by the provider, last changed before
    `updated_before`. A Scan (the table has no index by status): for the operator, never a
    function."""
    paginator = aws_clients.dynamodb().get_paginator("scan")
    pages = paginator.paginate(
        TableName=get_settings().messages_table,
        ProjectionExpression="#id",
        FilterExpression=(
            "#s = :pending AND attribute_not_exists(claimed_at) "
            "AND attribute_not_exists(message_sid) AND updated_at < :cutoff"
        ),
        ExpressionAttributeNames={"#id": "id", "#s": "status"},
        ExpressionAttributeValues={
            ":pending": {"S": MessageStatus.PENDING.value},
            ":cutoff": {"S": updated_before},
        },
        ConsistentRead=True,
    )
    for page in pages:
        for item in page.get("Items", []):
            yield item["id"]["S"]
