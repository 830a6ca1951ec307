"""Handoff to the providers: at most one SMS per message, whatever SQS redelivers, whichever
provider takes it.

What can be checked or read without touching the message comes first (the use case, the opt-out
list, the providers' health); then the message is claimed with a conditional write, and only
then is a provider called. Providers are tried in the use case's order (one cooling down after
recent failures last): the next one at once when the one before certainly did not take the
message, never after an unknown outcome, never after a refusal about the recipient.

A claim that finds an older claim with no recorded answer means a worker died between its claim
and the provider's answer: the message may or may not have been sent, so it ends `failed` with
error_codes.OUTCOME_UNKNOWN instead of being resent. Whatever fails while the claim is held but
before the request left gives the claim back, so a message that certainly was not sent is
retried, never taken for one whose outcome is unknown.

Providers are reached only through providers.interface: this module speaks our statuses and
our error codes.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from sms_gateway import providers
from sms_gateway.config import get_settings
from sms_gateway.domain import error_codes, provider_routing
from sms_gateway.domain.clock import now_iso, utc_now
from sms_gateway.domain.messages import Message, MessageStatus
from sms_gateway.domain.provider_attempts import (
    MAX_PROVIDER_ATTEMPTS,
    AttemptOutcome,
    ProviderAttempt,
)
from sms_gateway.domain.provider_choices import ProviderChoice, ProviderName
from sms_gateway.domain.provider_events import ProviderEvent
from sms_gateway.domain.segments import count_segments
from sms_gateway.domain.use_cases import BrandStatus, UseCase
from sms_gateway.providers import results
from sms_gateway.providers.interface import CredentialsUnavailableError, OutboundSms, Provider
from sms_gateway.store import (
    message_store,
    opt_out_store,
    provider_health,
    transitions,
    use_case_store,
)

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


def status_callback_url(message_id: str) -> str:
    """Where Twilio calls back about a message (the URL its signatures are made over)."""
    url = callback_url(message_id, providers.TWILIO)
    assert url is not None
    return url


def callback_url(message_id: str, provider: Provider) -> str | None:
    """Where a provider that calls back is told to, about one message; None for another."""
    if provider.callback_path is None:
        return None
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
    """Hand one message to its providers, in order, until one takes it. `seconds_left`: what
    remains of the invocation, looked at right before each provider is called."""
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
        first = use_case.providers[0].name
        return _simulate(message, use_case, _claim(message.id, first))
    route = provider_routing.route(use_case.providers, _cooling())
    tokens: dict[str, Credentials] = {
        choice.name: _credentials(choice.name, use_case) for choice in route
    }
    if not any(isinstance(token, str) for token in tokens.values()):
        # No provider can be called: decided before the claim, so nothing is written for it.
        if any(token is _UNREADABLE for token in tokens.values()):
            raise RetryHandoffLater("credentials unavailable now", backoff=True)
        logger.error("no provider credentials", extra={"message_id": message.id})
        return _stop_unsent(message, error_codes.CREDENTIALS_UNAVAILABLE, "credentials_unavailable")
    claimed_at = _claim(message.id, route[0].name)
    return _Handoff(message, use_case, claimed_at, seconds_left, tokens).run(route)


class _Unreadable:
    """Credentials that exist but cannot be read now."""


_UNREADABLE = _Unreadable()
Credentials = str | None | _Unreadable


def _credentials(provider: str, use_case: UseCase) -> Credentials:
    try:
        return providers.BY_NAME[provider].credentials(use_case)
    except CredentialsUnavailableError:
        logger.warning("provider credentials unreadable", extra={"provider": provider})
        return _UNREADABLE


def _cooling() -> frozenset[str]:
    """The providers to try last now; none when their state cannot be read (routing by health
    is an optimisation: a message must not wait for it)."""
    try:
        return provider_health.cooling(utc_now())
    except (ClientError, BotoCoreError) as exc:
        logger.warning("provider health unreadable", extra={"error": str(exc)})
        return frozenset()


def _claim(message_id: str, provider: str) -> str:
    claimed_at = now_iso()
    if not transitions.claim_for_handoff(message_id, claimed_at, provider):
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
    return _end_claim_as_outcome_unknown(message.id, message.claimed_at, _abandoned(message))


def _abandoned(message: Message) -> ProviderAttempt | None:
    """The attempt a dead worker left unrecorded: of the provider its claim named (an older
    message's claim named none: Twilio's), outcome unknown."""
    if len(message.provider_attempts) >= MAX_PROVIDER_ATTEMPTS:
        return None
    return ProviderAttempt(
        provider=message.provider or ProviderName.TWILIO.value,
        at=now_iso(),
        outcome=AttemptOutcome.UNKNOWN,
    )


def _end_claim_as_outcome_unknown(
    message_id: str,
    claimed_at: str,
    attempt: ProviderAttempt | None,
    *,
    own_attempt: bool = False,
) -> HandoffOutcome:
    """Fail the message as outcome unknown, if that claim still holds it with no answer.
    `own_attempt`: the attempt is this worker's (its call got no answer), kept even when the
    answer came another way first; a resolver's guess for a dead worker is kept only with the
    failure it explains."""
    failed = transitions.fail(
        message_id,
        now_iso(),
        error_codes.OUTCOME_UNKNOWN,
        claimed_at=claimed_at,
        reason="handoff_outcome_unknown",
        attempt=attempt,
    )
    logger.warning("handoff claim resolved", extra={"message_id": message_id, "failed": failed})
    if not failed and attempt is not None and own_attempt:
        # Its answer came another way first (a callback): the attempt is kept all the same.
        transitions.record_attempt(message_id, claimed_at, attempt=attempt)
    return HandoffOutcome.OUTCOME_UNKNOWN if failed else HandoffOutcome.ALREADY_HANDLED


def _stop_unsent(message: Message, code: int, reason: str) -> HandoffOutcome:
    if not transitions.fail_unsent(message.id, now_iso(), code, reason=reason):
        # Another worker claimed or ended it meanwhile: look again later.
        raise _claimed_elsewhere()
    logger.info("not sent", extra={"message_id": message.id, "error_code": code})
    return HandoffOutcome.REJECTED


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


@dataclass(frozen=True, slots=True)
class _Refusal:
    error_code: int
    reason: str


class _Handoff:
    """One delivery's tries of a claimed message, provider after provider.

    The claim is held from the first try to the last: a provider is called only while it is
    ours, and each refusal is written with the name of the next provider under the claim's
    condition, so that a worker that lost its claim (resolved as stale by another) never calls
    a second provider. Every attempt is written: a refusal in that same write, the last one in
    the write that ends the delivery."""

    def __init__(
        self,
        message: Message,
        use_case: UseCase,
        claimed_at: str,
        seconds_left: Callable[[], float],
        tokens: dict[str, Credentials],
    ) -> None:
        self.message = message
        self.use_case = use_case
        self.claimed_at = claimed_at
        self.seconds_left = seconds_left
        self.tokens = tokens
        self.room = MAX_PROVIDER_ATTEMPTS - len(message.provider_attempts)
        self.first_refusal: _Refusal | None = None
        # Why each provider that may take it later could not now ("<provider>: <reason>").
        self.busy: list[str] = []

    def _attempt(self, attempt: ProviderAttempt) -> ProviderAttempt | None:
        """The attempt to write, or None once the message holds as many as it may."""
        if self.room <= 0:
            return None
        self.room -= 1
        return attempt

    def run(self, route: list[ProviderChoice]) -> HandoffOutcome:
        last: ProviderAttempt | None = None
        for index, choice in enumerate(route):
            try:
                if index > 0:
                    self._hand_to(choice, last)
                    last = None  # written
                result = self._try(choice)
            except Exception:
                # Nothing of this try left (it raised before the request did): give the claim
                # back, so a retry sends the message instead of failing it as outcome unknown.
                # (A claim another delivery resolved meanwhile is not given back: its
                # condition fails.)
                _with_retries(
                    partial(
                        transitions.release_claim, self.message.id, self.claimed_at, attempt=last
                    )
                )
                raise
            attempt = _attempt_of(choice.name, result)
            if not isinstance(result, results.Rejected | results.RetryLater) or (
                isinstance(result, results.Rejected) and result.recipient
            ):
                return self.record_answer(choice, result, self._attempt(attempt))
            self._note_unavailable(choice.name, result)
            last = self._attempt(attempt)
            if index + 1 == len(route):
                return self._every_provider_refused(last)
        raise AssertionError("a use case names at least one provider")

    def _hand_to(self, choice: ProviderChoice, last: ProviderAttempt | None) -> None:
        """Write the refusal before and the next provider's name, under the claim: a claim
        another delivery resolved meanwhile stops everything here (it is always written, so a
        message with no room left for attempts is checked all the same)."""
        if not _with_retries(
            lambda: transitions.hand_to_next_provider(
                self.message.id, self.claimed_at, attempt=last, provider=choice.name
            )
        ):
            raise _claimed_elsewhere()

    def _try(self, choice: ProviderChoice) -> results.HandoffResult:
        """One provider's answer. Raises only while the provider has created nothing."""
        provider = providers.BY_NAME[choice.name]
        token = self.tokens[choice.name]
        if isinstance(token, _Unreadable):
            return results.RetryLater("credentials unavailable now", provider_unavailable=False)
        if token is None:
            logger.error("no provider credentials", extra=self._log(choice.name))
            return results.Rejected(error_codes.CREDENTIALS_UNAVAILABLE, 0)
        result = self._post(provider, choice, token)
        if isinstance(result, results.Rejected) and result.credentials_refused:
            # The cached token may have been rotated: read it again past the cache and, if it
            # changed, send once more (a 401 created nothing, so this is no second SMS).
            try:
                fresh = provider.credentials(self.use_case, fresh=True)
            except CredentialsUnavailableError:
                return results.RetryLater("credentials unavailable now", provider_unavailable=False)
            if fresh is not None and fresh != token:
                logger.info(
                    "auth token refused; sending with the new one", extra=self._log(choice.name)
                )
                result = self._post(provider, choice, fresh)
        return result

    def _post(
        self, provider: Provider, choice: ProviderChoice, token: str
    ) -> results.HandoffResult:
        # Looked at here, after the reads and the claim: the check before the record started
        # could not count what they took.
        if self.seconds_left() < provider_call_seconds():
            raise RetryHandoffLater("not enough time left in this invocation", backoff=True)
        message = self.message
        sms = OutboundSms(
            message_id=message.id,
            to=message.to_number,
            body=message.body,
            use_case=self.use_case,
            choice=choice,
            status_callback_url=callback_url(message.id, provider),
            sender_id=message.alphanumeric_sender,
            validity_seconds=_validity_left(message),
        )
        return provider.send(sms, token)

    def _note_unavailable(
        self, provider: str, result: results.Rejected | results.RetryLater
    ) -> None:
        log = {**self._log(provider), "result": type(result).__name__}
        if isinstance(result, results.RetryLater):
            self.busy.append(f"{provider}: {result.reason}")
            logger.info("provider unavailable", extra={**log, "reason": result.reason})
            if result.provider_unavailable:
                _count_failure(provider)
            return
        if self.first_refusal is None:
            reason = (
                "credentials_unavailable"
                if result.error_code == error_codes.CREDENTIALS_UNAVAILABLE
                else "provider_rejected"
            )
            self.first_refusal = _Refusal(result.error_code, reason)
        logger.info("provider refused", extra={**log, "error_code": result.error_code})

    def _every_provider_refused(self, last: ProviderAttempt | None) -> HandoffOutcome:
        """No provider took it. One was unavailable: give the claim back and retry later, with
        backoff (all of them again). Every one refused for good: fail with the first refusal's
        code, as a single provider's refusal always did."""
        if self.busy or self.first_refusal is None:
            _with_retries(
                lambda: transitions.release_claim(self.message.id, self.claimed_at, attempt=last)
            )
            # One provider's reason as it is; several, each with its provider's name.
            only = len(self.busy) == 1
            reasons = [r.split(": ", 1)[1] for r in self.busy] if only else self.busy
            raise RetryHandoffLater("; ".join(reasons), backoff=True)
        refusal = self.first_refusal
        _with_retries(
            lambda: transitions.fail(
                self.message.id, now_iso(), refusal.error_code,
                claimed_at=self.claimed_at, reason=refusal.reason, attempt=last,
            )
        )  # fmt: skip
        logger.info("every provider refused", extra={"message_id": self.message.id})
        return HandoffOutcome.REJECTED

    def record_answer(
        self, choice: ProviderChoice, result: Answer, attempt: ProviderAttempt | None
    ) -> HandoffOutcome:
        message = self.message
        log = {**self._log(choice.name), "result": type(result).__name__}
        match result:
            case results.Accepted():
                segments = result.num_segments or count_segments(message.body).segments
                _with_retries(
                    lambda: transitions.record_acceptance(
                        message.id, now_iso(), result.message_sid, segments,
                        result.from_number, provider=choice.name, attempt=attempt,
                    )
                )  # fmt: skip
                logger.info("handed off", extra=log)
                return HandoffOutcome.ACCEPTED
            case results.Rejected():
                _with_retries(
                    lambda: transitions.fail(
                        message.id, now_iso(), result.error_code, claimed_at=self.claimed_at,
                        reason="provider_rejected", attempt=attempt,
                    )
                )  # fmt: skip
                if result.error_code == error_codes.RECIPIENT_UNSUBSCRIBED:
                    opt_out_store.add_provider_unsubscribed(
                        self.use_case.messaging_service_sid,
                        message.to_number,
                        message.id,
                        source=OPT_OUT_SOURCES[choice.name],
                    )
                logger.info("provider rejected", extra={**log, "error_code": result.error_code})
                return HandoffOutcome.REJECTED
            case results.OutcomeUnknown():
                logger.warning("provider outcome unknown", extra={**log, "reason": result.reason})
                _count_failure(choice.name)
                return _end_claim_as_outcome_unknown(
                    message.id, self.claimed_at, attempt, own_attempt=True
                )

    def _log(self, provider: str) -> dict[str, str]:
        return {"message_id": self.message.id, "provider": provider}


# Who put a number on the opt-out list when a provider refused it as unsubscribed.
OPT_OUT_SOURCES = {
    ProviderName.TWILIO.value: opt_out_store.OptOutSource.PROVIDER,
    ProviderName.AWS_EUM.value: opt_out_store.OptOutSource.AWS_EUM,
}


def _attempt_of(provider: str, result: results.HandoffResult) -> ProviderAttempt:
    at = now_iso()
    match result:
        case results.Accepted():
            return ProviderAttempt(
                provider=provider,
                at=at,
                outcome=AttemptOutcome.ACCEPTED,
                provider_message_id=result.message_sid,
            )
        case results.Rejected():
            return ProviderAttempt(
                provider=provider, at=at, outcome=AttemptOutcome.REFUSED,
                error_code=result.error_code,
            )  # fmt: skip
        case results.RetryLater():
            return ProviderAttempt(
                provider=provider, at=at, outcome=AttemptOutcome.RETRY_LATER,
                error_code=result.error_code,
            )  # fmt: skip
        case results.OutcomeUnknown():
            return ProviderAttempt(provider=provider, at=at, outcome=AttemptOutcome.UNKNOWN)


def _count_failure(provider: str) -> None:
    """Count a provider's unavailability for health-based routing; a failure to count it is
    logged, never the message's problem."""
    try:
        if provider_health.record_failure(provider, utc_now()):
            logger.warning("provider cooling down", extra={"provider": provider})
    except (ClientError, BotoCoreError) as exc:
        logger.warning("provider failure not counted", extra={"error": str(exc)})


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
    claim, so that two deliveries cannot give it two SIDs), as if its first provider took it."""
    sender = message.alphanumeric_sender or next(
        (s.sender for s in use_case.sender_pool if s.sender.startswith("+")), None
    )
    segments = message.segments or count_segments(message.body).segments
    sid = "SM" + uuid.uuid4().hex
    at = now_iso()
    provider = use_case.providers[0].name
    attempt = ProviderAttempt(
        provider=provider, at=at, outcome=AttemptOutcome.ACCEPTED, provider_message_id=sid
    )
    transitions.record_acceptance(
        message.id, at, sid, segments, sender, provider=provider, attempt=attempt
    )
    transitions.apply_provider_event(
        message.id,
        ProviderEvent(
            account_sid=message.account_sid or "",
            status=MessageStatus.DELIVERED,
            provider_status="delivered",
            at=at,
            provider=provider,
            message_sid=sid,
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
            outcome := _end_claim_as_outcome_unknown(
                message_id, message.claimed_at, _abandoned(message)
            )
        ) is HandoffOutcome.OUTCOME_UNKNOWN:
            return outcome
    raise RuntimeError(f"message {message_id} kept changing under its last delivery")
