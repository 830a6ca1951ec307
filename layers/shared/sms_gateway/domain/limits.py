"""A workspace's limits: a send rate (token bucket), a monthly quota of segments and a prepaid
wallet, and the arithmetic that decides a send against them. Pure: the store applies a decision
with one conditional write, whose condition is exactly what the decision assumed.

The bucket is kept as GCRA (the generic cell rate algorithm): one number, the theoretical
arrival time (TAT) of the next send, in microseconds. A send at `now` is allowed when
TAT <= now + tolerance, and moves TAT to max(TAT, now) + interval. It is the token bucket of
rate R and depth B (interval = 1/R, tolerance = (B - 1) * interval) without a read-modify-write
of a token count and a refill time: DynamoDB cannot compute max() in an update, so there are two
forms of the write, each guarded by the condition under which it is the right one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

MICROS = 1_000_000
# A send rate: up to 10,000 sends a second (above a single item's write ceiling anyway), down to
# one a day; a burst of 1 to 100,000 sends.
MAX_SENDS_PER_SECOND = Decimal(10_000)
MIN_SENDS_PER_SECOND = Decimal(1) / Decimal(86_400)
MAX_BURST = 100_000
MAX_MONTHLY_SEGMENTS = 10**12
# A wallet's top-up: a decimal amount, up to 6 places, below a billion.
MAX_TOP_UP = Decimal(10**9)


def money_text(amount: Decimal) -> str:
    """An amount as the API writes it: plain decimal digits without trailing zeros, as
    DynamoDB keeps a Number ("12.50" is stored as 12.5)."""
    text = format(amount.normalize(), "f")
    return "0" if amount == 0 else text


def period_of(moment: datetime) -> str:
    """A calendar month, UTC: '2026-11'."""
    return f"{moment.year:04d}-{moment.month:02d}"


def period_of_iso(timestamp: str) -> str:
    """The period of a stored ISO 8601 UTC timestamp ('2026-11-26T...Z')."""
    return timestamp[:7]


def is_period(text: str) -> bool:
    if len(text) != 7 or text[4] != "-" or not (text[:4] + text[5:]).isdigit():
        return False
    return 1 <= int(text[5:]) <= 12 and int(text[:4]) >= 2000


@dataclass(frozen=True, slots=True)
class SendRate:
    sends_per_second: Decimal
    burst: int

    @property
    def interval_us(self) -> int:
        """Microseconds between two sends at the steady rate (never 0)."""
        return max(1, round(MICROS / self.sends_per_second))

    @property
    def tolerance_us(self) -> int:
        """How far ahead of now TAT may be and a send still pass: the burst less one."""
        return (self.burst - 1) * self.interval_us


def check_send_rate(sends_per_second: Decimal, burst: int) -> str | None:
    """Why a send rate is not acceptable, or None."""
    if not sends_per_second.is_finite() or not (
        MIN_SENDS_PER_SECOND <= sends_per_second <= MAX_SENDS_PER_SECOND
    ):
        return f"sends_per_second must be from 1/86400 to {MAX_SENDS_PER_SECOND}"
    if not 1 <= burst <= MAX_BURST:
        return f"burst must be from 1 to {MAX_BURST}"
    return None


class BucketForm(StrEnum):
    """The two forms of the bucket's write (see the module's docstring)."""

    # TAT is in the past (or the bucket is new): TAT = now + interval.
    RESTART = "restart"
    # TAT is ahead of now, within the tolerance: TAT = TAT + interval.
    ADVANCE = "advance"


@dataclass(frozen=True, slots=True)
class BucketDecision:
    """A send against the bucket as last seen: allowed with a form of write, or refused."""

    allowed: bool
    form: BucketForm | None
    new_tat_us: int | None
    retry_after_seconds: int


def decide_bucket(rate: SendRate, tat_us: int | None, now_us: int) -> BucketDecision:
    if tat_us is None or tat_us <= now_us:
        return BucketDecision(True, BucketForm.RESTART, now_us + rate.interval_us, 0)
    if tat_us <= now_us + rate.tolerance_us:
        return BucketDecision(True, BucketForm.ADVANCE, tat_us + rate.interval_us, 0)
    wait_us = tat_us - rate.tolerance_us - now_us
    return BucketDecision(False, None, None, max(1, math.ceil(wait_us / MICROS)))


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """RateLimit-Limit, -Remaining and -Reset (IETF httpapi-ratelimit-headers): the burst, the
    sends the bucket would take right now, and the seconds until it is full again."""

    limit: int
    remaining: int
    reset_seconds: int

    def as_headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


def rate_limit_headers(rate: SendRate, tat_us: int | None, now_us: int) -> RateLimitHeaders:
    """The bucket's state at `now` for a bucket whose TAT is `tat_us`."""
    tat = max(tat_us or now_us, now_us)
    room = now_us + rate.tolerance_us + rate.interval_us - tat
    remaining = min(rate.burst, max(0, room // rate.interval_us))
    reset = max(0, math.ceil((tat - now_us) / MICROS))
    return RateLimitHeaders(rate.burst, remaining, reset)


def charged_segments(segments: int | None) -> int:
    """The segments a message takes from a quota (and gives back): its count, at least one."""
    return max(1, segments or 0)


class ChargeSource(StrEnum):
    QUOTA = "quota"
    WALLET = "wallet"


@dataclass(frozen=True, slots=True)
class QuotaView:
    """The quota and wallet as last seen. `remaining` counts in `period` only: a new month
    starts again from `monthly_segments`."""

    monthly_segments: int | None
    period: str | None
    remaining: int | None
    balance: Decimal | None
    currency: str | None

    def remaining_in(self, period: str) -> int | None:
        if self.monthly_segments is None:
            return None
        if self.period != period or self.remaining is None:
            return self.monthly_segments
        return self.remaining


@dataclass(frozen=True, slots=True)
class ChargeDecision:
    """How a live send is paid: from the quota (segments), from the wallet (its cost), not at
    all (no quota configured: unlimited), or refused (`source` None and `refused`)."""

    source: ChargeSource | None
    refused: bool
    # The quota's write: True when the stored period is another month (start it afresh).
    new_period: bool = False
    reason: str = ""


def decide_charge(
    quota: QuotaView, period: str, segments: int, amount: Decimal | None, currency: str | None
) -> ChargeDecision:
    """The quota first, whole: a message is paid by one source. Then the wallet at the
    message's committed cost, in the wallet's currency."""
    remaining = quota.remaining_in(period)
    if remaining is None:
        return ChargeDecision(None, refused=False)
    new_period = quota.period != period
    if remaining >= segments:
        return ChargeDecision(ChargeSource.QUOTA, refused=False, new_period=new_period)
    if quota.balance is None or quota.currency is None:
        return ChargeDecision(None, True, new_period, "the monthly quota is used up")
    if amount is None or currency is None:
        return ChargeDecision(
            None, True, new_period, "the quota is used up and the message has no price to pay"
        )
    if currency != quota.currency:
        return ChargeDecision(
            None, True, new_period, f"the quota is used up and the wallet holds {quota.currency}"
        )
    if quota.balance < amount:
        return ChargeDecision(None, True, new_period, "the quota and the wallet are used up")
    return ChargeDecision(ChargeSource.WALLET, refused=False, new_period=new_period)
