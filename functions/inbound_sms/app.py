"""InboundSmsFunction: POST /v1/webhook/twilio/sms-inbound."""

# First, before Powertools: the garbage collector pauses and the packages whose __init__ a
# function does not need load without it, until startup.finish() at the end of this module.
from sms_gateway.runtime import startup  # isort: skip

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from sms_gateway.api import inbound_webhook_routes
from sms_gateway.api.http import build_resolver

logger = Logger()
metrics = Metrics()
app = build_resolver()
app.include_router(inbound_webhook_routes.router)


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:  # type: ignore[type-arg]
    return app.resolve(event, context)


startup.finish()
