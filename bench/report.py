"""Renders BENCHMARKS.md from the sections' results. Pure: no clock, no I/O."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

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
    """Each function next to the floor measured in the same run: ratio and extra milliseconds."""
    variants = cold["variants"]
    floor = variants[FLOOR]
    rows = []
    for name, v in sorted(variants.items(), key=lambda kv: (kv[0] != FLOOR, kv[0])):
        rows.append(
            {
                "name": name,
                "median_ms": v["median_ms"],
                "ratio": v["median_ms"] / floor["median_ms"],
                "extra_ms": v["median_ms"] - floor["median_ms"],
                "rss_kb": v["median_maxrss_kb"],
                "extra_rss_kb": v["median_maxrss_kb"] - floor["median_maxrss_kb"],
                "min_ms": v["min_ms"],
                "max_ms": v["max_ms"],
                "process_ms": v["median_process_wall_ms"],
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
    warm = results["warm_cost"]
    aws = results["aws_calls"]
    steady = calls_by_operation(phases(aws))
    model = cost_model(aws, prices)
    e2e = results["end_to_end"]
    rows = [
        [
            "Cold start, slowest function (import and set-up)",
            f"{slowest['name']}: {ms(slowest['median_ms'])}, {times(slowest['ratio'])} the "
            f"floor ({signed_ms(slowest['extra_ms'])})",
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
            f"{sum(steady.values())} ({_by_service(steady)})",
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
    skipped = cold.get("skipped") or []
    note = (
        f"\n\nNot measured (their code is not in this checkout): {', '.join(skipped)}."
        if skipped
        else ""
    )
    return (
        "## Cold start\n\n"
        f"Each function's handler module imported in a fresh process (`python -c`, the way "
        f"Lambda's runtime loads `app.lambda_handler`: `importlib.util.spec_from_file_location`, "
        f"then the module's top-level set-up runs), with the environment template.yaml gives it "
        f"(resource names faked, AWS endpoint unreachable: nothing is called). The time is "
        f"`time.perf_counter()` around the import, inside the process; peak memory is the "
        f"process's `ru_maxrss`, interpreter included. The floor is a fresh process that imports "
        f"boto3 and creates a DynamoDB client, measured in the same run. Median of "
        f"{cold['runs_per_variant']} runs per variant, every variant interleaved in a seeded "
        f"random order per round, after one discarded run each (bytecode compiled, page cache "
        f"warm, as in a reused Lambda sandbox image). Our functions create their AWS clients on "
        f"first use, so the floor includes a client creation that the functions defer to their "
        f"first request. *Whole process* is the wall time of the process, interpreter start-up "
        f"included, seen from outside.\n\n"
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
        "of template.yaml that holds it and projects all attributes (an index of keys only is "
        "written when an item enters it); the message item ends its life at "
        f"{size:,} bytes, {headroom:,} bytes short of the next KB, past which each write of it "
        "costs one more unit in the table and in each such index. A strongly "
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
    return (
        "## End to end on the local stack\n\n"
        f"`sms_local.stack.LocalStackRunner` started in-process on a free port (moto, with "
        f"DynamoDB atomic per item, the HTTP "
        f"front with the authorizer, the SQS poller, the Twilio simulator, which sends its "
        f"callbacks {delays[0]} s and {delays[1]} s apart as in `make dev`). After "
        f"{e2e['warm_up_messages']} warm-up messages, {e2e['messages']:,} messages are sent at "
        f"once from a thread pool over HTTP with the demo live key, to valid US mobile numbers "
        f"that avoid the simulator's magic suffixes; then the message list (`GET /v1/sms/`, "
        f"pages of 100) is polled until every one is terminal, or {e2e['timeout_seconds']:.0f} s. "
        f"Throughput is the number of messages over the time from the first send to the last "
        f"terminal status (the messages' own `updated_at`). Lost: sent but never terminal. "
        f"Duplicated: the simulator asked to create more messages than were accepted, a stored "
        f"message nobody sent, or a provider MessageSid on two messages. Both must be 0: "
        f"{verdict}. Everything, the senders included, shares one Python process, and the "
        f"local front runs one route handler at a time as Lambda runs one event per sandbox, so "
        f"this measures the local stack's pipeline, not AWS's scaling.\n\n"
        + table(["", ""], rows, align="ll")
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
        "The local DynamoDB (moto's server) runs one request at a time, so that a condition and "
        "the write it guards are one step and no read sees half a write, as on DynamoDB; moto "
        "alone serves them concurrently, without that isolation. The same benchmark ran a second "
        f"time in this run, with {unserialized['messages']:,} messages, against moto without "
        "the lock (lost or duplicated messages there are moto's races, not a verdict on the "
        "gateway). Throughput with the lock is "
        f"**{times(atomicity_cost(atomic, unserialized))} the throughput without it**.\n\n"
        + table(["", "Atomic (as shipped)", "moto alone (not atomic)"], rows, align="l")
    )


def render(results: Mapping[str, Any], prices: Prices | None = None) -> str:
    prices = prices or Prices()
    parts = [
        _header(results),
        _summary(results, prices),
        _cold_start(results["cold_start"]),
        _warm_cost(results["warm_cost"]),
        _aws_calls(results["aws_calls"], prices),
        *([_limits(results["aws_calls"], prices)] if "with_limits" in results["aws_calls"] else []),
        _end_to_end(results["end_to_end"]),
        *(
            [_atomicity(results["end_to_end"], results["end_to_end_unserialized"])]
            if "end_to_end_unserialized" in results
            else []
        ),
        "## Rerun\n\n`make bench` (all of the above; `make bench N=500` sends 500 messages "
        "end to end instead of 2,000). Each section also runs alone and prints its raw JSON: "
        "`python -m bench.cold_start`, `bench.warm_cost`, `bench.aws_calls`, `bench.end_to_end` "
        "(`--unserialized-dynamodb` for the run without DynamoDB's atomicity).",
    ]
    return "\n\n".join(parts) + "\n"


__all__ = ["CostLine", "atomicity_cost", "cold_start_rows", "cost_model", "render"]
