"""The opt-out lookup's BatchGetItem: keys DynamoDB left unprocessed are asked for again after a
growing, jittered pause, a bounded number of times; then the lookup is unavailable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sms_gateway.domain.errors import ServiceUnavailableError
from sms_gateway.store import aws_clients, opt_out_store
from tests.unit.settings import gateway_settings

TABLE = "opt-outs"


class UnprocessedThenAnswered:
    """A DynamoDB client that leaves every key unprocessed `times` times, then answers."""

    def __init__(self, times: int, opted_out: bool) -> None:
        self.times = times
        self.opted_out = opted_out
        self.requests: list[dict[str, Any]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(RequestItems)
        assert len(self.requests) < 100, "a tight loop"
        keys = RequestItems[TABLE]["Keys"]
        if len(self.requests) <= self.times:
            return {"Responses": {TABLE: []}, "UnprocessedKeys": RequestItems}
        return {"Responses": {TABLE: [keys[0]] if self.opted_out else []}}


@pytest.fixture(autouse=True)
def _settings() -> Iterator[None]:
    with gateway_settings(OPT_OUTS_TABLE=TABLE):
        yield


def lookup(
    client: UnprocessedThenAnswered, monkeypatch: pytest.MonkeyPatch
) -> tuple[bool, list[float]]:
    """Run one lookup against `client`: its answer, and the pauses it took (none really slept)."""
    monkeypatch.setattr(aws_clients, "dynamodb", lambda: client)
    pauses: list[float] = []
    answer = opt_out_store.is_opted_out(
        ["use_case#u", "service#s"], "+14155552671", sleep=pauses.append
    )
    return answer, pauses


@pytest.mark.parametrize("opted_out", [True, False])
def test_unprocessed_keys_are_asked_again_after_growing_pauses(
    monkeypatch: pytest.MonkeyPatch, opted_out: bool
) -> None:
    client = UnprocessedThenAnswered(times=3, opted_out=opted_out)
    answer, pauses = lookup(client, monkeypatch)
    assert answer is opted_out
    assert len(client.requests) == 4
    # Exponential with (full) jitter: each pause is within its own, doubling, ceiling
    assert len(pauses) == 3
    for attempt, pause in enumerate(pauses):
        assert 0 <= pause <= opt_out_store.BATCH_GET_BACKOFF_SECONDS * 2**attempt


def test_the_jitter_spreads_the_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many workers throttled together must not come back together
    firsts = {lookup(UnprocessedThenAnswered(1, False), monkeypatch)[1][0] for _ in range(20)}
    assert len(firsts) > 1


def test_a_lookup_that_stays_unprocessed_is_unavailable_after_a_bounded_number_of_tries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = UnprocessedThenAnswered(times=1000, opted_out=False)
    with pytest.raises(ServiceUnavailableError):
        lookup(client, monkeypatch)
    assert len(client.requests) == opt_out_store.BATCH_GET_ATTEMPTS


def test_an_answer_at_once_takes_no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    client = UnprocessedThenAnswered(times=0, opted_out=False)
    assert lookup(client, monkeypatch) == (False, [])
    assert len(client.requests) == 1
