"""Status callbacks: the provider verifies and reads one, then the status machine applies it.

Every outcome but a refused callback is acknowledged (the route answers 204): a duplicate, a
regression, an unknown message or a status that changes nothing is recorded or dropped by
store.transitions, and telling the provider anything else would only make it retry. The
exceptions are 503s for what cannot be done now: reading the provider's credentials, or recording
an opt-out that the callback reports (RECIPIENT_UNSUBSCRIBED).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from sms_gateway.domain.error_codes import RECIPIENT_UNSUBSCRIBED
from sms_gateway.domain.errors import PhoneInvalidError, PhoneLandlineError, ServiceUnavailableError
from sms_gateway.domain.messages import MessageStatus
from sms_gateway.domain.phone import check_destination
from sms_gateway.domain.provider_events import ProviderEvent
from sms_gateway.domain.redact import mask_phone
from sms_gateway.providers.interface import CallbackProvider, CallbackRequest
from sms_gateway.store import opt_out_store, transitions

logger = Logger(child=True)

# Through a Messaging Service Twilio accepts a send to an unsubscribed number and fails it in the
# callback with RECIPIENT_UNSUBSCRIBED.
_FAILURE_STATUSES = frozenset({MessageStatus.FAILED, MessageStatus.UNDELIVERED})


def handle_status_callback(provider: CallbackProvider, request: CallbackRequest) -> None:
    """Verify and apply one callback; raise ForbiddenError when it is not the provider's, for one
    of our accounts, and ServiceUnavailableError when a dependency fails. Returns normally in
    every other case, whether or not anything changed."""
    report = provider.read_status_callback(request)
    if report.message_id is None or report.event is None:
        return
    message_id, event = report.message_id, report.event
    applied = apply_provider_event(message_id, event)
    if applied is not None and _reports_unsubscribed(event):
        _record_opt_out(message_id, report.opt_out_scope, report.recipient)


def apply_provider_event(message_id: str, event: ProviderEvent) -> bool | None:
    """Apply one verified provider event to its message, forward only: True when the status
    moved, False when it was only recorded (a duplicate, a regression, a status that changes
    nothing), None when no message of that id was handed to that provider (account)."""
    applied = transitions.apply_provider_event(message_id, event)
    logger.info(
        "provider event",
        extra={
            "message_id": message_id,
            "provider": event.provider,
            "provider_status": event.provider_status,
            "applied": applied,
            "error_code": event.error_code,
            "from_number": mask_phone(event.from_number),
        },
    )
    return applied


def _reports_unsubscribed(event: ProviderEvent) -> bool:
    return event.status in _FAILURE_STATUSES and event.error_code == RECIPIENT_UNSUBSCRIBED


def _record_opt_out(message_id: str, service_sid: str | None, to: str | None) -> None:
    """Put the recipient on the opt-out list of the Messaging Service it answered STOP to, as
    the handoff does for a refusal at send time, so the next send is refused before Twilio."""
    if service_sid is None:
        # We always send through a service; a callback without one has no scope to record.
        logger.warning("21610 without a Messaging Service", extra={"message_id": message_id})
        return
    number = _e164(to)
    if number is None:
        logger.warning("21610 without a usable To", extra={"message_id": message_id})
        return
    try:
        added = opt_out_store.add_provider_unsubscribed(service_sid, number, message_id)
    except ClientError as exc:
        # The status is applied, but 204 would lose the opt-out without a trace. Twilio does not
        # retry a 5xx by default either, yet a 503 counts in the API's 5xx metrics and access
        # log, and any redelivery of this callback completes the write (the transition is then
        # only recorded, which still leads here). Should it be lost all the same, Twilio keeps
        # refusing the number, and the next send's callback brings the 21610 back.
        logger.error(
            "opt-out not recorded",
            extra={"message_id": message_id, "to": mask_phone(number), "error": str(exc)},
        )
        raise ServiceUnavailableError("cannot record the opt-out now") from exc
    logger.info(
        "recipient opted out by Twilio",
        extra={"message_id": message_id, "to": mask_phone(number), "added": added},
    )


def _e164(to: str | None) -> str | None:
    """The number as the send path stores and looks it up (it was valid when it was sent).

    The message's own to_number would be better still, but apply_provider_event does not return
    the item it reads; the signed To is the same number, normalized the same way."""
    try:
        return check_destination(to).e164 if to else None
    except (PhoneInvalidError, PhoneLandlineError):
        return None
