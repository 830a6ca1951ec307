"""Handoff to the provider: at most one SMS per message, whatever SQS redelivers.

A message is claimed with a conditional write before Twilio is called. A claim that finds an
older claim with no recorded answer means a worker died mid-call: the message may or may not
have been sent, so it ends `failed` with OUTCOME_UNKNOWN_ERROR_CODE instead of being resent.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from sms_gateway import (
    message_store,
    opt_out_store,
    provider_credentials,
    transitions,
    twilio_client,
    use_case_store,
)
from sms_gateway.clock import now_iso, utc_now
from sms_gateway.config import get_settings
from sms_gateway.messages import Message, MessageStatus
from sms_gateway.segments import count_segments
from sms_gateway.status_callback import CALLBACK_PATH
from sms_gateway.use_cases import BrandStatus, UseCase

logger = Logger(child=True)

# Our own codes, outside Twilio's ranges: documented in the README and the API reference.
OUTCOME_UNKNOWN_ERROR_CODE = 99001
CREDENTIALS_UNAVAILABLE_ERROR_CODE = 99002
PROVIDER_UNAVAILABLE_ERROR_CODE = 99003
USE_CASE_CHANGED_ERROR_CODE = 99004
UNSUBSCRIBED_ERROR_CODE = 21610


class HandoffOutcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    OUTCOME_UNKNOWN = "outcome_unknown"
    ALREADY_HANDLED = "already_handled"
    GONE = "gone"


class RetryHandoffLater(Exception):
    """Leave the SQS message for redelivery. `backoff`: the provider or a dependency is busy
    (wait longer each time, and give up on the last delivery); otherwise retry after
    `retry_in_seconds`."""

    def __init__(self, reason: str, *, backoff: bool, retry_in_seconds: int = 0) -> None:
        super().__init__(reason)
        self.backoff = backoff
        self.retry_in_seconds = retry_in_seconds


def status_callback_url(message_id: str) -> str:
    return f"{get_settings().public_base_url.rstrip('/')}{CALLBACK_PATH}?message_id={message_id}"


def hand_off(message_id: str) -> HandoffOutcome:
    message = message_store.get_message(message_id)
    if message is None:
        return HandoffOutcome.GONE
    if message.status is not MessageStatus.PENDING or message.message_sid:
        return HandoffOutcome.ALREADY_HANDLED
    if message.claimed_at:
        return _resolve_existing_claim(message)

    claimed_at = now_iso()
    if not transitions.claim_for_handoff(message_id, claimed_at):
        # Another delivery of the same SQS message won the claim a moment ago.
        raise RetryHandoffLater(
            "claimed by another worker",
            backoff=False,
            retry_in_seconds=int(get_settings().handoff_claim_timeout_seconds) + 1,
        )
    return _call_provider(message, claimed_at)


def _resolve_existing_claim(message: Message) -> HandoffOutcome:
    assert message.claimed_at is not None
    age = utc_now() - datetime.fromisoformat(message.claimed_at)
    timeout = timedelta(seconds=get_settings().handoff_claim_timeout_seconds)
    if age < timeout:
        # Come back when the claim would be stale, to resolve it if its worker died.
        raise RetryHandoffLater(
            "a claim is in progress",
            backoff=False,
            retry_in_seconds=int((timeout - age).total_seconds()) + 1,
        )
    failed = transitions.fail(
        message.id,
        now_iso(),
        OUTCOME_UNKNOWN_ERROR_CODE,
        claimed_at=message.claimed_at,
        reason="handoff_outcome_unknown",
    )
    logger.warning(
        "stale handoff claim resolved", extra={"message_id": message.id, "failed": failed}
    )
    return HandoffOutcome.OUTCOME_UNKNOWN if failed else HandoffOutcome.ALREADY_HANDLED


def _still_sendable(message: Message, use_case: UseCase | None) -> tuple[int, str] | None:
    """Re-check, at handoff, what may have changed since the send was accepted (a scheduled
    message may wait 30 days): the error code and reason that stop it, or None."""
    if (
        use_case is None
        or use_case.deleted
        or not use_case.active
        or use_case.brand_status is BrandStatus.SUSPENDED
        or use_case.twilio_account_sid != message.account_sid
    ):
        # A changed subaccount would also make every callback fail its account check.
        return USE_CASE_CHANGED_ERROR_CODE, "use_case_no_longer_sendable"
    scopes = opt_out_store.scopes_for(use_case.id, use_case.messaging_service_sid)
    if message.send_at and opt_out_store.is_opted_out(scopes, message.to_number):
        return UNSUBSCRIBED_ERROR_CODE, "recipient_opted_out"
    return None


def _call_provider(message: Message, claimed_at: str) -> HandoffOutcome:
    use_case = use_case_store.get_use_case_cached(message.use_case_id)
    stopped = _still_sendable(message, use_case)
    if stopped is not None:
        code, reason = stopped
        transitions.fail(message.id, now_iso(), code, claimed_at=claimed_at, reason=reason)
        logger.info("not sent", extra={"message_id": message.id, "error_code": code})
        return HandoffOutcome.REJECTED
    assert use_case is not None
    if message.test:
        return _simulate(message, use_case)
    try:
        token = provider_credentials.auth_token(use_case.twilio_auth_token_secret)
    except provider_credentials.CredentialsUnavailableError as exc:
        # Nothing reached Twilio: give the claim back and try again later.
        _with_retries(lambda: transitions.release_claim(message.id, claimed_at))
        raise RetryHandoffLater("credentials unavailable now", backoff=True) from exc
    if token is None:
        transitions.fail(
            message.id, now_iso(), CREDENTIALS_UNAVAILABLE_ERROR_CODE,
            claimed_at=claimed_at, reason="credentials_unavailable",
        )  # fmt: skip
        logger.error("no provider credentials", extra={"message_id": message.id})
        return HandoffOutcome.REJECTED

    result = twilio_client.create_message(
        account_sid=use_case.twilio_account_sid,
        auth_token=token,
        to=message.to_number,
        body=message.body,
        messaging_service_sid=use_case.messaging_service_sid,
        status_callback=status_callback_url(message.id),
    )
    log = {"message_id": message.id, "result": type(result).__name__}
    match result:
        case twilio_client.Accepted():
            segments = result.num_segments or count_segments(message.body).segments
            _with_retries(
                lambda: transitions.record_acceptance(
                    message.id, now_iso(), result.message_sid, segments, result.from_number
                )
            )
            logger.info("handed off", extra=log)
            return HandoffOutcome.ACCEPTED
        case twilio_client.Rejected():
            transitions.fail(
                message.id, now_iso(), result.error_code,
                claimed_at=claimed_at, reason="provider_rejected",
            )  # fmt: skip
            if result.error_code == UNSUBSCRIBED_ERROR_CODE:
                # Twilio keeps STOP per Messaging Service; so do we, to refuse at send time.
                opt_out_store.add_opt_out(
                    opt_out_store.service_scope(use_case.messaging_service_sid),
                    message.to_number,
                    "twilio_21610",
                )
            logger.info("provider rejected", extra={**log, "error_code": result.error_code})
            return HandoffOutcome.REJECTED
        case twilio_client.RetryLater():
            _with_retries(lambda: transitions.release_claim(message.id, claimed_at))
            logger.info("provider busy, will retry", extra={**log, "reason": result.reason})
            raise RetryHandoffLater(result.reason, backoff=True)
        case twilio_client.OutcomeUnknown():
            transitions.fail(
                message.id, now_iso(), OUTCOME_UNKNOWN_ERROR_CODE,
                claimed_at=claimed_at, reason="handoff_outcome_unknown",
            )  # fmt: skip
            logger.warning("provider outcome unknown", extra={**log, "reason": result.reason})
            return HandoffOutcome.OUTCOME_UNKNOWN


def _with_retries(write: Callable[[], bool], attempts: int = 4) -> bool:
    """A write whose loss would later fail the message as outcome unknown (Twilio's acceptance,
    or giving back a claim for a call that certainly did not happen): worth a few more tries
    than botocore's own before giving up."""
    for attempt in range(attempts):
        try:
            return write()
        except ClientError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    return False


def _simulate(message: Message, use_case: UseCase) -> HandoffOutcome:
    """A test key's message: everything but the carrier. It gets a simulated SID and sender and
    is delivered at once, through the same writes a real acceptance and callback make."""
    sender = next((s.sender for s in use_case.sender_pool if s.sender.startswith("+")), None)
    segments = count_segments(message.body).segments
    sid = "SM" + uuid.uuid4().hex
    at = now_iso()
    transitions.record_acceptance(message.id, at, sid, segments, sender)
    transitions.apply_provider_event(
        message.id,
        transitions.ProviderEvent(
            account_sid=message.account_sid or "", provider_status="delivered", at=at
        ),
    )
    logger.info("test message delivered without a carrier", extra={"message_id": message.id})
    return HandoffOutcome.ACCEPTED


def give_up(message_id: str) -> bool:
    """The last delivery found the provider still busy: end the message (it certainly was not
    sent) rather than leave it pending in the dead-letter queue."""
    return transitions.fail_unsent(
        message_id, now_iso(), PROVIDER_UNAVAILABLE_ERROR_CODE, reason="handoff_gave_up"
    )


def backoff_seconds(receive_count: int) -> int:
    """Exponential backoff through SQS visibility: 10 s, 20 s, 40 s ... capped at 15 minutes."""
    base = get_settings().handoff_retry_base_seconds
    return int(min(900, base * 2 ** max(0, receive_count - 1)))
