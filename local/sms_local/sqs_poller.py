"""Feeds an SQS event source of template.yaml to its function as Lambda's event source mapping
does: batches of the configured size, successes deleted, reported failures left for redelivery
after the visibility timeout (and moved to the DLQ by the redrive policy). A batch whose
invocation failed in any way (the function raised, its sandbox died or timed out) is not
deleted: it comes back after the visibility timeout, as with Lambda."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from sms_local.aws_resources import REGION, LocalStack
from sms_local.lambda_runtime import Invoke, invoke
from sms_local.pipe_runner import feeding
from sms_local.template import FunctionSpec, SqsSource

log = logging.getLogger("sms_local.sqs")


def sqs_event(records: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": record["MessageId"],
                "receiptHandle": record["ReceiptHandle"],
                "body": record["Body"],
                "attributes": record.get("Attributes", {}),
                "messageAttributes": record.get("MessageAttributes", {}),
                "md5OfBody": record.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for record in records
        ]
    }


class SqsPoller:
    """One of the event source mapping's pollers: one batch in flight at a time, so a function
    gets as many pollers as it may run sandboxes at once. `invoke` runs the function (the
    stack's sandboxes); without it, in this process (tests patch this module's `invoke`)."""

    def __init__(
        self,
        stack: LocalStack,
        source: SqsSource,
        function: FunctionSpec,
        *,
        invoke: Invoke | None = None,
    ) -> None:
        self._stack = stack
        self._sqs = stack.client("sqs")
        self._url = stack.refs[source.queue]
        self._arn = stack.attributes[source.queue]["Arn"]
        self._source = source
        self._function = function
        self._invoke = invoke
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"sqs-{source.function}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def poll_once(self, wait_seconds: int = 0, *, catch_up: bool = True) -> int:
        """Receive one batch and run the function on it; return how many records it held.
        With `catch_up` (a test stepping the world by hand) the pipes that feed the queue are
        pumped first, so everything written before the call is in the queue; the running stack
        leaves that to the pipes' own threads, as on AWS."""
        if catch_up:
            for pipe in feeding(self._stack, self._source.queue):
                pipe.pump()
        received = self._sqs.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=min(self._source.batch_size, 10),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            ReceiveRequestAttemptId=uuid.uuid4().hex,
        ).get("Messages", [])
        if not received:
            return 0
        failed_ids: set[str] = set()
        try:
            run = self._invoke or invoke  # looked up now: a test may have patched it
            result = run(self._function, sqs_event(received, self._arn))
        except Exception:
            log.exception("%s failed; the whole batch will be retried", self._function.name)
            return len(received)
        if self._source.report_batch_item_failures and isinstance(result, dict):
            failed_ids = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        done = [r for r in received if r["MessageId"] not in failed_ids]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r["ReceiptHandle"]} for i, r in enumerate(done)
                ],
            )
        return len(received)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.poll_once(wait_seconds=1, catch_up=False) == 0:
                    time.sleep(0.05)
            except Exception:
                log.exception("polling %s failed", self._source.queue)
                self._stop.wait(1)
