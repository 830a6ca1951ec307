"""UsageFunction (its template id since before it also queued events): the messages table's
stream, read once for two jobs (DynamoDB Streams throttles more than two readers of a shard,
and HandoffPipe is the other): usage counters and refunds, then status webhook events."""

# First, before Powertools: the garbage collector pauses and the packages whose __init__ a
# function does not need load without it, until startup.finish() at the end of this module.
from sms_gateway.runtime import startup  # isort: skip

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from sms_gateway.logic import caller_webhook_events, usage

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    records = event.get("Records", [])
    # Raising fails the whole batch, which the event source mapping retries from its first
    # record. Usage first: a batch it applied before is recognized by its marker
    # (logic/usage.py), so a retry after the events failed to queue queues them once more
    # without counting anything twice; the events of a batch whose usage keeps failing are not
    # queued again at every retry.
    applied = usage.apply_batch(records)
    queued = caller_webhook_events.enqueue_events(records)
    logger.info(
        "stream batch applied",
        extra={"records": len(records), "usage_new": applied, "webhook_events": queued},
    )
    return {"applied": applied, "webhook_events": queued}


startup.finish()
