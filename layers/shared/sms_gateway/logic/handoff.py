"""Handoff to the provider: at most one SMS per message, whatever SQS redelivers.

What can be checked or read without touching the message comes first (the use case, the opt-out
list, the provider's credentials); then the message is claimed with a conditional write, and only
then is the provider called. A claim that finds an older claim with no recorded answer means a
worker died between its claim and the provider's answer: the message may or may not have been
sent, so it ends `failed` with error_codes.OUTCOME_UNKNOWN instead of being resent. Whatever fails
while the claim is held but before the request left gives the claim back, so a message that
certainly was not sent is retried, never taken for one whose outcome is unknown.

The provider is reached only through providers.interface: this module speaks our statuses and
our error codes.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from sms_gateway import providers
from sms_gateway.config import get_settings
from sms_gateway.domain import error_codes
from sms_gateway.domain.clock import now_iso, utc_now
from sms_gateway.domain.messages import Message, MessageStatus
from sms_gateway.domain.provider_events import ProviderEvent
from sms_gateway.domain.segments import count_segments
from sms_gateway.domain.use_cases import BrandStatus, UseCase
from sms_gateway.providers import results
from sms_gateway.providers.interface import CredentialsUnavailableError, OutboundSms, Provider
from sms_gateway.store import message_store, opt_out_store, transitions, use_case_store

logger = Logger(child=True)

# Writing down the provider's answer once it came (with _with_retries' pauses): part of what must
# still fit in the invocation before a provider call starts.
ANSWER_RECORDING_SECONDS = 2.0
# A message can change under its last delivery (a worker claims, answers or gives back): enough
# looks for such a race to settle.
LAST_DELIVERY_LOOKS = 3


class HandoffOutcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    OUTCOME_UNKNOWN = "outcome_unknown"
    GAVE_UP = "gave_up"
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


def status_callback_url(message_id: str, provider: Provider = providers.TWILIO) -> str:
    base = get_settings().public_base_url.rstrip("/")
    return f"{base}{provider.callback_path}?message_id={message_id}"


def provider_call_seconds() -> float:
    """The most one provider call may take once started, with recording its answer: a call the
    function's timeout cut off would leave the message's outcome unknown."""
    settings = get_settings()
    return (
        settings.provider_connect_timeout_seconds
        + settings.provider_read_timeout_seconds
        + ANSWER_RECORDING_SECONDS
    )


def no_deadline() -> float:
    return math.inf


def hand_off(message_id: str, *, seconds_left: Callable[[], float] = no_deadline) -> HandoffOutcome:
    """Hand one message to its provider. `seconds_left`: what remains of the invocation, looked
    at right before the provider is called."""
    message = message_store.get_message(message_id)
    if message is None:
        return HandoffOutcome.GONE
    if message.status is not MessageStatus.PENDING or message.message_sid:
        return HandoffOutcome.ALREADY_HANDLED
    if message.claimed_at:
        return _resolve_existing_claim(message)
    use_case = use_case_store.get_use_case_cached(message.use_case_id)
    stopped = _still_sendable(message, use_case)
    if stopped is not None:
        return _stop_unsent(message, *stopped)
    assert use_case is not None
    if message.test:
        return _simulate(message, use_case, _claim(message.id))
    provider = providers.TWILIO
    token = _credentials(provider, use_case)
    if token is None:
        logger.error("no provider credentials", extra={"message_id": message.id})
        return _stop_unsent(message, error_codes.CREDENTIALS_UNAVAILABLE, "credentials_unavailable")
    claimed_at = _claim(message.id)
    try:
        result = _send(provider, message, use_case, token, seconds_left)
    except Exception:
        # The provider created nothing (the request never left, or it refused the token): give the
        # claim back, so the retry sends the message instead of failing it as outcome unknown.
        _with_retries(lambda: transitions.release_claim(message.id, claimed_at))
        raise
    return _record_answer(message, use_case, claimed_at, result)


def _claim(message_id: str) -> str:
    claimed_at = now_iso()
    if not transitions.claim_for_handoff(message_id, claimed_at):
        raise _claimed_elsewhere()
    return claimed_at


def _claimed_elsewhere() -> RetryHandoffLater:
    # Another delivery of the same message took it a moment ago: come back when that claim
    # would be stale, to resolve it if its worker died.
    return RetryHandoffLater(
        "claimed by another worker",
        backoff=False,
        retry_in_seconds=math.ceil(get_settings().handoff_claim_timeout_seconds) + 1,
    )


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
    return _end_claim_as_outcome_unknown(message.id, message.claimed_at)


def _end_claim_as_outcome_unknown(message_id: str, claimed_at: str) -> HandoffOutcome:
    """Fail the message as outcome unknown, if that claim still holds it with no answer."""
    failed = transitions.fail(
        message_id,
        now_iso(),
        error_codes.OUTCOME_UNKNOWN,
        claimed_at=claimed_at,
        reason="handoff_outcome_unknown",
    )
    logger.warning("handoff claim resolved", extra={"message_id": message_id, "failed": failed})
    return HandoffOutcome.OUTCOME_UNKNOWN if failed else HandoffOutcome.ALREADY_HANDLED


def _stop_unsent(message: Message, code: int, reason: str) -> HandoffOutcome:
    if not transitions.fail_unsent(message.id, now_iso(), code, reason=reason):
        # Another worker claimed or ended it meanwhile: look again later.
        raise _claimed_elsewhere()
    logger.info("not sent", extra={"message_id": message.id, "error_code": code})
    return HandoffOutcome.REJECTED


def _credentials(provider: Provider, use_case: UseCase, *, fresh: bool = False) -> str | None:
    try:
        return provider.credentials(use_case, fresh=fresh)
    except CredentialsUnavailableError as exc:
        raise RetryHandoffLater("credentials unavailable now", backoff=True) from exc


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
        return error_codes.USE_CASE_CHANGED, "use_case_no_longer_sendable"
    deadline = message.validity_deadline()
    if deadline is not None and utc_now() >= deadline:
        return error_codes.VALIDITY_PERIOD_EXPIRED, "validity_period_expired"
    scopes = opt_out_store.scopes_for(
        use_case.id, use_case.messaging_service_sid, test=message.test
    )
    if message.send_at and opt_out_store.is_opted_out(scopes, message.to_number):
        return error_codes.RECIPIENT_UNSUBSCRIBED, "recipient_opted_out"
    return None


def _validity_left(message: Message) -> int | None:
    """What is left of the message's validity period, for the provider's own queue: at least
    one second (the handoff checked it had not run out a moment ago)."""
    deadline = message.validity_deadline()
    if deadline is None:
        return None
    return max(1, math.floor((deadline - utc_now()).total_seconds()))


# The provider's answer to a request that left: it took the message, refused it, or nobody knows.
Answer = results.Accepted | results.Rejected | results.OutcomeUnknown


def _send(
    provider: Provider,
    message: Message,
    use_case: UseCase,
    token: str,
    seconds_left: Callable[[], float],
) -> Answer:
    """The provider's answer. Raises only while the provider has created nothing."""
    result = _post(provider, message, use_case, token, seconds_left)
    if isinstance(result, results.Rejected) and result.credentials_refused:
        # The cached token may have been rotated: read it again past the cache and, if it
        # changed, send once more (a 401 created nothing, so this is no second SMS).
        fresh = _credentials(provider, use_case, fresh=True)
        if fresh is not None and fresh != token:
            logger.info(
                "auth token refused; sending with the new one", extra={"message_id": message.id}
            )
            result = _post(provider, message, use_case, fresh, seconds_left)
    if isinstance(result, results.RetryLater):
        logger.info(
            "provider busy, will retry", extra={"message_id": message.id, "reason": result.reason}
        )
        raise RetryHandoffLater(result.reason, backoff=True)
    return result


def _post(
    provider: Provider,
    message: Message,
    use_case: UseCase,
    token: str,
    seconds_left: Callable[[], float],
) -> results.HandoffResult:
    # Looked at here, after the reads and the claim: the check before the record started could
    # not count what they took.
    if seconds_left() < provider_call_seconds():
        raise RetryHandoffLater("not enough time left in this invocation", backoff=True)
    sms = OutboundSms(
        message_id=message.id,
        to=message.to_number,
        body=message.body,
        use_case=use_case,
        status_callback_url=status_callback_url(message.id, provider),
        sender_id=message.alphanumeric_sender,
        validity_seconds=_validity_left(message),
    )
    return provider.send(sms, token)


def _record_answer(
    message: Message, use_case: UseCase, claimed_at: str, result: Answer
) -> HandoffOutcome:
    log = {"message_id": message.id, "result": type(result).__name__}
    match result:
        case results.Accepted():
            segments = result.num_segments or count_segments(message.body).segments
            _with_retries(
                lambda: transitions.record_acceptance(
                    message.id, now_iso(), result.message_sid, segments, result.from_number
                )
            )
            logger.info("handed off", extra=log)
            return HandoffOutcome.ACCEPTED
        case results.Rejected():
            _with_retries(
                lambda: transitions.fail(
                    message.id, now_iso(), result.error_code,
                    claimed_at=claimed_at, reason="provider_rejected",
                )
            )  # fmt: skip
            if result.error_code == error_codes.RECIPIENT_UNSUBSCRIBED:
                opt_out_store.add_twilio_unsubscribed(
                    use_case.messaging_service_sid, message.to_number, message.id
                )
            logger.info("provider rejected", extra={**log, "error_code": result.error_code})
            return HandoffOutcome.REJECTED
        case results.OutcomeUnknown():
            logger.warning("provider outcome unknown", extra={**log, "reason": result.reason})
            return _end_claim_as_outcome_unknown(message.id, claimed_at)


def _with_retries(write: Callable[[], bool], attempts: int = 4) -> bool:
    """A write whose loss would later fail the message as outcome unknown (the acceptance,
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


def _simulate(message: Message, use_case: UseCase, claimed_at: str) -> HandoffOutcome:
    """A test key's message: everything but the carrier. It gets a simulated SID and sender and
    is delivered at once, through the same writes a real acceptance and callback make (under a
    claim, so that two deliveries cannot give it two SIDs)."""
    sender = message.alphanumeric_sender or next(
        (s.sender for s in use_case.sender_pool if s.sender.startswith("+")), None
    )
    segments = message.segments or count_segments(message.body).segments
    sid = "SM" + uuid.uuid4().hex
    at = now_iso()
    transitions.record_acceptance(message.id, at, sid, segments, sender)
    transitions.apply_provider_event(
        message.id,
        ProviderEvent(
            account_sid=message.account_sid or "",
            status=MessageStatus.DELIVERED,
            provider_status="delivered",
            at=at,
        ),
    )
    logger.info("test message delivered without a carrier", extra={"message_id": message.id})
    return HandoffOutcome.ACCEPTED


def _give_up(message_id: str) -> bool:
    """End a message no worker holds and its provider never accepted: it certainly was not
    sent."""
    return transitions.fail_unsent(
        message_id, now_iso(), error_codes.PROVIDER_UNAVAILABLE, reason="handoff_gave_up"
    )


def end_unfinished(message_id: str) -> HandoffOutcome:
    """The queue's last delivery of a message that could not be handed off now, whatever the
    reason: end it here. The next delivery would be past the queue's maxReceiveCount, and SQS
    would move the message to the dead-letter queue still pending, where nothing ends it.

    Unclaimed, it was never sent: failed as given up (99003). Claimed, the claim is another
    delivery's (this one's own attempts gave theirs back, and a claim its dead predecessor left
    is stale after the visibility timeout, resolved by hand_off itself). That worker may be dead,
    and then nothing else is sure to end the message: its delivery may be at its last too, or be
    this very SQS message received twice. Or it is alive, mid-call, and its SMS may go out. This
    delivery cannot wait for the claim to go stale, so, fresh or stale, the outcome is unknown:
    failed with 99001 (which says just that: it may have been sent), never resent. Both writes
    are conditional (pending, no answer recorded, and for a claim that same claim still held),
    so a worker that records the provider's answer or gives the claim back first wins, and then
    the message is looked at again."""
    for _ in range(LAST_DELIVERY_LOOKS):
        message = message_store.get_message(message_id)
        if message is None:
            return HandoffOutcome.GONE
        if message.status is not MessageStatus.PENDING or message.message_sid:
            return HandoffOutcome.ALREADY_HANDLED
        if message.claimed_at is None:
            if _give_up(message_id):
                logger.warning("handoff gave up", extra={"message_id": message_id})
                return HandoffOutcome.GAVE_UP
        elif (
            outcome := _end_claim_as_outcome_unknown(message_id, message.claimed_at)
        ) is HandoffOutcome.OUTCOME_UNKNOWN:
            return outcome
    raise RuntimeError(f"message {message_id} kept changing under its last delivery")
