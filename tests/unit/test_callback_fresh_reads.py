"""The bound on Secrets Manager reads a signature mismatch may cause (twilio callbacks)."""

from __future__ import annotations

from sms_gateway.providers.twilio.callbacks import FreshReadLimiter


class FrozenClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_one_read_per_secret_per_interval() -> None:
    clock = FrozenClock()
    limiter = FreshReadLimiter(30.0, clock=clock)

    assert limiter.allow("sms/twilio/ACone")
    assert not limiter.allow("sms/twilio/ACone")
    clock.now += 29.9
    assert not limiter.allow("sms/twilio/ACone")
    clock.now += 0.1
    assert limiter.allow("sms/twilio/ACone")
    assert not limiter.allow("sms/twilio/ACone")


def test_secrets_are_limited_independently() -> None:
    limiter = FreshReadLimiter(30.0, clock=FrozenClock())

    assert limiter.allow("sms/twilio/ACone")
    # Forgeries naming one subaccount must not delay the rotation check of another.
    assert limiter.allow("sms/twilio/ACtwo")
    assert not limiter.allow("sms/twilio/ACone")


def test_the_first_mismatch_is_allowed_whatever_the_clock_reads() -> None:
    # time.monotonic() may start near zero in a fresh sandbox.
    clock = FrozenClock()
    clock.now = 0.0
    assert FreshReadLimiter(30.0, clock=clock).allow("sms/twilio/ACone")


def test_clear_forgets_every_read() -> None:
    limiter = FreshReadLimiter(30.0, clock=FrozenClock())
    limiter.allow("sms/twilio/ACone")

    limiter.clear()

    assert limiter.allow("sms/twilio/ACone")
