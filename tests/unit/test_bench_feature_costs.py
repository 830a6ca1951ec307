"""What optional features add to a message, and the status callbacks' front: the arithmetic of
bench.feature_model and its rendering by bench.report, from fixed results (no AWS, no network)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest

from bench import report
from bench.feature_model import (
    FEATURE_LABELS,
    FEATURES,
    added_calls,
    added_lines,
    callback_front,
    feature_figures,
)
from bench.pricing import PhaseUsage, Prices, total
from tests.unit.test_bench_report import results as base_results

PRICES = Prices()


def usage(phase: str, function: str | None = None, **fields: Any) -> PhaseUsage:
    shape = {"memory_mb": 512, "architecture": "arm64"} if function else {}
    return PhaseUsage(phase, function, **{"duration_ms": 5.0, **shape, **fields})


PLAIN = [
    usage("send", "SendFunction", api_request=True, dynamodb_write_units=3,
          dynamodb_read_units=2.5, calls={"dynamodb.BatchGetItem": 1, "dynamodb.PutItem": 1}),
    usage("callback sent", "StatusCallbackFunction", api_request=True, dynamodb_write_units=2,
          calls={"dynamodb.UpdateItem": 1}),
    usage("callback delivered", "StatusCallbackFunction", api_request=True,
          dynamodb_write_units=2, calls={"dynamodb.UpdateItem": 1}),
]  # fmt: skip
TEMPLATED = [
    usage("send", "SendFunction", api_request=True, dynamodb_write_units=3,
          dynamodb_read_units=3.5,
          calls={"dynamodb.BatchGetItem": 1, "dynamodb.GetItem": 1, "dynamodb.PutItem": 1}),
    *PLAIN[1:],
]  # fmt: skip
WEBHOOK = [
    *PLAIN,
    usage("caller webhook event source mapping", sqs_requests=2,
          calls={"sqs.ReceiveMessage": 1, "sqs.DeleteMessageBatch": 1}),
    usage("caller webhook", "CallerWebhookFunction", dynamodb_write_units=2,
          dynamodb_read_units=4, calls={"dynamodb.PutItem": 2, "dynamodb.Query": 2}),
]  # fmt: skip


def test_a_feature_adds_what_its_variant_uses_beyond_the_baseline() -> None:
    lines = {line.item.split(" (")[0]: line for line in added_lines(TEMPLATED, PLAIN, PRICES)}

    assert lines["DynamoDB reads"].quantity == pytest.approx(1)
    assert lines["DynamoDB reads"].usd_per_million_messages == pytest.approx(0.125)
    assert lines["DynamoDB writes"].quantity == 0
    assert lines["Lambda requests"].quantity == 0
    assert lines["API Gateway HTTP API"].usd_per_million_messages == 0
    assert added_calls(TEMPLATED, PLAIN) == {"dynamodb.GetItem": 1}


def test_a_webhook_is_counted_per_event() -> None:
    lines = {line.item.split(" (")[0]: line for line in added_lines(WEBHOOK, PLAIN, PRICES, 2)}

    # One invocation, two SQS requests, 2 WRU and 4 RRU for the message's two events.
    assert lines["Lambda requests"].quantity == pytest.approx(0.5)
    assert lines["SQS"].usd_per_million_messages == pytest.approx(0.40)
    assert lines["DynamoDB writes"].usd_per_million_messages == pytest.approx(0.625)
    assert lines["DynamoDB reads"].usd_per_million_messages == pytest.approx(0.25)
    assert added_calls(WEBHOOK, PLAIN, 2)["dynamodb.Query"] == 1


def test_fewer_calls_in_the_variant_are_negative() -> None:
    assert added_calls(PLAIN, TEMPLATED) == {"dynamodb.GetItem": -1}


def feature_result() -> dict[str, Any]:
    plain = [asdict(p) for p in PLAIN]
    return {
        "lives": 3,
        "variants": {
            "plain": plain,
            "template": [asdict(p) for p in TEMPLATED],
            "webhook": [asdict(p) for p in WEBHOOK],
            "reply": plain,
            "reply_forwarded": plain,
            "failover": plain,
        },
        "webhook_events_per_message": 2.0,
        "steady_counts_identical": {"plain": True, "failover": False},
        "template": {"slug": "bench-code", "body": "Your code is {{code}}"},
    }


def test_every_feature_has_its_figures() -> None:
    figures = feature_figures(feature_result(), PRICES)

    assert set(figures) == set(FEATURES)
    assert figures["template"]["read_units"] == pytest.approx(1)
    assert figures["template"]["total"] == pytest.approx(total(figures["template"]["lines"]))
    assert figures["caller_webhook_event"]["write_units"] == pytest.approx(1)
    assert figures["failover_attempt"]["total"] == 0


def test_the_callbacks_through_a_function_url_save_their_api_requests() -> None:
    front = callback_front(PLAIN, PRICES)

    assert front["callbacks_per_message"] == 2
    assert front["saving_per_million_messages"] == pytest.approx(2 * 1.00)
    assert front["http_api"]["total"] - front["function_url"]["total"] == pytest.approx(2.00)
    # The same invocations and durations on both fronts.
    both = [
        {line.item: line.usd_per_million_messages for line in front[f]["lines"]}
        for f in ("http_api", "function_url")
    ]
    assert both[0]["Lambda requests"] == both[1]["Lambda requests"] == pytest.approx(0.40)
    assert both[1]["API Gateway HTTP API"] == 0


def with_features(features: dict[str, Any]) -> dict[str, Any]:
    data = base_results()
    data["feature_costs"] = features
    # The steady state's status callbacks, as bench.aws_calls names them.
    data["aws_calls"]["steady_state"] += [
        {**asdict(p), "phase": f"callback {status}"}
        for p, status in zip(PLAIN[1:] * 2, ("queued", "sent", "delivered"), strict=False)
    ]
    return data


def test_the_report_has_a_row_per_feature_and_the_callback_front() -> None:
    text = report.render(with_features(feature_result()))

    section = text.split("### What optional features add per message")[1]
    for label in FEATURE_LABELS.values():
        assert label in section
    assert "| Template (send by template id and variables) | templated message | " in section
    assert "dynamodb.GetItem +1" in section
    assert "### Status callbacks: HTTP API or function URL" in section
    # Three callbacks at $1.00 per million requests.
    assert "**Cheaper: the function URL, by $3.00 per million messages**" in section
    assert "the most common counts are used" in section
    assert "`bench.feature_costs`" in text


def test_a_failed_feature_run_is_reported_and_the_rest_rendered() -> None:
    text = report.render(with_features({"error": "`python -m bench.feature_costs` failed"}))

    assert "Not measured in this run: `python -m bench.feature_costs` failed" in text
    assert "### Status callbacks: HTTP API or function URL" in text
    assert "## End to end on the local stack" in text


def test_with_no_callback_there_is_nothing_to_compare() -> None:
    data = base_results()
    data["feature_costs"] = feature_result()

    assert "No status callback in the steady state above" in report.render(data)


def test_a_report_without_feature_results_has_no_such_section() -> None:
    assert "What optional features add" not in report.render(base_results())
