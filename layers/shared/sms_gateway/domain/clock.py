"""One place for time, so every stored timestamp has the same ISO 8601 UTC shape."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z suffix; sorts lexically in time order."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(utc_now())


def now_micros() -> int:
    """Microseconds since the epoch: the send-rate bucket's clock."""
    return time.time_ns() // 1000
