"""UsageFunction: usage counters and refunds from the messages table's stream."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from sms_gateway.logic import usage

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    # Raising fails the whole batch, which the event source mapping retries from its first
    # record; a batch applied before its failure is recognized by its marker (logic/usage.py).
    applied = usage.apply_batch(event.get("Records", []))
    logger.info(
        "usage batch applied", extra={"records": len(event.get("Records", [])), "new": applied}
    )
    return {"applied": applied}
