"""Usage: counters kept from the messages table's stream (UsageFunction), refunds of what a
message that never reached the carrier was charged, and the usage report.

A batch of stream records is applied exactly once: its counter additions, its refunds and a
marker naming the batch's first record go in ONE transaction, whose condition is that the marker
is new. Lambda retries a failed batch from the same first record, so a batch that was applied
before its invocation failed finds its marker, and only records past the marker's last sequence
number (a retry may carry more) are applied.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger

from sms_gateway.domain.clock import utc_now
from sms_gateway.domain.limits import money_text, period_of
from sms_gateway.domain.messages import MessageStatus
from sms_gateway.domain.usage import Effects, cost_counter, status_counter
from sms_gateway.store import limits_store, usage_store

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

logger = Logger(child=True)

# Attempts at one batch's transaction: a refund whose quota month has ended meanwhile is dropped
# and the batch tried again; a TransactionConflict is tried again as well.
MAX_ATTEMPTS = 5
# Back-off after a TransactionConflict, in seconds: doubled at each, with full jitter.
CONFLICT_BACKOFF_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class StreamRecord:
    event_id: str
    event_name: str
    sequence: int
    old: dict[str, Any] | None
    new: dict[str, Any] | None


@dataclass
class DroppedRefunds:
    """Limits items (pk, sk) whose refund cannot apply: the quota part (its month is over), or
    the whole of it (the item is gone)."""

    quota: set[tuple[str, str]] = field(default_factory=set)
    whole: set[tuple[str, str]] = field(default_factory=set)


def parse_record(record: dict[str, Any]) -> StreamRecord:
    dynamodb = record["dynamodb"]
    return StreamRecord(
        event_id=str(record["eventID"]),
        event_name=str(record["eventName"]),
        sequence=int(dynamodb["SequenceNumber"]),
        old=usage_store.image(dynamodb.get("OldImage")),
        new=usage_store.image(dynamodb.get("NewImage")),
    )


def apply_batch(raw_records: list[dict[str, Any]]) -> int:
    """Apply a batch of the messages stream (one shard, in order); how many records were new."""
    records = [parse_record(r) for r in raw_records]
    dropped = DroppedRefunds()
    for attempt in range(MAX_ATTEMPTS):
        if not records:
            return 0
        effects = Effects()
        for record in records:
            effects.add_record(record.event_name, record.old, record.new)
        items = usage_store.batch_writes(
            records[0].event_id, records[-1].sequence, effects, dropped.quota, dropped.whole
        )
        reasons = usage_store.write_batch(items)
        if reasons is None:
            return len(records)
        if any(reason.get("Code") == "TransactionConflict" for reason in reasons):
            # A send's transaction held a limits item: a moment later it is free.
            time.sleep(random.uniform(0, CONFLICT_BACKOFF_SECONDS * 2**attempt))  # noqa: S311
        records = _after_cancellation(records, items, reasons, dropped)
    raise RuntimeError("the usage batch could not be applied; Lambda retries it")


def _after_cancellation(
    records: list[StreamRecord],
    items: list[TransactWriteItemTypeDef],
    reasons: list[dict[str, Any]],
    dropped: DroppedRefunds,
) -> list[StreamRecord]:
    """What is left to apply after a canceled transaction."""
    marker_reason = reasons[0] if reasons else {}
    if marker_reason.get("Code") == "ConditionalCheckFailed":
        # Applied before, as far as the marker says: keep only what came after.
        done = (usage_store.image(marker_reason.get("Item")) or {}).get("last_sequence")
        last = int(done) if done is not None else records[-1].sequence
        logger.info("usage batch seen before", extra={"applied_through": str(last)})
        return [r for r in records if r.sequence > last]
    for item, reason in zip(items, reasons, strict=False):
        if reason.get("Code") == "ConditionalCheckFailed" and "Update" in item:
            key = cast("dict[str, dict[str, str]]", item["Update"]["Key"])
            limits_key = (key["pk"]["S"], key["sk"]["S"])
            if reason.get("Item"):
                # A quota refund to a month that is over (or a quota since removed): the new
                # month started from the full quota, so there is nothing to give back to.
                dropped.quota.add(limits_key)
            else:
                # The workspace's limits are gone (nothing limits it now): nothing to refund.
                dropped.whole.add(limits_key)
    return records


def _number(data: dict[str, Any] | None, name: str) -> Decimal:
    return Decimal(data.get(name, 0)) if data else Decimal(0)


def current_period() -> str:
    return period_of(utc_now())


def usage_report(workspace_id: str, mode: str, period: str) -> dict[str, Any]:
    """GET /v1/usage: the period's counters, the quota and wallet, and the send rate."""
    counters, limits = limits_store.read_usage_and_limits(workspace_id, mode, period)
    by_status = {
        status.value: int(_number(counters, status_counter(status.value)))
        for status in MessageStatus
    }
    currencies = sorted(
        name.removeprefix("cost_") for name in (counters or {}) if name.startswith("cost_")
    )
    wallet = None
    quota: dict[str, Any] = {"monthly_segments": None, "remaining_segments": None}
    rate_limit = None
    if limits is not None:
        if mode == "live" and limits.quota.monthly_segments is not None:
            remaining = (
                max(0, limits.quota.remaining_in(period) or 0)
                if period == current_period()
                else None
            )
            quota = {
                "monthly_segments": limits.quota.monthly_segments,
                "remaining_segments": remaining,
            }
        if mode == "live" and limits.quota.currency is not None:
            wallet = {
                "balance": money_text(limits.quota.balance or Decimal(0)),
                "currency": limits.quota.currency,
            }
        if limits.rate is not None:
            per_second = limits.rate.sends_per_second
            rate_limit = {
                "sends_per_second": int(per_second)
                if per_second == per_second.to_integral_value()
                else float(per_second),
                "burst": limits.rate.burst,
            }
    currency = wallet["currency"] if wallet else (currencies[0] if currencies else "USD")
    return {
        "period": period,
        "messages": int(_number(counters, "messages")),
        "segments": int(_number(counters, "segments")),
        "cost": {
            "amount": money_text(_number(counters, cost_counter(currency))),
            "currency": currency,
        },
        "by_status": by_status,
        "quota": quota,
        "wallet": wallet,
        "rate_limit": rate_limit,
    }
