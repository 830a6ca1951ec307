"""Which provider a message tries first: the use case's order, except that a provider cooling
down after recent failures goes last (when every one is cooling, the order stays as it is)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sms_gateway.domain.provider_choices import ProviderChoice


def route(choices: Sequence[ProviderChoice], cooling: Collection[str]) -> list[ProviderChoice]:
    healthy = [choice for choice in choices if choice.name not in cooling]
    return healthy + [choice for choice in choices if choice.name in cooling]


def window_start(moment: datetime, window_seconds: int) -> int:
    """The epoch second the failure-counting window of `moment` starts at."""
    epoch = int(moment.timestamp())
    return epoch - epoch % window_seconds


def cooling_until(moment: datetime, cooldown_seconds: int) -> datetime:
    return moment + timedelta(seconds=cooldown_seconds)
