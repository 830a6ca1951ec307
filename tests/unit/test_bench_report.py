"""The benchmark report's arithmetic: DynamoDB sizes and units, the cost model, the rendering."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench import report
from bench.pricing import (
    PhaseUsage,
    Prices,
    cost_lines,
    item_size,
    lambda_billed_gb_seconds,
    read_units,
    total,
    write_units,
)


def test_item_size_follows_dynamodb_rules() -> None:
    item: dict[str, dict[str, Any]] = {
        "id": {"S": "abc"},  # 2 + 3
        "n": {"N": "-12.30"},  # 1 + (ceil(3 / 2) + 1): significant digits 123
        "flag": {"BOOL": True},  # 4 + 1
        "l": {"L": [{"S": "x"}]},  # 1 + (3 + 1 + 1)
        "m": {"M": {"k": {"S": "vv"}}},  # 1 + (3 + 1 + 2 + 1)
        "é": {"S": "é"},  # 2 + 2 (UTF-8 bytes)
    }
    assert item_size(item) == 5 + 4 + 5 + 6 + 8 + 4


@pytest.mark.parametrize(
    ("size", "units"), [(0, 1), (1, 1), (1024, 1), (1025, 2), (4096, 4), (4097, 5)]
)
def test_write_units_are_per_kilobyte_rounded_up(size: int, units: int) -> None:
    assert write_units(size) == units


def test_read_units_are_per_four_kilobytes_and_halved_when_eventually_consistent() -> None:
    assert read_units(0, consistent=True) == 1
    assert read_units(4096, consistent=True) == 1
    assert read_units(4097, consistent=True) == 2
    assert read_units(4097, consistent=False) == 1


def test_lambda_duration_is_billed_by_the_millisecond() -> None:
    assert lambda_billed_gb_seconds(10.2, 512) == pytest.approx(0.011 * 0.5)
    assert lambda_billed_gb_seconds(0.4, 1024) == pytest.approx(0.001)


PHASES = [
    PhaseUsage(
        "send", "SendFunction", 10.2, 512, "arm64", True,
        dynamodb_write_units=3, dynamodb_read_units=2, sqs_requests=1,
    ),
    PhaseUsage("sqs event source mapping", None, sqs_requests=2),
    PhaseUsage(
        "callback", "StatusCallbackFunction", 0.4, 512, "arm64", True,
        dynamodb_write_units=3, secrets_manager_calls=1,
    ),
]  # fmt: skip


def test_cost_per_million_messages() -> None:
    lines = {line.item.split(" (")[0]: line for line in cost_lines(PHASES, Prices())}
    assert lines["Lambda requests"].quantity == 2
    assert lines["Lambda requests"].usd_per_million_messages == pytest.approx(0.40)
    # (11 ms + 1 ms) x 0.5 GB = 0.006 GB-s per message
    assert lines["Lambda duration"].quantity == pytest.approx(0.006)
    assert lines["Lambda duration"].usd_per_million_messages == pytest.approx(6000 * 0.0000133334)
    assert lines["API Gateway HTTP API"].usd_per_million_messages == pytest.approx(2.00)
    assert lines["DynamoDB writes"].usd_per_million_messages == pytest.approx(6 * 0.625)
    assert lines["DynamoDB reads"].usd_per_million_messages == pytest.approx(2 * 0.125)
    assert lines["SQS"].usd_per_million_messages == pytest.approx(3 * 0.40)
    assert lines["Secrets Manager"].usd_per_million_messages == pytest.approx(5.00)
    assert total(list(lines.values())) == pytest.approx(
        0.40 + 0.0800004 + 2.00 + 3.75 + 0.25 + 1.20 + 5.00
    )


def test_duration_is_priced_by_each_functions_architecture() -> None:
    x86 = PhaseUsage("send", "SendFunction", 1000.0, 1024, "x86_64")
    arm = PhaseUsage("send", "SendFunction", 1000.0, 1024, "arm64")
    [x86_line] = [x for x in cost_lines([x86], Prices()) if x.item.startswith("Lambda duration")]
    [arm_line] = [x for x in cost_lines([arm], Prices()) if x.item.startswith("Lambda duration")]
    assert x86_line.item == "Lambda duration (1024 MB, x86_64)"
    assert x86_line.usd_per_million_messages == pytest.approx(1e6 * 0.0000166667)
    assert arm_line.usd_per_million_messages == pytest.approx(1e6 * 0.0000133334)


def test_weights_scale_a_phase_and_invocation_weights_only_its_requests() -> None:
    lines = cost_lines(
        PHASES,
        Prices(),
        weights={"sqs event source mapping": 0.1, "callback": 0.0},
        invocation_weights={"send": 0.5},
    )
    by_item = {line.item.split(" (")[0]: line.quantity for line in lines}
    assert by_item["Lambda requests"] == pytest.approx(0.5)
    assert by_item["Lambda duration"] == pytest.approx(0.0055)  # send's time is unchanged
    assert by_item["SQS"] == pytest.approx(1 + 0.2)
    assert by_item["Secrets Manager"] == 0


def results() -> dict[str, Any]:
    def phase(name: str, function: str | None, **usage: Any) -> dict[str, Any]:
        shape = {"memory_mb": 512, "architecture": "arm64"} if function else {}
        return {"phase": name, "function": function, "duration_ms": 5.0, **shape, **usage}

    steady = [
        phase("authorizer", "AuthorizerFunction", dynamodb_read_units=1,
              calls={"dynamodb.GetItem": 1}),
        phase("send", "SendFunction", api_request=True, dynamodb_write_units=3,
              dynamodb_read_units=2, sqs_requests=1,
              calls={"dynamodb.BatchGetItem": 1, "dynamodb.PutItem": 1, "sqs.SendMessage": 1}),
        phase("sqs event source mapping", None, sqs_requests=2,
              calls={"sqs.ReceiveMessage": 1, "sqs.DeleteMessageBatch": 1}),
        phase("handoff", "HandoffFunction", dynamodb_write_units=6, dynamodb_read_units=1,
              calls={"dynamodb.GetItem": 1, "dynamodb.UpdateItem": 2}),
    ]  # fmt: skip
    first = [
        *steady[:1],
        {**steady[1], "calls": {**steady[1]["calls"], "dynamodb.GetItem": 1}},
        *steady[2:],
    ]
    return {
        "date": "2026-11-25 12:00 UTC",
        "total_seconds": 245.0,
        "machine": {
            "platform": "Linux-test",
            "cpu_count": 2,
            "cpu_model": "Test CPU",
            "memory": "1.0 GiB",
            "python": "CPython 3.13.0",
            "packages": {"boto3": "1.0"},
            "commit": "abc1234",
        },
        "cold_start": {
            "runs_per_variant": 15,
            "skipped": [],
            "variants": {
                name: {
                    "median_ms": value,
                    "min_ms": value - 5,
                    "max_ms": value + 5,
                    "median_maxrss_kb": rss,
                    "median_process_wall_ms": value + 60,
                }
                for name, value, rss in (
                    ("floor", 100.0, 40960.0),
                    ("SendFunction", 150.0, 51200.0),
                    ("AuthorizerFunction", 110.0, 40960.0),
                )
            },
        },
        "warm_cost": {
            "rounds": 7,
            "requests_per_round": 1000,
            "send": {
                "function": "SendFunction",
                "handler_cpu_ms": 1.5,
                "bare_aws_cpu_ms": 0.75,
                "aws_calls_per_request": [["dynamodb.put_item", "sqs.send_message"]],
            },
            "status_callback": {
                "function": "StatusCallbackFunction",
                "handler_cpu_ms": 0.6,
                "bare_aws_cpu_ms": 0.3,
                "aws_calls_per_request": [["dynamodb.update_item"]],
            },
        },
        "aws_calls": {
            "first_message": first,
            "steady_state": steady,
            "steady_lives": 5,
            "steady_counts_identical": True,
            "handoff_batch_size": 10,
            "final_message_item_bytes": 1000,
        },
        "end_to_end": {
            "messages": 2000,
            "workers": 16,
            "accepted": 2000,
            "send_errors": {},
            "terminal": 2000,
            "statuses": {"delivered": 2000},
            "lost": 0,
            "duplicated": 0,
            "provider_creates": 2000,
            "unexpected_stored_messages": 0,
            "repeated_message_sids": 0,
            "wall_seconds": 150.0,
            "messages_per_second": 13.3333,
            "accept_rate_per_second": 31.0,
            "send_seconds": 64.5,
            "send_latency_ms": {"p50": 500.0, "p95": 590.0, "max": 970.0},
            "send_to_terminal_ms": {"p50": 7.7e4, "p95": 8.5e4, "max": 8.6e4},
            "timeout_seconds": 300.0,
            "callback_delays_seconds": [0.3, 0.7],
            "warm_up_messages": 10,
        },
    }


def test_cold_start_is_reported_against_the_floor_of_the_same_run() -> None:
    rows = {r["name"]: r for r in report.cold_start_rows(results()["cold_start"])}
    assert rows["SendFunction"]["ratio"] == pytest.approx(1.5)
    assert rows["SendFunction"]["extra_ms"] == pytest.approx(50.0)
    assert rows["SendFunction"]["extra_rss_kb"] == pytest.approx(10240.0)
    assert rows["floor"]["ratio"] == 1.0


def test_report_carries_every_figure() -> None:
    text = report.render(results())
    for expected in (
        "2026-11-25 12:00 UTC",  # the date
        "2 x Test CPU",  # the machine
        "4 min 05 s",  # how long the run took
        "SendFunction: 150 ms, 1.50x the floor (+50 ms)",
        "10.0 MB",  # the send function's peak memory
        "2.00x the bare AWS calls",  # warm send and callback ratios
        "13.3 messages/s; lost 0, duplicated 0",
        "us-east-1",
        "as of 2026-11",
        "$0.625 per million write request units",
        "**pass**",
        "1,000 bytes, 24 bytes short of the next KB",
        "0.0075 GB-seconds",  # three 5 ms invocations at half a GB
        "77.0 s / 85.0 s / 86.0 s",  # send to terminal, in seconds past 10 s
    ):
        assert expected in text, expected
    assert "FAIL" not in text


def test_modeled_cost_uses_the_steady_state_counts() -> None:
    model = report.cost_model(results()["aws_calls"], Prices())
    lines = {line.item.split(" (")[0]: line.quantity for line in model["lines"]}
    assert lines["Lambda requests"] == 3  # authorizer, send, handoff
    assert lines["DynamoDB writes"] == 9
    assert lines["SQS"] == 3
    # busy key: no authorizer, a tenth of the poller's requests and of the handoff invocations
    assert model["busy_total"] < model["total"]
    assert not math.isnan(model["total"])


def test_lost_or_duplicated_messages_fail_the_report() -> None:
    data = results()
    data["end_to_end"] |= {"lost": 3, "terminal": 1997}
    assert "**FAIL**" in report.render(data)


def test_what_dynamodb_atomicity_costs_is_the_ratio_of_two_runs_of_one_report() -> None:
    data = results()
    data["end_to_end_unserialized"] = data["end_to_end"] | {
        "messages_per_second": 16.6667,
        "accept_rate_per_second": 40.0,
        "lost": 1,
        "duplicated": 2,
    }
    text = report.render(data)
    assert report.atomicity_cost(data["end_to_end"], data["end_to_end_unserialized"]) == (
        pytest.approx(13.3333 / 16.6667)
    )
    assert "0.80x the throughput of a local DynamoDB that is not atomic per item" in text
    assert "**0.80x the throughput without it**" in text
    assert "| Throughput | 13.3 messages/s | 16.7 messages/s |" in text
    assert "| Lost / duplicated | 0 / 0 | 1 / 2 |" in text
    assert "**pass**" in text  # moto's own races without the lock are no verdict on the gateway


def test_a_report_without_the_comparison_run_says_nothing_of_it() -> None:
    text = report.render(results())
    assert "atomicity costs" not in text
    assert "not atomic per item" not in text


def test_steps_run_by_aws_are_named_by_who_runs_them() -> None:
    from bench.aws_calls import ESM, PIPE, USAGE_ESM
    from bench.report import AWS_RUN_PHASES

    # The phase names the measurement writes are the ones the report knows.
    assert set(AWS_RUN_PHASES) == {ESM, PIPE, USAGE_ESM}
    assert AWS_RUN_PHASES[PIPE] == "(EventBridge Pipes)"


def with_limits(data: dict[str, Any]) -> dict[str, Any]:
    """The measurement's limits lives: the send writes a transaction instead of a put."""
    aws = data["aws_calls"]
    limited = [dict(p) for p in aws["steady_state"]]
    for phase in limited:
        if phase["phase"] == "send":
            phase |= {
                "dynamodb_write_units": phase["dynamodb_write_units"] * 2 + 2,
                "calls": {"dynamodb.BatchGetItem": 1, "dynamodb.TransactWriteItems": 1},
            }
    aws |= {
        "with_limits": limited,
        "limits": {"monthly_segments": 10**9, "sends_per_second": "1000", "burst": 1000,
                   "wallet": "100"},
    }  # fmt: skip
    return data


def test_what_limits_add_is_the_send_with_them_less_the_send_without() -> None:
    data = with_limits(results())
    figures = report.limits_cost(data["aws_calls"], Prices())
    plain = figures["plain"].dynamodb_write_units
    assert figures["limited"].dynamodb_write_units == plain * 2 + 2
    by_item = {line.item.split(" (")[0]: line for line in figures["added"]}
    assert by_item["DynamoDB writes"].quantity == plain + 2
    assert by_item["DynamoDB writes"].usd_per_million_messages == pytest.approx((plain + 2) * 0.625)
    assert figures["added_total"] == pytest.approx(
        sum(line.usd_per_million_messages for line in figures["added"])
    )
    text = report.render(data)
    assert "### What limits add per message" in text
    assert "dynamodb.TransactWriteItems x 1" in text
    assert f"{plain + 2:g} DynamoDB WRU" in text  # the summary's row
    # A report from a run without the limits lives says nothing of them
    assert "What limits add" not in report.render(results())


def test_a_busy_workspace_shares_a_usage_batch_between_its_messages() -> None:
    aws = results()["aws_calls"] | {"usage_batch_size": 30, "usage_records_per_message": 6.0}
    weights, _ = report.busy_weights(aws)
    assert weights["usage"] == weights["usage event source mapping"] == pytest.approx(0.2)


def test_cold_start_reports_the_first_request_against_the_floors_of_the_same_run() -> None:
    data = results()
    extra = {
        "floor": (2.0, 1000e6, 1010e6, {"dynamodb.GetItem": 1}, None),
        "SendFunction": (50.0, 1200e6, 1515e6, {"dynamodb.PutItem": 1}, 201),
        "AuthorizerFunction": (40.0, 900e6, 1212e6, {"dynamodb.GetItem": 1}, True),
    }
    for name, (first, imported, answered, calls, status) in extra.items():
        variant = data["cold_start"]["variants"][name]
        total = variant["median_ms"] + first
        variant.update(
            median_first_request_ms=first,
            median_total_ms=total,
            min_total_ms=total - 5,
            max_total_ms=total + 5,
            first_request_status=status,
            first_request_calls=calls,
            instructions={"import": imported, "import_and_first_request": answered},
            import_time={"modules": [["pydantic_core.core_schema", 11.0]], "packages": []},
        )
    rows = {r["name"]: r for r in report.cold_start_rows(data["cold_start"])}
    assert rows["SendFunction"]["total_ratio"] == pytest.approx(200 / 102)
    assert rows["SendFunction"]["instructions_ratio"] == pytest.approx(1.2)
    assert rows["SendFunction"]["total_instructions_ratio"] == pytest.approx(1.5)
    text = report.render(data)
    assert (
        "SendFunction: 150 ms, 1.50x the floor (+50 ms); import and first request: "
        "SendFunction: 200 ms, 1.96x the floor's (+98 ms)"
    ) in text
    assert "### Import and first request" in text
    assert "| SendFunction | 1,200 M | 1.20x | 1,515 M | 1.50x |" in text
    assert "pydantic_core.core_schema 11.0" in text


def test_targets_say_which_are_met_from_the_run_s_own_figures() -> None:
    data = results()
    text = report.render(data)
    targets = text.split("## Targets", 1)[1].split("\n## ", 1)[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in targets.splitlines() if "|" in line}
    # Warm send at 2.00x the bare calls: over 1.3x.
    assert "| 2.00x | not met |" in rows["Warm CPU, send <= 1.3x the bare AWS calls"]
    data["warm_cost"]["send"]["handler_cpu_ms"] = 0.9  # 1.20x
    rows_after = report.render(data).split("## Targets", 1)[1]
    assert "| 1.20x | **met** |" in rows_after
    assert (
        "13.3 messages/s"
        in rows["End to end on the local stack >= 50 messages/s, 0 lost, 0 duplicated"]
    )
