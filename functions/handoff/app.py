"""HandoffFunction: SQS batches of message ids, each handed to Twilio at most once."""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sms_gateway import aws_clients, handoff
from sms_gateway.config import get_settings
from sms_gateway.handoff_queue import parse_handoff_body

logger = Logger()
metrics = Metrics()
# A batch whose every record must wait is reported like any partial failure (the event source
# mapping retries exactly those records), not raised as an error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _time_for_one_more_call(context: LambdaContext | None) -> bool:
    """A record is only started when a whole provider call (and our writes) still fits: a
    function cut off mid-call would leave that message's outcome unknown."""
    if context is None:
        return True
    settings = get_settings()
    budget = settings.provider_connect_timeout_seconds + settings.provider_read_timeout_seconds
    return bool(context.get_remaining_time_in_millis() > (budget + 2) * 1000)


def handle_record(record: SQSRecord, lambda_context: LambdaContext | None = None) -> str:
    message_id = parse_handoff_body(record.body)
    logger.append_keys(message_id=message_id)
    try:
        if not _time_for_one_more_call(lambda_context):
            raise handoff.RetryHandoffLater(
                "not enough time left in this invocation", backoff=False
            )
        return handoff.hand_off(message_id).value
    except handoff.RetryHandoffLater as exc:
        receives = int(record.attributes.approximate_receive_count or 1)
        if exc.backoff and receives >= get_settings().handoff_max_receives:
            handoff.give_up(message_id)
            return "gave_up"
        delay = handoff.backoff_seconds(receives) if exc.backoff else exc.retry_in_seconds
        aws_clients.sqs().change_message_visibility(
            QueueUrl=get_settings().handoff_queue_url,
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=delay,
        )
        raise


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:  # type: ignore[type-arg]
    return dict(
        process_partial_response(
            event=event, record_handler=handle_record, processor=processor, context=context
        )
    )
