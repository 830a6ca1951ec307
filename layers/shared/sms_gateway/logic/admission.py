"""Admitting a send against its workspace's limits: the send rate, then (live only) the monthly
quota, then the wallet. The decision is made on the limits item as read and applied by one
transaction with the message's put whose condition is that decision's assumptions; when another
send changed the item first, the transaction's answer carries the item as it is now, and the
decision is made again on that (no extra read)."""

from __future__ import annotations

import random
import time
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from sms_gateway.domain.callers import mode_of
from sms_gateway.domain.clock import now_micros
from sms_gateway.domain.errors import (
    GatewayError,
    QuotaExceededError,
    RateLimitExceededError,
    ServiceUnavailableError,
)
from sms_gateway.domain.limits import (
    charged_segments,
    decide_bucket,
    decide_charge,
    period_of_iso,
    rate_limit_headers,
)
from sms_gateway.domain.messages import Message
from sms_gateway.store import limits_store, message_store

logger = Logger(child=True)

# Decisions made again after another writer changed the limits item first. Each retry follows a
# write that succeeded (or a transaction conflict), so running out of them takes a burst of
# concurrent sends to one workspace larger than this many rounds can serve.
MAX_ATTEMPTS = 12
# Back-off after a TransactionConflict (DynamoDB refuses a transaction that meets another on the
# same item), in seconds: doubled at each conflict, with full jitter.
CONFLICT_BACKOFF_SECONDS = 0.01

# The RateLimit-* headers of the current request's answer. The send stores them as a side
# result, beside the message it returns (an idempotent answer is cached without them: they
# describe the bucket now, not when the answer was first made).
answer_headers: ContextVar[dict[str, str] | None] = ContextVar("answer_headers", default=None)


@dataclass(frozen=True, slots=True)
class _Decision:
    """A send decided against the limits as seen: what to spend, or why it is refused."""

    spend: limits_store.Spend
    refusal: GatewayError | None


def _decide(message: Message, mode: str, limits: limits_store.Limits) -> _Decision:
    now_us = now_micros()
    bucket = None
    refusal: GatewayError | None = None
    if limits.rate is not None:
        bucket = decide_bucket(limits.rate, limits.tat_us, now_us)
        headers = rate_limit_headers(limits.rate, limits.tat_us, now_us).as_headers()
        answer_headers.set(headers)
        if not bucket.allowed:
            refusal = RateLimitExceededError(
                "the workspace's send rate is used up; retry after the Retry-After seconds",
                retry_after=bucket.retry_after_seconds,
            )
            refusal.headers = {**headers, "Retry-After": str(bucket.retry_after_seconds)}
    # The month the send is charged in: its own, or a later one the item already counts (a
    # send created just before midnight UTC and written after another started the new month
    # must not take the item back to the month that is over).
    period = max(period_of_iso(message.created_at), limits.quota.period or "")
    segments = charged_segments(message.segments)
    amount = Decimal(message.cost.amount) if message.cost else None
    charge = None
    if mode == "live" and refusal is None:
        currency = message.cost.currency if message.cost else None
        charge = decide_charge(limits.quota, period, segments, amount, currency)
        if charge.refused:
            refusal = QuotaExceededError(charge.reason)
            refusal.headers = dict(answer_headers.get() or {})
    spend = limits_store.Spend(now_us, period, segments, amount, bucket, charge)
    return _Decision(spend, refusal)


def store_admitted(
    message: Message, limits: limits_store.Limits | None, *, keyed: bool = False
) -> None:
    """Store a new message if its workspace's limits (as read before, None: it has none) admit
    it, spending from them in the same write. Raises RateLimitExceededError (429),
    QuotaExceededError (402), MessageAlreadyExistsError (a replay: nothing spent) or
    ServiceUnavailableError. `keyed`: the message's id comes from an Idempotency-Key, so it may
    be stored already (by an attempt whose answer was lost)."""
    mode = mode_of(message.test)
    # The answer's headers are known from here on: none without a send rate.
    answer_headers.set({})
    # The limits given were read eventually consistently: a refusal is only answered from a
    # view that is certainly current (a consistent read, or a canceled transaction's answer),
    # so that a top-up, a refund or a raised limit of the last second is never missed.
    current = False
    for attempt in range(MAX_ATTEMPTS):
        if limits is None:
            message.charge = None
            message_store.put_new_message(message)
            return
        decision = _decide(message, mode, limits)
        if decision.refusal is not None:
            if current:
                _raise_if_stored(message, keyed)
                raise decision.refusal
            limits = limits_store.read_limits(message.workspace_id, mode, consistent=True)
            current = True
            continue
        charge = decision.spend.charge
        message.charge = charge.source.value if charge and charge.source else None
        write = limits_store.spend_write(message.workspace_id, mode, limits, decision.spend)
        try:
            limits_store.put_message_spending(message, write)
        except limits_store.LimitsChangedError as changed:
            limits, current = changed.current, True
            continue
        except limits_store.TransactionConflictError:
            time.sleep(random.uniform(0, CONFLICT_BACKOFF_SECONDS * 2**attempt))  # noqa: S311
            limits = limits_store.read_limits(message.workspace_id, mode, consistent=True)
            current = True
            continue
        bucket = decision.spend.bucket
        if limits.rate is not None and bucket is not None:
            answer_headers.set(
                rate_limit_headers(
                    limits.rate, bucket.new_tat_us, decision.spend.now_us
                ).as_headers()
            )
        return
    logger.warning("limits kept changing under the send", extra={"attempts": MAX_ATTEMPTS})
    raise ServiceUnavailableError("the workspace's limits are busy; retry later")


def _raise_if_stored(message: Message, keyed: bool) -> None:
    """A retry of a keyed send whose first attempt was stored (and paid) is answered with that
    message, never refused: the first attempt may have spent the last of the limits."""
    if not keyed:
        return
    existing = message_store.get_message(message.id)
    if existing is not None:
        raise message_store.MessageAlreadyExistsError(existing)


def headers_now(workspace_id: str, mode: str) -> dict[str, str]:
    """The RateLimit-* headers of an answer that spent nothing (a refused or replayed send):
    the bucket as it is, or none when the workspace has no send rate."""
    try:
        limits = limits_store.read_limits(workspace_id, mode)
    except ClientError:
        # Headers are advice: an answer is not failed for want of them.
        logger.warning("limits could not be read for the RateLimit headers")
        return {}
    if limits is None or limits.rate is None:
        return {}
    return rate_limit_headers(limits.rate, limits.tat_us, now_micros()).as_headers()
