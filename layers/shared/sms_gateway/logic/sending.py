"""Sending: the checks of the send API in their documented order, then one write (the table's
stream queues the handoff)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

from sms_gateway.domain.callback_urls import MAX_CALLBACK_URL_CHARS
from sms_gateway.domain.caller_webhooks import CallbackMethod
from sms_gateway.domain.callers import Caller, mode_of
from sms_gateway.domain.clock import iso, now_iso
from sms_gateway.domain.errors import (
    A2pCampaignNotVerifiedError,
    BrandSuspendedError,
    IdempotencyKeyReusedError,
    NoSenderInPoolError,
    QuotaExceededError,
    RateLimitExceededError,
    RecipientOptedOutError,
    RegionNotPermittedError,
    ServiceUnavailableError,
    UseCaseInactiveError,
    ValidationError,
)
from sms_gateway.domain.ids import forwarded_message_id, message_id_for_key, new_id
from sms_gateway.domain.messages import (
    EXTERNAL_ID_PATTERN,
    PREVIEW_FIELDS,
    DateTimeStr,
    HistoryEntry,
    Message,
    MessageStatus,
    UuidStr,
)
from sms_gateway.domain.phone import check_destination
from sms_gateway.domain.reply_forwarding import ReplyForwarding
from sms_gateway.domain.sender_ids import SENDER_ID_PATTERN
from sms_gateway.domain.use_cases import A2pCampaignStatus, BrandStatus, CountryCode, UseCase
from sms_gateway.logic import (
    admission,
    caller_webhook_settings,
    composing,
    reply_forwarding_settings,
    scheduling,
    use_case_admin,
)
from sms_gateway.logic.composing import MAX_MESSAGE_CHARS as MAX_MESSAGE_CHARS
from sms_gateway.store import idempotency, limits_store, message_store, opt_out_store, schedules

logger = Logger(child=True)

MAX_VALIDITY_PERIOD_SECONDS = 36_000


class SendRequest(BaseModel):
    """The body of POST /v1/sms/ and POST /v1/sms/preview. A missing, mistyped or unknown field
    is a validation_error; the formats of use_case_id, to_phone_number, message, sender_id and
    send_at are then checked in the documented order, each with its own error code."""

    # Those formats are prepare_send's checks: their patterns here only document them
    # (json_schema_extra validates nothing).
    model_config = ConfigDict(extra="forbid", strict=True)

    use_case_id: UuidStr
    to_phone_number: str = Field(
        description="The recipient in E.164: '+' and 8 to 15 digits",
        examples=["+14155552671"],
        json_schema_extra={"pattern": r"^\+[0-9]{8,15}$"},
    )
    message: str | None = Field(
        default=None,
        description="The text; exactly one of message and template",
        json_schema_extra={"minLength": 1, "maxLength": MAX_MESSAGE_CHARS},
    )
    template: str | None = Field(
        default=None,
        description="A template of the workspace, by slug or id, rendered with "
        "`variables`; exactly one of message and template",
    )
    variables: dict[str, str] | None = Field(
        default=None, description="Values of the template's placeholders (only with template)"
    )
    sender_id: str | None = Field(
        default=None,
        description="A registered alphanumeric sender ID; where the destination does not accept "
        "one, the use case's pool sends (sender_id_applied: false)",
        json_schema_extra={"pattern": SENDER_ID_PATTERN},
    )
    country: CountryCode | None = Field(
        default=None,
        description="ISO 3166-1 alpha-2; overrides the number's country for the region check "
        "and the price",
    )
    external_id: str | None = Field(
        default=None,
        description="Your own id for the message, stored and returned; list with "
        "GET /v1/sms/?external_id=",
        pattern=EXTERNAL_ID_PATTERN,
    )
    validity_period: int | None = Field(
        default=None,
        description="Seconds the message may wait to be handed to the carrier (from now, or "
        "from send_at); past it, it ends failed with error_code 99005",
        ge=1,
        le=MAX_VALIDITY_PERIOD_SECONDS,
    )
    smart_encoding: bool = Field(
        default=False,
        description="Replace Unicode look-alikes (curly quotes, dashes, special spaces, …) by "
        "their GSM-7 equivalents when that makes the whole body GSM-7",
    )
    send_at: DateTimeStr | None = Field(
        default=None,
        description="RFC 3339 with an offset, from one hour ago to 30 days ahead; "
        "omitted or null: send now",
    )
    status_callback_url: str | None = Field(
        default=None,
        description="https URL that receives the message's status changes as signed webhooks "
        "(Standard Webhooks); omitted: the use case's, if it has one",
        json_schema_extra={"format": "uri", "maxLength": MAX_CALLBACK_URL_CHARS},
    )
    status_callback_method: CallbackMethod | None = Field(
        default=None,
        description="POST (a JSON body, the default) or GET (the same fields as query "
        "parameters); omitted: the use case's",
    )
    delivery_receipt: bool = Field(
        default=True, description="false: no status webhooks for this message"
    )
    reply_forwarding: ReplyForwarding | None = Field(
        default=None,
        description="Where the replies to this message go: a signed `message.reply` webhook, "
        "an SMS through the same use case, an email; any subset",
    )

    @model_validator(mode="after")
    def _message_or_template(self) -> SendRequest:
        if (self.message is None) == (self.template is None):
            raise ValueError("give exactly one of message and template")
        if self.variables is not None and self.template is None:
            raise ValueError("variables are only used with template")
        return self


def parse_send_request(data: dict[str, Any]) -> SendRequest:
    """A missing or unknown field, or a wrong type, is a validation_error."""
    try:
        request = SendRequest.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError.from_pydantic("request body is invalid", exc) from exc
    reply_forwarding_settings.check_configured(request.reply_forwarding)
    return request


def check_use_case_can_send(use_case: UseCase) -> None:
    if not use_case.active:
        raise UseCaseInactiveError("the use case is not active")
    if not use_case.sender_pool:
        raise NoSenderInPoolError("the use case's sender pool has no sender")
    if use_case.has_us_long_code and use_case.a2p_campaign_status is not A2pCampaignStatus.VERIFIED:
        raise A2pCampaignNotVerifiedError(
            "the sender pool has US long codes and the A2P 10DLC campaign is not verified",
            a2p_campaign_status=use_case.a2p_campaign_status.value,
        )
    if use_case.brand_status is BrandStatus.SUSPENDED:
        raise BrandSuspendedError("the brand registration behind the use case is suspended")


@dataclass(frozen=True, slots=True)
class PreparedSend:
    """A send that passed every check: what would be stored, before anything is."""

    use_case: UseCase
    to_number: str
    body: composing.Body
    pricing: composing.Pricing
    country: str | None
    sender: composing.SenderDecision
    external_id: str | None
    validity_period: int | None
    scheduled_for: datetime | None
    test: bool
    # The workspace's limits as read with the opt-outs (None: it has none).
    limits: limits_store.Limits | None = None
    # Where and how the message's status webhooks go.
    receipts: caller_webhook_settings.Receipts = caller_webhook_settings.NO_RECEIPTS
    # Where its replies go.
    reply_forwarding: ReplyForwarding | None = None


def prepare_send(workspace_id: str, request: SendRequest, *, test: bool) -> PreparedSend:
    """Every check of a send, in the documented order (SEND_ERRORS), writing nothing."""
    use_case = use_case_admin.get_use_case_for(workspace_id, request.use_case_id, cached=True)
    check_use_case_can_send(use_case)
    destination = check_destination(request.to_phone_number)
    # The workspace's limits are read in the same request as the opt-outs (one round trip);
    # they are decided on last, when the message is written (logic.admission).
    mode = mode_of(test)
    read = opt_out_store.read_opt_outs(
        opt_out_store.scopes_for(use_case.id, use_case.messaging_service_sid, test=test),
        destination.e164,
        other=limits_store.limits_item_key(workspace_id, mode),
    )
    if read.opted_out:
        raise RecipientOptedOutError("the recipient has opted out of messages from this sender")
    country = request.country or destination.region
    if country not in use_case.allowed_countries:
        raise RegionNotPermittedError(
            "the destination country is not allowed for this use case", country=country
        )
    body = composing.compose_body(
        workspace_id,
        message=request.message,
        template=request.template,
        variables=request.variables,
        smart_encoding=request.smart_encoding,
    )
    sender = composing.decide_sender(workspace_id, request.sender_id, country)
    send_time = scheduling.parse_send_at(request.send_at)
    receipts = caller_webhook_settings.receipts_for(
        use_case,
        request.status_callback_url,
        request.status_callback_method,
        delivery_receipt=request.delivery_receipt,
    )
    reply_forwarding_settings.check_urls(request.reply_forwarding)
    return PreparedSend(
        use_case=use_case,
        to_number=destination.e164,
        body=body,
        pricing=composing.price(body.text, country, test=test),
        country=country,
        sender=sender,
        external_id=request.external_id,
        validity_period=request.validity_period,
        scheduled_for=send_time.scheduled_for,
        test=test,
        limits=limits_store.Limits.from_item(read.other) if read.other else None,
        receipts=receipts,
        reply_forwarding=request.reply_forwarding,
    )


def send_message(
    workspace_id: str,
    request: SendRequest,
    *,
    test: bool = False,
    idempotency_key: str | None = None,
    forwarded_from: str | None = None,
) -> Message:
    """Check and store one message. `forwarded_from`: the inbound message it forwards, whose id
    gives it its own (the forwarding may run twice; the message is stored once)."""
    prepared = prepare_send(workspace_id, request, test=test)
    mode = mode_of(test)
    message = compose_message(workspace_id, prepared)
    if idempotency_key is not None:
        message.id = message_id_for_key(workspace_id, mode, idempotency_key)
    if forwarded_from is not None:
        message.id = forwarded_message_id(forwarded_from)
        message.forwarded_from = forwarded_from
    # Its id is derived (from the key, or from the forwarded message): a retry may find it stored.
    keyed = idempotency_key is not None or forwarded_from is not None
    # Storing the message is the commit point: the table's stream queues a pending one for
    # handoff (HandoffPipe), so nothing is left to do after the write that a crash could skip.
    # A scheduled one gets its schedule first: a schedule whose message was never stored finds
    # nothing to dispatch when it fires.
    # Limits are spent in the same write (logic.admission): a refused send stores nothing.
    if prepared.scheduled_for is not None:
        _schedule(message.id, prepared.scheduled_for, keyed=keyed)
    try:
        admission.store_admitted(message, prepared.limits, keyed=keyed)
    except (QuotaExceededError, RateLimitExceededError):
        if prepared.scheduled_for is not None:
            _unschedule(message.id)
        raise
    except message_store.MessageAlreadyExistsError as exc:
        return _replay(exc.existing, message)
    except ClientError as exc:
        logger.exception("message could not be stored")
        raise ServiceUnavailableError("the message could not be stored; retry later") from exc
    logger.info("message accepted", extra={"message_id": message.id, "status": message.status})
    return message


def compose_message(workspace_id: str, prepared: PreparedSend) -> Message:
    """The message a send that passed its checks stores (the preview answers part of it)."""
    message = new_message(
        workspace_id,
        prepared.use_case,
        prepared.to_number,
        prepared.body.text,
        prepared.scheduled_for,
    )
    compose_into(message, prepared)
    message.test = prepared.test
    return message


def preview(workspace_id: str, prepared: PreparedSend) -> dict[str, Any]:
    """POST /v1/sms/preview's answer: the fields of what the send would store, taken from the
    very message it would build, and the room left in the last segment."""
    stored = compose_message(workspace_id, prepared).to_api()
    return {
        **{name: stored[name] for name in PREVIEW_FIELDS},
        "characters_until_next_segment": prepared.pricing.count.units_left,
    }


def compose_into(message: Message, prepared: PreparedSend) -> None:
    """What composing decided, on the message to store."""
    message.encoding = prepared.pricing.count.encoding
    message.segments = prepared.pricing.count.segments
    message.cost = prepared.pricing.cost
    message.template_id = prepared.body.template_id
    message.sender_id = prepared.sender.sender_id
    message.sender_id_applied = prepared.sender.applied
    message.country = prepared.country
    message.external_id = prepared.external_id
    message.validity_period = prepared.validity_period
    message.status_callback_url = prepared.receipts.url
    message.status_callback_method = prepared.receipts.method
    message.delivery_receipt = prepared.receipts.delivery_receipt
    message.reply_forwarding = prepared.reply_forwarding


def _schedule(message_id: str, moment: datetime, *, keyed: bool) -> None:
    try:
        schedules.create_message_schedule(message_id, moment)
    except schedules.ScheduleExistsError:
        # Only a retry of the same Idempotency-Key can name an existing schedule: its first
        # attempt created it (and may or may not have stored the message; the put decides).
        if not keyed:
            raise
    except ClientError as exc:
        logger.exception("schedule could not be created")
        raise ServiceUnavailableError("the message could not be scheduled; retry later") from exc


def _unschedule(message_id: str) -> None:
    """A refused send's schedule goes: it would fire for a message that was never stored."""
    try:
        schedules.delete_message_schedule(message_id)
    except ClientError:
        # It would find nothing to dispatch anyway; only the schedule itself lingers.
        logger.warning("the schedule of a refused send could not be deleted")


def _same_send(existing: Message, attempted: Message) -> bool:
    """The same text to the same person through the same use case, in the same workspace and
    mode. Compared on the stored message itself (a digest of the request would cost every
    message's writes bytes); a schedule may only have come due since (then it is sent now)."""
    same_text_to_same_person = (
        existing.workspace_id == attempted.workspace_id
        and existing.use_case_id == attempted.use_case_id
        and existing.to_number == attempted.to_number
        and existing.body == attempted.body
        and existing.test == attempted.test
        and existing.template_id == attempted.template_id
        and existing.sender_id == attempted.sender_id
        and existing.country == attempted.country
        and existing.external_id == attempted.external_id
        and existing.validity_period == attempted.validity_period
        and existing.status_callback_url == attempted.status_callback_url
        and existing.status_callback_method == attempted.status_callback_method
        and existing.delivery_receipt == attempted.delivery_receipt
        and existing.reply_forwarding == attempted.reply_forwarding
        and existing.forwarded_from == attempted.forwarded_from
    )
    return same_text_to_same_person and attempted.send_at in (None, existing.send_at)


def _replay(existing: Message, attempted: Message) -> Message:
    """The id was taken: by this same request before (a retried key whose first answer was
    lost, or an SDK retry of a put that had gone through), which gets the stored message back,
    or by another request reusing the key after its idempotency record expired, refused."""
    if not _same_send(existing, attempted):
        raise IdempotencyKeyReusedError(
            "this Idempotency-Key was used with a different request body"
        )
    logger.info("send replayed from the stored message", extra={"message_id": existing.id})
    return existing


def new_message(
    workspace_id: str,
    use_case: UseCase,
    to_number: str,
    body: str,
    scheduled_for: datetime | None = None,
) -> Message:
    now = now_iso()
    status = MessageStatus.PENDING if scheduled_for is None else MessageStatus.SCHEDULED
    return Message(
        id=new_id(),
        workspace_id=workspace_id,
        use_case_id=use_case.id,
        account_sid=use_case.twilio_account_sid,
        to_number=to_number,
        body=body,
        status=status,
        send_at=iso(scheduled_for) if scheduled_for else None,
        created_at=now,
        updated_at=now,
        history=[HistoryEntry(at=now, event="created", status=status)],
    )


def send_once(
    caller: Caller,
    request: SendRequest,
    *,
    idempotency_key: str | None,
    lambda_context: LambdaContext | None,
) -> dict[str, Any]:
    """The API's answer to a send: with an Idempotency-Key, the first answer for that key again
    (its retries change nothing), without one a new message."""

    def send() -> dict[str, Any]:
        message = send_message(
            caller.workspace_id,
            request,
            test=caller.is_test,
            idempotency_key=idempotency_key,
        )
        return message.to_api()

    if idempotency_key is None:
        return send()
    if not 1 <= len(idempotency_key) <= idempotency.MAX_KEY_LENGTH:
        raise ValidationError(
            f"Idempotency-Key must be 1 to {idempotency.MAX_KEY_LENGTH} characters",
            errors=[{"field": "Idempotency-Key", "issue": "length out of range"}],
        )
    return idempotency.run_once(
        # A key is the workspace's in one mode: a test request never answers for a live one.
        scope=f"{caller.workspace_id}#{caller.mode}",
        key=idempotency_key,
        payload=request.model_dump(),
        action=send,
        lambda_context=lambda_context,
    )
