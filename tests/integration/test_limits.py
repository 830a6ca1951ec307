"""Limits and money through the HTTP API against the local DynamoDB (atomic per request, as
DynamoDB is per item): the monthly quota and the wallet (402), the send rate (429 and the
RateLimit headers), refunds of what never reached the carrier, and GET /v1/usage.

Concurrency is real: threads send at once through the gateway, released together by a barrier,
and the accounting must come out exact whatever order DynamoDB took them in. The send rates are
tiny (a send a day) so that no token comes back while a test runs: the outcome never depends on
how fast this machine is.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from sms_gateway.domain.limits import SendRate
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic import limits_admin, usage
from sms_gateway.logic.use_case_admin import create_use_case
from sms_gateway.store import api_keys, aws_clients, limits_store, opt_out_store
from sms_local.sqs_poller import SqsPoller
from sms_local.stream_poller import pump_all as pump_streams
from tests.integration.conftest import (
    Api,
    Response,
    Tenant,
    create_twilio_secret,
    make_tenant,
    use_case_spec,
)
from tests.integration.test_handoff import poller as poller  # a fixture
from tests.integration.test_handoff import simulator as simulator  # a fixture, for `wired`
from tests.integration.test_handoff import wired as wired  # a fixture
from tests.integration.test_send_api import (
    drain_handoff_queue,
    forget_idempotency_records,
    send_body,
    stored_messages,
)
from tests.integration.test_send_crashes import schedule_names

ONE_A_DAY = "0.0000116"  # sends a second: about one a day, so nothing refills during a test
US_PRICE = Decimal("0.0083")  # the bundled price of one segment to the US


def at_once(count: int, send: Callable[[int], Response]) -> list[Response]:
    """`count` sends released together."""
    barrier = threading.Barrier(count)

    def one(index: int) -> Response:
        barrier.wait(timeout=60)
        return send(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def statuses(responses: list[Response]) -> Counter[int]:
    return Counter(r.status for r in responses)


def live_limits(workspace_id: str) -> limits_store.Limits:
    limits = limits_store.read_limits(workspace_id, "live", consistent=True)
    assert limits is not None
    return limits


def test_concurrent_sends_take_exactly_the_quota_s_room(tenant: Tenant, use_case: UseCase) -> None:
    # Given a quota of 7 segments this month
    limits_admin.set_monthly_segments(tenant.workspace_id, 7)
    # When 16 one-segment sends arrive at once
    answers = at_once(16, lambda i: tenant.api.send(send_body(use_case, message=f"code {i}")))
    # Then exactly 7 are accepted, the others refused with 402, and only the 7 are stored
    assert statuses(answers) == {201: 7, 402: 9}
    refused = [r.json() for r in answers if r.status == 402]
    assert {r["error"]["code"] for r in refused} == {"sms_quota_exceeded"}
    assert len(stored_messages(tenant.workspace_id)) == 7
    assert live_limits(tenant.workspace_id).quota.remaining == 0
    assert len(drain_handoff_queue(tenant.workspace_id)) == 7


def test_concurrent_sends_spend_exactly_the_wallet(tenant: Tenant, use_case: UseCase) -> None:
    # Given no free segments and a wallet holding the price of 5 segments to the US
    limits_admin.set_monthly_segments(tenant.workspace_id, 0)
    limits_admin.top_up(tenant.workspace_id, US_PRICE * 5, "USD")
    # When 12 one-segment sends arrive at once
    answers = at_once(12, lambda i: tenant.api.send(send_body(use_case, message=f"code {i}")))
    # Then 5 are paid and accepted, 7 refused, and the wallet is exactly empty
    assert statuses(answers) == {201: 5, 402: 7}
    assert live_limits(tenant.workspace_id).quota.balance == 0
    charged = [(m["charge"], m["cost"]["amount"]) for m in stored_messages(tenant.workspace_id)]
    assert set(charged) == {("wallet", str(US_PRICE))}


def test_the_quota_is_used_first_then_the_wallet_pays(tenant: Tenant, use_case: UseCase) -> None:
    limits_admin.set_monthly_segments(tenant.workspace_id, 2)
    limits_admin.top_up(tenant.workspace_id, US_PRICE, "USD")
    answers = [tenant.api.send(send_body(use_case, message=f"code {i}")) for i in range(4)]
    assert [r.status for r in answers] == [201, 201, 201, 402]
    sources = sorted(m["charge"] for m in stored_messages(tenant.workspace_id))
    assert sources == ["quota", "quota", "wallet"]
    limits = live_limits(tenant.workspace_id)
    assert limits.quota.remaining == 0
    assert limits.quota.balance == Decimal(0)


def test_a_wallet_in_another_currency_does_not_pay(tenant: Tenant, use_case: UseCase) -> None:
    limits_admin.set_monthly_segments(tenant.workspace_id, 0)
    limits_admin.top_up(tenant.workspace_id, Decimal("100"), "EUR")
    answer = tenant.api.send(send_body(use_case))
    assert answer.status == 402
    assert answer.json()["error"]["code"] == "sms_quota_exceeded"
    assert live_limits(tenant.workspace_id).quota.balance == 100


def test_test_mode_is_never_charged_nor_refused_for_quota(
    tenant: Tenant, use_case: UseCase
) -> None:
    limits_admin.set_monthly_segments(tenant.workspace_id, 0)
    test_key = api_keys.issue_key(tenant.workspace_id, ("messages:send",), mode="test").secret
    answer = tenant.api.with_key(test_key).send(send_body(use_case))
    assert answer.status == 201
    assert answer.json()["test"] is True
    assert live_limits(tenant.workspace_id).quota.remaining == 0
    (stored,) = stored_messages(tenant.workspace_id)
    assert stored.get("charge") is None


def test_a_send_rate_admits_exactly_its_burst(tenant: Tenant, use_case: UseCase) -> None:
    # Given a bucket of 4 that refills about once a day
    limits_admin.set_send_rate(tenant.workspace_id, SendRate(Decimal(ONE_A_DAY), 4))
    # When 10 sends arrive at once
    answers = at_once(10, lambda i: tenant.api.send(send_body(use_case, message=f"code {i}")))
    # Then exactly 4 are accepted and stored; the others are 429 with when to retry
    assert statuses(answers) == {201: 4, 429: 6}
    assert len(stored_messages(tenant.workspace_id)) == 4
    for refused in (r for r in answers if r.status == 429):
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-remaining"] == "0"
    # And every answer says the bucket's size, and what was left after it
    assert {r.headers["ratelimit-limit"] for r in answers} == {"4"}
    remaining = sorted(int(r.headers["ratelimit-remaining"]) for r in answers if r.status == 201)
    assert remaining == [0, 1, 2, 3]


def test_rate_headers_are_on_every_answer_and_invalid_sends_spend_nothing(
    tenant: Tenant, use_case: UseCase
) -> None:
    limits_admin.set_send_rate(tenant.workspace_id, SendRate(Decimal(ONE_A_DAY), 2))
    invalid = tenant.api.send(send_body(use_case, to_phone_number="12"))
    assert invalid.status == 422
    assert (invalid.headers["ratelimit-limit"], invalid.headers["ratelimit-remaining"]) == (
        "2",
        "2",
    )
    accepted = tenant.api.send(send_body(use_case))
    assert (accepted.status, accepted.headers["ratelimit-remaining"]) == (201, "1")
    assert int(accepted.headers["ratelimit-reset"]) > 0


def test_an_idempotent_replay_is_not_counted_again(tenant: Tenant, use_case: UseCase) -> None:
    limits_admin.set_monthly_segments(tenant.workspace_id, 5)
    limits_admin.set_send_rate(tenant.workspace_id, SendRate(Decimal(ONE_A_DAY), 5))
    key = {"Idempotency-Key": f"replay-{uuid.uuid4()}"}
    first = tenant.api.send(send_body(use_case), headers=key)
    # The Powertools record answers one retry; without it the stored message answers.
    again = tenant.api.send(send_body(use_case), headers=key)
    forget_idempotency_records()
    once_more = tenant.api.send(send_body(use_case), headers=key)
    assert [r.status for r in (first, again, once_more)] == [201, 201, 201]
    assert {r.json()["id"] for r in (first, again, once_more)} == {first.json()["id"]}
    limits = live_limits(tenant.workspace_id)
    assert limits.quota.remaining == 4
    assert once_more.headers["ratelimit-remaining"] == "4"


def test_one_workspace_at_its_limit_does_not_slow_another(
    tenant: Tenant, use_case: UseCase, other_tenant: tuple[Tenant, UseCase]
) -> None:
    limits_admin.set_send_rate(tenant.workspace_id, SendRate(Decimal(ONE_A_DAY), 1))
    assert tenant.api.send(send_body(use_case)).status == 201
    assert tenant.api.send(send_body(use_case)).status == 429
    other, other_use_case = other_tenant
    answers = [other.api.send(send_body(other_use_case)) for _ in range(5)]
    assert [r.status for r in answers] == [201] * 5
    assert "ratelimit-limit" not in answers[0].headers


def test_a_refused_scheduled_send_leaves_no_schedule(tenant: Tenant, use_case: UseCase) -> None:
    limits_admin.set_monthly_segments(tenant.workspace_id, 0)
    send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    before = schedule_names()
    answer = tenant.api.send(send_body(use_case, send_at=send_at))
    assert answer.status == 402
    # The schedule the send made before it was refused is gone again
    assert schedule_names() == before
    assert stored_messages(tenant.workspace_id) == []


def test_a_canceled_scheduled_message_gives_its_segments_back_once(
    tenant: Tenant, use_case: UseCase
) -> None:
    limits_admin.set_monthly_segments(tenant.workspace_id, 3)
    send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled = tenant.api.send(send_body(use_case, send_at=send_at)).json()
    assert live_limits(tenant.workspace_id).quota.remaining == 2
    canceled = tenant.api.request("POST", f"/v1/sms/{scheduled['id']}/cancel")
    assert canceled.status == 200
    pump_streams()
    assert live_limits(tenant.workspace_id).quota.remaining == 3
    # A second cancel changes nothing, and nor does the stream read again
    assert tenant.api.request("POST", f"/v1/sms/{scheduled['id']}/cancel").status == 409
    pump_streams()
    assert live_limits(tenant.workspace_id).quota.remaining == 3
    report = tenant.api.request("GET", "/v1/usage").json()
    assert report["by_status"]["canceled"] == 1
    assert (report["messages"], report["segments"]) == (1, 0)


def test_usage_reports_the_month(tenant: Tenant, use_case: UseCase) -> None:
    limits_admin.set_monthly_segments(tenant.workspace_id, 100)
    limits_admin.top_up(tenant.workspace_id, Decimal("12.50"), "USD")
    limits_admin.set_send_rate(tenant.workspace_id, SendRate(Decimal(50), 100))
    long_text = "x" * 200  # two segments
    for body in (send_body(use_case), send_body(use_case, message=long_text)):
        assert tenant.api.send(body).status == 201
    pump_streams()
    period = usage.current_period()
    report = tenant.api.request("GET", "/v1/usage", query={"period": period})
    assert report.status == 200
    assert report.json() == {
        "period": period,
        "messages": 2,
        "segments": 3,
        "cost": {"amount": str(US_PRICE * 3), "currency": "USD"},
        "by_status": {**dict.fromkeys(report.json()["by_status"], 0), "pending": 2},
        "quota": {"monthly_segments": 100, "remaining_segments": 97},
        "wallet": {"balance": "12.5", "currency": "USD"},
        "rate_limit": {"sends_per_second": 50, "burst": 100},
    }
    # The current month by default; another month has its own (empty) counters
    assert tenant.api.request("GET", "/v1/usage").json()["messages"] == 2
    empty = tenant.api.request("GET", "/v1/usage", query={"period": "2020-01"}).json()
    assert (empty["messages"], empty["quota"]["remaining_segments"]) == (0, None)


@pytest.mark.parametrize("query", [{"period": "2026-13"}, {"period": "soon"}, {"month": "1"}])
def test_usage_refuses_a_bad_query(tenant: Tenant, query: dict[str, str]) -> None:
    answer = tenant.api.request("GET", "/v1/usage", query=query)
    assert (answer.status, answer.json()["error"]["code"]) == (422, "validation_error")


def test_usage_needs_the_read_scope(gateway: Any, tenant: Tenant) -> None:
    key = api_keys.issue_key(tenant.workspace_id, ("messages:send",)).secret
    assert Api(gateway, key).request("GET", "/v1/usage").status == 403


@pytest.fixture
def other_tenant(gateway: Any) -> tuple[Tenant, UseCase]:
    other = make_tenant(gateway)
    created = create_use_case(other.workspace_id, use_case_spec())
    create_twilio_secret(created.twilio_account_sid)
    return other, created


@pytest.mark.parametrize(
    ("to", "refunded"),
    [("+15005550001", True), ("+14155552671", False)],
    ids=["rejected-by-the-provider", "taken-by-the-provider"],
)
def test_a_message_the_provider_refused_gives_its_money_back_and_a_taken_one_does_not(
    tenant: Tenant, use_case: UseCase, wired: None, poller: SqsPoller, to: str, refunded: bool
) -> None:
    # Given a wallet that pays every segment
    limits_admin.set_monthly_segments(tenant.workspace_id, 0)
    limits_admin.top_up(tenant.workspace_id, Decimal(1), "USD")
    # When the handoff gives the message to the provider, which refuses it (21211: invalid
    # number, so it never reached a carrier) or takes it
    message_id = tenant.api.send(send_body(use_case, to_phone_number=to)).json()["id"]
    poller.poll_once()
    final = tenant.api.request("GET", f"/v1/sms/{message_id}").json()
    assert (final["status"] == "failed") == refunded, final
    assert live_limits(tenant.workspace_id).quota.balance == Decimal(1) - US_PRICE
    pump_streams()
    # Then a refused one's price is back in the wallet, a taken one's is not
    balance = live_limits(tenant.workspace_id).quota.balance
    assert balance == (Decimal(1) if refunded else Decimal(1) - US_PRICE)
    pump_streams()  # reading the stream again refunds nothing more
    assert live_limits(tenant.workspace_id).quota.balance == balance


def test_a_new_month_starts_from_the_whole_quota(tenant: Tenant, use_case: UseCase) -> None:
    limits_admin.set_monthly_segments(tenant.workspace_id, 2)
    assert [tenant.api.send(send_body(use_case)).status for _ in range(3)] == [201, 201, 402]
    # When the month the quota was used in is over
    table, key = limits_store.limits_item_key(tenant.workspace_id, "live")
    aws_clients.dynamodb().update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET #p = :last",
        ExpressionAttributeNames={"#p": "period"},
        ExpressionAttributeValues={":last": {"S": "2020-01"}},
    )
    # Then the next send is paid from the new month's quota
    assert tenant.api.send(send_body(use_case)).status == 201
    quota = live_limits(tenant.workspace_id).quota
    assert (quota.period, quota.remaining) == (usage.current_period(), 1)


def test_a_refusal_is_decided_on_the_limits_as_they_are_not_on_a_stale_read(
    tenant: Tenant, use_case: UseCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The send reads the limits eventually consistently; a read from before a top-up must not
    refuse a send the wallet now pays."""
    limits_admin.set_monthly_segments(tenant.workspace_id, 0)
    limits_admin.top_up(tenant.workspace_id, US_PRICE, "USD")
    assert tenant.api.send(send_body(use_case)).status == 201
    table, key = limits_store.limits_item_key(tenant.workspace_id, "live")
    empty_wallet = aws_clients.dynamodb().get_item(TableName=table, Key=key)["Item"]
    limits_admin.top_up(tenant.workspace_id, US_PRICE, "USD")
    read = opt_out_store.read_opt_outs

    def stale(*args: Any, **kwargs: Any) -> opt_out_store.OptOutRead:
        return opt_out_store.OptOutRead(read(*args, **kwargs).opted_out, empty_wallet)

    monkeypatch.setattr(opt_out_store, "read_opt_outs", stale)
    assert tenant.api.send(send_body(use_case)).status == 201
    assert live_limits(tenant.workspace_id).quota.balance == 0
    assert tenant.api.send(send_body(use_case)).status == 402


@pytest.mark.parametrize("scheduled", [False, True], ids=["now", "scheduled"])
def test_a_keyed_retry_of_a_send_that_spent_the_last_of_the_quota_gets_its_message(
    tenant: Tenant, use_case: UseCase, scheduled: bool
) -> None:
    """The first attempt was stored and paid, its answer lost; by the retry the quota is used
    up. The retry is the same send: 201 with its message, not 402 (and its schedule stays)."""
    limits_admin.set_monthly_segments(tenant.workspace_id, 1)
    send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat() if scheduled else None
    body = send_body(use_case, **({"send_at": send_at} if send_at else {}))
    key = {"Idempotency-Key": f"last-{uuid.uuid4()}"}
    first = tenant.api.send(body, headers=key)
    assert first.status == 201
    forget_idempotency_records()  # the first answer never reached the caller
    again = tenant.api.send(body, headers=key)
    assert (again.status, again.json()["id"]) == (201, first.json()["id"])
    assert live_limits(tenant.workspace_id).quota.remaining == 0
    if scheduled:
        assert f"msg-{first.json()['id']}" in schedule_names()
    # Another send is refused as before
    assert tenant.api.send(send_body(use_case, message="another")).status == 402


def test_a_month_the_quota_has_moved_past_never_comes_back(
    tenant: Tenant, use_case: UseCase
) -> None:
    """A send created before midnight UTC and written after another started the new month is
    charged to the new month: it never takes the quota back to the month that is over."""
    limits_admin.set_monthly_segments(tenant.workspace_id, 5)
    table, key = limits_store.limits_item_key(tenant.workspace_id, "live")
    later = "2999-01"  # a month the item already counts, after this send's own
    aws_clients.dynamodb().update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET #p = :later, #r = :one",
        ExpressionAttributeNames={"#p": "period", "#r": "remaining"},
        ExpressionAttributeValues={":later": {"S": later}, ":one": {"N": "1"}},
    )
    assert tenant.api.send(send_body(use_case)).status == 201
    assert tenant.api.send(send_body(use_case)).status == 402
    quota = live_limits(tenant.workspace_id).quota
    assert (quota.period, quota.remaining) == (later, 0)
