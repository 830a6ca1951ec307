"""A message as SendTextMessage takes it, sent once (store.sms_voice), and its answer in the
handoff's terms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sms_gateway.providers.aws_eum import answers
from sms_gateway.providers.results import Accepted, HandoffResult
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
    """Ask AWS End User Messaging SMS to send one message. Raises only while nothing of the
    request has left (a parameter botocore refuses, a bug): every other failure is answered."""
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
    return Accepted(message_sid=response["MessageId"], num_segments=None, from_number=None)
