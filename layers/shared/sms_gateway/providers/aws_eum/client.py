"""A message as SendTextMessage takes it, sent once (store.sms_voice), and its answer in the
handoff's terms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sms_gateway.providers.aws_eum import answers
from sms_gateway.providers.results import Accepted, HandoffResult, OutcomeUnknown
from sms_gateway.store import sms_voice

if TYPE_CHECKING:
    from sms_gateway.providers.interface import OutboundSms

# SendTextMessage's TimeToLive bounds (seconds); without one AWS keeps a message 72 hours.
MIN_TIME_TO_LIVE = 5
MAX_TIME_TO_LIVE = 259_200
# The Context key that carries our message id into every delivery event.
MESSAGE_ID_CONTEXT_KEY = "message_id"


def send_text_message(
    sms: OutboundSms, origination_identity: str, configuration_set: str
) -> HandoffResult:
    """Ask AWS End User Messaging SMS to send one message; every failure is answered, none
    raised (what an exception or an answer without a MessageId means: answers.py)."""
    params: dict[str, Any] = {
        "DestinationPhoneNumber": sms.to,
        "OriginationIdentity": origination_identity,
        "MessageBody": sms.body,
        "MessageType": "TRANSACTIONAL",
        "ConfigurationSetName": configuration_set,
        "Context": {MESSAGE_ID_CONTEXT_KEY: sms.message_id},
    }
    if sms.validity_seconds is not None:
        # AWS takes no less than 5 seconds: a message with less validity left gets at most 4
        # seconds more in AWS's queue, never less than it had.
        params["TimeToLive"] = min(max(sms.validity_seconds, MIN_TIME_TO_LIVE), MAX_TIME_TO_LIVE)
    try:
        response = sms_voice.send_text_message(params)
    except Exception as exc:
        return answers.from_error(exc)
    message_id = response.get("MessageId") if isinstance(response, dict) else None
    if not isinstance(message_id, str) or not message_id:
        # A 200 botocore could not read (an HTML page from a proxy, say): AWS may have taken it.
        return OutcomeUnknown("an answer without a MessageId")
    return Accepted(message_sid=message_id, num_segments=None, from_number=None)
