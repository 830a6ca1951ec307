"""A workspace's webhook signing secret, in the catalog table:

    workspace#<id>  webhook_secret   secret, and during a rotation previous_secret and
                                     previous_until (epoch seconds it signs until)

The secret must be given back to its owner (GET /v1/webhook-secret), so it is stored, not
hashed: the table is encrypted at rest, and only the catalog and delivery functions read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sms_gateway.store import aws_clients, catalog
from sms_gateway.store.dynamo import from_item, write_if

SORT_KEY = "webhook_secret"


@dataclass(frozen=True, slots=True)
class WebhookSecrets:
    secret: str
    previous_secret: str | None = None
    previous_until: int | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> WebhookSecrets:
        return cls(
            secret=str(item["secret"]),
            previous_secret=item.get("previous_secret"),
            previous_until=int(item["previous_until"]) if "previous_until" in item else None,
        )

    def signing(self, now: int) -> list[str]:
        """The secrets that sign at `now`: the current one, and the previous one until its end."""
        if self.previous_secret and self.previous_until is not None and now < self.previous_until:
            return [self.secret, self.previous_secret]
        return [self.secret]


def read(workspace_id: str) -> WebhookSecrets | None:
    item = catalog.get(catalog.workspace_pk(workspace_id), SORT_KEY)
    return WebhookSecrets.from_item(item) if item else None


def create(workspace_id: str, secret: str) -> WebhookSecrets:
    """Store a first secret, unless one exists: whichever is stored is returned."""
    stored = write_if(
        lambda: aws_clients.dynamodb().put_item(
            TableName=catalog.table(),
            Item={
                **catalog.key(catalog.workspace_pk(workspace_id), SORT_KEY),
                "secret": {"S": secret},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
    )
    if stored is not None:
        return WebhookSecrets(secret)
    existing = read(workspace_id)
    if existing is None:  # deleted between the two calls: nothing else deletes it
        raise RuntimeError("the webhook secret vanished while it was being created")
    return existing


def rotate(workspace_id: str, secret: str, previous_until: int) -> WebhookSecrets:
    """Make `secret` the current one; the one it replaces keeps signing until `previous_until`
    (one still in the middle of a rotation is dropped: two sign at most). One write, so two
    rotations at once cannot lose a secret that was handed out as current. A workspace without
    a secret gets `secret` as its first."""
    response = write_if(
        lambda: aws_clients.dynamodb().update_item(
            TableName=catalog.table(),
            Key=catalog.key(catalog.workspace_pk(workspace_id), SORT_KEY),
            UpdateExpression="SET previous_secret = secret, previous_until = :until, secret = :new",
            ExpressionAttributeValues={
                ":until": {"N": str(previous_until)},
                ":new": {"S": secret},
            },
            ConditionExpression="attribute_exists(secret)",
            ReturnValues="ALL_NEW",
        )
    )
    if response is None:
        return create(workspace_id, secret)
    return WebhookSecrets.from_item(from_item(response["Attributes"]))
