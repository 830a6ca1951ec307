"""POST /v1/webhook/twilio/sms-status: Twilio's status callbacks (no API key; Twilio signs them)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from sms_gateway import providers
from sms_gateway.api.docs import UUID_SCHEMA, WEBHOOKS_TAG, parameter, route_doc
from sms_gateway.api.twilio_requests import SIGNATURE_PARAMETER, callback_request
from sms_gateway.domain.errors import ForbiddenError, ServiceUnavailableError
from sms_gateway.logic import status_updates
from sms_gateway.providers.twilio import callbacks as twilio_callbacks

router = APIGatewayHttpRouter()


@router.post(
    twilio_callbacks.CALLBACK_PATH,
    **route_doc(
        summary="Twilio message status callback (signed with X-Twilio-Signature)",
        operation_id="receiveTwilioStatusCallback",
        tag=WEBHOOKS_TAG,
        scope=None,
        success=(204, "Processed or silently ignored", None),
        # 503: the auth token could not be read, or a reported opt-out could not be recorded.
        errors=(ForbiddenError, ServiceUnavailableError),
        # A form the document describes (sms_tools.openapi), not a model this function loads.
        request_model="TwilioStatusCallback",
        request_media_type="application/x-www-form-urlencoded",
        parameters=(
            parameter(
                "message_id",
                "query",
                "Our message's id, in the StatusCallback URL the handoff gave Twilio",
                UUID_SCHEMA,
                required=True,
            ),
            SIGNATURE_PARAMETER,
        ),
    ),
)
def handle_twilio_status() -> Response[str]:
    request = callback_request(router.current_event)
    status_updates.handle_status_callback(providers.TWILIO, request)
    return Response(status_code=204, body="")
