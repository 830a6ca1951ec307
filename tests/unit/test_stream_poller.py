"""A function's DynamoDB stream event source, read from a template as SAM declares it, and the
partial batch response of a function fed by a stream. The poller itself runs against the local
moto server: tests/integration/test_local_stream_sources.py."""

from __future__ import annotations

from typing import Any

import pytest

from sms_local import template as tpl
from sms_local.stream_poller import records_before_checkpoint
from sms_local.template import StreamSource

# As the usage function declares its source in template.yaml.
USAGE_EVENT: dict[str, Any] = {
    "Type": "DynamoDB",
    "Properties": {
        "Stream": {"Fn::GetAtt": ["MessagesTable", "StreamArn"]},
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": 100,
        "MaximumBatchingWindowInSeconds": 1,
        "MaximumRetryAttempts": -1,
        "BisectBatchOnFunctionError": False,
    },
}


def template_with(**events: dict[str, Any]) -> dict[str, Any]:
    return {
        "Resources": {
            "MessagesTable": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
            "HandoffQueue": {"Type": "AWS::SQS::Queue"},
            "UsageFunction": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "functions/message_stream/",
                    "Handler": "app.handler",
                    "Events": events,
                },
            },
        }
    }


def with_properties(**properties: Any) -> dict[str, Any]:
    return {"Type": "DynamoDB", "Properties": {**USAGE_EVENT["Properties"], **properties}}


def test_a_dynamodb_event_is_a_stream_source_of_its_function() -> None:
    assert tpl.stream_sources(template_with(MessageStream=USAGE_EVENT)) == [
        StreamSource(
            function="UsageFunction",
            table="MessagesTable",
            starting_position="TRIM_HORIZON",
            batch_size=100,
            maximum_batching_window_seconds=1.0,
            report_batch_item_failures=False,
        )
    ]


def test_lambda_s_defaults_apply_to_what_the_event_leaves_out() -> None:
    minimal = {
        "Type": "DynamoDB",
        "Properties": {
            "Stream": {"Fn::GetAtt": ["MessagesTable", "StreamArn"]},
            "StartingPosition": "LATEST",
        },
    }

    (source,) = tpl.stream_sources(template_with(Minimal=minimal))

    assert (source.batch_size, source.maximum_batching_window_seconds) == (100, 0)
    assert source.starting_position == "LATEST"
    assert source.report_batch_item_failures is False


def test_partial_batch_responses_are_read_from_function_response_types() -> None:
    event = with_properties(FunctionResponseTypes=["ReportBatchItemFailures"])

    (source,) = tpl.stream_sources(template_with(MessageStream=event))

    assert source.report_batch_item_failures is True


def test_other_event_types_and_disabled_sources_are_not_stream_sources() -> None:
    sqs = {
        "Type": "SQS",
        "Properties": {"Queue": {"Fn::GetAtt": ["HandoffQueue", "Arn"]}, "BatchSize": 10},
    }
    template = template_with(Queue=sqs, Off=with_properties(Enabled=False))

    assert tpl.stream_sources(template) == []
    assert [s.function for s in tpl.sqs_sources(template)] == ["UsageFunction"]


def test_the_project_template_s_stream_sources_are_all_runnable_here() -> None:
    # Parsing refuses what the local stack cannot run as AWS does; the template must parse.
    sources = tpl.stream_sources(tpl.project_template())

    resources = tpl.project_template()["Resources"]
    for source in sources:
        assert resources[source.table]["Properties"]["StreamSpecification"]


@pytest.mark.parametrize(
    ("properties", "refused"),
    [
        ({"MaximumRetryAttempts": 3}, "MaximumRetryAttempts"),
        ({"MaximumRecordAgeInSeconds": 60}, "MaximumRecordAgeInSeconds"),
        ({"BisectBatchOnFunctionError": True}, "BisectBatchOnFunctionError"),
        ({"ParallelizationFactor": 2}, "ParallelizationFactor"),
        ({"FilterCriteria": {"Filters": []}}, "FilterCriteria"),
        ({"DestinationConfig": {"OnFailure": {}}}, "DestinationConfig"),
        ({"TumblingWindowInSeconds": 60}, "TumblingWindowInSeconds"),
        ({"StartingPosition": "AT_TIMESTAMP"}, "TRIM_HORIZON or LATEST"),
        ({"FunctionResponseTypes": ["Other"]}, "FunctionResponseTypes"),
        ({"Stream": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x"}, "StreamArn"),
        ({"Stream": {"Fn::GetAtt": ["MessagesTable", "Arn"]}}, "StreamArn"),
    ],
)
def test_what_the_local_stack_would_run_differently_from_aws_is_refused(
    properties: dict[str, Any], refused: str
) -> None:
    template = template_with(MessageStream=with_properties(**properties))

    with pytest.raises(ValueError, match=refused) as raised:
        tpl.stream_sources(template)

    assert "UsageFunction.Events.MessageStream" in str(raised.value)


# --- partial batch responses (ReportBatchItemFailures) ------------------------------------------


def batch(*sequence_numbers: str) -> list[dict[str, Any]]:
    return [{"dynamodb": {"SequenceNumber": number}} for number in sequence_numbers]


def failures(*identifiers: Any) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": i} for i in identifiers]}


@pytest.mark.parametrize("result", [None, {}, {"batchItemFailures": []}, "ok", failures()])
def test_a_response_reporting_no_failure_lets_the_whole_batch_through(result: Any) -> None:
    assert records_before_checkpoint(batch("11", "12", "13"), result) == 3


def test_the_records_before_the_earliest_failure_reported_are_done() -> None:
    records = batch("11", "12", "13", "14")

    assert records_before_checkpoint(records, failures("14", "12")) == 1
    assert records_before_checkpoint(records, failures("11")) == 0


@pytest.mark.parametrize(
    "result",
    [
        failures(""),
        failures(None),
        failures("99"),
        {"batchItemFailures": [{"id": "12"}]},
        {"batchItemFailures": ["12"]},
    ],
)
def test_a_failure_that_names_no_record_of_the_batch_fails_it_whole(result: Any) -> None:
    assert records_before_checkpoint(batch("11", "12", "13"), result) == 0
