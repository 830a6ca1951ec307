"""CatalogFunction: templates and sender IDs, what a workspace sends with, and the secret that
signs its status webhooks."""

# First, before Powertools: the garbage collector pauses and the packages whose __init__ a
# function does not need load without it, until startup.finish() at the end of this module.
from sms_gateway.runtime import startup  # isort: skip

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from sms_gateway.api import caller_webhook_routes, sender_id_routes, template_routes
from sms_gateway.api.http import build_resolver

logger = Logger()
metrics = Metrics()
app = build_resolver()
app.include_router(template_routes.router)
app.include_router(sender_id_routes.router)
app.include_router(caller_webhook_routes.secret_router)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:  # type: ignore[type-arg]
    return app.resolve(event, context)


startup.finish()
