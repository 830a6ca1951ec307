"""A workspace's limits and usage in the catalog table, one item per workspace and mode:

    workspace#<id>  limits#live            send rate, bucket, monthly quota, wallet
    workspace#<id>  limits#test            send rate and bucket only (test is never charged)
    workspace#<id>  usage#<mode>#<period>  the period's counters (kept from the messages' stream)

A send against limits is ONE transaction: the limits item's conditional update (bucket and
quota or wallet) and the message's put. So a message is never stored unpaid nor paid unstored,
whatever crashes when, and a replayed send (its id already stored) cancels the whole
transaction: it is not counted twice.

Amounts are DynamoDB Numbers read as Decimal: a wallet's balance stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from sms_gateway.config import get_settings
from sms_gateway.domain.limits import (
    BucketDecision,
    BucketForm,
    ChargeDecision,
    ChargeSource,
    QuotaView,
    SendRate,
)
from sms_gateway.domain.messages import Message
from sms_gateway.store import aws_clients, catalog
from sms_gateway.store.dynamo import exact_item, from_item
from sms_gateway.store.expressions import Expression
from sms_gateway.store.message_store import MessageAlreadyExistsError, message_to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        ConditionCheckTypeDef,
        TransactWriteItemTypeDef,
    )

LIMITS_PREFIX = "limits#"
USAGE_PREFIX = "usage#"


def limits_sk(mode: str) -> str:
    return f"{LIMITS_PREFIX}{mode}"


def usage_sk(mode: str, period: str) -> str:
    return f"{USAGE_PREFIX}{mode}#{period}"


@dataclass(frozen=True, slots=True)
class Limits:
    """One limits item as read."""

    rate: SendRate | None
    tat_us: int | None
    quota: QuotaView

    @classmethod
    def from_item(cls, item: dict[str, AttributeValueTypeDef]) -> Limits:
        data = exact_item(item)
        rate = None
        if "sends_per_second" in data and "burst" in data:
            rate = SendRate(Decimal(data["sends_per_second"]), int(data["burst"]))

        def whole(name: str) -> int | None:
            return int(data[name]) if name in data else None

        return cls(
            rate=rate,
            tat_us=whole("tat_us"),
            quota=QuotaView(
                monthly_segments=whole("monthly_segments"),
                period=data.get("period"),
                remaining=whole("remaining"),
                balance=Decimal(data["balance"]) if "balance" in data else None,
                currency=data.get("currency"),
            ),
        )


def _key(workspace_id: str, sort_key: str) -> dict[str, AttributeValueTypeDef]:
    return catalog.key(catalog.workspace_pk(workspace_id), sort_key)


def limits_item_key(workspace_id: str, mode: str) -> tuple[str, dict[str, AttributeValueTypeDef]]:
    """The limits item's table and key, for a read batched with another."""
    return catalog.table(), _key(workspace_id, limits_sk(mode))


def read_limits(workspace_id: str, mode: str, *, consistent: bool = False) -> Limits | None:
    """The limits of a workspace in a mode; None when it has none (nothing limits it). An
    eventually consistent read is enough for a send: the write's condition is what decides."""
    response = aws_clients.dynamodb().get_item(
        TableName=catalog.table(),
        Key=_key(workspace_id, limits_sk(mode)),
        ConsistentRead=consistent,
    )
    item = response.get("Item")
    return Limits.from_item(item) if item else None


def read_usage_and_limits(
    workspace_id: str, mode: str, period: str
) -> tuple[dict[str, Any] | None, Limits | None]:
    """A month's counters and the limits as of one moment (TransactGetItems): UsageFunction
    writes a batch's counters and its refunds in one transaction, and two separate reads could
    fall on either side of it (a refund seen without the failure that caused it)."""
    table = catalog.table()
    response = aws_clients.dynamodb().transact_get_items(
        TransactItems=[
            {"Get": {"TableName": table, "Key": _key(workspace_id, usage_sk(mode, period))}},
            {"Get": {"TableName": table, "Key": _key(workspace_id, limits_sk(mode))}},
        ]
    )
    counters, limits = (r.get("Item") for r in response["Responses"])
    return (
        exact_item(counters) if counters else None,
        Limits.from_item(limits) if limits else None,
    )


@dataclass(frozen=True, slots=True)
class Spend:
    """What a send takes from the limits item, as decided against the item last read."""

    now_us: int
    period: str
    segments: int
    amount: Decimal | None
    bucket: BucketDecision | None
    charge: ChargeDecision | None


def _bucket_write(expression: Expression, rate: SendRate, spend: Spend) -> None:
    bucket = spend.bucket
    if bucket is None:
        return
    tat = expression.name("tat_us")
    now = expression.value(spend.now_us)
    if bucket.form is BucketForm.RESTART:
        expression.conditions.append(f"(attribute_not_exists({tat}) OR {tat} <= {now})")
        expression.sets.append(f"{tat} = {expression.value(spend.now_us + rate.interval_us)}")
    else:
        ceiling = expression.value(spend.now_us + rate.tolerance_us)
        expression.conditions.append(f"{tat} > {now} AND {tat} <= {ceiling}")
        expression.sets.append(f"{tat} = {tat} + {expression.value(rate.interval_us)}")


def _charge_write(expression: Expression, quota: QuotaView, spend: Spend) -> None:
    monthly = expression.name("monthly_segments")
    charge = spend.charge
    if charge is None or charge.source is None:
        # Unlimited as read: only while no quota is set.
        expression.conditions.append(f"attribute_not_exists({monthly})")
        return
    period, remaining = expression.name("period"), expression.name("remaining")
    p = expression.value(spend.period)
    if charge.new_period:
        # The first send of a month starts the month's quota afresh, from what was configured
        # when it was read (a concurrent change of the quota makes this write fail, and retry).
        assert quota.monthly_segments is not None
        # Only forward: a month that is over never comes back (periods sort as strings).
        expression.conditions.append(
            f"(attribute_not_exists({period}) OR {period} < {p}) "
            f"AND {monthly} = {expression.value(quota.monthly_segments)}"
        )
        expression.sets.append(f"{period} = {p}")
        left = quota.monthly_segments
        if charge.source is ChargeSource.QUOTA:
            left -= spend.segments
        expression.sets.append(f"{remaining} = {expression.value(left)}")
    elif charge.source is ChargeSource.QUOTA:
        segments = expression.value(spend.segments)
        expression.conditions.append(f"{period} = {p} AND {remaining} >= {segments}")
        expression.sets.append(f"{remaining} = {remaining} - {segments}")
    else:
        expression.conditions.append(f"{period} = {p} AND attribute_exists({monthly})")
    if charge.source is ChargeSource.WALLET:
        balance, currency = expression.name("balance"), expression.name("currency")
        amount = expression.value(spend.amount)
        expression.conditions.append(
            f"{currency} = {expression.value(quota.currency)} AND {balance} >= {amount}"
        )
        expression.sets.append(f"{balance} = {balance} - {amount}")


def spend_write(
    workspace_id: str, mode: str, limits: Limits, spend: Spend
) -> TransactWriteItemTypeDef:
    """The limits item's part of a send's transaction: its condition holds exactly when the
    item is still as the decision assumed."""
    expression = Expression()
    expression.conditions.append(f"attribute_exists({expression.name('pk')})")
    if limits.rate is not None:
        _bucket_write(expression, limits.rate, spend)
    else:
        expression.conditions.append(f"attribute_not_exists({expression.name('burst')})")
    if mode == "live":
        _charge_write(expression, limits.quota, spend)
    update = expression.update(catalog.table(), _key(workspace_id, limits_sk(mode)))
    if not expression.sets:
        # Nothing to spend (no rate, and no quota or test mode): only check that it stays so.
        check: ConditionCheckTypeDef = {
            "TableName": update["TableName"],
            "Key": update["Key"],
            "ConditionExpression": update["ConditionExpression"],
            "ExpressionAttributeNames": update["ExpressionAttributeNames"],
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if "ExpressionAttributeValues" in update:
            check["ExpressionAttributeValues"] = update["ExpressionAttributeValues"]
        return {"ConditionCheck": check}
    return {"Update": {**update, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}


class LimitsChangedError(Exception):
    """The limits item is no longer as read: here it is now (None: it is gone)."""

    def __init__(self, current: Limits | None) -> None:
        super().__init__("limits changed")
        self.current = current


class TransactionConflictError(Exception):
    """Another transaction held one of the items: try again shortly."""


def put_message_spending(message: Message, limits_write: TransactWriteItemTypeDef) -> None:
    """Store a new message and spend from its workspace's limits, both or neither."""
    items: list[TransactWriteItemTypeDef] = [
        limits_write,
        {
            "Put": {
                "TableName": get_settings().messages_table,
                "Item": message_to_item(message),
                "ConditionExpression": "attribute_not_exists(id)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
    ]
    try:
        aws_clients.dynamodb().transact_write_items(TransactItems=items)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "TransactionCanceledException":
            raise
        reasons = cast("dict[str, Any]", exc.response).get("CancellationReasons") or []
        if len(reasons) != 2:
            raise
        limits_reason, message_reason = reasons
        if message_reason.get("Code") == "ConditionalCheckFailed" and message_reason.get("Item"):
            # A replay: the message is stored already, and was paid when it was.
            existing = Message.model_validate(from_item(message_reason["Item"]))
            raise MessageAlreadyExistsError(existing) from exc
        if limits_reason.get("Code") == "ConditionalCheckFailed":
            item = limits_reason.get("Item")
            raise LimitsChangedError(Limits.from_item(item) if item else None) from exc
        codes = {limits_reason.get("Code"), message_reason.get("Code")}
        if "TransactionConflict" in codes:
            raise TransactionConflictError from exc
        raise


# --- The operator's changes (sms-gateway-admin) ---


class WalletCurrencyError(Exception):
    """The wallet holds another currency."""

    def __init__(self, currency: str) -> None:
        super().__init__(currency)
        self.currency = currency


def _update_limits(workspace_id: str, mode: str, expression: Expression) -> Limits | None:
    """Apply an operator's update; the item as it is after, or None when the condition failed
    (it changed since it was read: read it and decide again)."""
    update = expression.update(catalog.table(), _key(workspace_id, limits_sk(mode)))
    try:
        response = aws_clients.dynamodb().update_item(**update, ReturnValues="ALL_NEW")
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return None
        raise
    return Limits.from_item(response["Attributes"])


def set_send_rate(workspace_id: str, mode: str, rate: SendRate | None) -> None:
    """Set (or remove, with None) a mode's send rate. A new rate keeps the bucket's state: the
    sends just made still count against it."""
    expression = Expression()
    if rate is None:
        for attribute in ("sends_per_second", "burst", "tat_us"):
            expression.removes.append(expression.name(attribute))
        expression.conditions.append(f"attribute_exists({expression.name('pk')})")
    else:
        per_second = expression.name("sends_per_second")
        expression.sets.append(f"{per_second} = {expression.value(rate.sends_per_second)}")
        expression.sets.append(f"{expression.name('burst')} = {expression.value(rate.burst)}")
    _update_limits(workspace_id, mode, expression)
    _delete_if_empty(workspace_id, mode)


def set_monthly_segments(
    workspace_id: str, monthly_segments: int | None, period: str, current: Limits | None
) -> bool:
    """Set (or remove) the live monthly quota, from the item as read (`current`); False when
    it changed meanwhile. Within the period, the segments used so far stay used: a quota raised
    from 100 to 150 after 40 were sent leaves 110."""
    expression = Expression()
    monthly = expression.name("monthly_segments")
    p, remaining = expression.name("period"), expression.name("remaining")
    old = current.quota.monthly_segments if current else None
    if old is None:
        expression.conditions.append(f"attribute_not_exists({monthly})")
    else:
        expression.conditions.append(f"{monthly} = {expression.value(old)}")
    if monthly_segments is None:
        expression.removes.extend([monthly, p, remaining])
    else:
        expression.sets.append(f"{monthly} = {expression.value(monthly_segments)}")
        if old is not None and current is not None and current.quota.period == period:
            delta = expression.value(monthly_segments - old)
            expression.conditions.append(f"{p} = {expression.value(period)}")
            expression.sets.append(f"{remaining} = {remaining} + {delta}")
        else:
            # From the month as read: a send that started a new month meanwhile makes this
            # fail, and the change is decided again on the new month's count.
            read_period = current.quota.period if current else None
            if read_period is None:
                expression.conditions.append(f"attribute_not_exists({p})")
            else:
                expression.conditions.append(f"{p} = {expression.value(read_period)}")
            expression.sets.append(f"{p} = {expression.value(period)}")
            expression.sets.append(f"{remaining} = {expression.value(monthly_segments)}")
    nothing_to_change = monthly_segments is None and current is None
    if nothing_to_change or _update_limits(workspace_id, "live", expression) is not None:
        _delete_if_empty(workspace_id, "live")
        return True
    return False


def top_up(workspace_id: str, amount: Decimal, currency: str) -> Limits:
    """Add money to the live wallet, which holds one currency (the first top-up's)."""
    expression = Expression()
    cur, balance = expression.name("currency"), expression.name("balance")
    c = expression.value(currency)
    expression.conditions.append(f"(attribute_not_exists({cur}) OR {cur} = {c})")
    expression.sets.append(f"{cur} = {c}")
    expression.adds.append(f"{balance} {expression.value(amount)}")
    after = _update_limits(workspace_id, "live", expression)
    if after is None:
        held = read_limits(workspace_id, "live", consistent=True)
        raise WalletCurrencyError(held.quota.currency if held and held.quota.currency else "?")
    return after


def _delete_if_empty(workspace_id: str, mode: str) -> None:
    """An item that limits nothing goes, so that its workspace's sends cost no transaction."""
    try:
        aws_clients.dynamodb().delete_item(
            TableName=catalog.table(),
            Key=_key(workspace_id, limits_sk(mode)),
            ConditionExpression=(
                "attribute_not_exists(burst) AND attribute_not_exists(monthly_segments) "
                "AND attribute_not_exists(currency)"
            ),
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
