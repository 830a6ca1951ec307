"""HandoffFunction: SQS batches of message ids, each handed to its provider at most once.

A record either ends its message (handed off, or failed) or goes back to the queue with the delay
sms_gateway.logic.handoff_deliveries decides, as a batch item failure.

Metrics for the alarms (namespace POWERTOOLS_METRICS_NAMESPACE, dimension `service`), since
failing records never fail the invocation: HandoffUnexpectedError (a record raised anything but
RetryHandoffLater), HandoffOutcomeUnknown (a message ended 99001), HandoffGaveUp (99003).
"""

# First, before Powertools: the garbage collector pauses and the packages whose __init__ a
# function does not need load without it, until startup.finish() at the end of this module.
from sms_gateway.runtime import startup  # isort: skip

from collections.abc import Callable
from functools import partial

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sms_gateway.logic import handoff, handoff_deliveries
from sms_gateway.logic.handoff import HandoffOutcome
from sms_gateway.store import handoff_queue

logger = Logger()
metrics = Metrics()
# A batch whose every record must wait is reported like any partial failure (the event source
# mapping retries exactly those records), not raised as an error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

UNEXPECTED_ERROR_METRIC = "HandoffUnexpectedError"
OUTCOME_METRICS = {
    HandoffOutcome.OUTCOME_UNKNOWN: "HandoffOutcomeUnknown",
    HandoffOutcome.GAVE_UP: "HandoffGaveUp",
}


def _seconds_left(context: LambdaContext | None) -> Callable[[], float]:
    if context is None:
        return handoff.no_deadline
    return lambda: context.get_remaining_time_in_millis() / 1000


def handle_record(record: SQSRecord, lambda_context: LambdaContext | None = None) -> str:
    try:
        outcome = _handle(record, lambda_context)
    except handoff.RetryHandoffLater:
        raise  # handed back to the queue with its delay: expected, not an error
    except Exception:
        _report_unexpected()
        raise
    if outcome in OUTCOME_METRICS:
        metrics.add_metric(name=OUTCOME_METRICS[outcome], unit=MetricUnit.Count, value=1)
    return outcome.value


def _handle(record: SQSRecord, context: LambdaContext | None) -> HandoffOutcome:
    logger.remove_keys(["message_id"])  # the previous record's
    message_id = handoff_queue.parse_handoff_body(record.body)
    logger.append_keys(message_id=message_id)
    return handoff_deliveries.deliver(
        message_id,
        receive_count=_receives(record),
        seconds_left=_seconds_left(context),
        hand_back=partial(handoff_queue.delay_redelivery, record.receipt_handle),
        on_unexpected=_report_unexpected,
    )


def _report_unexpected() -> None:
    """Count the exception being handled and log it with its traceback, under the record's
    message id (nothing logged here adds the number or the text)."""
    metrics.add_metric(name=UNEXPECTED_ERROR_METRIC, unit=MetricUnit.Count, value=1)
    logger.exception("handoff failed unexpectedly")


def _receives(record: SQSRecord) -> int:
    return int(record.attributes.approximate_receive_count or 1)


def _last_deliveries_first(event: dict) -> dict:  # type: ignore[type-arg]
    """The same batch, records on their latest delivery first: when the invocation runs short of
    time, the records handed back are those that can still come back, not those that would
    have to be ended unsent (the queue's order means nothing: it is a standard queue)."""
    records = event.get("Records", [])
    return {
        **event,
        "Records": sorted(records, key=lambda r: -_receives(SQSRecord(r))),
    }


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:  # type: ignore[type-arg]
    return dict(
        process_partial_response(
            event=_last_deliveries_first(event),
            record_handler=handle_record,
            processor=processor,
            context=context,
        )
    )


startup.finish()
