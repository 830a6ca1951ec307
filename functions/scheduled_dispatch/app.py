"""ScheduledDispatchFunction: invoked by EventBridge Scheduler with {"message_id": ...}."""

# First, before Powertools: the garbage collector pauses and the packages whose __init__ a
# function does not need load without it, until startup.finish() at the end of this module.
from sms_gateway.runtime import startup  # isort: skip

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from sms_gateway.domain.ids import is_uuid
from sms_gateway.logic import scheduling

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="message_id")
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:  # type: ignore[type-arg]
    message_id = str(event.get("message_id", ""))
    if not is_uuid(message_id):
        # Retrying cannot fix a malformed input; say so and stop.
        logger.error("scheduled dispatch without a valid message_id")
        return {"queued": False}
    return {"queued": scheduling.dispatch_scheduled(message_id)}


startup.finish()
