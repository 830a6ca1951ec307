"""Providers' recent health, shared by every handoff instance (ProviderHealthTable).

Each time a provider is unavailable (no connection, 503, no answer) its counter of the current
window goes up by one (one item per provider and window, with the last failure's time, expiring
after a day); the
failure that reaches the threshold, and each one after it in that window, puts the provider in a
cool-down: its state item's `cooling_until`. New messages try a cooling provider last until then;
it comes back by itself (or at once, with `sms-gateway-admin providers reset`).

A refusal (an account, route or recipient error) or a 429 is not counted: it says something of
one use case's account or one message (a 429 is one account's rate), not of the provider, and
must not move everyone's traffic.

The handoff reads the state items once per CACHE_SECONDS per instance (one BatchGetItem), not
once per message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sms_gateway.config import get_settings
from sms_gateway.domain.clock import iso
from sms_gateway.domain.provider_choices import ProviderName
from sms_gateway.domain.provider_routing import cooling_until, window_start
from sms_gateway.store import aws_clients
from sms_gateway.store.dynamo import from_item

CACHE_SECONDS = 5.0
# A window's counter outlives its window by this much (TTL), so `providers status` can show it.
WINDOW_KEPT_SECONDS = 86_400

_cache: tuple[float, dict[str, str]] | None = None


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    provider: str
    failures_in_window: int
    window_started: str
    cooling_until: str | None
    # The last failure counted in the current window.
    last_failure_at: str | None

    def cooling_at(self, moment: datetime) -> bool:
        return self.cooling_until is not None and self.cooling_until > iso(moment)


def _state_key(provider: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"state#{provider}"}}


def _window_key(provider: str, start: int) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"window#{provider}#{start}"}}


def record_failure(provider: str, moment: datetime) -> bool:
    """Count one failure of `provider`; True when it (re)starts the provider's cool-down. One
    write, and a second only for the failure that reaches the threshold or passes it."""
    settings = get_settings()
    start = window_start(moment, settings.provider_failure_window_seconds)
    table = settings.provider_health_table
    response = aws_clients.dynamodb().update_item(
        TableName=table,
        Key=_window_key(provider, start),
        UpdateExpression="ADD failures :one SET expiration = :expiration, last_failure_at = :at",
        ExpressionAttributeValues={
            ":one": {"N": "1"},
            ":expiration": {
                "N": str(start + settings.provider_failure_window_seconds + WINDOW_KEPT_SECONDS)
            },
            ":at": {"S": iso(moment)},
        },
        ReturnValues="UPDATED_NEW",
    )
    if int(response["Attributes"]["failures"]["N"]) < settings.provider_failure_threshold:
        return False
    until = cooling_until(moment, settings.provider_cooldown_seconds)
    aws_clients.dynamodb().update_item(
        TableName=table,
        Key=_state_key(provider),
        UpdateExpression="SET cooling_until = :until",
        ExpressionAttributeValues={":until": {"S": iso(until)}},
    )
    forget()
    return True


def cooling(moment: datetime) -> frozenset[str]:
    """The providers cooling down at `moment`, read at most once per CACHE_SECONDS."""
    global _cache
    now = time.monotonic()
    if _cache is None or now - _cache[0] >= CACHE_SECONDS:
        _cache = (now, _read_cooling_until())
    at = iso(moment)
    return frozenset(name for name, until in _cache[1].items() if until > at)


def _read_cooling_until() -> dict[str, str]:
    table = get_settings().provider_health_table
    response = aws_clients.dynamodb().batch_get_item(
        RequestItems={
            table: {
                "Keys": [_state_key(name.value) for name in ProviderName],
                "ProjectionExpression": "pk, cooling_until",
            }
        }
    )
    out: dict[str, str] = {}
    for raw in response.get("Responses", {}).get(table, []):
        item = from_item(raw)
        if "cooling_until" in item:
            out[str(item["pk"]).removeprefix("state#")] = str(item["cooling_until"])
    return out


def status(moment: datetime) -> list[ProviderHealth]:
    """Every provider's state now (the admin CLI's `providers status`), in one read."""
    settings = get_settings()
    table = settings.provider_health_table
    start = window_start(moment, settings.provider_failure_window_seconds)
    keys = [
        key
        for name in ProviderName
        for key in (_state_key(name.value), _window_key(name.value, start))
    ]
    response = aws_clients.dynamodb().batch_get_item(
        RequestItems={table: {"Keys": keys, "ConsistentRead": True}}
    )
    items = {
        str(item["pk"]): item
        for item in map(from_item, response.get("Responses", {}).get(table, []))
    }
    out = []
    for name in ProviderName:
        state = items.get(_state_key(name.value)["pk"]["S"], {})
        window = items.get(_window_key(name.value, start)["pk"]["S"], {})
        out.append(
            ProviderHealth(
                provider=name.value,
                failures_in_window=int(window.get("failures", 0)),
                window_started=iso(datetime.fromtimestamp(start, moment.tzinfo)),
                cooling_until=state.get("cooling_until"),
                last_failure_at=window.get("last_failure_at"),
            )
        )
    return out


def reset(provider: str, moment: datetime) -> None:
    """End a provider's cool-down now and forget its current window's failures."""
    settings = get_settings()
    client = aws_clients.dynamodb()
    client.update_item(
        TableName=settings.provider_health_table,
        Key=_state_key(provider),
        UpdateExpression="REMOVE cooling_until",
    )
    client.delete_item(
        TableName=settings.provider_health_table,
        Key=_window_key(provider, window_start(moment, settings.provider_failure_window_seconds)),
    )
    forget()


def forget() -> None:
    """Drop this instance's cached state (it just changed it, or a new sandbox starts)."""
    global _cache
    _cache = None
