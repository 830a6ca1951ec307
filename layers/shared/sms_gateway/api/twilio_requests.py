"""A request Twilio posted to one of our webhooks, as the provider's code reads it: the form, the
query and the host it was signed for, and the headers (the signature); and the signature header
as the API reference describes it."""

from __future__ import annotations

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from sms_gateway.api.docs import parameter
from sms_gateway.api.http import UnreadableBodyError, body_text
from sms_gateway.providers.interface import CallbackRequest
from sms_gateway.providers.twilio import callbacks as twilio_callbacks

# Every Twilio webhook is signed: the header, as the API reference describes it.
SIGNATURE_PARAMETER = parameter(
    twilio_callbacks.SIGNATURE_HEADER,
    "header",
    "Twilio's signature of the URL and the form, with the subaccount's auth token",
    {"type": "string"},
    required=True,
)


def callback_request(event: APIGatewayProxyEventV2) -> CallbackRequest:
    """ForbiddenError for a body that is not UTF-8: it cannot carry a signature of Twilio's."""
    try:
        body = body_text(event)
    except UnreadableBodyError as exc:
        raise twilio_callbacks.unreadable_body() from exc
    return CallbackRequest(
        body=body,
        raw_query=event.raw_event.get("rawQueryString") or "",
        domain_name=event.raw_event["requestContext"]["domainName"],
        headers=dict(event.headers or {}),
    )
