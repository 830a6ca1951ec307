"""A workspace's registered alphanumeric sender IDs, in the catalog table."""

from __future__ import annotations

from sms_gateway.store import aws_clients, catalog
from sms_gateway.store.dynamo import write_if

PREFIX = "sender_id#"


def register(workspace_id: str, sender_id: str, created_at: str) -> bool:
    """Register a sender ID; False when the workspace has it already."""
    item = {
        **catalog.key(catalog.workspace_pk(workspace_id), PREFIX + sender_id),
        "sender_id": {"S": sender_id},
        "created_at": {"S": created_at},
    }
    return (
        write_if(
            lambda: aws_clients.dynamodb().put_item(
                TableName=catalog.table(),
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
            )
        )
        is not None
    )


def is_registered(workspace_id: str, sender_id: str) -> bool:
    return catalog.get(catalog.workspace_pk(workspace_id), PREFIX + sender_id) is not None


def remove(workspace_id: str, sender_id: str) -> bool:
    """Remove a registration; False when there was none."""
    return (
        write_if(
            lambda: aws_clients.dynamodb().delete_item(
                TableName=catalog.table(),
                Key=catalog.key(catalog.workspace_pk(workspace_id), PREFIX + sender_id),
                ConditionExpression="attribute_exists(pk)",
            )
        )
        is not None
    )


def list_page(
    workspace_id: str, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, str]], str | None]:
    """The workspace's sender IDs in order, as the API shows them."""
    page = catalog.query_page(
        catalog.workspace_pk(workspace_id), PREFIX, limit=limit, cursor=cursor
    )
    items = [{"sender_id": i["sender_id"], "created_at": i["created_at"]} for i in page.items]
    return items, page.next_cursor
