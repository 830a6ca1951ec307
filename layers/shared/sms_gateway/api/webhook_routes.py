"""POST /v1/webhook/twilio/sms-status: Twilio's status callbacks (no API key; Twilio signs them)."""

from __future__ import annotations

import binascii

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from sms_gateway.api.docs import route_doc
from sms_gateway.domain.errors import ForbiddenError, ServiceUnavailableError
from sms_gateway.logic import status_callback

router = APIGatewayHttpRouter()


@router.post(
    status_callback.CALLBACK_PATH,
    **route_doc(
        summary="Twilio message status callback (signed with X-Twilio-Signature)",
        scope=None,
        success=(204, "Processed or silently ignored", None),
        # 503: the auth token could not be read, or a reported opt-out could not be recorded.
        errors=(ForbiddenError, ServiceUnavailableError),
    ),
)
def handle_twilio_status() -> Response[str]:
    event = router.current_event
    try:
        # Powertools decodes the base64 body API Gateway sends for form content.
        body = event.decoded_body or ""
    except (binascii.Error, UnicodeDecodeError) as exc:
        # Twilio posts UTF-8 form data; anything else cannot carry a signature of Twilio's.
        raise ForbiddenError("invalid Twilio signature") from exc
    status_callback.handle_status_callback(
        body=body,
        raw_query=event.raw_event.get("rawQueryString") or "",
        domain_name=event.raw_event["requestContext"]["domainName"],
        signature=(event.headers or {}).get("x-twilio-signature"),
    )
    return Response(status_code=204, body="")
