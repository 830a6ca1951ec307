"""Reading the items a keys-only index names: every key asked until DynamoDB processed it."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from sms_gateway.domain.errors import ServiceUnavailableError
from sms_gateway.store import aws_clients, index_pages

TABLE = "MessagesTable"


def _client() -> Any:
    return botocore.session.get_session().create_client(
        "dynamodb",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _keys(*ids: str) -> dict[str, Any]:
    return {TABLE: {"Keys": [{"id": {"S": i}} for i in ids], "ConsistentRead": True}}


def test_unprocessed_keys_are_asked_again_until_every_item_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _client()
    monkeypatch.setattr(aws_clients, "dynamodb", lambda: client)
    pauses: list[float] = []
    with Stubber(client) as stub:
        stub.add_response(
            "batch_get_item",
            {
                "Responses": {TABLE: [{"id": {"S": "a"}, "status": {"S": "sent"}}]},
                "UnprocessedKeys": _keys("b"),
            },
            {"RequestItems": _keys("a", "b")},
        )
        stub.add_response(
            "batch_get_item",
            {"Responses": {TABLE: [{"id": {"S": "b"}, "status": {"S": "delivered"}}]}},
            {"RequestItems": _keys("b")},
        )
        found = index_pages.batch_get(TABLE, "id", ["a", "b", "a"], sleep=pauses.append)
        stub.assert_no_pending_responses()
    assert found == {
        "a": {"id": "a", "status": "sent"},
        "b": {"id": "b", "status": "delivered"},
    }
    assert len(pauses) == 1


def test_keys_never_processed_are_a_503_not_a_short_page(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client()
    monkeypatch.setattr(aws_clients, "dynamodb", lambda: client)
    with Stubber(client) as stub:
        for _ in range(index_pages.BATCH_GET_ATTEMPTS):
            stub.add_response(
                "batch_get_item",
                {"Responses": {TABLE: []}, "UnprocessedKeys": _keys("a")},
                {"RequestItems": _keys("a")},
            )
        with pytest.raises(ServiceUnavailableError):
            index_pages.batch_get(TABLE, "id", ["a"], sleep=lambda _: None)


def test_more_keys_than_one_request_takes_are_read_in_several(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _client()
    monkeypatch.setattr(aws_clients, "dynamodb", lambda: client)
    ids = [f"m{i:03d}" for i in range(index_pages.BATCH_GET_MAX_KEYS + 1)]
    with Stubber(client) as stub:
        stub.add_response(
            "batch_get_item",
            {"Responses": {TABLE: [{"id": {"S": i}} for i in ids[:-1]]}},
            {"RequestItems": _keys(*ids[:-1])},
        )
        stub.add_response(
            "batch_get_item",
            {"Responses": {TABLE: [{"id": {"S": ids[-1]}}]}},
            {"RequestItems": _keys(ids[-1])},
        )
        found = index_pages.batch_get(TABLE, "id", ids)
    assert sorted(found) == ids
