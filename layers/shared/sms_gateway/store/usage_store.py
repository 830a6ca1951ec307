"""Usage counters, refunds and batch markers in the catalog table (keys: store.limits_store),
written for one batch of the messages stream as one transaction (logic.usage)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from sms_gateway.domain.clock import utc_now
from sms_gateway.domain.usage import Effects
from sms_gateway.store import aws_clients, catalog, limits_store
from sms_gateway.store.dynamo import exact_item
from sms_gateway.store.expressions import Expression

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

MARKER_PREFIX = "usage_batch#"
# A marker outlives the stream's 24-hour retention, past which no retry can carry its batch.
MARKER_TTL_SECONDS = 3 * 24 * 3600


def image(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stream image or a returned item as plain values (numbers as Decimal, exact)."""
    return exact_item(raw) if raw else None


def _marker(first_event_id: str, last_sequence: int) -> TransactWriteItemTypeDef:
    expires = int(utc_now().timestamp()) + MARKER_TTL_SECONDS
    return {
        "Put": {
            "TableName": catalog.table(),
            "Item": {
                "pk": {"S": MARKER_PREFIX + first_event_id},
                "sk": {"S": "batch"},
                # A string: a sequence number may have up to 40 digits, a Number holds 38.
                "last_sequence": {"S": str(last_sequence)},
                "expiration": {"N": str(expires)},
            },
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def batch_writes(
    first_event_id: str,
    last_sequence: int,
    effects: Effects,
    no_quota_refund: set[tuple[str, str]],
    no_refund: set[tuple[str, str]],
) -> list[TransactWriteItemTypeDef]:
    """The batch's transaction: its marker first, then each usage item's additions, then each
    limits item's refund (skipping the limits items (pk, sk) named in the two sets)."""
    items: list[TransactWriteItemTypeDef] = [_marker(first_event_id, last_sequence)]
    for (workspace_id, mode, period), delta in effects.usage.items():
        counters = delta.nonzero()
        if not counters:
            continue
        expression = Expression()
        for counter, amount in counters.items():
            expression.adds.append(f"{expression.name(counter)} {expression.value(amount)}")
        update = expression.update(
            catalog.table(),
            catalog.key(catalog.workspace_pk(workspace_id), limits_store.usage_sk(mode, period)),
        )
        items.append({"Update": update})
    for (workspace_id, mode), refund in effects.refunds.items():
        pk = catalog.workspace_pk(workspace_id)
        sk = limits_store.limits_sk(mode)
        if (pk, sk) in no_refund:
            continue
        expression = Expression()
        expression.conditions.append(f"attribute_exists({expression.name('pk')})")
        if refund.segments_by_period and (pk, sk) not in no_quota_refund:
            # Only the latest month's segments can still be used; an older month is over.
            period = max(refund.segments_by_period)
            remaining, p = expression.name("remaining"), expression.name("period")
            expression.conditions.append(f"{p} = {expression.value(period)}")
            segments = expression.value(refund.segments_by_period[period])
            expression.adds.append(f"{remaining} {segments}")
        if refund.amount:
            balance = expression.name("balance")
            expression.adds.append(f"{balance} {expression.value(refund.amount)}")
        if expression.adds:
            update = expression.update(catalog.table(), catalog.key(pk, sk))
            items.append({"Update": {**update, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}})
    return items


def write_batch(items: list[TransactWriteItemTypeDef]) -> list[dict[str, Any]] | None:
    """Write the batch's transaction: None when it committed, else why each item canceled it."""
    try:
        aws_clients.dynamodb().transact_write_items(TransactItems=items)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "TransactionCanceledException":
            raise
        reasons = cast("dict[str, Any]", exc.response).get("CancellationReasons")
        return list(reasons or [{}])
    return None
