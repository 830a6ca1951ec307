"""POST /v1/webhook/twilio/sms-inbound: Twilio's incoming-message webhook (no API key; Twilio
signs it). Answers an empty TwiML document: we never reply by TwiML."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from sms_gateway.api.docs import WEBHOOKS_TAG, parameter, route_doc
from sms_gateway.api.twilio_requests import SIGNATURE_PARAMETER, callback_request
from sms_gateway.domain.errors import ForbiddenError, ServiceUnavailableError
from sms_gateway.logic import inbound
from sms_gateway.providers.twilio import inbound as twilio_inbound

router = APIGatewayHttpRouter()


@router.post(
    twilio_inbound.INBOUND_PATH,
    **route_doc(
        summary="Twilio incoming message webhook (signed with X-Twilio-Signature)",
        operation_id="receiveTwilioIncomingMessage",
        tag=WEBHOOKS_TAG,
        scope=None,
        success=(200, "Stored, or silently ignored: an empty TwiML document", None),
        success_content={
            twilio_inbound.TWIML_CONTENT_TYPE: {
                "schema": {"type": "string", "example": twilio_inbound.EMPTY_TWIML}
            }
        },
        # 503: the auth token could not be read, or the message could not be stored now.
        errors=(ForbiddenError, ServiceUnavailableError),
        request_model="TwilioIncomingMessage",
        request_media_type="application/x-www-form-urlencoded",
        parameters=(
            parameter(
                "mode",
                "query",
                "test: the Messaging Service is a test one (its messages are test inbound "
                "messages, seen by test keys only)",
                {"type": "string", "enum": ["test"]},
            ),
            SIGNATURE_PARAMETER,
        ),
    ),
)
def handle_twilio_incoming() -> Response[str]:
    request = callback_request(router.current_event)
    incoming = twilio_inbound.read_incoming(request)
    if incoming is not None:
        inbound.receive(incoming)
    return Response(
        status_code=200,
        content_type=twilio_inbound.TWIML_CONTENT_TYPE,
        body=twilio_inbound.EMPTY_TWIML,
    )
