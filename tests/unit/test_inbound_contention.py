"""What a canceled transaction means, without DynamoDB: only a failed condition is an answer
("already so", "a redelivery", "the list changed"); contention is retried after a pause, and
anything else is an error that must reach the caller."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sms_gateway.domain.errors import ServiceUnavailableError
from sms_gateway.domain.inbound import InboundMessage, Keyword
from sms_gateway.logic import inbound as inbound_logic
from sms_gateway.store import aws_clients, inbound_store, opt_out_store
from sms_gateway.store.inbound_store import Stored
from tests.unit.settings import gateway_settings
from tests.unit.test_inbound_rules import reply


def canceled(*reasons: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "canceled"},
            "CancellationReasons": [{"Code": r} for r in reasons],
        },
        "TransactWriteItems",
    )


class FakeDynamoDB:
    def __init__(self, *outcomes: ClientError | None) -> None:
        self.outcomes = list(outcomes)
        self.transactions: list[list[dict[str, Any]]] = []

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:
        self.transactions.append(TransactItems)
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return {}


@pytest.fixture(autouse=True)
def _settings() -> Iterator[None]:
    with gateway_settings(INBOUND_TABLE="inbound"):
        yield


def use(monkeypatch: pytest.MonkeyPatch, fake: FakeDynamoDB) -> None:
    monkeypatch.setattr(aws_clients, "dynamodb", lambda: fake)


def change() -> opt_out_store.OptOutChange:
    return opt_out_store.OptOutChange(
        "service#MG1", "+14155552671", True, opt_out_store.OptOutSource.OPERATOR, "now"
    )


def test_a_change_the_list_already_has_is_no_change(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, FakeDynamoDB(canceled("ConditionalCheckFailed", "None")))
    assert opt_out_store.record_change(change()) is False


@pytest.mark.parametrize("reason", ["ThrottlingError", "TransactionConflict"])
def test_a_throttled_or_contended_change_is_an_error_not_a_no_op(
    monkeypatch: pytest.MonkeyPatch, reason: str
) -> None:
    use(monkeypatch, FakeDynamoDB(canceled(reason, "None")))
    with pytest.raises(ClientError):
        opt_out_store.record_change(change())


def stop(monkeypatch: pytest.MonkeyPatch) -> InboundMessage:
    monkeypatch.setattr(opt_out_store, "is_listed", lambda *_: False)
    return reply("STOP").model_copy(update={"keyword": Keyword.STOP})


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        (("ConditionalCheckFailed", "None", "None"), Stored.DUPLICATE),
        (("None", "ConditionalCheckFailed", "None"), Stored.LIST_CHANGED),
        (("None", "TransactionConflict", "None"), Stored.CONTENDED),
        (("ThrottlingError", "None", "None"), Stored.CONTENDED),
    ],
)
def test_what_a_canceled_inbound_write_means(
    monkeypatch: pytest.MonkeyPatch, reasons: tuple[str, ...], expected: Stored
) -> None:
    message = stop(monkeypatch)
    use(monkeypatch, FakeDynamoDB(canceled(*reasons)))
    writes = opt_out_store.change_writes(change())
    assert inbound_store.store(message, writes) is expected


def test_a_contended_keyword_is_written_again_after_growing_pauses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = stop(monkeypatch)
    fake = FakeDynamoDB(
        canceled("None", "TransactionConflict", "None"),
        canceled("None", "TransactionConflict", "None"),
        None,
    )
    use(monkeypatch, fake)
    pauses: list[float] = []
    monkeypatch.setattr(random, "uniform", lambda low, high: high)

    assert inbound_logic._store(message, sleep=pauses.append) is Stored.NEW

    assert len(fake.transactions) == 3
    assert pauses == [
        inbound_logic.CONTENTION_PAUSE_SECONDS,
        inbound_logic.CONTENTION_PAUSE_SECONDS * 2,
    ]


def test_a_keyword_contended_at_every_attempt_is_a_503(monkeypatch: pytest.MonkeyPatch) -> None:
    message = stop(monkeypatch)
    attempts = inbound_logic.STORE_ATTEMPTS
    use(monkeypatch, FakeDynamoDB(*[canceled("None", "TransactionConflict")] * attempts))
    with pytest.raises(ServiceUnavailableError):
        inbound_logic._store(message, sleep=lambda _: None)
