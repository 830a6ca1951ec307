"""The status machine (store.transitions) against DynamoDB's own condition semantics, held to
the rules of docs/architecture.md, written down here independently of the module's tables.

DynamoDB is moto's, in this process (no socket): each write of transitions.py is evaluated as
DynamoDB evaluates it, conditions, if_not_exists and list_append included, and the stored item is
read back whole. One thread makes every call, so moto's writes need no isolation here (the local
stack's emulator adds it for concurrent callers).

These tests are the fast net for mutation testing of transitions.py: every transition is tried
from every status, and every attribute each write sets or leaves is compared.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sms_gateway.domain.messages import MessageStatus
from sms_gateway.domain.provider_events import ProviderEvent
from sms_gateway.providers.twilio import statuses as twilio_statuses
from sms_gateway.store import aws_clients, transitions
from sms_gateway.store.dynamo import from_item, to_item
from tests.unit.in_process_aws import create_table, in_process_aws

TABLE = "messages"
ACCOUNT = "AC" + "1" * 32
OTHER_ACCOUNT = "AC" + "2" * 32
CREATED_AT = "2026-03-01T09:00:00.000Z"

# Every MessageStatus Twilio documents for an outbound message's callback, and one it does not.
TWILIO_STATUSES = (
    "accepted", "scheduled", "queued", "sending", "sent", "delivered", "read", "undelivered",
    "failed", "canceled", "partially_delivered", "no-such-status",
)  # fmt: skip

# --- the rules, as docs/architecture.md states them ---------------------------------------------

TERMINAL = {"delivered", "undelivered", "failed", "canceled"}
# How far along its life a message is: a status never moves backwards, nor sideways (a repeat).
RANK = {"scheduled": 0, "pending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3}
OUR_STATUSES = [*RANK, "canceled"]
# The Twilio statuses that say something about our message; the others only go into the history.
CARRIER_SAYS = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",  # read receipts: delivered, and then some
    "undelivered": "undelivered",
    "failed": "failed",
}


def provider_may_move(current: str, target: str) -> bool:
    if current in TERMINAL:
        return False  # terminal is final
    if current not in ("pending", "sent"):
        return False  # Twilio only reports on a message it was handed: never a scheduled one
    if target == "failed":
        return current == "pending"  # once Twilio sent it, it ends delivered or undelivered
    return RANK[target] > RANK[current]


def internal_may_move(current: str) -> bool:
    """Dispatch (-> pending) and cancel (-> canceled): only a scheduled message."""
    return current == "scheduled"


# --- a model of the stored item under those rules ---------------------------------------------


@dataclass(frozen=True)
class Event:
    """One callback as transitions receives it."""

    provider_status: str
    own_account: bool = True
    message_sid: str | None = None
    from_number: str | None = None
    error_code: int | None = None
    num_segments: int | None = None

    def at(self, at: str) -> ProviderEvent:
        return twilio_statuses.provider_event(
            account_sid=ACCOUNT if self.own_account else OTHER_ACCOUNT,
            provider_status=self.provider_status,
            at=at,
            message_sid=self.message_sid,
            from_number=self.from_number,
            error_code=self.error_code,
            num_segments=self.num_segments,
        )


def history_entry(at: str, event: str, **fields: Any) -> dict[str, Any]:
    # Stored without its defaults: status None, error_code None and applied True are absent.
    entry = {"at": at, "event": event, **{k: v for k, v in fields.items() if v is not None}}
    if entry.get("applied") is True:
        del entry["applied"]
    return entry


def model_provider_event(item: dict[str, Any], event: Event, at: str) -> bool | None:
    """Apply a callback to the model `item` in place; return what apply_provider_event must."""
    if not event.own_account:
        return None  # only the message's own subaccount may move it, or even add to its history
    target = CARRIER_SAYS.get(event.provider_status)
    applied = target is not None and provider_may_move(item["status"], target)
    if applied:
        item["status"] = target
        item["updated_at"] = at
        if target == "sent":
            item["handed_off_at"] = at
        if target == "delivered":
            item["delivered_at"] = at
        if target in ("undelivered", "failed"):
            item["errored_at"] = at
            if event.error_code is not None:
                item["error_code"] = event.error_code
        if target in ("delivered", "undelivered"):
            # the carrier's answer proves the handoff, even when `sent` is late or lost
            item.setdefault("handed_off_at", at)
    # The provider's facts are kept whether or not the status moved.
    if event.message_sid:
        item.setdefault("message_sid", event.message_sid)
    if event.from_number:
        item.setdefault("from_number", event.from_number)
    if event.num_segments is not None:
        item["num_segments"] = event.num_segments  # Twilio's count replaces our estimate
    item["history"].append(
        history_entry(
            at,
            "provider_status",
            status=target if applied else None,
            provider_status=event.provider_status,
            error_code=event.error_code,
            applied=applied,
        )
    )
    return applied


def model_internal(item: dict[str, Any], target: str, at: str, event: str) -> bool:
    if not internal_may_move(item["status"]):
        return False
    item["status"] = target
    item["updated_at"] = at
    item["history"].append(history_entry(at, event, status=target))
    return True


def model_claim(item: dict[str, Any], at: str) -> bool:
    # One worker at a time, and never for a message Twilio has already taken.
    if item["status"] != "pending" or "claimed_at" in item or "message_sid" in item:
        return False
    item["claimed_at"] = at
    item["provider"] = "twilio"
    return True


def model_release(item: dict[str, Any], claimed_at: str) -> bool:
    # Only the claim's own holder gives it back, and only while Twilio's answer is unrecorded.
    if item.get("claimed_at") != claimed_at or "message_sid" in item:
        return False
    del item["claimed_at"]
    return True


def model_accept(
    item: dict[str, Any], at: str, sid: str, segments: int, from_number: str | None
) -> bool:
    # Twilio's acceptance is recorded whatever the status (a callback may have come first).
    item["message_sid"] = sid
    item["provider"] = "twilio"
    item.setdefault("num_segments", segments)
    if from_number:
        item.setdefault("from_number", from_number)
    item["updated_at"] = at
    item["history"].append(history_entry(at, "handed_off"))
    return True


def model_fail(item: dict[str, Any], at: str, code: int, reason: str) -> bool:
    if item["status"] != "pending":
        return False
    item.update(status="failed", errored_at=at, error_code=code, updated_at=at)
    item["history"].append(history_entry(at, reason, status="failed", error_code=code))
    return True


def model_fail_claimed(item: dict[str, Any], at: str, code: int, claimed_at: str) -> bool:
    # The outcome-unknown case: only while that very claim holds it and no answer was recorded.
    if item.get("claimed_at") != claimed_at or "message_sid" in item:
        return False
    return model_fail(item, at, code, "handoff_outcome_unknown")


def model_fail_unsent(item: dict[str, Any], at: str, code: int) -> bool:
    # No worker holds it and Twilio never accepted it: it certainly was not sent.
    if "claimed_at" in item or "message_sid" in item:
        return False
    return model_fail(item, at, code, "not_sent")


# --- DynamoDB (moto, in process) --------------------------------------------------------------


@pytest.fixture(scope="module")
def messages_table() -> Iterator[None]:
    with in_process_aws(MESSAGES_TABLE=TABLE):
        create_table(TABLE)
        yield


def new_item(status: str = "pending") -> dict[str, Any]:
    """A message as the send stores it: pending, or scheduled for later."""
    item: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "workspace_id": "w1",
        "use_case_id": "u1",
        "account_sid": ACCOUNT,
        "to_number": "+14155552671",
        "body": "Your code is 123456",
        "status": status,
        "created_at": CREATED_AT,
        "updated_at": CREATED_AT,
        "history": [{"at": CREATED_AT, "event": "created", "status": status, "applied": True}],
    }
    if status == "scheduled":
        item["send_at"] = "2026-03-02T09:00:00Z"
    return item


def store(item: dict[str, Any]) -> None:
    aws_clients.dynamodb().put_item(TableName=TABLE, Item=to_item(item))


def stored(message_id: str) -> dict[str, Any] | None:
    found = aws_clients.dynamodb().get_item(
        TableName=TABLE, Key={"id": {"S": message_id}}, ConsistentRead=True
    )
    return from_item(found["Item"]) if "Item" in found else None


class Clock:
    """Distinct, increasing timestamps: each write's own is recognisable in the item."""

    def __init__(self) -> None:
        self.ticks = 0

    def __call__(self) -> str:
        self.ticks += 1
        minutes, seconds = divmod(self.ticks, 60)
        return f"2026-03-01T10:{minutes:02d}:{seconds:02d}.000Z"


# --- every provider status from every status ---------------------------------------------------

# The status each callback leads to, from each status it can move; every other pair (a status
# Twilio reports from any other status of ours) changes no status.
MOVES = {
    ("pending", "sent"): "sent",
    ("pending", "delivered"): "delivered",
    ("pending", "read"): "delivered",
    ("pending", "undelivered"): "undelivered",
    ("pending", "failed"): "failed",
    ("sent", "delivered"): "delivered",
    ("sent", "read"): "delivered",
    ("sent", "undelivered"): "undelivered",
}


def message_in(status: str, clock: Clock) -> dict[str, Any]:
    """A stored message brought to `status` the way the gateway brings one there."""
    item = new_item("scheduled" if status in ("scheduled", "canceled") else "pending")
    store(item)
    if status == "canceled":
        assert transitions.apply_internal(item["id"], MessageStatus.CANCELED, clock(), "canceled")
    elif status not in ("scheduled", "pending"):
        event = Event(status, message_sid="SM" + "a" * 32, error_code=30001)
        assert transitions.apply_provider_event(item["id"], event.at(clock()))
    current = stored(item["id"])
    assert current is not None and current["status"] == status
    return current


@pytest.mark.usefixtures("messages_table")
@pytest.mark.parametrize("provider_status", TWILIO_STATUSES)
@pytest.mark.parametrize("status", OUR_STATUSES)
def test_each_callback_moves_only_what_the_status_machine_allows(
    status: str, provider_status: str
) -> None:
    clock = Clock()
    item = message_in(status, clock)
    event = Event(
        provider_status,
        message_sid="SM" + "b" * 32,
        from_number="+14155550100",
        error_code=30003 if provider_status in ("undelivered", "failed") else None,
        num_segments=3,
    )
    at = clock()

    applied = transitions.apply_provider_event(item["id"], event.at(at))

    expected_status = MOVES.get((status, provider_status))
    assert applied is (expected_status is not None)
    after = stored(item["id"])
    assert after is not None
    assert after["status"] == (expected_status or status)
    # And every attribute is what the rules say, the history's new entry included.
    assert model_provider_event(item, event, at) is applied
    assert after == item


# --- what each transition writes ---------------------------------------------------------------


@pytest.mark.usefixtures("messages_table")
def test_sent_records_the_handoff_time_and_the_providers_facts() -> None:
    item = new_item()
    store(item)
    event = Event("sent", message_sid="SM" + "c" * 32, from_number="+14155550100", num_segments=2)

    assert transitions.apply_provider_event(item["id"], event.at("2026-03-01T10:00:01.000Z"))

    after = stored(item["id"])
    assert after is not None
    assert {k: after.get(k) for k in ("status", "handed_off_at", "updated_at")} == {
        "status": "sent",
        "handed_off_at": "2026-03-01T10:00:01.000Z",
        "updated_at": "2026-03-01T10:00:01.000Z",
    }
    assert (after["message_sid"], after["from_number"], after["num_segments"]) == (
        "SM" + "c" * 32,
        "+14155550100",
        2,
    )
    assert "delivered_at" not in after and "errored_at" not in after and "error_code" not in after
    assert after["history"][-1] == {
        "at": "2026-03-01T10:00:01.000Z",
        "event": "provider_status",
        "status": "sent",
        "provider_status": "sent",
    }


@pytest.mark.usefixtures("messages_table")
@pytest.mark.parametrize("outcome", ["delivered", "undelivered"])
def test_the_carriers_answer_after_sent_keeps_the_handoff_time(outcome: str) -> None:
    item = new_item()
    store(item)
    assert transitions.apply_provider_event(item["id"], Event("sent").at("2026-03-01T10:00:01Z"))

    assert transitions.apply_provider_event(
        item["id"], Event(outcome, error_code=30003).at("2026-03-01T10:00:02Z")
    )

    after = stored(item["id"])
    assert after is not None
    assert after["handed_off_at"] == "2026-03-01T10:00:01Z"
    assert after["updated_at"] == "2026-03-01T10:00:02Z"
    if outcome == "delivered":
        assert after["delivered_at"] == "2026-03-01T10:00:02Z"
        # delivered is no error, whatever ErrorCode the callback carried
        assert "errored_at" not in after and "error_code" not in after
    else:
        assert (after["errored_at"], after["error_code"]) == ("2026-03-01T10:00:02Z", 30003)
        assert "delivered_at" not in after


@pytest.mark.usefixtures("messages_table")
@pytest.mark.parametrize("outcome", ["delivered", "undelivered"])
def test_the_carriers_answer_before_sent_also_sets_the_handoff_time(outcome: str) -> None:
    item = new_item()
    store(item)

    assert transitions.apply_provider_event(item["id"], Event(outcome).at("2026-03-01T10:00:02Z"))

    after = stored(item["id"])
    assert after is not None
    assert after["handed_off_at"] == "2026-03-01T10:00:02Z"
    # and the late `sent` is only recorded: it moves neither the status nor the handoff time
    late_sent = Event("sent").at("2026-03-01T10:00:03Z")
    assert transitions.apply_provider_event(item["id"], late_sent) is False
    again = stored(item["id"])
    assert again is not None
    assert (again["status"], again["handed_off_at"]) == (outcome, "2026-03-01T10:00:02Z")


@pytest.mark.usefixtures("messages_table")
def test_failed_is_no_handoff_and_keeps_twilios_error_code() -> None:
    item = new_item()
    store(item)

    assert transitions.apply_provider_event(
        item["id"], Event("failed", error_code=30007).at("2026-03-01T10:00:01Z")
    )

    after = stored(item["id"])
    assert after is not None
    assert (after["status"], after["errored_at"], after["error_code"]) == (
        "failed",
        "2026-03-01T10:00:01Z",
        30007,
    )
    assert "handed_off_at" not in after and "delivered_at" not in after


@pytest.mark.usefixtures("messages_table")
@pytest.mark.parametrize("outcome", ["failed", "undelivered"])
def test_an_error_status_without_an_error_code_stores_none(outcome: str) -> None:
    item = new_item()
    store(item)

    assert transitions.apply_provider_event(item["id"], Event(outcome).at("2026-03-01T10:00:01Z"))

    after = stored(item["id"])
    assert after is not None
    assert after["status"] == outcome and "error_code" not in after
    assert "error_code" not in after["history"][-1]


@pytest.mark.usefixtures("messages_table")
def test_facts_fill_what_is_missing_and_the_segment_count_is_replaced() -> None:
    item = new_item()
    store(item)
    first = Event("queued", message_sid="SM" + "1" * 32, from_number="+14155550100")
    later = Event(
        "sending", message_sid="SM" + "2" * 32, from_number="+12125550100", num_segments=4
    )

    assert transitions.apply_provider_event(item["id"], first.at("2026-03-01T10:00:01Z")) is False
    assert transitions.apply_provider_event(item["id"], later.at("2026-03-01T10:00:02Z")) is False
    assert transitions.apply_provider_event(
        item["id"], Event("sending", num_segments=2).at("2026-03-01T10:00:03Z")
    ) is False  # fmt: skip

    after = stored(item["id"])
    assert after is not None
    assert (after["message_sid"], after["from_number"], after["num_segments"]) == (
        "SM" + "1" * 32,
        "+14155550100",
        2,
    )
    # A status that changes nothing moves neither the status nor updated_at.
    assert (after["status"], after["updated_at"]) == ("pending", CREATED_AT)
    assert [h.get("applied") for h in after["history"]] == [True, False, False, False]
    assert [h.get("status") for h in after["history"]] == ["pending", None, None, None]


@pytest.mark.usefixtures("messages_table")
@pytest.mark.parametrize("provider_status", TWILIO_STATUSES)
def test_another_subaccount_can_neither_move_nor_annotate_the_message(
    provider_status: str,
) -> None:
    item = new_item()
    store(item)
    event = Event(provider_status, own_account=False, message_sid="SM" + "d" * 32, num_segments=1)

    assert transitions.apply_provider_event(item["id"], event.at("2026-03-01T10:00:01Z")) is None

    assert stored(item["id"]) == item


@pytest.mark.usefixtures("messages_table")
def test_past_the_history_bound_an_ignored_event_is_counted_and_its_facts_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transitions, "MAX_HISTORY_ENTRIES", 3)
    clock = Clock()
    item = message_in("delivered", clock)  # created, delivered: two entries
    duplicate = Event("delivered", message_sid="SM" + "a" * 32)

    # One more ignored event fills the history to its bound; the next ones are only counted
    for _ in range(3):
        assert transitions.apply_provider_event(item["id"], duplicate.at(clock())) is False
    late = Event("undelivered", from_number="+14155550100", num_segments=4, error_code=21610)
    assert transitions.apply_provider_event(item["id"], late.at(clock())) is False

    after = stored(item["id"])
    assert after is not None
    assert len(after["history"]) == 3
    assert after["history"][-1]["applied"] is False
    assert after[transitions.DROPPED_EVENTS] == 3
    # The facts still land, and the status never moves
    assert (after["from_number"], after["num_segments"]) == ("+14155550100", 4)
    assert after["status"] == "delivered"
    # Another account's event is still no event of this message's, bound or not
    stranger = Event("undelivered", own_account=False)
    assert transitions.apply_provider_event(item["id"], stranger.at(clock())) is None
    assert stored(item["id"]) == after


@pytest.mark.usefixtures("messages_table")
def test_one_update_can_set_and_remove_several_attributes_at_once() -> None:
    # The builder under every transition: its clauses and lists must join into one valid
    # expression however many each holds (today's writes use one kind at a time).
    item = {**new_item(), "claimed_at": "2026-03-01T10:00:00Z", "message_sid": "SM" + "b" * 32}
    store(item)
    update = transitions._Update()
    update.set("updated_at", "2026-03-01T10:00:01Z")
    update.set("num_segments", 2)
    for attribute in ("claimed_at", "message_sid"):
        update.removes.append(update.name(attribute))

    assert update.run(item["id"]) is not None

    after = stored(item["id"])
    assert after is not None
    assert (after["updated_at"], after["num_segments"]) == ("2026-03-01T10:00:01Z", 2)
    assert "claimed_at" not in after and "message_sid" not in after


def unknown_id() -> str:
    return str(uuid.uuid4())


WRITES_TO_A_MISSING_MESSAGE: dict[str, Callable[[str], object]] = {
    "provider status": lambda m: transitions.apply_provider_event(
        m, Event("delivered", message_sid="SM" + "e" * 32).at(CREATED_AT)
    ),
    "provider no-op": lambda m: transitions.apply_provider_event(m, Event("queued").at(CREATED_AT)),
    "dispatch": lambda m: transitions.apply_internal(m, MessageStatus.PENDING, CREATED_AT, "d"),
    "cancel": lambda m: transitions.apply_internal(m, MessageStatus.CANCELED, CREATED_AT, "c"),
    "claim": lambda m: transitions.claim_for_handoff(m, CREATED_AT),
    "release": lambda m: transitions.release_claim(m, CREATED_AT),
    "acceptance": lambda m: transitions.record_acceptance(m, CREATED_AT, "SM1", 1, "+14155550100"),
    "fail": lambda m: transitions.fail(m, CREATED_AT, 99001, claimed_at=CREATED_AT, reason="r"),
    "fail unclaimed": lambda m: transitions.fail(m, CREATED_AT, 99001, reason="r"),
    "fail unsent": lambda m: transitions.fail_unsent(m, CREATED_AT, 99003, reason="r"),
}


@pytest.mark.usefixtures("messages_table")
@pytest.mark.parametrize("write", list(WRITES_TO_A_MISSING_MESSAGE))
def test_no_write_creates_a_message(write: str) -> None:
    message_id = unknown_id()

    answer = WRITES_TO_A_MISSING_MESSAGE[write](message_id)

    # None for a callback (no such message for the account), False for our own writes.
    assert answer is (None if write.startswith("provider") else False)
    assert stored(message_id) is None


# --- our own transitions -----------------------------------------------------------------------


@pytest.mark.usefixtures("messages_table")
@pytest.mark.parametrize("target", [MessageStatus.PENDING, MessageStatus.CANCELED])
@pytest.mark.parametrize("status", OUR_STATUSES)
def test_dispatch_and_cancel_move_only_a_scheduled_message(
    status: str, target: MessageStatus
) -> None:
    clock = Clock()
    item = message_in(status, clock)
    at = clock()

    moved = transitions.apply_internal(item["id"], target, at, f"{target.value}-event")

    assert moved is (status == "scheduled")
    assert model_internal(item, target.value, at, f"{target.value}-event") is moved
    assert stored(item["id"]) == item


@pytest.mark.usefixtures("messages_table")
def test_a_claim_is_taken_once_and_only_given_back_by_its_holder() -> None:
    item = new_item()
    store(item)

    assert transitions.claim_for_handoff(item["id"], "2026-03-01T10:00:01Z")
    assert not transitions.claim_for_handoff(item["id"], "2026-03-01T10:00:02Z")
    claimed = {**item, "claimed_at": "2026-03-01T10:00:01Z", "provider": "twilio"}
    assert stored(item["id"]) == claimed
    assert not transitions.release_claim(item["id"], "2026-03-01T10:00:02Z")
    assert transitions.release_claim(item["id"], "2026-03-01T10:00:01Z")
    # Given back: the claim is gone, nothing else moved (the provider it was for stays), and
    # the next worker may take it.
    assert stored(item["id"]) == {**item, "provider": "twilio"}
    assert not transitions.release_claim(item["id"], "2026-03-01T10:00:01Z")
    assert transitions.claim_for_handoff(item["id"], "2026-03-01T10:00:03Z")


@pytest.mark.usefixtures("messages_table")
def test_a_message_twilio_already_reported_on_is_never_claimed() -> None:
    # A callback (here `queued`, which moves no status) brought its MessageSid while no worker
    # held the message: Twilio has it, so no worker may send it again.
    item = new_item()
    store(item)
    queued = Event("queued", message_sid="SM" + "9" * 32)
    assert transitions.apply_provider_event(item["id"], queued.at("2026-03-01T10:00:01Z")) is False

    assert not transitions.claim_for_handoff(item["id"], "2026-03-01T10:00:02Z")

    after = stored(item["id"])
    assert after is not None and "claimed_at" not in after
    # Nor is it failed as never sent.
    assert not transitions.fail_unsent(item["id"], "2026-03-01T10:00:03Z", 99003, reason="x")


@pytest.mark.usefixtures("messages_table")
def test_once_twilios_answer_is_recorded_the_claim_stays_and_no_one_claims_again() -> None:
    item = new_item()
    store(item)
    assert transitions.claim_for_handoff(item["id"], "2026-03-01T10:00:01Z")

    assert transitions.record_acceptance(
        item["id"], "2026-03-01T10:00:02Z", "SM" + "f" * 32, 2, "+14155550100"
    )

    after = stored(item["id"])
    assert after is not None
    assert (after["status"], after["claimed_at"], after["message_sid"]) == (
        "pending",
        "2026-03-01T10:00:01Z",
        "SM" + "f" * 32,
    )
    assert (after["num_segments"], after["from_number"], after["updated_at"]) == (
        2,
        "+14155550100",
        "2026-03-01T10:00:02Z",
    )
    assert after["history"][-1] == {
        "at": "2026-03-01T10:00:02Z",
        "event": "handed_off",
    }
    assert not transitions.release_claim(item["id"], "2026-03-01T10:00:01Z")
    assert not transitions.fail(
        item["id"], "2026-03-01T10:00:03Z", 99001, claimed_at="2026-03-01T10:00:01Z", reason="r"
    )
    assert not transitions.fail_unsent(item["id"], "2026-03-01T10:00:03Z", 99003, reason="r")
    assert not transitions.claim_for_handoff(item["id"], "2026-03-01T10:00:04Z")
    assert stored(item["id"]) == after


@pytest.mark.usefixtures("messages_table")
def test_an_acceptance_recorded_late_never_undoes_a_callback() -> None:
    item = new_item()
    store(item)
    callback = Event("delivered", message_sid="SM" + "a" * 32, from_number="+12125550100")
    assert transitions.apply_provider_event(item["id"], callback.at("2026-03-01T10:00:01Z"))
    # The callback's count came as NumSegments: the acceptance's estimate must not replace it.
    assert transitions.apply_provider_event(
        item["id"], Event("read", num_segments=3).at("2026-03-01T10:00:02Z")
    ) is False  # fmt: skip

    assert transitions.record_acceptance(
        item["id"], "2026-03-01T10:00:03Z", "SM" + "a" * 32, 1, "+14155550100"
    )

    after = stored(item["id"])
    assert after is not None
    assert (after["status"], after["delivered_at"], after["handed_off_at"]) == (
        "delivered",
        "2026-03-01T10:00:01Z",
        "2026-03-01T10:00:01Z",
    )
    assert (after["num_segments"], after["from_number"]) == (3, "+12125550100")


@pytest.mark.usefixtures("messages_table")
def test_an_acceptance_without_a_sender_leaves_from_number_unset() -> None:
    item = new_item()
    store(item)

    assert transitions.record_acceptance(item["id"], "2026-03-01T10:00:01Z", "SM1", 1, None)

    after = stored(item["id"])
    assert after is not None
    assert "from_number" not in after and after["num_segments"] == 1


@pytest.mark.usefixtures("messages_table")
def test_outcome_unknown_fails_only_the_claim_it_names() -> None:
    item = new_item()
    store(item)
    assert transitions.claim_for_handoff(item["id"], "2026-03-01T10:00:01Z")

    assert not transitions.fail(
        item["id"], "2026-03-01T10:00:02Z", 99001, claimed_at="2026-03-01T10:00:00Z", reason="x"
    )
    assert not transitions.fail_unsent(item["id"], "2026-03-01T10:00:02Z", 99003, reason="x")
    assert transitions.fail(
        item["id"], "2026-03-01T10:00:03Z", 99001, claimed_at="2026-03-01T10:00:01Z", reason="x"
    )

    after = stored(item["id"])
    assert after is not None
    assert {k: after.get(k) for k in ("status", "errored_at", "error_code", "updated_at")} == {
        "status": "failed",
        "errored_at": "2026-03-01T10:00:03Z",
        "error_code": 99001,
        "updated_at": "2026-03-01T10:00:03Z",
    }
    assert "handed_off_at" not in after
    assert after["history"][-1] == {
        "at": "2026-03-01T10:00:03Z",
        "event": "x",
        "status": "failed",
        "error_code": 99001,
    }


@pytest.mark.usefixtures("messages_table")
@pytest.mark.parametrize("status", OUR_STATUSES)
def test_only_a_pending_message_can_be_failed_by_us(status: str) -> None:
    clock = Clock()
    item = message_in(status, clock)
    at = clock()

    failed = transitions.fail_unsent(item["id"], at, 99003, reason="not_sent")

    assert failed is (status == "pending")
    assert model_fail_unsent(item, at, 99003) is failed
    assert stored(item["id"]) == item


# --- any sequence of writes, from a new message -------------------------------------------------

Op = tuple[Any, ...]

events = st.builds(
    Event,
    provider_status=st.sampled_from(TWILIO_STATUSES),
    own_account=st.booleans() | st.just(True),
    message_sid=st.none() | st.sampled_from(["SM" + "1" * 32, "SM" + "2" * 32]),
    from_number=st.none() | st.sampled_from(["+14155550100", "+12125550100"]),
    error_code=st.none() | st.sampled_from([30003, 30007, 21610]),
    num_segments=st.none() | st.integers(1, 5),
)
# Callbacks are most of a message's writes, and the ones that arrive in any order: most draws.
KINDS = ["callback"] * 6 + [
    "dispatch", "cancel", "claim", "release", "accept", "fail_claimed", "fail_unsent",
]  # fmt: skip


def arguments_of(kind: str) -> st.SearchStrategy[Op]:
    if kind == "callback":
        return st.tuples(st.just(kind), events)
    if kind in ("release", "fail_claimed"):
        # mostly the holder's own claim, sometimes one it never took
        return st.tuples(st.just(kind), st.sampled_from([True, True, False]))
    if kind == "accept":
        return st.tuples(
            st.just(kind),
            st.sampled_from(["SM" + "3" * 32, "SM" + "4" * 32]),
            st.integers(1, 5),
            st.none() | st.just("+13105550100"),
        )
    return st.tuples(st.just(kind))


operations = st.sampled_from(KINDS).flatmap(arguments_of)


def run(op: Op, message_id: str, item: dict[str, Any], at: str) -> tuple[object, object]:
    """Apply `op` to the stored message and to the model: (the module's answer, the model's)."""
    claim = item.get("claimed_at", "2026-03-01T08:00:00.000Z")
    match op:
        case ("callback", Event() as event):
            return (
                transitions.apply_provider_event(message_id, event.at(at)),
                model_provider_event(item, event, at),
            )
        case ("dispatch",):
            return (
                transitions.apply_internal(message_id, MessageStatus.PENDING, at, "dispatched"),
                model_internal(item, "pending", at, "dispatched"),
            )
        case ("cancel",):
            return (
                transitions.apply_internal(message_id, MessageStatus.CANCELED, at, "canceled"),
                model_internal(item, "canceled", at, "canceled"),
            )
        case ("claim",):
            return transitions.claim_for_handoff(message_id, at), model_claim(item, at)
        case ("release", bool(own)):
            named = claim if own else at  # the holder's claim, or a claim it never took
            return transitions.release_claim(message_id, named), model_release(item, named)
        case ("accept", str(sid), int(segments), from_number):
            return (
                transitions.record_acceptance(message_id, at, sid, segments, from_number),
                model_accept(item, at, sid, segments, from_number),
            )
        case ("fail_claimed", bool(own)):
            named = claim if own else at
            return (
                transitions.fail(
                    message_id, at, 99001, claimed_at=named, reason="handoff_outcome_unknown"
                ),
                model_fail_claimed(item, at, 99001, named),
            )
        case ("fail_unsent",):
            return (
                transitions.fail_unsent(message_id, at, 99003, reason="not_sent"),
                model_fail_unsent(item, at, 99003),
            )
    raise AssertionError(op)


@pytest.mark.usefixtures("messages_table")
# derandomize and no database: the same examples on every run, so a failure is reproducible.
@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    scheduled=st.sampled_from([False, False, True]),
    ops=st.lists(operations, min_size=1, max_size=8),
)
def test_any_sequence_of_writes_follows_the_rules(scheduled: bool, ops: list[Op]) -> None:
    item = new_item("scheduled" if scheduled else "pending")
    store(item)
    clock = Clock()
    for op in ops:
        before = item["status"]
        answer, expected = run(op, item["id"], item, clock())
        assert answer is expected, (op, before)
        assert stored(item["id"]) == item, (op, before)
        # Never backwards: a terminal status stays, any other only moves further along.
        after = item["status"]
        if before in TERMINAL:
            assert after == before, op
        elif after != before:
            assert RANK.get(after, RANK["failed"]) > RANK[before], op
