"""Feeds a table's DynamoDB stream to a function of template.yaml (a SAM event of Type DynamoDB)
as Lambda's event source mapping does: one shard's records per invocation, in stream order, up to
BatchSize of them, sent as soon as a batch is full or its oldest record has waited
MaximumBatchingWindowInSeconds. A batch the function fails (it raises) is retried, from the same
first record, until it succeeds: the poller never skips a record, never reorders them, and only
moves on past a batch once the function has taken it. With ReportBatchItemFailures, the records
before the first one reported failed are done (Lambda's checkpoint) and the retry starts there.

The stream is moto's DynamoDB Streams API, read through boto3 like any other consumer; each
poller keeps its own iterators, as each mapping does on AWS, beside the pipes reading the same
stream. Its reads are AWS's own calls, not the function's (they run outside `iam.running_as`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sms_local.aws_resources import REGION, LocalStack
from sms_local.lambda_runtime import invoke as invoke_in_process
from sms_local.pipe_runner import as_stream_event as record_as_event
from sms_local.template import FunctionSpec, StreamSource

log = logging.getLogger("sms_local.streams")

# Lambda polls a DynamoDB stream's shards about four times a second.
POLL_SECONDS = 0.25
# How long a failed batch waits before it is tried again: short, as Lambda's first retries are.
RETRY_PAUSE_SECONDS = 1.0
# GetRecords' largest page.
_PAGE = 1000

Invoke = Callable[[FunctionSpec, dict[str, Any]], Any]


class BatchFailed(Exception):
    """The function failed a batch (it raised, or reported a failed record): the poller keeps the
    batch, from its first record not done, and tries it again before anything after it."""

    def __init__(self, function: str, first_record: dict[str, Any], size: int) -> None:
        self.function = function
        self.sequence_number = str(first_record["dynamodb"]["SequenceNumber"])
        self.size = size
        super().__init__(
            f"{function} failed a batch of {size} stream records from sequence number "
            f"{self.sequence_number}; it is retried"
        )


@dataclass
class _Shard:
    """Where a shard is read up to, and the records read from it that the function has not
    taken yet, oldest first: they go to the function before anything read after them."""

    shard_id: str
    iterator: str | None
    unprocessed: list[dict[str, Any]] = field(default_factory=list)
    # When the oldest unprocessed record was read: the batching window runs from then.
    waiting_since: float = 0.0


class StreamPoller:
    """One function's event source mapping on one table's stream.

    `invoke` runs the function (the local Lambda runtime; a test passes a handler of its own) and
    `clock` is what the batching window is measured with (a test passes a clock it moves by hand).
    The shards' iterators are taken when the poller is made: the mapping exists from then, so
    LATEST means the records written after it.
    """

    def __init__(
        self,
        stack: LocalStack,
        source: StreamSource,
        function: FunctionSpec,
        *,
        invoke: Invoke = invoke_in_process,
        poll_seconds: float = POLL_SECONDS,
        retry_pause_seconds: float = RETRY_PAUSE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._function = function
        self._invoke = invoke
        self._poll_seconds = poll_seconds
        self._retry_pause_seconds = retry_pause_seconds
        self._clock = clock
        self._streams = stack.client("dynamodbstreams")
        self.stream_arn = stack.attributes[source.table]["StreamArn"]
        self._shards = self._open_shards()
        # pump() from a test and the poller's own thread take turns: one batch in flight at once.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"stream-{source.function}", daemon=True
        )

    @property
    def clients(self) -> tuple[Any, ...]:
        """The mapping's own client (stream reads): AWS's calls, not the function's."""
        return (self._streams,)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)

    def pump(self) -> int:
        """Run the function on everything the stream holds now, batching window or not; return
        how many records it took. Raises BatchFailed when it fails a batch (the batch is kept:
        the next pump, or the poller's thread, gives it to the function again first)."""
        return self._poll(flush=True)

    def poll_once(self) -> int:
        """One poll of the poller's thread: read what is new, and run the function on every full
        batch, and on a partial one once its oldest record has waited the batching window."""
        return self._poll(flush=False)

    def _poll(self, *, flush: bool) -> int:
        with self._lock:
            taken = 0
            failed: BatchFailed | None = None
            for shard in self._shards:
                self._read(shard)
                try:
                    taken += self._process(shard, flush=flush)
                except BatchFailed as error:
                    failed = failed or error  # the other shards go on, as on AWS
            if failed is not None:
                raise failed
            return taken

    def _open_shards(self) -> list[_Shard]:
        # moto keeps one shard per stream and never closes or splits it; on AWS a mapping would
        # also follow the child shards of a closed one.
        description = self._streams.describe_stream(StreamArn=self.stream_arn)
        return [
            _Shard(
                shard["ShardId"],
                self._streams.get_shard_iterator(
                    StreamArn=self.stream_arn,
                    ShardId=shard["ShardId"],
                    ShardIteratorType=self.source.starting_position,
                )["ShardIterator"],
            )
            for shard in description["StreamDescription"]["Shards"]
        ]

    def _read(self, shard: _Shard) -> None:
        """Everything the shard holds past the last read. Only what is there when the read
        starts: records the function writes meanwhile wait for the next poll, so a function
        writing to the table it reads cannot keep one pump going for ever."""
        while shard.iterator is not None:
            page = self._streams.get_records(ShardIterator=shard.iterator, Limit=_PAGE)
            shard.iterator = page.get("NextShardIterator")  # absent once a shard is closed
            records = page.get("Records", [])
            if records and not shard.unprocessed:
                shard.waiting_since = self._clock()
            shard.unprocessed.extend(self._as_record(record) for record in records)
            if len(records) < _PAGE:
                return

    def _as_record(self, record: dict[str, Any]) -> dict[str, Any]:
        return {**record_as_event(record), "awsRegion": REGION, "eventSourceARN": self.stream_arn}

    def _process(self, shard: _Shard, *, flush: bool) -> int:
        taken = 0
        while shard.unprocessed and (flush or self._due(shard)):
            batch = shard.unprocessed[: self.source.batch_size]
            done, error = self._deliver(batch)
            del shard.unprocessed[:done]
            taken += done
            if done < len(batch):
                raise BatchFailed(self.source.function, batch[done], len(batch) - done) from error
        return taken

    def _due(self, shard: _Shard) -> bool:
        full = len(shard.unprocessed) >= self.source.batch_size
        waited = self._clock() - shard.waiting_since
        return full or waited >= self.source.maximum_batching_window_seconds

    def _deliver(self, batch: list[dict[str, Any]]) -> tuple[int, Exception | None]:
        """Run the function on `batch`: how many of its leading records are done, and what the
        function raised, if it did."""
        # A fresh copy for every attempt, of JSON types only, as Lambda hands a function: a
        # handler that changes its event cannot change what a retry sends.
        event = {"Records": json.loads(json.dumps(batch))}
        try:
            result = self._invoke(self._function, event)
        except Exception as error:  # raised again as the cause of BatchFailed
            return 0, error
        if not self.source.report_batch_item_failures:
            return len(batch), None  # Lambda ignores what the function returns
        return records_before_checkpoint(batch, result), None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("stream source of %s: retrying", self.source.function)
                self._stop.wait(self._retry_pause_seconds)
                continue
            self._stop.wait(self._poll_seconds)


def records_before_checkpoint(batch: list[dict[str, Any]], result: Any) -> int:
    """How many leading records of `batch` a partial batch response lets through: all of them
    when it reports no failure; those before the earliest record it names (Lambda retries from
    the lowest sequence number reported); none when a failure names no record of the batch
    (an empty, missing or unknown itemIdentifier fails the whole batch, as on AWS)."""
    failures = result.get("batchItemFailures") if isinstance(result, dict) else None
    if not failures:
        return len(batch)
    position = {record["dynamodb"]["SequenceNumber"]: i for i, record in enumerate(batch)}
    try:
        return min(position[failure["itemIdentifier"]] for failure in failures)
    except (KeyError, TypeError):
        return 0


_running: list[StreamPoller] = []
_registry_lock = threading.Lock()


def start_stream_pollers(
    stack: LocalStack,
    sources: Iterable[StreamSource],
    functions: Mapping[str, FunctionSpec],
    *,
    invoke: Invoke = invoke_in_process,
    background: bool = True,
) -> list[StreamPoller]:
    """Start a poller per stream source, each registered for `pump_all` until stopped. Without
    `background` no thread polls: the functions run only when a test pumps (nothing runs them
    behind its back, as with the SQS sources, which tests poll by hand)."""
    pollers = [
        StreamPoller(stack, source, functions[source.function], invoke=invoke) for source in sources
    ]
    with _registry_lock:
        _running.extend(pollers)
    if background:
        for poller in pollers:
            poller.start()
    return pollers


def stop_stream_pollers(pollers: Iterable[StreamPoller]) -> None:
    for poller in pollers:
        poller.stop()
        with _registry_lock:
            if poller in _running:
                _running.remove(poller)


def pump_all() -> int:
    """Pump every running stream poller of this process (tests: let the functions fed by a
    stream catch up with everything written so far); return how many records they took. A
    failed batch is raised once every poller has been pumped."""
    with _registry_lock:
        pollers = list(_running)
    taken = 0
    failed: BatchFailed | None = None
    for poller in pollers:
        try:
            taken += poller.pump()
        except BatchFailed as error:
            failed = failed or error
    if failed is not None:
        raise failed
    return taken
