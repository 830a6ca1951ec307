"""The AWS cost model: list prices, DynamoDB capacity units from item sizes, and the cost of a
million messages from the AWS usage of one message's life. Pure arithmetic, no AWS."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Prices:
    """On-demand list prices (USD). The defaults are us-east-1's published prices as the author
    knows them; they could not be re-checked online when written (no network access)."""

    region: str = "us-east-1"
    as_of: str = "2026-11"
    source: str = (
        "published AWS list prices for us-east-1 as known to the author, not re-checked online "
        "(no network access when written); free tiers and volume discounts ignored"
    )
    lambda_requests_per_million: float = 0.20
    lambda_arm64_per_gb_second: float = 0.0000133334
    lambda_x86_64_per_gb_second: float = 0.0000166667
    http_api_requests_per_million: float = 1.00  # first 300 million requests a month
    # On-demand throughput, after the 50 % price cut of November 2024.
    dynamodb_write_units_per_million: float = 0.625
    dynamodb_read_units_per_million: float = 0.125
    sqs_requests_per_million: float = 0.40  # standard queue, per 64 KB chunk
    secrets_manager_per_10k_calls: float = 0.05
    # EventBridge Pipes bills the events its filter lets through (per 64 KB chunk); its polling
    # of a DynamoDB stream is a fixed cost per shard, not per message.
    pipes_requests_per_million: float = 0.40

    def lambda_per_gb_second(self, architecture: str) -> float:
        if architecture == "arm64":
            return self.lambda_arm64_per_gb_second
        return self.lambda_x86_64_per_gb_second

    def rows(self) -> list[tuple[str, str]]:
        """(item, price) for the report."""
        return [
            ("Lambda requests", f"${self.lambda_requests_per_million:.2f} per million"),
            ("Lambda duration, arm64", f"${self.lambda_arm64_per_gb_second:.10f} per GB-second"),
            ("Lambda duration, x86_64", f"${self.lambda_x86_64_per_gb_second:.10f} per GB-second"),
            ("API Gateway HTTP API", f"${self.http_api_requests_per_million:.2f} per million"),
            (
                "DynamoDB on-demand writes",
                f"${self.dynamodb_write_units_per_million:.3f} per million write request units",
            ),
            (
                "DynamoDB on-demand reads",
                f"${self.dynamodb_read_units_per_million:.3f} per million read request units",
            ),
            ("SQS standard", f"${self.sqs_requests_per_million:.2f} per million requests"),
            ("Secrets Manager API", f"${self.secrets_manager_per_10k_calls:.2f} per 10,000 calls"),
            (
                "EventBridge Pipes",
                f"${self.pipes_requests_per_million:.2f} per million events after filtering",
            ),
        ]


# -- DynamoDB item sizes and capacity units ------------------------------------------------------


def _number_size(text: str) -> int:
    """About one byte per two significant digits, plus one (DynamoDB's documented rule)."""
    digits = text.lstrip("+-").lower().split("e")[0].replace(".", "").strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def attribute_value_size(value: Mapping[str, Any]) -> int:
    """Size of one AttributeValue ({"S": ...}, {"M": {...}}, ...) as DynamoDB bills it."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        return _number_size(str(data))
    if kind == "B":
        return len(data) if isinstance(data, bytes | bytearray) else len(str(data))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode()) for s in data)
    if kind == "NS":
        return sum(_number_size(str(n)) for n in data)
    if kind == "BS":
        return sum(len(b) for b in data)
    if kind == "L":
        return 3 + sum(attribute_value_size(v) + 1 for v in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_value_size(v) + 1 for k, v in data.items())
    raise ValueError(f"unknown attribute value type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes of an item in DynamoDB's wire format: attribute names plus values."""
    return sum(len(name.encode()) + attribute_value_size(value) for name, value in item.items())


def write_units(size_bytes: int) -> int:
    """Write request units of one standard write: one per KB, rounded up, at least one."""
    return max(1, math.ceil(size_bytes / 1024))


def read_units(size_bytes: int, *, consistent: bool) -> float:
    """Read request units of one read: one per 4 KB (half when eventually consistent)."""
    units = max(1, math.ceil(size_bytes / 4096))
    return float(units) if consistent else units / 2


# -- usage of one message's life and its cost ----------------------------------------------------


@dataclass
class PhaseUsage:
    """What one step of a message's life used: one Lambda invocation (or none, for work done by
    AWS itself such as the SQS event source mapping) and the AWS requests it made."""

    phase: str
    function: str | None = None
    duration_ms: float = 0.0
    memory_mb: int = 128  # Lambda's default, as template.yaml's are read by bench.common
    architecture: str = "x86_64"
    api_request: bool = False
    dynamodb_write_units: float = 0.0
    dynamodb_read_units: float = 0.0
    sqs_requests: int = 0
    secrets_manager_calls: int = 0
    pipe_events: int = 0
    calls: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PhaseUsage:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class CostLine:
    item: str
    quantity: float  # per message
    unit: str
    usd_per_million_messages: float


def lambda_billed_gb_seconds(duration_ms: float, memory_mb: int) -> float:
    """Lambda bills duration rounded up to the millisecond, times the configured memory."""
    return math.ceil(duration_ms) / 1000.0 * memory_mb / 1024.0


def cost_lines(
    phases: Sequence[PhaseUsage],
    prices: Prices,
    weights: Mapping[str, float] | None = None,
    invocation_weights: Mapping[str, float] | None = None,
) -> list[CostLine]:
    """Cost per million messages by service. `weights` scales everything a phase uses (0 for an
    authorizer whose answer is cached); `invocation_weights` scales only its Lambda requests (0.1
    for a handoff that runs once per batch of ten, each message still taking its own time and
    calls). A phase not named counts once per message."""

    def weight(phase: PhaseUsage) -> float:
        return (weights or {}).get(phase.phase, 1.0)

    def invocation_weight(phase: PhaseUsage) -> float:
        return weight(phase) * (invocation_weights or {}).get(phase.phase, 1.0)

    invocations = sum(invocation_weight(p) for p in phases if p.function)
    functions = [p for p in phases if p.function]
    gb_seconds = sum(
        weight(p) * lambda_billed_gb_seconds(p.duration_ms, p.memory_mb) for p in functions
    )
    duration_usd = sum(
        weight(p)
        * lambda_billed_gb_seconds(p.duration_ms, p.memory_mb)
        * prices.lambda_per_gb_second(p.architecture)
        for p in functions
    )
    shapes = sorted({f"{p.memory_mb} MB, {p.architecture}" for p in functions})
    api_requests = sum(weight(p) for p in phases if p.api_request)
    wru = sum(weight(p) * p.dynamodb_write_units for p in phases)
    rru = sum(weight(p) * p.dynamodb_read_units for p in phases)
    sqs = sum(weight(p) * p.sqs_requests for p in phases)
    secrets = sum(weight(p) * p.secrets_manager_calls for p in phases)
    pipe_events = sum(weight(p) * p.pipe_events for p in phases)
    million = 1_000_000
    return [
        CostLine(
            "Lambda requests",
            invocations,
            "invocations",
            invocations * prices.lambda_requests_per_million,
        ),
        CostLine(
            f"Lambda duration ({'; '.join(shapes)})",
            gb_seconds,
            "GB-seconds",
            duration_usd * million,
        ),
        CostLine(
            "API Gateway HTTP API",
            api_requests,
            "requests",
            api_requests * prices.http_api_requests_per_million,
        ),
        CostLine(
            "DynamoDB writes",
            wru,
            "write request units",
            wru * prices.dynamodb_write_units_per_million,
        ),
        CostLine(
            "DynamoDB reads",
            rru,
            "read request units",
            rru * prices.dynamodb_read_units_per_million,
        ),
        CostLine("SQS", sqs, "requests", sqs * prices.sqs_requests_per_million),
        CostLine(
            "Secrets Manager",
            secrets,
            "API calls",
            secrets * million / 10_000 * prices.secrets_manager_per_10k_calls,
        ),
        CostLine(
            "EventBridge Pipes",
            pipe_events,
            "events",
            pipe_events * prices.pipes_requests_per_million,
        ),
    ]


def total(lines: Sequence[CostLine]) -> float:
    return sum(line.usd_per_million_messages for line in lines)
