"""MessageStreamFunction: the messages table's stream, read once for two jobs (DynamoDB Streams
throttles more than two readers of a shard, and HandoffPipe is the other): status webhook
events go to the caller webhook queue, then usage counters and refunds are applied."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from sms_gateway.logic import caller_webhook_events, usage

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    records = event.get("Records", [])
    # Raising fails the whole batch, which the event source mapping retries from its first
    # record. Events first: a retry queues them again (the same webhook-ids, dropped at
    # delivery once taken), while usage recognizes a batch it applied by its marker
    # (logic/usage.py).
    queued = caller_webhook_events.enqueue_events(records)
    applied = usage.apply_batch(records)
    logger.info(
        "stream batch applied",
        extra={"records": len(records), "webhook_events": queued, "usage_new": applied},
    )
    return {"applied": applied, "webhook_events": queued}
