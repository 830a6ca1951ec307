"""The SQS queue that buffers handoff to the provider. A queued body carries only the message id:
the worker reads everything else from the table, so nothing personal sits in the queue."""

from __future__ import annotations

import json

from sms_gateway.config import get_settings
from sms_gateway.store import aws_clients


def enqueue_handoff(message_id: str) -> None:
    aws_clients.sqs().send_message(
        QueueUrl=get_settings().handoff_queue_url,
        MessageBody=json.dumps({"message_id": message_id}),
    )


def parse_handoff_body(body: str) -> str:
    data = json.loads(body)
    message_id = data["message_id"]
    if not isinstance(message_id, str):
        raise TypeError("message_id must be a string")
    return message_id


def delay_redelivery(receipt_handle: str, delay_seconds: int) -> None:
    """Hide a received record for `delay_seconds` before the queue delivers it again."""
    aws_clients.sqs().change_message_visibility(
        QueueUrl=get_settings().handoff_queue_url,
        ReceiptHandle=receipt_handle,
        VisibilityTimeout=delay_seconds,
    )
