"""ReplyForwardingFunction: SQS batches of {"inbound_id": ...} (queued by ReplyForwardingPipe),
each reply forwarded where its message asked. A record whose forwarding is incomplete is a batch
item failure: it comes back after the queue's visibility timeout and does what is left."""

from __future__ import annotations

# First, before Powertools: the garbage collector pauses and the packages whose __init__ a
# function does not need load without it, until startup.finish() at the end of this module.
from sms_gateway.runtime import startup  # isort: skip

import json

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sms_gateway.domain.ids import is_uuid
from sms_gateway.logic import reply_forwarding

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _inbound_id(body: str) -> str | None:
    try:
        job = json.loads(body)
    except ValueError:
        return None
    inbound_id = job.get("inbound_id") if isinstance(job, dict) else None
    return inbound_id if isinstance(inbound_id, str) and is_uuid(inbound_id) else None


def handle_record(record: SQSRecord) -> dict[str, str]:
    inbound_id = _inbound_id(record.body)
    if inbound_id is None:
        # Never deliverable: dropped with a trace, not retried until the dead-letter queue.
        logger.error("unreadable forwarding job", extra={"sqs_message_id": record.message_id})
        return {}
    return reply_forwarding.forward(inbound_id)


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:  # type: ignore[type-arg]
    return dict(
        process_partial_response(
            event=event, record_handler=handle_record, processor=processor, context=context
        )
    )


startup.finish()
