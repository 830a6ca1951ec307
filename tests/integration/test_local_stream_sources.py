"""A function fed by a table's DynamoDB stream, as the local stack runs it (sms_local.stream_poller)
against the local moto server: Lambda's event, in stream order, in batches of BatchSize, a failed
batch retried from the same record and nothing skipped; and a canceled transaction, which no
stream reader ever sees (sms_local.aws_emulator)."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sms_local.aws_resources import LocalStack
from sms_local.stream_poller import (
    BatchFailed,
    StreamPoller,
    pump_all,
    start_stream_pollers,
    stop_stream_pollers,
)
from sms_local.template import FunctionSpec, StreamSource

CONSUMER = FunctionSpec(name="StreamConsumer", code_uri="in-test", handler="in_test.handler")
RECORD_FIELDS = {
    "eventID",
    "eventName",
    "eventVersion",
    "eventSource",
    "awsRegion",
    "dynamodb",
    "eventSourceARN",
}


@dataclass
class Table:
    name: str
    stream_arn: str
    client: Any

    def put(self, key: str, **attributes: int) -> None:
        item = {"pk": {"S": key}, **{n: {"N": str(v)} for n, v in attributes.items()}}
        self.client.put_item(TableName=self.name, Item=item)

    def get(self, key: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.client.get_item(
            TableName=self.name, Key={"pk": {"S": key}}, ConsistentRead=True
        ).get("Item")
        return found


@pytest.fixture
def table(aws: LocalStack) -> Iterator[Table]:
    name = f"stream-source-{uuid.uuid4().hex[:8]}"
    client = aws.client("dynamodb")
    description = client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    yield Table(name, description["LatestStreamArn"], client)
    client.delete_table(TableName=name)


@dataclass
class Consumer:
    """A tiny function: keeps every event it is given (each attempt), fails the next `failing`
    attempts, and answers what `respond` makes of the event."""

    events: list[dict[str, Any]] = field(default_factory=list)
    failing: int = 0
    respond: Callable[[dict[str, Any]], Any] = lambda event: None

    def __call__(self, function: FunctionSpec, event: dict[str, Any]) -> Any:
        assert function is CONSUMER
        self.events.append(event)
        if self.failing:
            self.failing -= 1
            raise RuntimeError("failing on purpose")
        return self.respond(event)

    def batches(self) -> list[list[str]]:
        """Each attempt's records, as "<eventName> <key>"."""
        return [
            [f"{r['eventName']} {r['dynamodb']['Keys']['pk']['S']}" for r in event["Records"]]
            for event in self.events
        ]


def stack_reading(aws: LocalStack, table: Table) -> LocalStack:
    """The shared stack, knowing the test's table as a template's table would be known."""
    return dataclasses.replace(
        aws, attributes={**aws.attributes, table.name: {"StreamArn": table.stream_arn}}
    )


def source(table: Table, **settings: Any) -> StreamSource:
    return StreamSource(
        function=CONSUMER.name,
        table=table.name,
        starting_position=settings.pop("starting_position", "TRIM_HORIZON"),
        **settings,
    )


def poller(aws: LocalStack, table: Table, consumer: Consumer, **settings: Any) -> StreamPoller:
    clock = settings.pop("clock", None)
    extra = {"clock": clock} if clock else {}
    return StreamPoller(
        stack_reading(aws, table), source(table, **settings), CONSUMER, invoke=consumer, **extra
    )


def test_records_come_in_stream_order_in_batches_of_batch_size(
    aws: LocalStack, table: Table
) -> None:
    consumer = Consumer()
    stream = poller(aws, table, consumer, batch_size=3)
    for n in range(5):
        table.put(f"k{n}", n=n)
    table.put("k0", n=10)
    table.client.delete_item(TableName=table.name, Key={"pk": {"S": "k1"}})

    assert stream.pump() == 7

    assert consumer.batches() == [
        ["INSERT k0", "INSERT k1", "INSERT k2"],
        ["INSERT k3", "INSERT k4", "MODIFY k0"],
        ["REMOVE k1"],
    ]
    records = [record for event in consumer.events for record in event["Records"]]
    sequence = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequence == sorted(sequence) and len(set(sequence)) == 7
    # nothing more to give, and nothing given twice
    assert stream.pump() == 0
    assert len(consumer.events) == 3


def test_each_record_is_the_one_lambda_sends(aws: LocalStack, table: Table) -> None:
    consumer = Consumer()
    stream = poller(aws, table, consumer)
    table.put("k", n=1)
    table.put("k", n=2)

    stream.pump()

    inserted, modified = consumer.events[0]["Records"]
    for record in (inserted, modified):
        assert set(record) == RECORD_FIELDS
        assert record["eventSource"] == "aws:dynamodb"
        assert record["eventSourceARN"] == table.stream_arn
        assert record["awsRegion"] == "us-east-1"
        assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)
        assert record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert record["dynamodb"]["Keys"] == {"pk": {"S": "k"}}
        assert isinstance(record["dynamodb"]["SizeBytes"], int)
    assert "OldImage" not in inserted["dynamodb"]
    assert inserted["dynamodb"]["NewImage"] == {"pk": {"S": "k"}, "n": {"N": "1"}}
    assert modified["dynamodb"]["OldImage"] == inserted["dynamodb"]["NewImage"]
    assert modified["dynamodb"]["NewImage"] == {"pk": {"S": "k"}, "n": {"N": "2"}}


def test_a_failed_batch_is_retried_from_the_same_record_and_nothing_is_skipped(
    aws: LocalStack, table: Table
) -> None:
    # Given a function that fails its first two attempts
    consumer = Consumer(failing=2)
    stream = poller(aws, table, consumer, batch_size=2)
    for n in range(3):
        table.put(f"k{n}")

    # When the stream is pumped: each failure is raised, and the batch kept
    with pytest.raises(BatchFailed) as first:
        stream.pump()
    table.put("k3")  # written while the batch waits for its retry
    with pytest.raises(BatchFailed):
        stream.pump()
    delivered = stream.pump()

    # Then the same batch came three times, and everything after it, in order, once
    assert isinstance(first.value.__cause__, RuntimeError)
    assert first.value.size == 2
    assert (
        first.value.sequence_number
        == consumer.events[0]["Records"][0]["dynamodb"]["SequenceNumber"]
    )
    assert consumer.events[0] == consumer.events[1] == consumer.events[2]
    assert consumer.batches() == [
        ["INSERT k0", "INSERT k1"],
        ["INSERT k0", "INSERT k1"],
        ["INSERT k0", "INSERT k1"],
        ["INSERT k2", "INSERT k3"],
    ]
    assert delivered == 4


def test_a_handler_that_changes_its_event_does_not_change_the_retry(
    aws: LocalStack, table: Table
) -> None:
    def spoil(event: dict[str, Any]) -> None:
        event["Records"].clear()
        raise RuntimeError("failing after spoiling the event")

    consumer = Consumer(respond=lambda event: spoil(event) if len(consumer.events) == 1 else None)
    stream = poller(aws, table, consumer)
    table.put("k")

    with pytest.raises(BatchFailed):
        stream.pump()
    stream.pump()

    assert consumer.batches() == [[], ["INSERT k"]]


def test_a_partial_batch_response_retries_from_the_first_failed_record(
    aws: LocalStack, table: Table
) -> None:
    # Given a function that reports, once, the second and third records of its batch failed
    def respond(event: dict[str, Any]) -> Any:
        if len(consumer.events) > 1:
            return {"batchItemFailures": []}
        numbers = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
        return {"batchItemFailures": [{"itemIdentifier": n} for n in reversed(numbers[1:3])]}

    consumer = Consumer(respond=respond)
    stream = poller(aws, table, consumer, batch_size=3, report_batch_item_failures=True)
    for n in range(4):
        table.put(f"k{n}")

    # When the stream is pumped twice
    with pytest.raises(BatchFailed) as failed:
        stream.pump()
    delivered = stream.pump()

    # Then the first record was done; the retry starts at the earliest failure
    assert consumer.batches() == [
        ["INSERT k0", "INSERT k1", "INSERT k2"],
        ["INSERT k1", "INSERT k2", "INSERT k3"],
    ]
    assert (
        failed.value.sequence_number
        == consumer.events[1]["Records"][0]["dynamodb"]["SequenceNumber"]
    )
    assert delivered == 3


def test_without_partial_batch_responses_what_the_function_returns_is_ignored(
    aws: LocalStack, table: Table
) -> None:
    consumer = Consumer(respond=lambda event: {"batchItemFailures": [{"itemIdentifier": "1"}]})
    stream = poller(aws, table, consumer)
    table.put("k")

    assert stream.pump() == 1
    assert stream.pump() == 0


def test_a_partial_batch_waits_for_the_batching_window_a_full_one_does_not(
    aws: LocalStack, table: Table
) -> None:
    now = [100.0]  # a clock the test moves by hand
    consumer = Consumer()
    stream = poller(
        aws,
        table,
        consumer,
        batch_size=3,
        maximum_batching_window_seconds=1,
        clock=lambda: now[0],
    )
    table.put("a")
    table.put("b")

    assert stream.poll_once() == 0  # two of three, read just now
    now[0] += 0.5
    assert stream.poll_once() == 0
    now[0] += 0.5
    assert stream.poll_once() == 2  # waited the window

    for key in ("c", "d", "e", "f"):
        table.put(key)
    assert stream.poll_once() == 3  # full at once; the fourth waits its window
    table.put("g")
    assert stream.pump() == 2  # pump() does not wait for windows

    assert consumer.batches() == [
        ["INSERT a", "INSERT b"],
        ["INSERT c", "INSERT d", "INSERT e"],
        ["INSERT f", "INSERT g"],
    ]


def test_latest_starts_with_the_records_written_after_the_poller_is_made(
    aws: LocalStack, table: Table
) -> None:
    table.put("before")
    consumer = Consumer()
    stream = poller(aws, table, consumer, starting_position="LATEST")
    table.put("after")

    stream.pump()

    assert consumer.batches() == [["INSERT after"]]


def test_the_running_poller_and_pump_all_give_each_record_once_in_order(
    aws: LocalStack, table: Table
) -> None:
    # Given a started poller, whose thread polls while the test writes and pumps
    consumer = Consumer()
    pollers = start_stream_pollers(
        stack_reading(aws, table), [source(table, batch_size=4)], {CONSUMER.name: CONSUMER},
        invoke=consumer,
    )  # fmt: skip
    try:
        keys = [f"k{n:02}" for n in range(30)]
        for key in keys:
            table.put(key)

        # When every running poller is pumped
        pump_all()

        # Then every record was given once, in order, whoever gave it (thread or pump)
        given = list(itertools.chain.from_iterable(consumer.batches()))
        assert given == [f"INSERT {key}" for key in keys]
        assert all(len(batch) <= 4 for batch in consumer.batches())
    finally:
        stop_stream_pollers(pollers)

    # A stopped poller is no longer pumped
    table.put("late")
    pump_all()
    assert "INSERT late" not in itertools.chain.from_iterable(consumer.batches())


def test_pollers_started_without_a_thread_move_only_when_pumped(
    aws: LocalStack, table: Table
) -> None:
    consumer = Consumer()
    pollers = start_stream_pollers(
        stack_reading(aws, table), [source(table)], {CONSUMER.name: CONSUMER},
        invoke=consumer, background=False,
    )  # fmt: skip
    try:
        table.put("k")
        assert consumer.events == []  # no thread: nothing runs the function but a pump

        pump_all()

        assert consumer.batches() == [["INSERT k"]]
    finally:
        stop_stream_pollers(pollers)


# --- a canceled transaction, which no stream reader sees ----------------------------------------


def transaction(table: Table, *, condition_holds: bool) -> list[dict[str, Any]]:
    """A new item, a condition on e (ALL_OLD), an update of a, a delete of b: moto goes on
    applying the actions after the condition that fails, then undoes them."""
    n = {":n": {"N": "1" if condition_holds else "2"}}
    return [
        {"Put": {"TableName": table.name, "Item": {"pk": {"S": "c"}, "n": {"N": "1"}}}},
        {"ConditionCheck": {"TableName": table.name, "Key": {"pk": {"S": "e"}},
                            "ConditionExpression": "n = :n", "ExpressionAttributeValues": n,
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
        {"Update": {"TableName": table.name, "Key": {"pk": {"S": "a"}},
                    "UpdateExpression": "SET n = n + :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        {"Delete": {"TableName": table.name, "Key": {"pk": {"S": "b"}}}},
    ]  # fmt: skip


def reader_past_three_items(aws: LocalStack, table: Table) -> tuple[Consumer, StreamPoller]:
    """Items a, b and e, and a stream reader that has taken their records."""
    for key in ("a", "b", "e"):
        table.put(key, n=1)
    consumer = Consumer()
    stream = poller(aws, table, consumer)
    stream.pump()
    return consumer, stream


def test_a_canceled_transaction_changes_nothing_and_no_stream_reader_sees_it(
    aws: LocalStack, table: Table
) -> None:
    # Given three items, and a stream reader that has taken their records
    consumer, stream = reader_past_three_items(aws, table)
    before = {key: table.get(key) for key in "abce"}

    # When a transaction's condition fails
    with pytest.raises(ClientError) as canceled:
        table.client.transact_write_items(TransactItems=transaction(table, condition_holds=False))

    # Then DynamoDB's answer says which action failed, with the item as it is
    assert canceled.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = canceled.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed", "None", "None"]
    assert reasons[1]["Item"] == before["e"]
    # and nothing changed: no item, and no record for the reader (which keeps reading after it)
    assert {key: table.get(key) for key in "abce"} == before
    table.put("after", n=1)
    stream.pump()
    assert consumer.batches()[1:] == [["INSERT after"]]


def test_a_committed_transaction_applies_every_action_and_streams_them_in_order(
    aws: LocalStack, table: Table
) -> None:
    consumer, stream = reader_past_three_items(aws, table)

    table.client.transact_write_items(TransactItems=transaction(table, condition_holds=True))

    assert table.get("c") == {"pk": {"S": "c"}, "n": {"N": "1"}}
    assert table.get("a") == {"pk": {"S": "a"}, "n": {"N": "2"}}
    assert table.get("b") is None
    stream.pump()
    assert consumer.batches()[1:] == [["INSERT c", "MODIFY a", "REMOVE b"]]
