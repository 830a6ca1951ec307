"""store.idempotency.run_once against DynamoDB's own semantics (moto, in this process): what a
caller of the send API gets for a repeated Idempotency-Key, what the stored record promises (how
long a key replays, when an unfinished request stops holding its key), and the exact errors.

These are the fast net for mutation testing of idempotency.py; the HTTP view of the same rules is
in tests/integration/test_send_api.py and test_idempotency_errors.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sms_gateway.config import get_settings
from sms_gateway.domain.errors import (
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    ServiceUnavailableError,
)
from sms_gateway.store import aws_clients, idempotency
from tests.unit.in_process_aws import create_table, in_process_aws

# Most calls here have no Lambda context (one test gives one), which Powertools warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")

TABLE = "idempotency"
SCOPE = "w1#live"


class Killed(BaseException):
    """The invocation stopped here (Lambda's timeout): nothing of ours or Powertools' runs on."""


class Context:
    """The Lambda context the API handler passes on: only its deadline matters here."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture(autouse=True)
def idempotency_table() -> Iterator[None]:
    with in_process_aws(IDEMPOTENCY_TABLE=TABLE):
        idempotency.reset()
        create_table(TABLE)
        try:
            yield
        finally:
            idempotency.reset()


class Action:
    """The send behind the key: counts its runs, answers a new message id each time."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self) -> dict[str, Any]:
        self.runs += 1
        return {"id": str(uuid.uuid4()), "run": self.runs}


def run(
    action: Callable[[], dict[str, Any]],
    key: str,
    payload: Any,
    scope: str = SCOPE,
    context: Any = None,
) -> dict[str, Any]:
    return idempotency.run_once(
        scope=scope, key=key, payload=payload, action=action, lambda_context=context
    )


def records() -> list[dict[str, Any]]:
    return aws_clients.dynamodb().scan(TableName=TABLE, ConsistentRead=True)["Items"]


def test_the_same_key_and_payload_get_the_first_answer_without_running_again() -> None:
    action = Action()
    first = run(action, "k1", {"message": "hi"})
    again = run(action, "k1", {"message": "hi"})
    assert again == first
    assert action.runs == 1


def test_the_same_key_with_another_payload_is_refused_and_runs_nothing() -> None:
    """The key alone names the request: another body under it is a caller's mistake (422 with
    this message), never a second send."""
    action = Action()
    run(action, "k1", {"message": "hi"})

    with pytest.raises(IdempotencyKeyReusedError) as refused:
        run(action, "k1", {"message": "another text"})

    assert refused.value.message == "this Idempotency-Key was used with a different request body"
    assert action.runs == 1


def test_a_key_belongs_to_its_scope() -> None:
    # A workspace's key (in one mode) never answers for another's.
    action = Action()
    mine = run(action, "k1", {"message": "hi"}, scope="w1#live")
    theirs = run(action, "k1", {"message": "hi"}, scope="w2#live")
    assert theirs != mine
    assert action.runs == 2


def test_different_keys_are_different_requests() -> None:
    # Two orders with the same text each get their message: the key, not the body, names them.
    action = Action()
    first = run(action, "order-1", {"message": "hi"})
    second = run(action, "order-2", {"message": "hi"})
    assert second != first
    assert action.runs == 2
    assert run(action, "order-1", {"message": "hi"}) == first


def test_the_answer_is_kept_for_the_configured_ttl() -> None:
    """A retry is replayed for idempotency_ttl_seconds (24 h), not Powertools' default hour: the
    record's expiry (DynamoDB's TTL attribute) says so."""
    before = int(time.time())
    run(Action(), "k1", {"message": "hi"})
    after = int(time.time())

    [record] = records()
    ttl = get_settings().idempotency_ttl_seconds
    assert ttl == 86_400
    assert before + ttl <= int(record["expiration"]["N"]) <= after + ttl + 1
    assert record["status"] == {"S": "COMPLETED"}


def test_a_request_killed_at_its_deadline_frees_its_key_once_the_deadline_has_passed() -> None:
    """With the invocation's context, the in-progress record ends at the function's deadline: a
    retry after a timed-out request goes through, instead of 409 until the 24 h TTL ends."""

    def killed() -> dict[str, Any]:
        raise Killed

    # Given a request that took the key and was stopped by Lambda at its deadline
    with pytest.raises(Killed):
        run(killed, "k1", {"message": "hi"}, context=Context(remaining_ms=0))
    [record] = records()
    assert record["status"] == {"S": "INPROGRESS"}
    deadline_ms = int(record["in_progress_expiration"]["N"])
    # (the deadline is this very millisecond: wait until the clock has moved past it)
    give_up = time.monotonic() + 5
    while int(time.time() * 1000) <= deadline_ms and time.monotonic() < give_up:
        time.sleep(0.001)

    # When the caller retries
    action = Action()
    answer = run(action, "k1", {"message": "hi"}, context=Context(remaining_ms=30_000))

    # Then it runs, once
    assert answer["run"] == 1
    assert action.runs == 1


def test_the_in_progress_record_lasts_as_long_as_the_invocation() -> None:
    seen: list[dict[str, Any]] = []

    def look() -> dict[str, Any]:
        seen.extend(records())
        return {"id": "m1"}

    before = int(time.time() * 1000)
    run(look, "k1", {"message": "hi"}, context=Context(remaining_ms=25_000))
    after = int(time.time() * 1000)

    [in_progress] = seen
    assert in_progress["status"] == {"S": "INPROGRESS"}
    assert before + 25_000 <= int(in_progress["in_progress_expiration"]["N"]) <= after + 25_000


def test_a_request_still_in_progress_holds_its_key() -> None:
    action = Action()

    def retry_meanwhile() -> dict[str, Any]:
        return run(action, "k1", {"message": "hi"})

    with pytest.raises(IdempotencyKeyInUseError) as in_use:
        run(retry_meanwhile, "k1", {"message": "hi"}, context=Context(remaining_ms=30_000))

    assert in_use.value.message == (
        "a request with this Idempotency-Key is still in progress; retry shortly"
    )
    assert action.runs == 0


def test_a_failed_action_leaves_no_record_and_the_key_can_be_retried() -> None:
    def fails() -> dict[str, Any]:
        raise RuntimeError("the send failed")

    with pytest.raises(RuntimeError):
        run(fails, "k1", {"message": "hi"})
    assert records() == []
    action = Action()
    assert run(action, "k1", {"message": "hi"})["run"] == 1


def refuse(operation: str) -> Callable[..., None]:
    def handler(**_: Any) -> None:
        raise aws_clients.dynamodb().exceptions.InternalServerError(
            {"Error": {"Code": "InternalServerError", "Message": "refused"}}, operation
        )

    aws_clients.dynamodb().meta.events.register(f"before-call.dynamodb.{operation}", handler)
    return handler


def test_an_unavailable_store_is_503_and_runs_nothing() -> None:
    refuse("PutItem")
    action = Action()
    with pytest.raises(ServiceUnavailableError) as unavailable:
        run(action, "k1", {"message": "hi"})
    assert unavailable.value.message == "idempotency store unavailable; retry later"
    assert action.runs == 0


def test_an_answer_that_could_not_be_saved_is_still_given() -> None:
    refuse("UpdateItem")
    action = Action()
    answer = run(action, "k1", {"message": "hi"})
    assert answer == {"id": answer["id"], "run": 1}
    assert action.runs == 1
