"""One place starts moto: sms_local.aws_emulator, which makes its DynamoDB atomic per item (and
its transactions as cheap as the items they name). A test, the local stack or a benchmark that
started moto's server itself would race on storage that AWS never lets race."""

from __future__ import annotations

import contextlib
import copy
import re
from pathlib import Path
from typing import Any

import pytest
from moto.dynamodb.exceptions import TransactionCanceledException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import StreamShard, Table

from sms_local.aws_emulator import install_item_snapshots
from sms_local.template import PROJECT_ROOT

EMULATOR = PROJECT_ROOT / "local" / "sms_local" / "aws_emulator.py"
# moto's own ways to start a server: its class, its module and its command-line entry point.
STARTS_MOTO = re.compile(r"ThreadedMotoServer|moto\.server|moto\.moto_server|moto_server\b")
SOURCE_FOLDERS = ("bench", "functions", "layers", "local", "tests")


def test_only_the_emulator_module_starts_moto() -> None:
    offenders = [
        str(path.relative_to(PROJECT_ROOT))
        for folder in SOURCE_FOLDERS
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))
        if path not in (EMULATOR, Path(__file__).resolve()) and STARTS_MOTO.search(path.read_text())
    ]
    assert offenders == []
    assert STARTS_MOTO.search(EMULATOR.read_text())


# --- what the emulator changes in moto: a transaction backs up only the items it names ----------
# (in moto's backend itself, in this process; over the wire, with a stream reader:
# tests/integration/test_local_stream_sources.py)

ACCOUNT = "123456789012"
STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def backend_with_tables() -> DynamoDBBackend:
    """moto's DynamoDB backend with the emulator's transactions: `keyed` has a partition key,
    `sorted` a partition and a sort key; both have a stream."""
    install_item_snapshots()
    backend = DynamoDBBackend("us-east-1", ACCOUNT)
    for name, keys in (("keyed", ("pk",)), ("sorted", ("pk", "sk"))):
        backend.create_table(
            name,
            schema=[
                {"AttributeName": key, "KeyType": kind}
                for key, kind in zip(keys, ("HASH", "RANGE"), strict=False)
            ],
            throughput=None,
            attr=[{"AttributeName": key, "AttributeType": "S"} for key in keys],
            global_indexes=None,
            indexes=None,
            streams=STREAM,
            billing_mode="PAY_PER_REQUEST",
            sse_specification=None,
            tags=[],
            deletion_protection_enabled=False,
            warm_throughput=None,
        )
    return backend


def fill(backend: DynamoDBBackend, items: int) -> None:
    for n in range(items):
        backend.put_item("keyed", {"pk": {"S": f"filler-{n}"}, "n": {"N": "0"}})
        backend.put_item("sorted", {"pk": {"S": "filler"}, "sk": {"S": f"{n}"}, "n": {"N": "0"}})


def state(backend: DynamoDBBackend) -> dict[str, Any]:
    """Everything a transaction could change: every item, each table's partitions (moto keeps a
    dict per partition of a table with a sort key) and stream."""
    return {
        name: {
            "items": [item.to_json() for item in table.all_items()],
            "partitions": sorted(str(key) for key in table.items),
            "stream": [record.to_json() for record in stream_of(table).items],
        }
        for name, table in backend.tables.items()
    }


def stream_of(table: Table) -> StreamShard:
    assert table.stream_shard is not None
    return table.stream_shard


def seeded() -> DynamoDBBackend:
    backend = backend_with_tables()
    fill(backend, 3)
    backend.put_item("keyed", {"pk": {"S": "a"}, "n": {"N": "1"}})
    backend.put_item("keyed", {"pk": {"S": "b"}, "n": {"N": "1"}})
    backend.put_item("sorted", {"pk": {"S": "p"}, "sk": {"S": "1"}, "n": {"N": "1"}})
    return backend


def writes(condition_on_b: str) -> list[dict[str, Any]]:
    """One write of every kind on each table (new items, among them a new partition, and
    existing ones), then a condition on b: it decides whether the transaction commits."""
    one = {":one": {"N": "1"}}
    return [
        {"Put": {"TableName": "keyed", "Item": {"pk": {"S": "new"}}}},
        {"Update": {"TableName": "keyed", "Key": {"pk": {"S": "a"}},
                    "UpdateExpression": "SET n = n + :one", "ExpressionAttributeValues": one}},
        {"Put": {"TableName": "sorted", "Item": {"pk": {"S": "new"}, "sk": {"S": "1"}}}},
        {"Update": {"TableName": "sorted", "Key": {"pk": {"S": "p"}, "sk": {"S": "2"}},
                    "UpdateExpression": "SET n = :one", "ExpressionAttributeValues": one}},
        {"Delete": {"TableName": "sorted", "Key": {"pk": {"S": "p"}, "sk": {"S": "1"}}}},
        {"ConditionCheck": {"TableName": "keyed", "Key": {"pk": {"S": "b"}},
                            "ConditionExpression": condition_on_b,
                            "ExpressionAttributeValues": one}},
    ]  # fmt: skip


def test_a_canceled_transaction_leaves_every_item_partition_and_stream_as_before() -> None:
    backend = seeded()
    before = state(backend)

    with pytest.raises(TransactionCanceledException):
        backend.transact_write_items(writes(condition_on_b="n > :one"))

    assert state(backend) == before


def test_a_committed_transaction_applies_every_write() -> None:
    backend = seeded()
    before = state(backend)

    backend.transact_write_items(writes(condition_on_b="n = :one"))

    def item(table: str, *key: str) -> dict[str, Any] | None:
        names = ("pk", "sk")[: len(key)]
        found = backend.get_item(table, {n: {"S": k} for n, k in zip(names, key, strict=True)})
        return None if found is None else dict(found.to_json()["Attributes"])

    assert item("keyed", "new") == {"pk": {"S": "new"}}
    assert item("keyed", "a") == {"pk": {"S": "a"}, "n": {"N": "2"}}
    assert item("sorted", "new", "1") == {"pk": {"S": "new"}, "sk": {"S": "1"}}
    assert item("sorted", "p", "2") == {"pk": {"S": "p"}, "sk": {"S": "2"}, "n": {"N": "1"}}
    assert item("sorted", "p", "1") is None
    after = state(backend)
    for table in ("keyed", "sorted"):
        assert len(after[table]["stream"]) > len(before[table]["stream"])


def test_moto_s_own_table_backups_are_not_made() -> None:
    # moto's transaction deep-copies each table it names; the emulator's makes it share them
    backend = seeded()
    tables = dict(backend.tables)

    with pytest.raises(TransactionCanceledException):
        backend.transact_write_items(writes(condition_on_b="n > :one"))

    assert all(backend.tables[name] is table for name, table in tables.items())


@pytest.mark.parametrize("condition_on_b", ["n = :one", "n > :one"], ids=["commits", "cancels"])
def test_what_a_transaction_copies_does_not_grow_with_the_tables(
    condition_on_b: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    copied: list[type] = []
    deepcopy = copy.deepcopy

    def counting(value: Any, memo: Any = None) -> Any:
        copied.append(type(value))
        return deepcopy(value, memo)

    def copies_of_one_transaction(filler_items: int) -> list[type]:
        backend = seeded()
        fill(backend, filler_items)
        copied.clear()
        with contextlib.suppress(TransactionCanceledException):
            backend.transact_write_items(writes(condition_on_b))
        return list(copied)

    # copy.py deep-copies nested objects through its module's `deepcopy`: every object counts
    monkeypatch.setattr(copy, "deepcopy", counting)
    small, large = copies_of_one_transaction(10), copies_of_one_transaction(2000)

    assert small == large
    assert Table not in small
