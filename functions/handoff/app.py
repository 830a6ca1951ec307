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
processor = BatchProcessor(event_type=EventType.SQS)


def handle_record(record: SQSRecord) -> str:
    message_id = parse_handoff_body(record.body)
    logger.append_keys(message_id=message_id)
    try:
        return handoff.hand_off(message_id).value
    except handoff.RetryHandoffLater as exc:
        if exc.backoff:
            receives = int(record.attributes.approximate_receive_count or 1)
            aws_clients.sqs().change_message_visibility(
                QueueUrl=get_settings().handoff_queue_url,
                ReceiptHandle=record.receipt_handle,
                VisibilityTimeout=handoff.backoff_seconds(receives),
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
