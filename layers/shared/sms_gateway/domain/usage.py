"""What a change of a message means for its workspace's usage counters and limits: pure, from the
message as it was and as it is (a DynamoDB stream record's old and new images).

- A new message counts in the period it was created in: one message, its segments, its cost,
  one more in its status.
- A status change moves one count from the old status to the new one.
- A message that ends before reaching the carrier (canceled, or failed without the provider ever
  accepting it) gives back what it took: its segments and cost leave the period's counters, and
  what it was charged (quota segments or wallet money) goes back to the limits. A failure whose
  outcome is unknown (99001: the provider may have accepted it) is not refunded.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sms_gateway.domain.callers import mode_of
from sms_gateway.domain.error_codes import OUTCOME_UNKNOWN
from sms_gateway.domain.limits import ChargeSource, charged_segments, period_of_iso
from sms_gateway.domain.messages import MessageStatus

S = MessageStatus


def status_counter(status: str) -> str:
    return f"status_{status}"


def cost_counter(currency: str) -> str:
    return f"cost_{currency}"


def never_reached_carrier(image: dict[str, Any]) -> bool:
    """Whether a message ended without the provider ever having it (so it is refunded)."""
    status = image.get("status")
    if status == S.CANCELED.value:
        return True
    return (
        status == S.FAILED.value
        and not image.get("message_sid")
        and image.get("error_code") != OUTCOME_UNKNOWN
    )


def _is_message(image: dict[str, Any] | None) -> bool:
    return image is not None and all(
        isinstance(image.get(name), str) for name in ("workspace_id", "created_at", "status")
    )


@dataclass
class UsageDelta:
    """Additions to one usage item (workspace, mode, period): counter -> amount."""

    counters: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def add(self, counter: str, amount: Decimal | int) -> None:
        self.counters[counter] += Decimal(amount)

    def nonzero(self) -> dict[str, Decimal]:
        return {name: amount for name, amount in self.counters.items() if amount != 0}


@dataclass
class Refund:
    """What goes back to one limits item (workspace, mode): quota segments per period of the
    charge, and wallet money in its currency."""

    segments_by_period: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    amount: Decimal = Decimal(0)
    currency: str | None = None


def _add_cost(delta: UsageDelta, cost: Any, sign: int) -> None:
    if isinstance(cost, dict) and cost.get("amount") is not None and cost.get("currency"):
        delta.add(cost_counter(str(cost["currency"])), sign * Decimal(str(cost["amount"])))


UsageKey = tuple[str, str, str]  # workspace, mode, period
LimitsKey = tuple[str, str]  # workspace, mode


@dataclass
class Effects:
    usage: dict[UsageKey, UsageDelta] = field(default_factory=dict)
    refunds: dict[LimitsKey, Refund] = field(default_factory=dict)

    def _usage(self, image: dict[str, Any]) -> UsageDelta:
        key = (
            str(image["workspace_id"]),
            mode_of(bool(image.get("test"))),
            period_of_iso(image["created_at"]),
        )
        return self.usage.setdefault(key, UsageDelta())

    def add_record(
        self, event_name: str, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        if not _is_message(new):
            # Not a whole message (an item of keys only): nothing to count, and a batch must
            # never fail on it, or the stream would stop behind it.
            return
        assert new is not None
        if event_name == "INSERT":
            self._inserted(new)
        elif event_name == "MODIFY" and _is_message(old):
            assert old is not None
            self._modified(old, new)
        # REMOVE (an expired message) changes no counter: it was counted when it lived.

    def _inserted(self, new: dict[str, Any]) -> None:
        delta = self._usage(new)
        delta.add("messages", 1)
        delta.add("segments", int(new.get("segments") or 0))
        _add_cost(delta, new.get("cost"), 1)
        delta.add(status_counter(new["status"]), 1)

    def _modified(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if old.get("status") == new.get("status"):
            return
        delta = self._usage(new)
        delta.add(status_counter(old["status"]), -1)
        delta.add(status_counter(new["status"]), 1)
        if never_reached_carrier(new) and not never_reached_carrier(old):
            self._refund(new, delta)

    def _refund(self, new: dict[str, Any], delta: UsageDelta) -> None:
        delta.add("segments", -int(new.get("segments") or 0))
        _add_cost(delta, new.get("cost"), -1)
        charge = new.get("charge")
        if charge not in (ChargeSource.QUOTA.value, ChargeSource.WALLET.value):
            return
        refund = self.refunds.setdefault(
            (str(new["workspace_id"]), mode_of(bool(new.get("test")))), Refund()
        )
        if charge == ChargeSource.QUOTA.value:
            period = period_of_iso(new["created_at"])
            refund.segments_by_period[period] += charged_segments(_whole(new.get("segments")))
            return
        cost = new.get("cost")
        if isinstance(cost, dict) and cost.get("amount") is not None:
            refund.amount += Decimal(str(cost["amount"]))
            refund.currency = str(cost["currency"])


def _whole(value: Any) -> int | None:
    return int(value) if value is not None else None
