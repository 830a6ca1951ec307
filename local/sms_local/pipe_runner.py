"""Runs the EventBridge pipes of template.yaml that read a table's DynamoDB stream into an SQS
queue, as EventBridge Pipes would: records in stream order, the pipe's filter patterns (any one
matching lets a record through), its input template, and a record is only passed over once the
queue has taken it (a failed send is retried, never skipped).

The stream is moto's own DynamoDB Streams API, read through boto3 like any other consumer.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from datetime import datetime
from typing import Any, cast

from moto.events.models import EventPattern
from moto.events.utils import EventMessageType

from sms_local.aws_resources import REGION, LocalStack
from sms_local.template import StreamPipe

log = logging.getLogger("sms_local.pipes")

# GetRecords' largest page.
_PAGE = 1000
# How often a pipe polls a shard: EventBridge Pipes polls a DynamoDB stream's shards about four
# times a second.
POLL_SECONDS = 0.25
# A Pipes input template variable: <$.path.to.value>.
_VARIABLE = re.compile(r"<\$\.([A-Za-z0-9_.]+)>")


def render_input(template: str | None, event: dict[str, Any]) -> str:
    """The target's input: the whole event as JSON without a template; otherwise the template
    with each <$.path> replaced (a string inside quotes goes in as string content)."""
    if template is None:
        return json.dumps(event)

    def value_at(match: re.Match[str]) -> str:
        node: Any = event
        for part in match.group(1).split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"the input template names {match.group(0)}, absent from the event")
            node = node[part]
        if isinstance(node, str):
            return json.dumps(node)[1:-1]
        return json.dumps(node)

    return _VARIABLE.sub(value_at, template)


def as_stream_event(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the pipe's event carries it: boto3 parsed ApproximateCreationDateTime into a
    datetime; in the event it is epoch seconds."""
    dynamodb = dict(record.get("dynamodb", {}))
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "dynamodb": dynamodb}


class PipeRunner:
    def __init__(
        self, stack: LocalStack, pipe: StreamPipe, *, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self.pipe = pipe
        self._streams = stack.client("dynamodbstreams")
        self._sqs = stack.client("sqs")
        self._stream_arn = stack.attributes[pipe.table]["StreamArn"]
        self._queue_url = stack.refs[pipe.queue]
        self._patterns = [EventPattern.load(p) for p in pipe.filter_patterns]
        self._poll_seconds = poll_seconds
        self._iterators: dict[str, str] = {}
        # Read from the stream but not yet taken by the queue: sent first, before reading on.
        self._unsent: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pipe-{pipe.name}", daemon=True)

    @property
    def clients(self) -> tuple[Any, Any]:
        """The pipe's own clients (stream reads, queue sends): AWS's calls, not a function's."""
        return self._streams, self._sqs

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def matches(self, record: dict[str, Any]) -> bool:
        # moto types the event as an EventBridge event; the matcher reads any JSON object.
        event = cast("EventMessageType", record)
        return not self._patterns or any(p.matches_event(event) for p in self._patterns)

    def pump(self) -> int:
        """Queue what the stream holds now that the filters let through; return how many.
        Raises if the queue refuses a record (it is sent again on the next pump)."""
        with self._lock:
            queued = 0
            more = True
            while more:
                queued += self._send_unsent()
                records, more = self._read()
                self._unsent.extend(r for r in records if self.matches(r))
            return queued + self._send_unsent()

    def _send_unsent(self) -> int:
        sent = 0
        while self._unsent:
            record = self._unsent[0]
            self._sqs.send_message(
                QueueUrl=self._queue_url, MessageBody=render_input(self.pipe.input_template, record)
            )
            self._unsent.pop(0)
            sent += 1
        return sent

    def _read(self) -> tuple[list[dict[str, Any]], bool]:
        """The records the shards hold past the last read, and whether a shard has more (a
        full page): what was written before the read, when it has not."""
        if not self._iterators:
            shards = self._streams.describe_stream(StreamArn=self._stream_arn)
            for shard in shards["StreamDescription"]["Shards"]:
                self._iterators[shard["ShardId"]] = self._streams.get_shard_iterator(
                    StreamArn=self._stream_arn,
                    ShardId=shard["ShardId"],
                    ShardIteratorType=self.pipe.starting_position,
                )["ShardIterator"]
        records: list[dict[str, Any]] = []
        more = False
        for shard_id, iterator in self._iterators.items():
            # As many as GetRecords gives: most records (claims, callbacks) are filtered out.
            page = self._streams.get_records(ShardIterator=iterator, Limit=_PAGE)
            self._iterators[shard_id] = page["NextShardIterator"]
            more = more or len(page.get("Records", [])) == _PAGE
            for record in page.get("Records", []):
                records.append(
                    {
                        **as_stream_event(record),
                        "eventSourceARN": self._stream_arn,
                        "awsRegion": REGION,
                    }
                )
        return records, more

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.pump()
            except Exception:
                log.exception("pipe %s could not queue a record; retrying", self.pipe.name)
                self._stop.wait(1)
                continue
            self._stop.wait(self._poll_seconds)


_running: dict[tuple[str, str], list[PipeRunner]] = {}
_registry_lock = threading.Lock()


def start_pipes(stack: LocalStack, pipes: list[StreamPipe]) -> list[PipeRunner]:
    """Start a runner per pipe, and register it as feeding its queue (see `feeding`)."""
    runners = [PipeRunner(stack, pipe) for pipe in pipes]
    with _registry_lock:
        for runner in runners:
            _running.setdefault((stack.endpoint_url, runner.pipe.queue), []).append(runner)
    for runner in runners:
        runner.start()
    return runners


def stop_pipes(stack: LocalStack, runners: list[PipeRunner]) -> None:
    for runner in runners:
        runner.stop()
    with _registry_lock:
        for runner in runners:
            feeders = _running.get((stack.endpoint_url, runner.pipe.queue), [])
            if runner in feeders:
                feeders.remove(runner)


def feeding(stack: LocalStack, queue: str) -> list[PipeRunner]:
    """The running pipes that queue into `queue` on this stack: a consumer that wants to see
    everything written so far pumps them first (on AWS a pipe runs within a second)."""
    with _registry_lock:
        return list(_running.get((stack.endpoint_url, queue), []))


def pump_all() -> int:
    """Pump every running pipe of this process (tests: let the outbox catch up first)."""
    with _registry_lock:
        runners = [runner for feeders in _running.values() for runner in feeders]
    return sum(runner.pump() for runner in runners)
