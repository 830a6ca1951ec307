"""HandoffFunction: SQS batches of message ids, each handed to Twilio at most once.

A record either ends its message (handed off, or failed) or goes back to the queue with a delay,
as a batch item failure. On the queue's last delivery it always ends its message: past that one,
SQS would move it to the dead-letter queue still pending.

Metrics for the alarms (namespace POWERTOOLS_METRICS_NAMESPACE, dimension `service`), since
failing records never fail the invocation: HandoffUnexpectedError (a record raised anything but
RetryHandoffLater), HandoffOutcomeUnknown (a message ended 99001), HandoffGaveUp (99003).
"""

from collections.abc import Callable

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sms_gateway.config import get_settings
from sms_gateway.logic import handoff
from sms_gateway.logic.handoff import HandoffOutcome
from sms_gateway.store import aws_clients
from sms_gateway.store.handoff_queue import parse_handoff_body

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
# SQS refuses a visibility timeout reaching past 12 hours from the receive, and this invocation
# has already used some of that (at most Lambda's 15 minutes).
MAX_RETRY_DELAY_SECONDS = 12 * 3600 - 15 * 60


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
    message_id = parse_handoff_body(record.body)
    logger.append_keys(message_id=message_id)
    seconds_left = _seconds_left(context)
    try:
        # A record is only started when a whole provider call still fits (hand_off looks again
        # right before the call): a function cut off mid-call would leave the outcome unknown.
        if seconds_left() < handoff.provider_call_seconds():
            # With the backoff, as the README promises: invocations that keep running short
            # must not use up the 15 deliveries in minutes while the provider is fine.
            raise handoff.RetryHandoffLater("not enough time left in this invocation", backoff=True)
        return handoff.hand_off(message_id, seconds_left=seconds_left)
    except Exception as exc:
        if not _is_last_delivery(record):
            _delay_redelivery(record, _retry_delay(exc, record))
            raise
        if not isinstance(exc, handoff.RetryHandoffLater):
            _report_unexpected()  # about to be ended, so never raised: counted here
        outcome = handoff.end_unfinished(message_id)
        logger.warning(
            "last delivery ended the message",
            extra={"outcome": outcome.value, "cause": _describe(exc)},
        )
        return outcome


def _report_unexpected() -> None:
    """Count the exception being handled and log it with its traceback, under the record's
    message id (nothing logged here adds the number or the text)."""
    metrics.add_metric(name=UNEXPECTED_ERROR_METRIC, unit=MetricUnit.Count, value=1)
    logger.exception("handoff failed unexpectedly")


def _describe(exc: Exception) -> str:
    # Our own reasons for a retry say what happened; any other exception is named by its type.
    return str(exc) if isinstance(exc, handoff.RetryHandoffLater) else type(exc).__name__


def _receives(record: SQSRecord) -> int:
    return int(record.attributes.approximate_receive_count or 1)


def _is_last_delivery(record: SQSRecord) -> bool:
    return _receives(record) >= get_settings().handoff_max_receives


def _retry_delay(exc: Exception, record: SQSRecord) -> int:
    if isinstance(exc, handoff.RetryHandoffLater) and not exc.backoff:
        delay = exc.retry_in_seconds
    else:
        # The provider or a dependency is failing: wait longer each time.
        delay = handoff.backoff_seconds(_receives(record))
    return max(0, min(delay, MAX_RETRY_DELAY_SECONDS))


def _delay_redelivery(record: SQSRecord, delay: int) -> None:
    aws_clients.sqs().change_message_visibility(
        QueueUrl=get_settings().handoff_queue_url,
        ReceiptHandle=record.receipt_handle,
        VisibilityTimeout=delay,
    )


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
