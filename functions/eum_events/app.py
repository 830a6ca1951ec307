"""EumEventsFunction: AWS End User Messaging SMS's delivery events, from the configuration set's
event destination (SNS) through EumEventsQueue, applied to their messages by the same
forward-only conditional writes as Twilio's status callbacks.

An event that is not one of ours (not JSON, no message of ours in its context) is dropped with a
warning and counted (metric EumEventUnreadable): no retry would change it. A record whose write
fails (throttling, an outage) is reported failed and comes back; after maxReceiveCount it goes
to the dead-letter queue, whose alarm an operator watches.
"""

from __future__ import annotations

# First, before Powertools: the garbage collector pauses and the packages whose __init__ a
# function does not need load without it, until startup.finish() at the end of this module.
from sms_gateway.runtime import startup  # isort: skip

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sms_gateway.logic import status_updates
from sms_gateway.providers.aws_eum import events

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

UNREADABLE_METRIC = "EumEventUnreadable"


def handle_record(record: SQSRecord) -> str:
    try:
        delivery = events.read_event(record.body)
    except events.EventUnreadableError as exc:
        logger.warning("event dropped", extra={"reason": str(exc)})
        metrics.add_metric(name=UNREADABLE_METRIC, unit=MetricUnit.Count, value=1)
        return "dropped"
    applied = status_updates.apply_provider_event(delivery.message_id, delivery.event)
    return {True: "applied", False: "recorded", None: "no_such_message"}[applied]


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:  # type: ignore[type-arg]
    return dict(
        process_partial_response(
            event=event, record_handler=handle_record, processor=processor, context=context
        )
    )


startup.finish()
