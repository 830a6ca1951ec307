"""The local DynamoDB is as atomic as DynamoDB: a condition and the write it guards are one step
for every data operation, and no read sees half a write. Every race test in this suite (and every
race in the local stack) relies on this; moto's server alone does not give it."""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sms_local.aws_resources import LocalStack

THREADS = 8
ATTEMPTS_PER_THREAD = 40
CAP = 100  # fewer than THREADS * ATTEMPTS_PER_THREAD, so conditions fail too


@pytest.fixture
def table(aws: LocalStack) -> Iterator[str]:
    name = f"atomicity-{uuid.uuid4().hex[:8]}"
    client = aws.client("dynamodb")
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    client.delete_table(TableName=name)


@pytest.fixture(autouse=True)
def _switch_threads_often() -> Iterator[None]:
    # The server runs in this process: switching threads every microsecond instead of every
    # 5 ms makes interleavings inside one request likely, so a missing lock shows on every run.
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def race(aws: LocalStack, attempt: Callable[[Any, str], bool]) -> tuple[int, int]:
    """THREADS threads, each with its own client, start together and make ATTEMPTS_PER_THREAD
    attempts; returns (attempts whose condition held, attempts whose condition failed)."""
    start = threading.Barrier(THREADS)
    outcomes: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(thread: int) -> None:
        client = aws.client("dynamodb")
        start.wait()
        try:
            for n in range(ATTEMPTS_PER_THREAD):
                won = attempt(client, f"{thread}-{n}")
                with lock:
                    outcomes.append(won)
        except BaseException as exc:  # reported on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return outcomes.count(True), outcomes.count(False)


def applied(write: Callable[..., Any], **request: Any) -> bool:
    """Makes one conditional write: True when it applied, False when its condition failed."""
    try:
        write(**request)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        reasons = error.response.get("CancellationReasons", [])
        if code == "ConditionalCheckFailedException" or (
            code == "TransactionCanceledException"
            and any(r.get("Code") == "ConditionalCheckFailed" for r in reasons)
        ):
            return False
        raise
    return True


def test_conditional_increments_of_one_counter_are_exact(aws: LocalStack, table: str) -> None:
    # Given a counter that may grow to CAP, each step also appending who made it
    def increment(client: Any, who: str) -> bool:
        return applied(
            client.update_item,
            TableName=table,
            Key={"pk": {"S": "counter"}},
            UpdateExpression="SET n = if_not_exists(n, :zero) + :one, "
            "steps = list_append(if_not_exists(steps, :empty), :me)",
            ConditionExpression="attribute_not_exists(n) OR n < :cap",
            ExpressionAttributeValues={
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                ":cap": {"N": str(CAP)},
                ":empty": {"L": []},
                ":me": {"L": [{"S": who}]},
            },
        )

    # When eight threads race to increment it
    won, refused = race(aws, increment)

    # Then exactly CAP increments applied, every other one was refused, and none was lost
    item = aws.client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": "counter"}}, ConsistentRead=True
    )["Item"]
    steps = [step["S"] for step in item["steps"]["L"]]
    assert (won, refused) == (CAP, THREADS * ATTEMPTS_PER_THREAD - CAP)
    assert int(item["n"]["N"]) == CAP
    assert len(steps) == len(set(steps)) == CAP


def test_a_set_once_attribute_has_exactly_one_winner(aws: LocalStack, table: str) -> None:
    def claim(client: Any, who: str) -> bool:
        return applied(
            client.update_item,
            TableName=table,
            Key={"pk": {"S": f"claim-{who.split('-')[1]}"}},  # one item per round
            UpdateExpression="SET claimed_by = :me",
            ConditionExpression="attribute_not_exists(claimed_by)",
            ExpressionAttributeValues={":me": {"S": who}},
        )

    won, refused = race(aws, claim)

    assert (won, refused) == (ATTEMPTS_PER_THREAD, (THREADS - 1) * ATTEMPTS_PER_THREAD)


def test_transactions_and_batches_are_all_or_nothing_to_readers(
    aws: LocalStack, table: str
) -> None:
    # Given two counters that a transaction moves together, up to CAP, while batch writes put
    # items beside them
    reader_saw: list[tuple[int, int]] = []
    stop_reading = threading.Event()

    def move_both(client: Any, who: str) -> bool:
        client.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": {"pk": {"S": f"batch-{who}"}}}}]}
        )
        update: dict[str, Any] = {
            "TableName": table,
            "UpdateExpression": "SET n = if_not_exists(n, :zero) + :one",
            "ExpressionAttributeValues": {":zero": {"N": "0"}, ":one": {"N": "1"}},
        }
        return applied(
            client.transact_write_items,
            TransactItems=[
                {
                    "Update": {
                        **update,
                        "Key": {"pk": {"S": "a"}},
                        "ConditionExpression": "attribute_not_exists(n) OR n < :cap",
                        "ExpressionAttributeValues": {
                            **update["ExpressionAttributeValues"],
                            ":cap": {"N": str(CAP)},
                        },
                    }
                },
                {"Update": {**update, "Key": {"pk": {"S": "b"}}}},
            ],
        )

    reader_errors: list[BaseException] = []

    def read_both() -> None:
        client = aws.client("dynamodb")
        try:
            while not reader_saw or not stop_reading.is_set():
                items = client.transact_get_items(
                    TransactItems=[
                        {"Get": {"TableName": table, "Key": {"pk": {"S": key}}}} for key in "ab"
                    ]
                )["Responses"]
                counts = [int(r["Item"]["n"]["N"]) if "Item" in r else 0 for r in items]
                reader_saw.append((counts[0], counts[1]))
        except BaseException as exc:  # reported on the test's thread
            reader_errors.append(exc)

    reader = threading.Thread(target=read_both)
    reader.start()

    # When eight threads race
    try:
        won, refused = race(aws, move_both)
    finally:
        stop_reading.set()
        reader.join()

    # Then each transaction applied whole or not at all, and no read saw one without the other
    client = aws.client("dynamodb")
    final = [
        int(client.get_item(TableName=table, Key={"pk": {"S": key}})["Item"]["n"]["N"])
        for key in "ab"
    ]
    assert (won, refused) == (CAP, THREADS * ATTEMPTS_PER_THREAD - CAP)
    assert final == [CAP, CAP]
    assert reader_errors == []
    assert reader_saw and all(a == b for a, b in reader_saw)
    batch_items = client.scan(TableName=table, Select="COUNT")["Count"] - 2
    assert batch_items == THREADS * ATTEMPTS_PER_THREAD
