"""Sending: the checks of the send API in their documented order, then one write (the table's
stream queues the handoff)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

from sms_gateway.domain.callers import Caller
from sms_gateway.domain.clock import iso, now_iso
from sms_gateway.domain.errors import (
    A2pCampaignNotVerifiedError,
    BrandSuspendedError,
    IdempotencyKeyReusedError,
    NoSenderInPoolError,
    RecipientOptedOutError,
    RegionNotPermittedError,
    ServiceUnavailableError,
    UseCaseInactiveError,
    ValidationError,
)
from sms_gateway.domain.ids import message_id_for_key, new_id
from sms_gateway.domain.messages import (
    DateTimeStr,
    HistoryEntry,
    Message,
    MessageStatus,
    UuidStr,
)
from sms_gateway.domain.phone import check_destination
from sms_gateway.domain.use_cases import A2pCampaignStatus, BrandStatus, UseCase
from sms_gateway.logic import scheduling, use_case_admin
from sms_gateway.store import idempotency, message_store, opt_out_store, schedules

logger = Logger(child=True)

MAX_MESSAGE_CHARS = 1600


class SendRequest(BaseModel):
    """The POST /v1/sms/ body. Field formats are checked by send_message, in the API's order."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # The formats below only document what send_message checks (json_schema_extra validates
    # nothing): a pydantic check here would answer before, and with other codes than, the API's.
    # The pattern is check_destination's shape check; a real mobile number is checked after it.
    use_case_id: UuidStr
    to_phone_number: str = Field(
        description="The recipient in E.164: '+' and 8 to 15 digits",
        examples=["+14155552671"],
        json_schema_extra={"pattern": r"^\+[0-9]{8,15}$"},
    )
    message: str = Field(json_schema_extra={"minLength": 1, "maxLength": MAX_MESSAGE_CHARS})
    send_at: DateTimeStr | None = Field(
        default=None,
        description="RFC 3339 with an offset, from one hour ago to 30 days ahead; "
        "omitted or null: send now",
    )


def parse_send_request(data: dict[str, Any]) -> SendRequest:
    """A missing or unknown field, or a wrong type, is a validation_error."""
    try:
        return SendRequest.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError.from_pydantic("request body is invalid", exc) from exc


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


def send_message(
    workspace_id: str,
    request: SendRequest,
    *,
    test: bool = False,
    idempotency_key: str | None = None,
) -> Message:
    use_case = use_case_admin.get_use_case_for(workspace_id, request.use_case_id, cached=True)
    check_use_case_can_send(use_case)
    destination = check_destination(request.to_phone_number)
    if opt_out_store.is_opted_out(
        opt_out_store.scopes_for(use_case.id, use_case.messaging_service_sid), destination.e164
    ):
        raise RecipientOptedOutError("the recipient has opted out of messages from this sender")
    if destination.region not in use_case.allowed_countries:
        raise RegionNotPermittedError(
            "the destination country is not allowed for this use case",
            country=destination.region,
        )
    if not 1 <= len(request.message) <= MAX_MESSAGE_CHARS:
        raise ValidationError(
            f"message must be 1 to {MAX_MESSAGE_CHARS} characters",
            errors=[{"field": "message", "issue": "length out of range"}],
        )

    send_time = scheduling.parse_send_at(request.send_at)
    mode = "test" if test else "live"
    message = new_message(
        workspace_id, use_case, destination.e164, request.message, send_time.scheduled_for
    )
    if idempotency_key is not None:
        message.id = message_id_for_key(workspace_id, mode, idempotency_key)
    message.test = test
    # Storing the message is the commit point: the table's stream queues a pending one for
    # handoff (HandoffPipe), so nothing is left to do after the write that a crash could skip.
    # A scheduled one gets its schedule first: a schedule whose message was never stored finds
    # nothing to dispatch when it fires.
    if send_time.scheduled_for is not None:
        _schedule(message.id, send_time.scheduled_for, keyed=idempotency_key is not None)
    try:
        message_store.put_new_message(message)
    except message_store.MessageAlreadyExistsError as exc:
        return _replay(exc.existing, message)
    except ClientError as exc:
        logger.exception("message could not be stored")
        raise ServiceUnavailableError("the message could not be stored; retry later") from exc
    logger.info("message accepted", extra={"message_id": message.id, "status": message.status})
    return message


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
