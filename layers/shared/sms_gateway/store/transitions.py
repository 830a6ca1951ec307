"""The status machine, enforced by DynamoDB: every transition is one conditional UpdateItem whose
condition admits only the allowed predecessors (domain.status_table, drawn in
docs/architecture.md). A failed condition is not an error: it is the answer that the transition
does not apply (a duplicate or a regression)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sms_gateway.config import get_settings
from sms_gateway.domain.messages import HistoryEntry, MessageStatus, history_item
from sms_gateway.domain.provider_choices import ProviderName
from sms_gateway.domain.provider_events import ProviderEvent
from sms_gateway.domain.status_table import TRANSITIONS
from sms_gateway.store import aws_clients
from sms_gateway.store.dynamo import write_if
from sms_gateway.store.expressions import Expression

if TYPE_CHECKING:
    from sms_gateway.domain.provider_attempts import ProviderAttempt

S = MessageStatus
TWILIO = ProviderName.TWILIO.value

# A message's history holds every transition (the status machine allows a handful) and ignored
# provider events up to this length. Past it an ignored event (a duplicate, a regression) is
# counted, not kept: a replayed callback would otherwise grow the item to DynamoDB's 400 KB
# limit, past which every write of the message, its real status included, fails.
MAX_HISTORY_ENTRIES = 50
DROPPED_EVENTS = "dropped_events"


class _Update(Expression):
    """A transition's UpdateExpression: of a message that exists."""

    def __init__(self) -> None:
        super().__init__()
        self.conditions.append("attribute_exists(#id)")
        self.names["#id"] = "id"

    def set(self, attribute: str, value: Any) -> None:
        self.sets.append(f"{self.name(attribute)} = {self.value(value)}")

    def set_if_missing(self, attribute: str, value: Any) -> None:
        n = self.name(attribute)
        self.sets.append(f"{n} = if_not_exists({n}, {self.value(value)})")

    def append_history(self, entry: HistoryEntry) -> None:
        n = self.name("history")
        entry_value = history_item(entry)
        self.sets.append(
            f"{n} = list_append(if_not_exists({n}, {self.value([])}), {self.value([entry_value])})"
        )

    def append_attempt(self, attempt: ProviderAttempt | None) -> None:
        """Add a provider attempt (None: nothing to add, or no room left for it: the caller,
        the claim's holder and so the only writer of attempts, counts them)."""
        if attempt is None:
            return
        n = self.name("provider_attempts")
        self.sets.append(
            f"{n} = list_append(if_not_exists({n}, {self.value([])}), "
            f"{self.value([attempt.to_item()])})"
        )

    def status_in(self, statuses: tuple[MessageStatus, ...]) -> None:
        n = self.name("status")
        options = ", ".join(self.value(s.value) for s in statuses)
        self.conditions.append(f"{n} IN ({options})")

    def condition(self, expression: str) -> None:
        self.conditions.append(expression)

    def run(self, message_id: str) -> dict[str, Any] | None:
        """Apply the update; None when its condition does not hold."""
        update = self.update(get_settings().messages_table, {"id": {"S": message_id}})
        response = write_if(
            lambda: aws_clients.dynamodb().update_item(**update, ReturnValues="ALL_NEW")
        )
        if response is None:
            return None
        return dict(response["Attributes"])


def _belongs_to(update: _Update, event: ProviderEvent) -> None:
    """Only the provider the message was handed to (stored from the claim on) may move it; for
    Twilio, only through the subaccount it was sent through (a message stored before providers
    were recorded is Twilio's). Another provider's event must also name the provider's id of
    the message, once that is known."""
    provider = update.name("provider")
    if event.provider == TWILIO:
        update.condition(f"{update.name('account_sid')} = {update.value(event.account_sid)}")
        update.condition(
            f"(attribute_not_exists({provider}) OR {provider} = {update.value(TWILIO)})"
        )
        return
    update.condition(f"{provider} = {update.value(event.provider)}")
    if event.message_sid:
        sid = update.name("message_sid")
        update.condition(
            f"(attribute_not_exists({sid}) OR {sid} = {update.value(event.message_sid)})"
        )


def _provider_facts(update: _Update, event: ProviderEvent) -> None:
    if event.message_sid:
        update.set_if_missing("message_sid", event.message_sid)
    if event.from_number:
        update.set_if_missing("from_number", event.from_number)
    if event.num_segments is not None:
        # The provider's count replaces our own estimate.
        update.set("num_segments", event.num_segments)


def apply_provider_event(message_id: str, event: ProviderEvent) -> bool | None:
    """Apply a callback. True: the status moved; False: recorded only (a duplicate, a regression
    or a status that changes nothing); None: no such message for that account."""
    target = event.status
    if target is not None:
        transition = TRANSITIONS[target]
        update = _Update()
        _belongs_to(update, event)
        update.status_in(transition.allowed_from)
        update.set("status", target.value)
        update.set("updated_at", event.at)
        if transition.sets_time:
            update.set(transition.sets_time, event.at)
        if target in (S.DELIVERED, S.UNDELIVERED):
            # Either one is the carrier's answer, so the message was handed off even when its
            # `sent` callback is late or lost; otherwise the outcome would depend on the order.
            update.set_if_missing("handed_off_at", event.at)
        if transition.sets_error and event.error_code is not None:
            update.set("error_code", event.error_code)
        _provider_facts(update, event)
        update.append_history(
            HistoryEntry(
                at=event.at,
                event="provider_status",
                status=target,
                provider_status=event.provider_status,
                error_code=event.error_code,
                applied=True,
            )
        )
        if update.run(message_id) is not None:
            return True
    # Not a transition, or its condition failed: keep the facts and the event in the history,
    # or, when the history is full, keep the facts and count the event.
    if _record_ignored(event, keep_event=True).run(message_id) is not None:
        return False
    return False if _record_ignored(event, keep_event=False).run(message_id) is not None else None


def _record_ignored(event: ProviderEvent, *, keep_event: bool) -> _Update:
    record = _Update()
    _belongs_to(record, event)
    _provider_facts(record, event)
    if keep_event:
        history = record.name("history")
        record.condition(
            f"(attribute_not_exists({history}) OR "
            f"size({history}) < {record.value(MAX_HISTORY_ENTRIES)})"
        )
        record.append_history(
            HistoryEntry(
                at=event.at,
                event="provider_status",
                status=None,
                provider_status=event.provider_status,
                error_code=event.error_code,
                applied=False,
            )
        )
    else:
        dropped = record.name(DROPPED_EVENTS)
        record.sets.append(
            f"{dropped} = if_not_exists({dropped}, {record.value(0)}) + {record.value(1)}"
        )
    return record


def apply_internal(message_id: str, target: MessageStatus, at: str, event: str) -> bool:
    """A transition of our own (dispatch, cancel), e.g. scheduled -> pending; False if the
    message is not in an allowed predecessor status (or does not exist)."""
    transition = TRANSITIONS[target]
    update = _Update()
    update.status_in(transition.allowed_from)
    update.set("status", target.value)
    update.set("updated_at", at)
    update.append_history(HistoryEntry(at=at, event=event, status=target, applied=True))
    return update.run(message_id) is not None


def claim_for_handoff(message_id: str, at: str, provider: str = TWILIO) -> bool:
    """Mark a pending message as being handed off to `provider`; only one worker can win."""
    update = _Update()
    update.status_in((S.PENDING,))
    update.condition(f"attribute_not_exists({update.name('claimed_at')})")
    update.condition(f"attribute_not_exists({update.name('message_sid')})")
    update.set("claimed_at", at)
    update.set("provider", provider)
    return update.run(message_id) is not None


def _holding(update: _Update, claimed_at: str) -> None:
    # That claim is still the one in place, and no provider's answer was recorded.
    update.condition(f"{update.name('claimed_at')} = {update.value(claimed_at)}")
    update.condition(f"attribute_not_exists({update.name('message_sid')})")


def hand_to_next_provider(
    message_id: str, claimed_at: str, *, attempt: ProviderAttempt | None, provider: str
) -> bool:
    """Record a provider's refusal and name the next one, if the claim still holds the message,
    pending: False means another delivery resolved it meanwhile (a claim it took for a dead
    worker's ends the message, the claim left in place), and the next provider must not be
    called."""
    update = _Update()
    _holding(update, claimed_at)
    update.status_in((S.PENDING,))
    update.set("provider", provider)
    update.append_attempt(attempt)
    return update.run(message_id) is not None


def record_attempt(message_id: str, claimed_at: str, *, attempt: ProviderAttempt) -> bool:
    """Add a provider attempt to a message its claim still names, whatever became of it (a
    callback may have recorded the provider's answer first)."""
    update = _Update()
    update.condition(f"{update.name('claimed_at')} = {update.value(claimed_at)}")
    update.append_attempt(attempt)
    return update.run(message_id) is not None


def release_claim(message_id: str, claimed_at: str, attempt: ProviderAttempt | None = None) -> bool:
    """Give a claim back after a failure that certainly did not reach the provider."""
    update = _Update()
    _holding(update, claimed_at)
    update.removes.append(update.name("claimed_at"))
    update.append_attempt(attempt)
    return update.run(message_id) is not None


def record_acceptance(
    message_id: str,
    at: str,
    message_sid: str,
    num_segments: int,
    from_number: str | None,
    *,
    provider: str = TWILIO,
    attempt: ProviderAttempt | None = None,
) -> bool:
    """Store what the provider said on acceptance, never touching a status a callback set."""
    update = _Update()
    update.set("message_sid", message_sid)
    update.set("provider", provider)
    update.set_if_missing("num_segments", num_segments)
    if from_number:
        update.set_if_missing("from_number", from_number)
    update.set("updated_at", at)
    update.append_history(HistoryEntry(at=at, event="handed_off", status=None, applied=True))
    update.append_attempt(attempt)
    return update.run(message_id) is not None


def _to_failed(at: str, error_code: int, reason: str) -> _Update:
    update = _Update()
    update.status_in(TRANSITIONS[S.FAILED].allowed_from)
    update.set("status", S.FAILED.value)
    update.set("errored_at", at)
    update.set("error_code", error_code)
    update.set("updated_at", at)
    update.append_history(
        HistoryEntry(at=at, event=reason, status=S.FAILED, error_code=error_code, applied=True)
    )
    return update


def fail(
    message_id: str,
    at: str,
    error_code: int,
    *,
    claimed_at: str | None = None,
    reason: str,
    attempt: ProviderAttempt | None = None,
) -> bool:
    """pending -> failed. With `claimed_at`, only if that claim is still the one in place and the
    provider's answer was never recorded (the outcome-unknown case)."""
    update = _to_failed(at, error_code, reason)
    if claimed_at is not None:
        _holding(update, claimed_at)
    update.append_attempt(attempt)
    return update.run(message_id) is not None


def fail_unsent(message_id: str, at: str, error_code: int, *, reason: str) -> bool:
    """pending -> failed for a message no worker holds and the provider never accepted."""
    update = _to_failed(at, error_code, reason)
    update.condition(f"attribute_not_exists({update.name('claimed_at')})")
    update.condition(f"attribute_not_exists({update.name('message_sid')})")
    return update.run(message_id) is not None
