"""AuthorizerFunction: the HTTP API's Lambda authorizer (simple responses) for API keys."""

# First, before Powertools: the garbage collector pauses and the packages whose __init__ a
# function does not need load without it, until startup.finish() at the end of this module.
from sms_gateway.runtime import startup  # isort: skip

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from sms_gateway.api.authorizer import authorizer_response
from sms_gateway.logic.auth import authenticate

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:  # type: ignore[type-arg]
    authorization = (event.get("headers") or {}).get("authorization")
    result = authenticate(authorization)
    if result.caller is None:
        logger.info("unauthenticated request", extra={"reason": result.reason})
    return authorizer_response(result)


startup.finish()
