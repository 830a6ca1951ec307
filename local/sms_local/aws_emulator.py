"""AWS on this machine: moto in server mode on 127.0.0.1, made as atomic as DynamoDB.

DynamoDB applies the condition and the update of one item as one step, and no read sees half of
a write. moto's server serves requests on several threads and its DynamoDB backend checks a
condition and applies an update without any isolation, so two conditional writes to one item can
both pass their condition, and two list_append updates can lose one of the two entries: states
that AWS never produces, and that would make every race test (and every race in the local stack)
a test of moto instead of our code. So every DynamoDB and DynamoDB Streams request runs alone,
behind one lock, from the parsing of its body to the last byte of its answer. That is stricter
than DynamoDB (which isolates per item, not per table), which no caller can tell apart: each
request's outcome is one DynamoDB could have produced. The other services stay concurrent.

moto's TransactWriteItems also deep-copies every table a transaction names, to put the copy in
the table's place if the transaction is canceled: with a messages table of thousands of items
every transaction would cost as much as the table, and a stream reader that held an iterator (the
outbox pipe) went on reading the discarded table's stream, so it saw the canceled transaction's
records and nothing written after. `install_item_snapshots` makes a transaction keep, and on
cancellation put back in place, only the items it names (and take the stream records it added off
the same stream), with moto's own code doing everything else; see `snapshot_transaction`.

SQS refuses a message body holding a character outside XML's (U+0009, U+000A, U+000D, U+0020 to
U+D7FF, U+E000 to U+FFFD, U+10000 and up) with InvalidMessageContents; moto takes any. So does
the emulator now (`install_sqs_body_check`), so a body that AWS would refuse fails here too.

moto spends most of its processor time serializing DynamoDB's answers through a generic,
model-driven walk that looks every member of every AttributeValue up by several names; the
local stack's throughput is bound by it. `install_fast_serializer` (sms_local.moto_serializer)
makes those answers cheap, byte for byte the same.

The tests, the local stack and the benchmarks all start AWS through `start_local_aws`, so none of
them can forget this. `serialize_dynamodb=False` exists for one reader: the benchmark that
measures what the lock costs, against the same server without it.
"""

from __future__ import annotations

import copy
import functools
import io
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from moto import backends
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.exceptions import ResourceNotFoundException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import StreamShard, Table
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.sqs.exceptions import SQSException
from moto.sqs.models import SQSBackend
from werkzeug.serving import BaseWSGIServer, make_server

from sms_local.moto_serializer import install_fast_serializer

# moto's backend names (the Flask app's `service`) whose data DynamoDB keeps per item.
SERIALIZED_BACKENDS = frozenset({"dynamodb", "dynamodb_v20111205", "dynamodbstreams"})

StartResponse = Callable[..., Any]


class AtomicDynamoDBDispatcher(DomainDispatcherApplication):
    """moto's WSGI dispatcher, running each DynamoDB request to completion before the next."""

    def __init__(self, serialized_backends: frozenset[str] = SERIALIZED_BACKENDS) -> None:
        super().__init__(create_backend_app)
        self.serialized_backends = serialized_backends
        self.dynamodb_lock = threading.Lock()

    def get_backend_for_host(self, host: str | None) -> Any:
        """moto's own answer, with its list of backends read once: moto lists its package
        directory (a listdir and an isdir per service) on every request to ask whether the Host
        names a backend, among the largest self-time entries in a profile of the end-to-end
        benchmark."""
        if host is None:
            return None
        if host == "moto_api" or host in _moto_modules():
            return host
        for backend, pattern in self.backend_url_patterns:
            if pattern.match(f"http://{host}"):
                return backend
        return None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        app = self.get_application(environ)
        if getattr(app, "service", None) not in self.serialized_backends:
            result: Iterable[bytes] = app(environ, start_response)
            return result
        _buffer_body(environ)  # a slow sender must not hold the lock while its body arrives
        with self.dynamodb_lock:
            # The body is produced inside the lock too: a lazily built answer must not be read
            # while the next write changes the item under it.
            answer = app(environ, start_response)
            try:
                return [b"".join(answer)]
            finally:
                close = getattr(answer, "close", None)
                if close is not None:
                    close()


@functools.cache
def _moto_modules() -> frozenset[str]:
    return frozenset(backends.list_of_moto_modules())


def _buffer_body(environ: dict[str, Any]) -> None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return  # moto answers the malformed request as it would have
    if length > 0:
        environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length))


class LocalAws:
    """moto's server on a free port of 127.0.0.1, on a thread of this process."""

    def __init__(self, *, serialize_dynamodb: bool = True) -> None:
        self.dispatcher = AtomicDynamoDBDispatcher(
            SERIALIZED_BACKENDS if serialize_dynamodb else frozenset()
        )
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self.dispatcher, threaded=True, request_handler=MotoRequestHandler
        )
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-aws", daemon=True
        )

    def start(self) -> LocalAws:
        install_item_snapshots()
        install_sqs_body_check()
        install_fast_serializer()
        # moto keeps its backends in module globals, not in the server: a server started after
        # another in the same process (mutation testing runs the suite several times in one
        # process) would find the last one's tables. A new server starts empty, as a new
        # account would.
        moto_api_backend.reset()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


def start_local_aws(*, serialize_dynamodb: bool = True) -> LocalAws:
    """Start moto on 127.0.0.1 (a free port) with DynamoDB's per-item atomicity; see the module."""
    return LocalAws(serialize_dynamodb=serialize_dynamodb).start()


# --- TransactWriteItems: copy what a transaction touches, not whole tables -----------------------


@dataclass
class _ItemBefore:
    """One item a transaction names, as it was before the transaction."""

    table: Table
    hash_key: DynamoType
    range_key: DynamoType | None
    item: Item | None  # a deep copy; None when there was no item
    partition_existed: bool  # tables with a sort key: whether its partition's dict existed


@dataclass
class _TransactionSnapshot:
    items: list[_ItemBefore]
    stream_lengths: list[tuple[StreamShard, int]]

    def restore(self) -> None:
        """Everything as before the transaction: each item named put back (or removed, if it did
        not exist), and the records the transaction added to the streams taken off again, from
        the very shards their readers hold iterators on."""
        for before in self.items:
            # moto types a table's items loosely: {hash: Item}, or {hash: {range: Item}}.
            items: dict[Any, Any] = before.table.items
            if before.range_key is None:
                if before.item is None:
                    items.pop(before.hash_key, None)
                else:
                    items[before.hash_key] = before.item
                continue
            if before.item is not None:
                items[before.hash_key][before.range_key] = before.item
            elif before.hash_key in items:
                items[before.hash_key].pop(before.range_key, None)
                # moto's reads create a partition's dict as they look in it: drop it again
                if not before.partition_existed and not items[before.hash_key]:
                    del items[before.hash_key]
        for shard, length in self.stream_lengths:
            del shard.items[length:]


def snapshot_transaction(
    backend: DynamoDBBackend, transact_items: list[dict[str, Any]]
) -> _TransactionSnapshot:
    """A copy of each item the transaction's actions name, and of each named table's stream
    length: all a canceled transaction can have changed (moto writes only the items named)."""
    items: dict[tuple[str, DynamoType, DynamoType | None], _ItemBefore] = {}
    shards: dict[str, tuple[StreamShard, int]] = {}
    for action in transact_items:
        for kind, operation in action.items():
            try:
                table = backend.get_table(operation.get("TableName", ""))  # a name or an ARN
            except ResourceNotFoundException:
                continue  # moto cancels the action without writing
            if table.stream_shard is not None:
                shards.setdefault(table.name, (table.stream_shard, len(table.stream_shard.items)))
            key = _primary_key(table, operation.get("Item" if kind == "Put" else "Key"))
            if key is not None and (table.name, *key) not in items:
                items[(table.name, *key)] = _item_before(table, *key)
    return _TransactionSnapshot(list(items.values()), list(shards.values()))


def _primary_key(table: Table, attributes: Any) -> tuple[DynamoType, DynamoType | None] | None:
    """The key an action writes, the way moto reads it; None when it names no whole key (moto
    then fails the action before writing anything)."""
    if not isinstance(attributes, dict) or table.hash_key_attr not in attributes:
        return None
    if table.range_key_attr is None:
        return DynamoType(attributes[table.hash_key_attr]), None
    if table.range_key_attr not in attributes:
        return None
    return (
        DynamoType(attributes[table.hash_key_attr]),
        DynamoType(attributes[table.range_key_attr]),
    )


def _item_before(table: Table, hash_key: DynamoType, range_key: DynamoType | None) -> _ItemBefore:
    # .get, not moto's get_item: indexing its defaultdict would create the partition
    stored: Any = table.items.get(hash_key)
    if range_key is None:
        item, partition_existed = stored, True
    else:
        item, partition_existed = (stored or {}).get(range_key), stored is not None
    return _ItemBefore(table, hash_key, range_key, copy.deepcopy(item), partition_existed)


# While set (on the thread running a transaction under a snapshot), moto's whole-table backups
# are not made: deep-copying a Table in moto's DynamoDB backend gives the table itself, so its
# backup costs nothing and its rollback (assigning the "backup" back) changes nothing.
_tables_shared: ContextVar[bool] = ContextVar("sms_local_transaction_tables_shared", default=False)


class _CopyWithoutTables:
    """The `copy` module as moto's DynamoDB backend module sees it once installed."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        if _tables_shared.get() and isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


@contextmanager
def _tables_not_copied() -> Iterator[None]:
    token = _tables_shared.set(True)
    try:
        yield
    finally:
        _tables_shared.reset(token)


_moto_transact_write_items = DynamoDBBackend.transact_write_items
_install_lock = threading.Lock()


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """moto's TransactWriteItems (its checks, its CancellationReasons), with the items it names
    as the only backup. A transaction that raises, for whatever reason, is undone whole: moto's
    own rollback misses the errors it raises outside its try (a second action in one entry)."""
    snapshot = snapshot_transaction(self, transact_items)
    with _tables_not_copied():
        try:
            _moto_transact_write_items(self, transact_items)
        except BaseException:
            snapshot.restore()
            raise


def install_item_snapshots() -> None:
    """Make moto's TransactWriteItems back up only the items it touches. Idempotent; for the
    whole process, in-process moto (mock_aws) included, which then behaves as before but for
    the cost (and for canceled transactions' stream records, which no reader sees any more)."""
    with _install_lock:
        if DynamoDBBackend.transact_write_items is _transact_write_items:
            return
        dynamodb_models.copy = _CopyWithoutTables()  # type: ignore[attr-defined,assignment]
        DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]


class InvalidMessageContents(SQSException):
    def __init__(self, character: str) -> None:
        super().__init__(
            "InvalidMessageContents",
            f"Invalid binary character '#x{ord(character):X}' was found in the message body, "
            "the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to "
            "#xFFFD | #x10000 to #x10FFFF",
        )


def first_character_sqs_refuses(body: str) -> str | None:
    for character in body:
        code = ord(character)
        if not (
            code in (0x9, 0xA, 0xD)
            or 0x20 <= code <= 0xD7FF
            or 0xE000 <= code <= 0xFFFD
            or code >= 0x10000
        ):
            return character
    return None


_moto_validate_message = SQSBackend._validate_message


def _validate_message(
    self: SQSBackend, queue: Any, message_body: str, *args: Any, **kwargs: Any
) -> None:
    refused = first_character_sqs_refuses(message_body)
    if refused is not None:
        raise InvalidMessageContents(refused)
    _moto_validate_message(self, queue, message_body, *args, **kwargs)


def install_sqs_body_check() -> None:
    """Make moto refuse the message bodies SQS refuses. Idempotent; for the whole process."""
    with _install_lock:
        if SQSBackend._validate_message is not _validate_message:
            SQSBackend._validate_message = _validate_message  # type: ignore[method-assign]
