"""What optional features add to a plain message, and what the status callbacks' front costs:
the arithmetic over bench.feature_costs' and bench.aws_calls' results. Pure: no AWS, no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from bench.pricing import CostLine, PhaseUsage, Prices, cost_lines, total

PLAIN, TEMPLATED, WEBHOOK, REPLY, FORWARDED, FAILOVER = (
    "plain",
    "template",
    "webhook",
    "reply",
    "reply_forwarded",
    "failover",
)
VARIANTS = (PLAIN, TEMPLATED, WEBHOOK, REPLY, FORWARDED, FAILOVER)

# feature -> (variant, the variant it is compared with, what one unit of it is)
FEATURES: dict[str, tuple[str, str, str]] = {
    "template": (TEMPLATED, PLAIN, "templated message"),
    "caller_webhook_event": (WEBHOOK, PLAIN, "webhook event delivered"),
    "inbound_reply": (REPLY, PLAIN, "reply received"),
    "reply_forwarding_webhook": (FORWARDED, REPLY, "reply forwarded by webhook"),
    "failover_attempt": (FAILOVER, PLAIN, "message that failed over"),
}


# -- the arithmetic (pure) -----------------------------------------------------------------------


def added_lines(
    variant: Sequence[PhaseUsage],
    baseline: Sequence[PhaseUsage],
    prices: Prices,
    per: float = 1.0,
) -> list[CostLine]:
    """What `variant` uses beyond `baseline`, by cost line, divided by `per` (the feature's units
    in one variant life, e.g. its webhook events)."""
    return [
        CostLine(
            a.item if a.quantity else b.item,
            (a.quantity - b.quantity) / per,
            a.unit,
            (a.usd_per_million_messages - b.usd_per_million_messages) / per,
        )
        for a, b in zip(cost_lines(variant, prices), cost_lines(baseline, prices), strict=True)
    ]


def added_calls(
    variant: Sequence[PhaseUsage], baseline: Sequence[PhaseUsage], per: float = 1.0
) -> dict[str, float]:
    """Calls by service.operation in `variant` beyond `baseline` (negative: fewer), per unit."""
    mine: Counter[str] = Counter()
    theirs: Counter[str] = Counter()
    for usage in variant:
        mine.update(usage.calls)
    for usage in baseline:
        theirs.update(usage.calls)
    names = sorted(set(mine) | set(theirs))
    return {n: (mine[n] - theirs[n]) / per for n in names if mine[n] != theirs[n]}


def feature_figures(result: Mapping[str, Any], prices: Prices) -> dict[str, dict[str, Any]]:
    """Each feature's addition: calls, WRU, RRU, cost lines and total per million of its unit."""
    lives = {
        name: [PhaseUsage.from_dict(p) for p in phases]
        for name, phases in result["variants"].items()
    }
    figures = {}
    for feature, (variant, baseline, unit) in FEATURES.items():
        if variant not in lives or baseline not in lives:
            continue
        per = float(result.get("webhook_events_per_message") or 1) if variant == WEBHOOK else 1.0
        lines = added_lines(lives[variant], lives[baseline], prices, per)
        by_item = {line.item.split(" (")[0]: line for line in lines}
        figures[feature] = {
            "unit": unit,
            "calls": added_calls(lives[variant], lives[baseline], per),
            "write_units": by_item["DynamoDB writes"].quantity,
            "read_units": by_item["DynamoDB reads"].quantity,
            "lines": lines,
            "total": total(lines),
        }
    return figures


def callback_front(
    steady: Sequence[PhaseUsage], prices: Prices, reserved_concurrency: int | None = None
) -> dict[str, Any]:
    """The status callbacks of one message (the steady state's `callback <status>` phases)
    through the HTTP API, against the same invocations through a Lambda function URL (no
    request charge: the invocation and its duration only, which both fronts pay)."""
    callbacks = [p for p in steady if p.phase.startswith(CALLBACK_PHASE_PREFIX)]
    through_api = cost_lines(callbacks, prices)
    through_url = cost_lines([PhaseUsage(**{**asdict(p), "api_request": False}) for p in callbacks],
                             prices)  # fmt: skip
    api_total, url_total = total(through_api), total(through_url)
    return {
        "callbacks_per_message": len(callbacks),
        "http_api": {"lines": through_api, "total": api_total},
        "function_url": {"lines": through_url, "total": url_total},
        "saving_per_million_messages": api_total - url_total,
        "reserved_concurrency": reserved_concurrency,
    }


FEATURE_LABELS = {
    "template": "Template (send by template id and variables)",
    "caller_webhook_event": "Customer webhook, per event delivered",
    "inbound_reply": "Inbound reply (stored, linked to its message)",
    "reply_forwarding_webhook": "Reply forwarding by webhook, per reply",
    "failover_attempt": "Failover attempt (first provider refuses, second takes it)",
}
CALLBACK_PHASE_PREFIX = "callback "
