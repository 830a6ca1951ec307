"""The operator's changes to a workspace's limits (sms-gateway-admin): send rate, monthly quota,
wallet top-up. Each checks its input first and changes nothing when it is wrong."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from sms_gateway.domain.errors import ServiceUnavailableError, ValidationError
from sms_gateway.domain.limits import (
    MAX_MONTHLY_SEGMENTS,
    MAX_TOP_UP,
    SendRate,
    check_send_rate,
)
from sms_gateway.domain.pricing import is_currency
from sms_gateway.logic import usage
from sms_gateway.store import limits_store

# A top-up: a positive decimal with up to 6 places (as prices are).
_AMOUNT = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,6})?$")
# Rounds of read-and-write when another change lands between the two.
MAX_ATTEMPTS = 5


def parse_send_rate(sends_per_second: str, burst: str) -> SendRate:
    try:
        rate = Decimal(sends_per_second)
        depth = int(burst)
    except (InvalidOperation, ValueError) as exc:
        raise ValidationError(
            "sends_per_second must be a number and burst a whole number", field="sends_per_second"
        ) from exc
    problem = check_send_rate(rate, depth)
    if problem:
        raise ValidationError(problem, field="sends_per_second")
    return SendRate(rate, depth)


def parse_monthly_segments(text: str) -> int:
    if not text.isdigit() or int(text) > MAX_MONTHLY_SEGMENTS:
        raise ValidationError(
            f"monthly_segments must be a whole number from 0 to {MAX_MONTHLY_SEGMENTS}",
            field="monthly_segments",
        )
    return int(text)


def parse_top_up(amount: str, currency: str) -> tuple[Decimal, str]:
    if not _AMOUNT.fullmatch(amount) or not 0 < Decimal(amount) < MAX_TOP_UP:
        raise ValidationError(
            "amount must be a positive decimal with up to 6 places, below 1,000,000,000",
            field="amount",
        )
    if not is_currency(currency):
        raise ValidationError("currency must be an ISO 4217 code in capitals", field="currency")
    return Decimal(amount), currency


def set_send_rate(workspace_id: str, rate: SendRate | None) -> None:
    """Both modes get the rate: a test key's sends have their own bucket of the same size."""
    for mode in ("live", "test"):
        limits_store.set_send_rate(workspace_id, mode, rate)


def set_monthly_segments(workspace_id: str, monthly_segments: int | None) -> None:
    period = usage.current_period()
    for _ in range(MAX_ATTEMPTS):
        current = limits_store.read_limits(workspace_id, "live", consistent=True)
        if limits_store.set_monthly_segments(workspace_id, monthly_segments, period, current):
            return
    raise ServiceUnavailableError("the workspace's limits kept changing; try again")


def top_up(workspace_id: str, amount: Decimal, currency: str) -> limits_store.Limits:
    """The live limits after the top-up."""
    try:
        return limits_store.top_up(workspace_id, amount, currency)
    except limits_store.WalletCurrencyError as exc:
        raise ValidationError(
            f"the wallet holds {exc.currency}; top it up in {exc.currency}", field="currency"
        ) from exc
