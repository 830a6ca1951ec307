"""The arithmetic of limits (domain.limits) and of usage (domain.usage), without AWS: the
bucket admits exactly its burst plus its rate over any sequence of sends, the quota is used
before the wallet, and a message that never reached the carrier gives back what it took."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from sms_gateway.domain.limits import (
    MICROS,
    BucketForm,
    ChargeSource,
    QuotaView,
    SendRate,
    check_send_rate,
    decide_bucket,
    decide_charge,
    is_period,
    rate_limit_headers,
)
from sms_gateway.domain.usage import Effects, never_reached_carrier

NO_QUOTA = QuotaView(None, None, None, None, None)


def quota(
    monthly: int | None = 10,
    period: str | None = "2026-11",
    remaining: int | None = 10,
    balance: str | None = None,
    currency: str | None = None,
) -> QuotaView:
    return QuotaView(monthly, period, remaining, Decimal(balance) if balance else None, currency)


@settings(max_examples=200, deadline=None)
@given(
    per_second=st.integers(min_value=1, max_value=50),
    burst=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.integers(min_value=0, max_value=2 * MICROS), min_size=1, max_size=80),
)
def test_the_bucket_never_admits_more_than_its_burst_plus_its_rate(
    per_second: int, burst: int, gaps: list[int]
) -> None:
    rate = SendRate(Decimal(per_second), burst)
    tat: int | None = None
    now = 10**15
    start = now
    admitted = 0
    for gap in gaps:
        now += gap
        decision = decide_bucket(rate, tat, now)
        if decision.allowed:
            admitted += 1
            tat = decision.new_tat_us
        else:
            # A refusal says when a send would pass
            assert decision.retry_after_seconds >= 1
            assert tat is not None
            assert decide_bucket(rate, tat, now + decision.retry_after_seconds * MICROS).allowed
    elapsed = now - start
    assert admitted <= burst + elapsed // rate.interval_us


def test_a_full_bucket_takes_a_burst_at_once_then_refuses() -> None:
    rate = SendRate(Decimal(1), 3)
    tat: int | None = None
    now = 1_000 * MICROS
    forms = []
    for _ in range(3):
        decision = decide_bucket(rate, tat, now)
        assert decision.allowed
        forms.append(decision.form)
        tat = decision.new_tat_us
    assert forms == [BucketForm.RESTART, BucketForm.ADVANCE, BucketForm.ADVANCE]
    refused = decide_bucket(rate, tat, now)
    assert (refused.allowed, refused.retry_after_seconds) == (False, 1)
    assert decide_bucket(rate, tat, now + MICROS).allowed


def test_rate_limit_headers_count_down_and_reset() -> None:
    rate = SendRate(Decimal(2), 4)  # a token every 0.5 s
    now = 50 * MICROS
    assert rate_limit_headers(rate, None, now).as_headers() == {
        "RateLimit-Limit": "4",
        "RateLimit-Remaining": "4",
        "RateLimit-Reset": "0",
    }
    after_three = now + 3 * rate.interval_us
    headers = rate_limit_headers(rate, after_three, now)
    assert (headers.remaining, headers.reset_seconds) == (1, 2)


def test_send_rates_out_of_range_are_refused() -> None:
    assert check_send_rate(Decimal(5), 10) is None
    assert check_send_rate(Decimal(0), 10) is not None
    assert check_send_rate(Decimal(20_000), 10) is not None
    assert check_send_rate(Decimal("NaN"), 10) is not None
    assert check_send_rate(Decimal(5), 0) is not None


def test_periods() -> None:
    assert is_period("2026-11") and is_period("2027-01")
    assert not any(is_period(p) for p in ("2026-13", "2026-00", "26-11", "2026/11", "2026-1a"))


def test_no_quota_is_unlimited() -> None:
    decision = decide_charge(NO_QUOTA, "2026-11", 3, Decimal("1"), "USD")
    assert (decision.source, decision.refused) == (None, False)


def test_the_quota_pays_first_and_whole() -> None:
    assert decide_charge(quota(remaining=2), "2026-11", 2, None, None).source is ChargeSource.QUOTA
    # 1 segment left does not pay part of a 2-segment message: the wallet pays it all
    wallet = quota(remaining=1, balance="1", currency="USD")
    paid = decide_charge(wallet, "2026-11", 2, Decimal("0.02"), "USD")
    assert (paid.source, paid.refused) == (ChargeSource.WALLET, False)


def test_a_new_month_starts_from_the_full_quota() -> None:
    used_up_last_month = quota(monthly=5, period="2026-10", remaining=0)
    decision = decide_charge(used_up_last_month, "2026-11", 5, None, None)
    assert (decision.source, decision.new_period) == (ChargeSource.QUOTA, True)


def test_the_wallet_pays_only_what_it_holds_in_its_currency() -> None:
    empty = quota(remaining=0)
    assert decide_charge(empty, "2026-11", 1, Decimal("0.01"), "USD").refused
    low = quota(remaining=0, balance="0.009", currency="USD")
    assert decide_charge(low, "2026-11", 1, Decimal("0.01"), "USD").refused
    exact = quota(remaining=0, balance="0.01", currency="USD")
    assert decide_charge(exact, "2026-11", 1, Decimal("0.01"), "USD").source is ChargeSource.WALLET
    euros = quota(remaining=0, balance="5", currency="EUR")
    assert decide_charge(euros, "2026-11", 1, Decimal("0.01"), "USD").refused
    # A message with no price cannot be paid from a wallet
    assert decide_charge(exact, "2026-11", 1, None, None).refused


def image(**overrides: object) -> dict[str, object]:
    return {
        "workspace_id": "w1",
        "test": False,
        "created_at": "2026-11-26T10:00:00.000Z",
        "status": "pending",
        "segments": Decimal(2),
        "cost": {"amount": "0.0166", "currency": "USD"},
        **overrides,
    }


def test_a_new_message_counts_once_in_its_month_and_status() -> None:
    effects = Effects()
    effects.add_record("INSERT", None, image())
    (delta,) = effects.usage.values()
    assert delta.nonzero() == {
        "messages": 1,
        "segments": 2,
        "cost_USD": Decimal("0.0166"),
        "status_pending": 1,
    }
    assert list(effects.usage) == [("w1", "live", "2026-11")]


def test_a_failure_before_the_carrier_is_refunded_and_a_carrier_failure_is_not() -> None:
    charge = "quota"
    before = image(status="failed", error_code=99003, charge=charge)
    assert never_reached_carrier(before)
    assert not never_reached_carrier(image(status="failed", message_sid="SM1", charge=charge))
    assert not never_reached_carrier(image(status="failed", error_code=99001, charge=charge))
    assert never_reached_carrier(image(status="canceled", charge=charge))
    effects = Effects()
    effects.add_record("MODIFY", image(charge=charge), before)
    (delta,) = effects.usage.values()
    assert delta.nonzero() == {
        "segments": -2,
        "cost_USD": Decimal("-0.0166"),
        "status_pending": -1,
        "status_failed": 1,
    }
    assert effects.refunds[("w1", "live")].segments_by_period == {"2026-11": 2}


def test_a_change_that_keeps_the_status_counts_nothing() -> None:
    effects = Effects()
    effects.add_record("MODIFY", image(), image(claimed_at="2026-11-26T10:00:01.000Z"))
    effects.add_record("REMOVE", image(), None)
    assert effects.usage == {} and effects.refunds == {}


def test_an_item_that_is_not_a_whole_message_counts_nothing() -> None:
    effects = Effects()
    effects.add_record("INSERT", None, {"id": "x"})
    effects.add_record("MODIFY", {"id": "x"}, image(status="failed"))
    assert effects.usage == {} and effects.refunds == {}
