"""Renders BENCHMARKS.md from the sections' results. Pure: no clock, no I/O."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.feature_model import (
    CALLBACK_PHASE_PREFIX,
    FEATURE_LABELS,
    callback_front,
    feature_figures,
)
from bench.pricing import CostLine, PhaseUsage, Prices, cost_lines, total

FLOOR = "floor"
ESM_PHASE = "sqs event source mapping"
PIPE_PHASE = "handoff pipe"
USAGE_PHASE = "usage"
USAGE_ESM_PHASE = "usage event source mapping"
SEND_PHASE = "send"
# Who does a step that is not one of our functions.
AWS_RUN_PHASES = {
    ESM_PHASE: "(Lambda's SQS poller)",
    PIPE_PHASE: "(EventBridge Pipes)",
    USAGE_ESM_PHASE: "(Lambda's DynamoDB stream poller)",
}


# -- formatting ----------------------------------------------------------------------------------


def ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 10_000:
        return f"{value / 1000:,.1f} s"
    return f"{value:,.2f} ms" if abs(value) < 10 else f"{value:,.0f} ms"


def times(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def signed_ms(value: float) -> str:
    return ("+" if value >= 0 else "-") + ms(abs(value))


def mb(kilobytes: float) -> str:
    return f"{kilobytes / 1024:,.1f} MB"


def usd(value: float) -> str:
    if value == 0:
        return "$0"
    return f"${value:,.4f}" if value < 0.01 else f"${value:,.2f}"


def count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def quantity(value: float) -> str:
    """Per-message quantities: whole numbers as such, fractions to four significant digits."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "l") -> str:
    """A Markdown table; `align` has an l or r per column, the columns past it are right-aligned
    (figures)."""
    marks = ["---" if align[i : i + 1] in ("l",) else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


# -- derived figures -----------------------------------------------------------------------------


def cold_start_rows(cold: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each function next to the floor measured in the same run: ratio and extra milliseconds,
    of the import alone and of the import plus the first request (NaN where a result predates
    the first request's measurement), and of the instructions executed when counted."""
    variants = cold["variants"]
    floor = variants[FLOOR]
    nan = math.nan
    rows = []
    for name, v in sorted(variants.items(), key=lambda kv: (kv[0] != FLOOR, kv[0])):
        total = float(v.get("median_total_ms", nan))
        floor_total = float(floor.get("median_total_ms", nan))
        instructions = v.get("instructions") or {}
        floor_instructions = floor.get("instructions") or {}
        rows.append(
            {
                "name": name,
                "median_ms": v["median_ms"],
                "ratio": v["median_ms"] / floor["median_ms"],
                "extra_ms": v["median_ms"] - floor["median_ms"],
                "first_request_ms": float(v.get("median_first_request_ms", nan)),
                "total_ms": total,
                "total_ratio": total / floor_total,
                "total_extra_ms": total - floor_total,
                "min_total_ms": float(v.get("min_total_ms", nan)),
                "max_total_ms": float(v.get("max_total_ms", nan)),
                "status": v.get("first_request_status"),
                "calls": v.get("first_request_calls") or {},
                "rss_kb": v["median_maxrss_kb"],
                "extra_rss_kb": v["median_maxrss_kb"] - floor["median_maxrss_kb"],
                "min_ms": v["min_ms"],
                "max_ms": v["max_ms"],
                "process_ms": v["median_process_wall_ms"],
                "instructions": instructions.get("import", nan),
                "instructions_ratio": instructions.get("import", nan)
                / floor_instructions.get("import", nan),
                "total_instructions": instructions.get("import_and_first_request", nan),
                "total_instructions_ratio": instructions.get("import_and_first_request", nan)
                / floor_instructions.get("import_and_first_request", nan),
                "import_time": v.get("import_time"),
            }
        )
    return rows


def phases(aws: Mapping[str, Any], key: str = "steady_state") -> list[PhaseUsage]:
    return [PhaseUsage.from_dict(p) for p in aws[key]]


def busy_weights(aws: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """A busy key: the HTTP API caches the authorizer's answer (ReauthorizeEvery), and the event
    source mapping hands full batches to the handoff (one receive, one delete, one invocation
    per batch). Returns (phase weights, invocation-only weights)."""
    batch = float(aws.get("handoff_batch_size") or 10)
    weights = {"authorizer": 0.0, ESM_PHASE: 1 / batch}
    if "usage_batch_size" in aws:
        # A full batch of the stream carries several messages' records: its invocation and its
        # one transaction (a marker and one counter item for one busy workspace) are shared.
        share = min(1.0, aws["usage_records_per_message"] / aws["usage_batch_size"])
        weights.update({USAGE_PHASE: share, USAGE_ESM_PHASE: share})
    return weights, {"handoff": 1 / batch}


def cost_model(aws: Mapping[str, Any], prices: Prices) -> dict[str, Any]:
    usage = phases(aws)
    measured = cost_lines(usage, prices)
    weights, invocation_weights = busy_weights(aws)
    busy = cost_lines(usage, prices, weights, invocation_weights)
    return {"lines": measured, "total": total(measured), "busy_total": total(busy)}


def write_units_of(
    usages: Sequence[PhaseUsage], weights: Mapping[str, float] | None = None
) -> float:
    """DynamoDB write units over one message's life (each step weighted, as in the cost model:
    a busy key's usage batch shared by the messages in it)."""
    return sum((weights or {}).get(u.phase, 1.0) * u.dynamodb_write_units for u in usages)


def busy_calls(aws: Mapping[str, Any]) -> float:
    """AWS calls per message for a busy key, weighted as the busy cost model is: no authorizer
    call (its answer cached), the SQS poller's receive and delete shared by a batch, the usage
    stream's read and transaction shared by the messages in one batch."""
    weights, _ = busy_weights(aws)
    return sum(weights.get(u.phase, 1.0) * sum(u.calls.values()) for u in phases(aws))


def calls_by_operation(usages: Sequence[PhaseUsage]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for usage in usages:
        totals.update(usage.calls)
    return totals


# -- sections ------------------------------------------------------------------------------------


def _header(results: Mapping[str, Any]) -> str:
    machine = results["machine"]
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench.run`); do not edit by hand. Every figure is "
        "read from the run that wrote this file, and a rerun changes them only by noise.",
        "",
        table(
            ["", ""],
            [
                ["Date", results["date"]],
                ["Machine", machine["platform"]],
                ["CPU", f"{machine['cpu_count']} x {machine['cpu_model']}"],
                ["Memory", machine["memory"]],
                ["Python", machine["python"]],
                ["Packages", packages],
                ["Code", machine["commit"]],
                ["`make bench` took", duration(results["total_seconds"])],
            ],
            align="ll",
        ),
    ]
    return "\n".join(lines)


def _summary(results: Mapping[str, Any], prices: Prices) -> str:
    cold = [r for r in cold_start_rows(results["cold_start"]) if r["name"] != FLOOR]
    slowest = max(cold, key=lambda r: r["median_ms"])
    slowest_total = max(cold, key=lambda r: r["total_ms"] if not math.isnan(r["total_ms"]) else 0)
    warm = results["warm_cost"]
    aws = results["aws_calls"]
    steady = calls_by_operation(phases(aws))
    model = cost_model(aws, prices)
    e2e = results["end_to_end"]
    rows = [
        [
            "Cold start, slowest function (import and set-up)",
            f"{slowest['name']}: {ms(slowest['median_ms'])}, {times(slowest['ratio'])} the "
            f"floor ({signed_ms(slowest['extra_ms'])})"
            + (
                ""
                if math.isnan(slowest_total["total_ms"])
                else f"; import and first request: {slowest_total['name']}: "
                f"{ms(slowest_total['total_ms'])}, {times(slowest_total['total_ratio'])} the "
                f"floor's ({signed_ms(slowest_total['total_extra_ms'])})"
            ),
        ],
        [
            "Warm CPU per send request",
            f"{ms(warm['send']['handler_cpu_ms'])}, {times(_ratio(warm['send']))} the bare AWS "
            "calls",
        ],
        [
            "Warm CPU per status callback",
            f"{ms(warm['status_callback']['handler_cpu_ms'])}, "
            f"{times(_ratio(warm['status_callback']))} the bare AWS calls",
        ],
        [
            "AWS calls per message, steady state",
            f"{sum(steady.values())} ({_by_service(steady)}); "
            f"{count(busy_calls(aws))} for a busy key",
        ],
        [
            "DynamoDB write units per message",
            f"{count(write_units_of(phases(aws)))} for a plain live message"
            + (
                f"; {count(write_units_of(phases(aws, 'with_limits')))} with limits configured"
                if "with_limits" in aws
                else ""
            )
            + f"; {count(write_units_of(phases(aws), weights=busy_weights(aws)[0]))} for a "
            "busy key",
        ],
        [
            "Modeled AWS cost per million messages",
            f"{usd(model['total'])} as measured; {usd(model['busy_total'])} for a busy key "
            f"({prices.region}, list prices as of {prices.as_of})",
        ],
        *([_limits_summary(aws, prices)] if "with_limits" in aws else []),
        [
            f"End to end, {e2e['messages']:,} messages on the local stack",
            f"{e2e['messages_per_second']:.1f} messages/s; lost {e2e['lost']}, "
            f"duplicated {e2e['duplicated']}"
            + (
                f"; {times(atomicity_cost(e2e, results['end_to_end_unserialized']))} the "
                "throughput of a local DynamoDB that is not atomic per item"
                if "end_to_end_unserialized" in results
                else ""
            ),
        ],
    ]
    return "## Summary\n\n" + table(["Figure", "Value"], rows, align="ll")


def _limits_summary(aws: Mapping[str, Any], prices: Prices) -> list[str]:
    figures = limits_cost(aws, prices)
    added_wru = figures["limited"].dynamodb_write_units - figures["plain"].dynamodb_write_units
    return [
        "Limits (send rate, quota, wallet) add to a message",
        f"{count(added_wru)} DynamoDB WRU, {usd(figures['added_total'])} per million messages",
    ]


def _ratio(kind: Mapping[str, Any]) -> float:
    return float(kind["handler_cpu_ms"]) / float(kind["bare_aws_cpu_ms"])


def _by_service(calls: Mapping[str, int]) -> str:
    services: Counter[str] = Counter()
    for name, n in calls.items():
        services[name.split(".")[0]] += n
    return ", ".join(f"{service} {n}" for service, n in sorted(services.items()))


def _cold_start(cold: Mapping[str, Any]) -> str:
    rows = []
    first_rows = []
    item_rows = []
    for r in cold_start_rows(cold):
        label = (
            "floor: `import boto3; boto3.client('dynamodb')`" if r["name"] == FLOOR else r["name"]
        )
        is_floor = r["name"] == FLOOR
        rows.append(
            [
                label,
                ms(r["median_ms"]),
                "1.00x" if is_floor else times(r["ratio"]),
                "" if is_floor else signed_ms(r["extra_ms"]),
                mb(r["rss_kb"]),
                ""
                if is_floor
                else ("+" if r["extra_rss_kb"] >= 0 else "-") + mb(abs(r["extra_rss_kb"])),
                f"{r['min_ms']:,.0f}-{r['max_ms']:,.0f}",
                ms(r["process_ms"]),
            ]
        )
        first_label = "floor: the same, then one `GetItem`" if is_floor else r["name"]
        first_rows.append(
            [
                first_label,
                ms(r["first_request_ms"]),
                ms(r["total_ms"]),
                "1.00x" if is_floor else times(r["total_ratio"]),
                "" if is_floor else signed_ms(r["total_extra_ms"]),
                f"{r['min_total_ms']:,.0f}-{r['max_total_ms']:,.0f}",
                "" if is_floor else str(r["status"]),
                ", ".join(f"`{op}` x {n}" for op, n in sorted(r["calls"].items())),
            ]
        )
        if r["import_time"]:
            item_rows.append(
                [
                    r["name"],
                    ", ".join(f"{m} {t:,.1f}" for m, t in r["import_time"]["modules"]),
                    ", ".join(f"{p} {t:,.0f}" for p, t in r["import_time"]["packages"]),
                ]
            )
    skipped = cold.get("skipped") or []
    note = (
        f"\n\nNot measured (their code is not in this checkout): {', '.join(skipped)}."
        if skipped
        else ""
    )
    first_request = (
        ""
        if math.isnan(cold_start_rows(cold)[0]["total_ms"])
        else "\n\n### Import and first request\n\n"
        "What a caller of a cold function waits for. In the same processes as above, right after "
        "the import, the handler is invoked once with its function's event (events/<function>.json "
        "with the bench store's ids; the send and the status callback as bench.warm_cost builds "
        "them) and a Lambda context; every AWS call is answered in-process by bench/fake_aws.py's "
        "`before-send` hook from a store filled beforehand (the demo workspace, one sent "
        "message), so botocore validates, serialises, signs and parses as in Lambda and only the "
        "network is skipped. The floor's first request is one `GetItem` of an item in that store "
        "with its client. Installing the hook is not timed. Our functions create their AWS "
        "clients in their first request: the floor's client creation is in its import.\n\n"
        + table(
            [
                "Variant",
                "First request (median)",
                "Import and first request (median)",
                "vs floor",
                "Extra",
                "Range, ms",
                "Answer",
                "AWS calls",
            ],
            first_rows,
        )
    )
    instruction_rows = [
        [
            r["name"],
            f"{r['instructions'] / 1e6:,.0f} M",
            "1.00x" if r["name"] == FLOOR else times(r["instructions_ratio"]),
            f"{r['total_instructions'] / 1e6:,.0f} M",
            "1.00x" if r["name"] == FLOOR else times(r["total_instructions_ratio"]),
        ]
        for r in cold_start_rows(cold)
        if not math.isnan(r["instructions"])
    ]
    instructions = (
        "\n\n### Instructions executed\n\n"
        "The same code once more per variant under valgrind (`--tool=cachegrind`): instructions "
        "executed, less those of a process that only starts the interpreter (and, for the "
        "import and first request, less the benchmark's harness, counted once on the floor). "
        "Unlike times, they do not move with the machine's load; they do not see what waits "
        "on memory.\n\n"
        + table(
            ["Variant", "Import", "vs floor", "Import and first request", "vs floor"],
            instruction_rows,
        )
        if instruction_rows
        else ""
    )
    items = (
        "\n\n### Heaviest imports\n\n"
        "One `python -X importtime` run of each variant's import (self times in ms, their own "
        "imports excluded, inflated by the measurement itself): the five modules and the five "
        "top-level packages that took longest.\n\n"
        + table(["Variant", "Modules (ms)", "Packages (ms)"], item_rows)
        if item_rows
        else ""
    )
    return (
        "## Cold start\n\n"
        f"Each function's handler module imported in a fresh process (`python -c`, the way "
        f"Lambda's runtime loads `app.lambda_handler`: `importlib.util.spec_from_file_location`, "
        f"then the module's top-level set-up runs), with the environment template.yaml gives it "
        f"(resource names faked, AWS answered in-process, see below: nothing reaches a network). "
        f"The time is "
        f"`time.perf_counter()` around the import, inside the process; peak memory is the "
        f"process's high-water mark (VmHWM) after the import, interpreter included. The floor "
        f"is a fresh "
        f"process that imports boto3 and creates a DynamoDB client, measured in the same run. "
        f"Median of "
        f"{cold['runs_per_variant']} runs per variant, every variant interleaved in a seeded "
        f"random order per round, after one discarded run each (bytecode compiled, page cache "
        f"warm, as in a reused Lambda sandbox image). Our functions create their AWS clients on "
        f"first use, so the floor includes a client creation that the functions defer to their "
        f"first request. *Whole process* is the wall time of the process, interpreter start-up "
        f"and first request included, seen from outside.\n\n"
        + table(
            [
                "Variant",
                "Import and set-up (median)",
                "vs floor",
                "Extra",
                "Peak memory",
                "Extra memory",
                "Range, ms",
                "Whole process",
            ],
            rows,
        )
        + note
        + first_request
        + instructions
        + items
    )


def _warm_cost(warm: Mapping[str, Any]) -> str:
    rows = []
    for kind, label in (("send", "POST /v1/sms/"), ("status_callback", "status callback")):
        w = warm[kind]
        calls = sorted({op for group in w["aws_calls_per_request"] for op in group})
        rows.append(
            [
                f"{w['function']} ({label})",
                ms(w["handler_cpu_ms"]),
                ms(w["bare_aws_cpu_ms"]),
                times(_ratio(w)),
                ms(w["handler_cpu_ms"] - w["bare_aws_cpu_ms"]),
                ", ".join(f"`{c}`" for c in calls),
            ]
        )
    return (
        "## Warm cost of our code\n\n"
        "CPU time (`time.process_time`) per request of a warm handler, in-process, with every "
        "AWS call answered in-process by a botocore `before-send` hook that returns canned HTTP "
        "answers from a small in-memory store (bench/fake_aws.py): botocore still validates, "
        "serialises, signs and parses, only the network is skipped. The *bare AWS calls* replay, "
        "on the same clients and against the same answers, the exact parameters the handler "
        "passed in one warm request (recorded with a `before-parameter-build` hook). Send "
        "requests carry an HTTP API v2 event with the authorizer's context; status callbacks "
        "are signed like Twilio's and cycle through queued, sent and delivered. The use-case and "
        f"secret caches are warm, as in a busy container. Median of {warm['rounds']} rounds of "
        f"{warm['requests_per_round']:,} requests each. *Our code* is the difference: Powertools' "
        "resolver and logging, validation, the domain rules and the item mapping.\n\n"
        + table(
            [
                "Handler",
                "CPU per request",
                "Bare AWS calls",
                "Ratio",
                "Our code",
                "AWS calls per request",
            ],
            rows,
            align="lrrrrl",
        )
    )


def _aws_calls(aws: Mapping[str, Any], prices: Prices) -> str:
    first = phases(aws, "first_message")
    steady = phases(aws)
    first_calls, steady_calls = calls_by_operation(first), calls_by_operation(steady)
    operations = sorted(set(first_calls) | set(steady_calls))
    call_rows = [[op, count(first_calls[op]), count(steady_calls[op])] for op in operations]
    call_rows.append(
        [
            "**total**",
            f"**{sum(first_calls.values())}**",
            f"**{sum(steady_calls.values())}**",
        ]
    )
    phase_rows = [
        [
            p.phase,
            p.function or AWS_RUN_PHASES.get(p.phase, "(run by AWS)"),
            ", ".join(f"{op} x {n}" for op, n in sorted(p.calls.items())) or "-",
            count(p.dynamodb_write_units),
            count(p.dynamodb_read_units),
            ms(p.duration_ms) if p.function else "-",
        ]
        for p in steady
    ]
    model = cost_model(aws, prices)
    size = int(aws["final_message_item_bytes"])
    headroom = math.ceil((size + 1) / 1024) * 1024 - size
    cost_rows = [
        [
            line.item,
            f"{quantity(line.quantity)} {line.unit}",
            usd(line.usd_per_million_messages),
        ]
        for line in model["lines"]
    ]
    cost_rows.append(["**total**", "", f"**{usd(model['total'])}**"])
    batch = aws.get("handoff_batch_size") or 10
    stable = (
        ""
        if aws.get("steady_counts_identical", True)
        else " (the counts differed between those messages: the first one's are shown)"
    )
    return (
        "## AWS calls per message\n\n"
        "One message's whole life, step by step, each function invoked with the event AWS would "
        "give it, against moto in server mode holding template.yaml's resources and the Twilio "
        "simulator as the provider: the authorizer, the send, the SQS event source mapping's "
        "receive and delete (made by a client of the benchmark, as Lambda's poller makes them), "
        "the handoff, and the three status callbacks the simulator sent (queued, sent, "
        "delivered). botocore hooks on sms_gateway.store.aws_clients' clients "
        "(`before-parameter-build` and `after-call`) count every call by service and operation "
        "and read each DynamoDB item's size from the request or the answer. The first message "
        "runs with every function's caches cold (as if each ran in a new container); the steady "
        f"state is the median of {aws['steady_lives']} later messages{stable}. The authorizer is "
        "counted on every send: the HTTP API caches its answer for 300 s per key, so for a busy "
        "key it tends to zero.\n\n"
        + table(["Service.Operation", "First message (cold caches)", "Steady state"], call_rows)
        + "\n\nSteady state by step (durations are wall time on the local stack, with moto on "
        "loopback answering in place of AWS):\n\n"
        + table(
            ["Step", "Function", "Calls", "DynamoDB WRU", "DynamoDB RRU", "Duration"],
            phase_rows,
            align="lll",
        )
        + "\n\n### Modeled AWS cost per million messages\n\n"
        "From the steady-state counts above. DynamoDB request units: a write costs one unit per "
        "KB of the item (rounded up) in the table, and again in every global secondary index "
        "of template.yaml whose entry for the item the write changes (the entry's size: the "
        "item for an index projecting all attributes, its keys and included attributes "
        "otherwise; an entry is written when the item enters the index or a projected "
        "attribute changes, never by a write of attributes the index does not hold, and a "
        "change of its keys also deletes the old entry, one unit); the message item ends its "
        f"life at {size:,} bytes, "
        + (
            f"{headroom:,} bytes short of the next KB, past which each write of it costs one "
            "more unit. "
            if size <= 1024
            else f"{size - 1024:,} bytes past 1 KB, so each write of it late in its life costs "
            "two units. "
        )
        + "A strongly "
        "consistent read costs one unit per 4 KB, a key with no item the minimum. Lambda: one "
        "request per invocation and the measured durations rounded up to the millisecond, at "
        "each function's memory size and architecture in template.yaml; API Gateway: one "
        "request per send and per callback.\n\n"
        + table(["Item", "Per message", "Per million messages"], cost_rows)
        + f"\n\nFor a busy key (authorizer answer cached, so no authorizer invocation or key "
        f"lookup; full batches of {batch} on the handoff queue, so one receive, one delete and "
        f"one handoff invocation per {batch} messages): **{usd(model['busy_total'])} per "
        f"million messages**.\n\n"
        f"Prices used ({prices.region}, as of {prices.as_of}: {prices.source}):\n\n"
        + table(["Price", "Amount"], prices.rows(), align="ll")
        + "\n\nNot included: free tiers, storage (items, point-in-time recovery), CloudWatch "
        "Logs ingestion and X-Ray traces (`Tracing: Active`), data transfer, the SQS event source "
        "mapping's empty polls (a fixed cost per queue, not per message), the Secrets Manager "
        "secret's monthly fee, and Twilio's per-segment price, which dwarfs all of the above."
    )


def limits_cost(aws: Mapping[str, Any], prices: Prices) -> dict[str, Any]:
    """What a send rate, a quota and a wallet add to a message: the send step with limits
    against the same step without, measured in one run."""
    plain = next(p for p in phases(aws) if p.phase == SEND_PHASE)
    limited = next(p for p in phases(aws, "with_limits") if p.phase == SEND_PHASE)
    added = [
        CostLine(
            a.item,
            b.quantity - a.quantity,
            a.unit,
            b.usd_per_million_messages - a.usd_per_million_messages,
        )
        for a, b in zip(cost_lines([plain], prices), cost_lines([limited], prices), strict=True)
    ]
    return {"plain": plain, "limited": limited, "added": added, "added_total": total(added)}


def _limits(aws: Mapping[str, Any], prices: Prices) -> str:
    figures = limits_cost(aws, prices)
    plain, limited = figures["plain"], figures["limited"]
    limits = aws["limits"]

    def calls(p: PhaseUsage) -> str:
        return ", ".join(f"{op} x {n}" for op, n in sorted(p.calls.items()))

    rows = [
        ["Calls", calls(plain), calls(limited)],
        ["DynamoDB WRU", count(plain.dynamodb_write_units), count(limited.dynamodb_write_units)],
        ["DynamoDB RRU", count(plain.dynamodb_read_units), count(limited.dynamodb_read_units)],
        ["Duration", ms(plain.duration_ms), ms(limited.duration_ms)],
    ]
    added = [
        [line.item, quantity(line.quantity), usd(line.usd_per_million_messages)]
        for line in figures["added"]
        if line.quantity
    ]
    added.append(["**total**", "", f"**{usd(figures['added_total'])}**"])
    return (
        "### What limits add per message\n\n"
        "The same steady-state lives, measured again in this run after the demo workspace was "
        f"given a send rate ({limits['sends_per_second']} a second, burst {limits['burst']}), a "
        f"monthly quota ({limits['monthly_segments']:,} segments, which every send spends "
        f"from) and a wallet ({limits['wallet']} USD). Only the send changes: without limits it "
        "reads the workspace's (absent) limits item in the opt-outs' BatchGetItem and puts the "
        "message; with them the put becomes a TransactWriteItems with the limits item's "
        "conditional update, and a transaction writes each item at two units per KB. Usage "
        "counters are kept for every workspace, limited or not (the *usage* step above).\n\n"
        + table(["Send step", "Without limits", "With limits"], rows, align="lll")
        + "\n\nAdded per message and per million messages:\n\n"
        + table(["Item", "Per message", "Per million messages"], added)
        + "\n\nEvery send of a limited workspace writes its one limits item. DynamoDB serves at "
        "most 1,000 write units a second on one partition, and the transactional write of that "
        "small item costs 2: one workspace and mode can make about 500 limited sends a second, "
        "whatever the table's capacity (other workspaces are not slowed). A tenant that needs "
        "more would be given N limits items, each with 1/N of its rate, burst and quota, a send "
        "picking one at random (docs/architecture.md, *The hot item*)."
    )


def _end_to_end(e2e: Mapping[str, Any]) -> str:
    errors = ", ".join(f"{code} x {n}" for code, n in sorted(e2e["send_errors"].items())) or "none"
    statuses = ", ".join(f"{s} {n:,}" for s, n in sorted(e2e["statuses"].items())) or "none"
    verdict = "**pass**" if e2e["lost"] == 0 and e2e["duplicated"] == 0 else "**FAIL**"
    rows = [
        ["Messages sent", f"{e2e['messages']:,} ({e2e['workers']} concurrent senders)"],
        ["Accepted (201)", f"{e2e['accepted']:,}; send errors: {errors}"],
        ["Terminal", f"{e2e['terminal']:,} ({statuses})"],
        ["Lost", f"{e2e['lost']} {verdict if e2e['lost'] else ''}".strip()],
        [
            "Duplicated",
            f"{e2e['duplicated']} (provider creates {e2e['provider_creates']:,}, "
            f"unexpected stored {e2e['unexpected_stored_messages']}, "
            f"repeated MessageSids {e2e['repeated_message_sids']})",
        ],
        ["First send to last terminal status", f"{e2e['wall_seconds']:,.1f} s"],
        ["**Throughput**", f"**{e2e['messages_per_second']:,.1f} messages/s**"],
        [
            "Sends accepted per second",
            f"{e2e['accept_rate_per_second']:,.1f} (all sends done in "
            f"{e2e['send_seconds']:,.1f} s)",
        ],
        [
            "Send latency p50 / p95 / max",
            " / ".join(ms(e2e["send_latency_ms"][k]) for k in ("p50", "p95", "max")),
        ],
        [
            "Send to terminal p50 / p95 / max",
            " / ".join(ms(e2e["send_to_terminal_ms"][k]) for k in ("p50", "p95", "max")),
        ],
    ]
    delays = e2e["callback_delays_seconds"]
    # What runs where: the functions' sandboxes (their concurrency), and the processor time of
    # the benchmark's process against the sandboxes' (older results have neither).
    concurrency: Mapping[str, int] = e2e.get("sandbox_concurrency") or {}
    usual = Counter(concurrency.values()).most_common(1)[0][0] if concurrency else None
    others = ", ".join(f"{n} {f}" for f, n in sorted(concurrency.items()) if n != usual)
    sandboxes = (
        f"up to {usual} at once per function"
        + (f" ({others})" if others else "")
        + (f", on {e2e['cores']} cores" if e2e.get("cores") else "")
        if usual is not None
        else "up to as many at once per function as the machine has cores"
    )
    front_cpu, sandbox_cpu = e2e.get("front_cpu_seconds"), e2e.get("sandbox_cpu_seconds")
    aws_cpu = e2e.get("aws_cpu_seconds")
    # Older results ran moto in the benchmark's process (no aws_cpu_seconds).
    front = (
        "(the front, the pollers, the simulators, the senders), "
        f"{aws_cpu:,.1f} s in moto's process, "
        if aws_cpu is not None
        else "(moto, the front, the pollers, the simulators, the senders), "
    )
    cpu_split = (
        f" Processor time over the measured run: {front_cpu:,.1f} s in the benchmark's process "
        f"{front}{sandbox_cpu:,.1f} s in the functions' sandboxes."
        if front_cpu is not None and sandbox_cpu is not None
        else ""
    )
    return (
        "## End to end on the local stack\n\n"
        f"`sms_local.stack.LocalStackRunner` started on a free port as `make dev` starts it: "
        f"moto in a process of its own (DynamoDB atomic per item); in the benchmark's process, "
        f"the HTTP front with the "
        f"authorizer's cache, the SQS, stream and pipe pollers, the Twilio simulator, which sends "
        f"its callbacks {delays[0]} s and {delays[1]} s apart as in `make dev`, and the senders; "
        f"every function in worker processes of its own, as Lambda's sandboxes, "
        f"{sandboxes}. After "
        f"{e2e['warm_up_messages']} warm-up messages, {e2e['messages']:,} messages are sent at "
        f"once from a thread pool over HTTP with the demo live key, to valid US mobile numbers "
        f"that avoid the simulator's magic suffixes; then the message list (`GET /v1/sms/`, "
        f"pages of 100) is polled until every one is terminal, or {e2e['timeout_seconds']:.0f} s. "
        f"Throughput is the number of messages over the time from the first send to the last "
        f"terminal status (the messages' own `updated_at`). Lost: sent but never terminal. "
        f"Duplicated: the simulator asked to create more messages than were accepted, a stored "
        f"message nobody sent, or a provider MessageSid on two messages. Both must be 0: "
        f"{verdict}. The machine's cores are shared by all of it, so this measures the local "
        f"stack's pipeline, not AWS's scaling.{cpu_split}\n\n" + table(["", ""], rows, align="ll")
    )


def atomicity_cost(atomic: Mapping[str, Any], unserialized: Mapping[str, Any]) -> float:
    """Throughput with DynamoDB atomic per item over throughput without: below 1 is a cost."""
    without = float(unserialized["messages_per_second"])
    return float(atomic["messages_per_second"]) / without if without else math.nan


def _atomicity(atomic: Mapping[str, Any], unserialized: Mapping[str, Any]) -> str:
    def row(label: str, value: Any) -> list[str]:
        return [label, value(atomic), value(unserialized)]

    rows = [
        row("Throughput", lambda r: f"{r['messages_per_second']:,.1f} messages/s"),
        row("Sends accepted per second", lambda r: f"{r['accept_rate_per_second']:,.1f}"),
        row("Send latency p50 / p95", lambda r: " / ".join(
            ms(r["send_latency_ms"][k]) for k in ("p50", "p95"))),
        row("Send to terminal p50", lambda r: ms(r["send_to_terminal_ms"]["p50"])),
        row("Lost / duplicated", lambda r: f"{r['lost']} / {r['duplicated']}"),
    ]  # fmt: skip
    return (
        "### What DynamoDB's atomicity costs the local stack\n\n"
        "The local DynamoDB (moto's server, in a process of its own; the functions run in "
        "worker processes of their own) runs one request at a time, so that a condition and "
        "the write it guards are one step and no read sees half a write, as on DynamoDB; moto "
        "alone serves them concurrently, without that isolation. The same benchmark ran a second "
        f"time in this run, with {unserialized['messages']:,} messages, against moto without "
        "the lock (lost or duplicated messages there are moto's races, not a verdict on the "
        "gateway). Throughput with the lock is "
        f"**{times(atomicity_cost(atomic, unserialized))} the throughput without it**.\n\n"
        + table(["", "Atomic (as shipped)", "moto alone (not atomic)"], rows, align="l")
    )


# -- optional features and the status callbacks' front -------------------------------------------


def _cost_items(lines: Sequence[CostLine]) -> str:
    """The lines that cost something, largest first: `item $x`."""
    priced = sorted(
        (line for line in lines if round(line.usd_per_million_messages, 4)),
        key=lambda line: -abs(line.usd_per_million_messages),
    )
    return ", ".join(f"{line.item.split(' (')[0]} {usd_signed(line.usd_per_million_messages)}"
                     for line in priced) or "-"  # fmt: skip


def usd_signed(value: float) -> str:
    return "-" + usd(-value) if value < 0 else usd(value)


def _signed_count(value: float) -> str:
    return ("+" if value > 0 else "") + count(value) if value else "0"


def _feature_costs(features: Mapping[str, Any], aws: Mapping[str, Any], prices: Prices) -> str:
    """What each optional feature adds, and the status callbacks through the HTTP API against a
    Lambda function URL."""
    heading = "### What optional features add per message\n\n"
    if "error" in features:
        body = f"Not measured in this run: {features['error']}"
        return heading + body + "\n\n" + _callback_front(features, aws, prices)
    figures = feature_figures(features, prices)
    rows = []
    for name, figure in figures.items():
        calls = ", ".join(
            f"{op} {'+' if n > 0 else ''}{count(n)}" for op, n in sorted(figure["calls"].items())
        )
        rows.append(
            [
                FEATURE_LABELS.get(name, name),
                figure["unit"],
                calls or "-",
                _signed_count(figure["write_units"]),
                _signed_count(figure["read_units"]),
                _cost_items(figure["lines"]),
                f"**{usd_signed(figure['total'])}**",
            ]
        )
    events = features.get("webhook_events_per_message") or 1
    template = features.get("template", {})
    unstable = [v for v, same in features.get("steady_counts_identical", {}).items() if not same]
    note = (
        f" The counts of some lives differed ({', '.join(sorted(unstable))}): a read each "
        "container caches for a few seconds (the providers' health in the handoff) fell in a "
        "few of them; the most common counts are used."
        if unstable
        else ""
    )
    return (
        heading
        + "Measured in a run of its own (`python -m bench.feature_costs`), on the same local "
        "set-up as the section above (moto in server mode with template.yaml's resources, the "
        "Twilio simulator, every function invoked with AWS's event, the same botocore hooks "
        "counting calls and DynamoDB units). Each round takes one message of every variant "
        "through its whole steady-state life, after one uncounted round that fills every "
        "cache; each variant's most common counts and median durations over "
        f"{features['lives']} rounds are compared with the plain message of the same run.{note} "
        "Assumptions, row by row: *template*: the send names a template by id with its "
        f"variables (`{template.get('body', '')}`), which it reads; *customer webhook*: the send "
        "has a `status_callback_url` (a local receiver answering 204); the stream's usage "
        "function queues the message's events (SendMessageBatch, up to 10 jobs a call), the "
        "caller webhook queue's event source mapping receives and deletes them, and "
        "CallerWebhookFunction signs, sends and records each one; the difference with a plain "
        f"message is divided by its {count(events)} events (message.sent, message.delivered), "
        "the receiver answering at the first attempt (a retry costs one more delivery); "
        "*inbound reply*: after a plain message, the person answers: Twilio's incoming-message "
        "webhook (one HTTP API request) to InboundSmsFunction, which finds the workspace and the "
        "answered message and stores the reply; ReplyForwardingPipe's filter lets nothing "
        "through; *reply forwarding*: the send asks for forwarding to a webhook, and the reply "
        "then goes through ReplyForwardingPipe (one event), its queue, ReplyForwardingFunction "
        "and one delivery by CallerWebhookFunction, counted against the reply without "
        "forwarding (forwarding by SMS is one more message, by email one SES email, neither "
        "measured here); *failover*: the use case lists aws_eum then twilio while AWS End User "
        "Messaging SMS answers 503 (its simulator's outage knob): the handoff asks it once, "
        "records the attempt and the provider's failure, and Twilio takes the message; AWS End "
        "User Messaging SMS's own per-message price is not included, and a refused request is "
        "not a message it charges for. Prices as in the section above; a difference of "
        "durations is of medians of local wall times, so a few cents either way are noise.\n\n"
        + table(
            [
                "Feature",
                "Counted per",
                "Extra calls",
                "DynamoDB WRU",
                "DynamoDB RRU",
                "Where the dollars go",
                "$ per million",
            ],
            rows,
            align="lllrrlr",
        )
        + "\n\n"
        + _callback_front(features, aws, prices)
    )


def _callback_front(features: Mapping[str, Any], aws: Mapping[str, Any], prices: Prices) -> str:
    front = callback_front(phases(aws), prices)
    model = cost_model(aws, prices)
    n = front["callbacks_per_message"]
    if not n:
        return (
            "### Status callbacks: HTTP API or function URL\n\n"
            "No status callback in the steady state above: nothing to compare."
        )
    api = front["http_api"]
    url = front["function_url"]
    saving = front["saving_per_million_messages"]
    callback_ms = sum(
        p.duration_ms for p in phases(aws) if p.phase.startswith(CALLBACK_PHASE_PREFIX)
    )
    biggest = max(model["lines"], key=lambda line: line.usd_per_million_messages)
    api_line = next(line for line in model["lines"] if line.item == "API Gateway HTTP API")
    rank = (
        "the biggest item"
        if saving >= biggest.usd_per_million_messages
        else f"not the biggest item (the biggest is {biggest.item.split(' (')[0]}, at "
        f"{usd(biggest.usd_per_million_messages)})"
    )
    rows = [
        [
            "HTTP API route (today)",
            f"{n} requests",
            usd(total(api["lines"]) - saving),
            usd(saving),
            f"**{usd(api['total'])}**",
            usd(model["total"]),
        ],
        [
            "Lambda function URL",
            "0 (the invocation only)",
            usd(total(url["lines"])),
            "$0",
            f"**{usd(url['total'])}**",
            usd(model["total"] - saving),
        ],
    ]
    cheaper = "the function URL" if saving > 0 else "the HTTP API"
    per_reserved = 1000.0 / (callback_ms / n) if n and callback_ms else math.nan
    return (
        "### Status callbacks: HTTP API or function URL\n\n"
        f"Twilio makes {n} status callbacks per message (the *callback* steps of the steady "
        f"state above). Through the HTTP API each is a request at "
        f"${prices.http_api_requests_per_million:.2f} per million: "
        f"{usd(saving)} per million messages of the {usd(api_line.usd_per_million_messages)} of "
        f"API Gateway requests, {rank}. A Lambda function URL has no request charge of its own: "
        "the same invocations and durations, which both fronts pay, and nothing else. "
        "Assumptions: the same StatusCallbackFunction, the same X-Twilio-Signature check over the "
        "URL Twilio was given, the same durations as measured above; data transfer, the "
        "requests a refused signature costs (an invocation on either front) and free tiers "
        "left out.\n\n"
        + table(
            [
                "Front",
                "Requests billed per message",
                "Lambda (requests and duration)",
                "Request charge",
                "Callbacks, $ per million messages",
                "Whole message, $ per million",
            ],
            rows,
            align="ll",
        )
        + f"\n\n**Cheaper: {cheaper}, by {usd(abs(saving))} per million messages** "
        f"({abs(saving) / model['total'] * 100:.0f} % of the plain message's modeled "
        f"{usd(model['total'])}). What it takes: a function URL on StatusCallbackFunction "
        "(`FunctionUrlConfig: {AuthType: NONE}` in template.yaml, which SAM gives the public "
        "`lambda:InvokeFunctionUrl` permission) and its reserved concurrency "
        "(WebhookReservedConcurrency, today 0: unreserved), as the only bound on what the "
        "internet can make it cost: without the HTTP API there is no stage throttling "
        "(ApiThrottlingRateLimit) and no access log. At the local stack's measured "
        f"{ms(callback_ms / n if n else math.nan)} per callback, each unit of reserved "
        f"concurrency serves about {per_reserved:,.0f} callbacks a second "
        f"({per_reserved / n if n else math.nan:,.0f} messages a second). The handoff must give "
        "Twilio the function URL as StatusCallback (a setting of its own, from "
        "`!GetAtt StatusCallbackFunctionUrl.FunctionUrl`, where PUBLIC_BASE_URL serves it "
        "today); StatusCallbackFunction checks the signature over the URL the request came "
        "to, whose domain a function URL's event carries as an HTTP API's does (payload format "
        "2.0); the HTTP API route stays until the messages handed off before the change have "
        "had their last callback; the local stack (sms_local's front, template.py's routes) "
        "serves the function URL's path as a route without the authorizer. The same applies to "
        "InboundSmsFunction's incoming-message webhook (one request per reply).\n\n"
        "**Chosen: the HTTP API stays, for now.** The saving holds only for a stack on the "
        "default execute-api domain: a function URL takes no custom domain, and putting "
        "CloudFront in front of it for PublicBaseUrl costs about as much per request "
        "(HTTPS requests at $0.01 per 10,000 in North America, list price as known to the "
        "author, not re-checked) as the HTTP API it replaces. What the HTTP API gives for its "
        "price, per-route throttling before any invocation and a JSON access log, is also what "
        "bounds a public, unauthenticated route's cost. A stack without a custom domain would "
        "save the figure above; the switch is left for a later change, with the steps listed."
    )


# The steps of a plain live message's life that the write-unit target counts (send with limits
# configured, handoff, the sent and delivered callbacks).
TARGET_WRITE_STEPS = ("send", "handoff", "callback sent", "callback delivered")


def _met(value: float, limit: float) -> str:
    return "n/a" if math.isnan(value) else ("**met**" if value <= limit else "not met")


def _targets(results: Mapping[str, Any], prices: Prices) -> str:
    """Each target of the performance work, this run's figure, and, where it is not met, what
    stands in the way as this run measured it and what it would take."""
    cold = [r for r in cold_start_rows(results["cold_start"]) if r["name"] != FLOOR]
    worst_import = max(cold, key=lambda r: r["ratio"])
    worst_total = max(
        cold, key=lambda r: r["total_ratio"] if not math.isnan(r["total_ratio"]) else 0
    )
    warm = results["warm_cost"]
    aws = results["aws_calls"]
    steady = calls_by_operation(phases(aws))
    busy = busy_calls(aws)
    model = cost_model(aws, prices)
    limited = phases(aws, "with_limits") if "with_limits" in aws else phases(aws)
    target_writes = sum(u.dynamodb_write_units for u in limited if u.phase in TARGET_WRITE_STEPS)
    life_writes = write_units_of(limited)
    e2e = results["end_to_end"]
    per_message_moto = (
        e2e["aws_cpu_seconds"] * 1000.0 / e2e["messages"]
        if e2e.get("aws_cpu_seconds") is not None and e2e.get("messages")
        else math.nan
    )
    size = int(aws.get("final_message_item_bytes") or 0)
    rows = [
        [
            "Cold start, import, every function <= 1.15x the floor",
            f"slowest {worst_import['name']} {times(worst_import['ratio'])} "
            f"(instructions: {times(worst_import['instructions_ratio'])})",
            _met(worst_import["ratio"], 1.15),
            "pydantic (its core schema and the models each function builds at import, about 30 "
            "ms in *Heaviest imports*), the gateway's own modules (sms_gateway, 30-70 ms: the use "
            "case and message models, the routes); would take models built on first use "
            "(pydantic's defer_build) and settings without pydantic",
        ],
        [
            "Cold start, import and first request, every function <= 1.15x the floor",
            f"slowest {worst_total['name']} {times(worst_total['total_ratio'])} "
            f"(instructions: {times(worst_total['total_instructions_ratio'])})",
            _met(worst_total["total_ratio"], 1.15),
            "the first request makes the function's botocore clients (endpoint rules, service "
            "models), builds its first pydantic validators and Powertools' resolver: about 60-75 "
            "ms against the floor's one call; SnapStart (the `SnapStart` switch) moves the "
            "clients into the snapshot",
        ],
        [
            "DynamoDB write units <= 8 (send with limits, handoff, sent and delivered)",
            f"{count(target_writes)} ({count(life_writes)} over the whole life, with the queued "
            "callback and the usage batch)",
            _met(target_writes, 8),
            "the limits transaction (two items at two units each), the item past 1 KB "
            f"({size:,} bytes at the end: history and provider attempts) so each late write costs "
            "two, the reply index entry written at acceptance; would take a compact history, "
            "shorter index sort keys (a migration) and a non-transactional charge with a refund",
        ],
        [
            "AWS calls per message, steady state, <= 9",
            f"{sum(steady.values())} per message alone; {count(busy)} for a busy key",
            _met(float(sum(steady.values())), 9),
            "the outbox (stream read and SQS send by the pipe, receive and delete by the event "
            "source mapping: 4 calls for one message, about 1.3 in full batches), the handoff's "
            "read before its claim (a claim returning the item would drop it; the claim's race "
            "tests pin that order), three callbacks, the usage stream",
        ],
        [
            "Modeled AWS cost <= $10 per million plain messages",
            f"{usd(model['total'])} as measured; {usd(model['busy_total'])} for a busy key",
            _met(model["busy_total"], 10.0),
            "DynamoDB writes, then the status callbacks' API Gateway requests ($1 per million "
            "each, three a message: a function URL would save them on the default domain only, "
            "see *Status callbacks: HTTP API or function URL*)",
        ],
        [
            "Warm CPU, send <= 1.3x the bare AWS calls",
            times(_ratio(warm["send"])),
            _met(_ratio(warm["send"]), 1.3),
            f"our code's {ms(warm['send']['handler_cpu_ms'] - warm['send']['bare_aws_cpu_ms'])} "
            "per send: composing (number parsing, segments, price), the item's mapping, "
            "Powertools' logging",
        ],
        [
            "Warm CPU, status callback <= 1.4x the bare AWS calls",
            times(_ratio(warm["status_callback"])),
            _met(_ratio(warm["status_callback"]), 1.4),
            "the signature check (HMAC over the sorted form), the event's parsing and the "
            "conditional update's expression",
        ],
        [
            "End to end on the local stack >= 50 messages/s, 0 lost, 0 duplicated",
            f"{e2e['messages_per_second']:.1f} messages/s, lost {e2e['lost']}, duplicated "
            f"{e2e['duplicated']}",
            _met(-float(e2e["messages_per_second"]), -50.0),
            "moto's server, one process on one of the two cores"
            + (
                f": {per_message_moto:,.0f} ms of its processor time per message"
                if not math.isnan(per_message_moto)
                else ""
            )
            + "; would take a faster DynamoDB emulator or more cores",
        ],
    ]
    return (
        "## Targets\n\n"
        "The performance work's targets, against this run's figures. Where one is not met, what "
        "stands in the way is what this run measured (the sections below), and what it would "
        "take is the next step, not done.\n\n"
        + table(
            ["Target", "This run", "", "What stands in the way, what it would take"],
            rows,
            align="llll",
        )
    )


def render(results: Mapping[str, Any], prices: Prices | None = None) -> str:
    prices = prices or Prices()
    parts = [
        _header(results),
        _summary(results, prices),
        _targets(results, prices),
        _cold_start(results["cold_start"]),
        _warm_cost(results["warm_cost"]),
        _aws_calls(results["aws_calls"], prices),
        *([_limits(results["aws_calls"], prices)] if "with_limits" in results["aws_calls"] else []),
        *(
            [_feature_costs(results["feature_costs"], results["aws_calls"], prices)]
            if "feature_costs" in results
            else []
        ),
        _end_to_end(results["end_to_end"]),
        *(
            [_atomicity(results["end_to_end"], results["end_to_end_unserialized"])]
            if "end_to_end_unserialized" in results
            else []
        ),
        "## Rerun\n\n`make bench` (all of the above; `make bench N=500` sends 500 messages "
        "end to end instead of 2,000). Each section also runs alone and prints its raw JSON: "
        "`python -m bench.cold_start`, `bench.warm_cost`, `bench.aws_calls`, "
        "`bench.feature_costs`, `bench.end_to_end` "
        "(`--unserialized-dynamodb` for the run without DynamoDB's atomicity).",
    ]
    return "\n\n".join(parts) + "\n"


__all__ = ["CostLine", "atomicity_cost", "cold_start_rows", "cost_model", "render"]
