"""Twilio's incoming-message webhook: verified with X-Twilio-Signature exactly as the status
callbacks are (the subaccount's auth token, over the URL the operator gave the Messaging Service
and the form), then read into an IncomingSms.

A request that is not Twilio's raises ForbiddenError (403, nothing stored); a token that cannot
be read now raises ServiceUnavailableError (503). A verified request that cannot be a message of
ours (no MessageSid, no sender) reads as None: it is acknowledged and dropped, since any other
answer would only make Twilio retry it.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from aws_lambda_powertools import Logger

from sms_gateway.providers.interface import CallbackRequest, IncomingSms
from sms_gateway.providers.twilio import values
from sms_gateway.providers.twilio.callbacks import (
    ACCOUNT_SID,
    SERVICE_SID,
    SIGNATURE_HEADER,
    first,
    refuse,
    signed_url,
    verify_signature,
)

logger = Logger(child=True)

INBOUND_PATH = "/v1/webhook/twilio/sms-inbound"
# The empty TwiML document: we never answer by TwiML (Twilio's own opt-out handling replies to
# STOP and HELP).
EMPTY_TWIML = "<Response/>"
TWIML_CONTENT_TYPE = "text/xml"

# SMS (SM) and MMS (MM) message SIDs.
_MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-f]{32}$")
# Twilio joins a long message's parts: 1,600 characters at most. Twice that is kept whole;
# beyond it a body cannot be Twilio's and is cut, never a reason to refuse a signed request.
MAX_BODY_CHARS = 3200


def _is_test(raw_query: str) -> bool:
    """The Messaging Service's inbound URL carries mode=test: a test service (the local
    simulator's replies), whose messages only test keys see."""
    modes = [v for k, v in parse_qsl(raw_query, keep_blank_values=True) if k == "mode"]
    return modes == ["test"]


def read_incoming(request: CallbackRequest) -> IncomingSms | None:
    """Verify one incoming-message webhook and read it; see the module's docstring."""
    pairs = parse_qsl(request.body, keep_blank_values=True)
    account_sid = first(pairs, "AccountSid")
    if not account_sid or not ACCOUNT_SID.fullmatch(account_sid):
        raise refuse("no valid AccountSid", incoming=True)
    url = signed_url(request.raw_query, request.domain_name, INBOUND_PATH)
    verify_signature(account_sid, url, pairs, request.headers.get(SIGNATURE_HEADER), incoming=True)

    # Past this point the request is Twilio's: whatever it says, the answer is 200.
    message_sid = first(pairs, "MessageSid") or first(pairs, "SmsSid") or ""
    from_number = values.identifier(first(pairs, "From"))
    to_number = values.identifier(first(pairs, "To"))
    if not _MESSAGE_SID.fullmatch(message_sid) or not from_number or not to_number:
        logger.warning("incoming message without a SID or numbers", extra={"account": account_sid})
        return None
    service_sid = first(pairs, "MessagingServiceSid")
    return IncomingSms(
        account_sid=account_sid,
        messaging_service_sid=service_sid
        if service_sid and SERVICE_SID.fullmatch(service_sid)
        else None,
        message_sid=message_sid,
        from_number=from_number,
        to_number=to_number,
        body=(first(pairs, "Body") or "")[:MAX_BODY_CHARS],
        num_segments=values.small_int(first(pairs, "NumSegments")),
        test=_is_test(request.raw_query),
    )
