"""GET /v1/sms/{id} and GET /v1/sms/: the caller's own messages, newest first, by cursor."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sms_gateway.domain.clock import now_iso
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic.use_case_admin import create_use_case
from sms_gateway.providers.twilio import statuses as twilio_statuses
from sms_gateway.store import aws_clients, index_pages, transitions
from tests.integration.conftest import Tenant, make_tenant, use_case_spec
from tests.integration.test_send_api import drain_handoff_queue, send_body


def send(tenant: Tenant, use_case: UseCase, **overrides: Any) -> dict[str, Any]:
    response = tenant.api.send(send_body(use_case, **overrides))
    assert response.status == 201
    body: dict[str, Any] = response.json()
    return body


def test_get_returns_the_record_with_its_history(tenant: Tenant, use_case: UseCase) -> None:
    sent = send(tenant, use_case)
    response = tenant.api.request("GET", f"/v1/sms/{sent['id']}")
    assert response.status == 200
    body = response.json()
    assert {k: v for k, v in body.items() if k != "history"} == sent
    assert [entry["event"] for entry in body["history"]] == ["created"]
    assert body["history"][0]["status"] == "pending"
    drain_handoff_queue()


def test_get_unknown_message_is_404(tenant: Tenant) -> None:
    for message_id in (str(uuid.uuid4()), "not-a-uuid"):
        response = tenant.api.request("GET", f"/v1/sms/{message_id}")
        assert response.status == 404
        assert response.json()["error"]["code"] == "message_not_found"


def test_another_workspaces_message_is_404(gateway: Any, tenant: Tenant, use_case: UseCase) -> None:
    sent = send(tenant, use_case)
    stranger = make_tenant(gateway)
    response = stranger.api.request("GET", f"/v1/sms/{sent['id']}")
    assert response.status == 404
    assert response.json()["error"]["code"] == "message_not_found"
    drain_handoff_queue()


def list_all(tenant: Tenant, **query: str) -> tuple[list[dict[str, Any]], int]:
    """Follow next_cursor to the end; return every item and the number of pages."""
    items: list[dict[str, Any]] = []
    pages = 0
    cursor = None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        response = tenant.api.request("GET", "/v1/sms/", query=params)
        assert response.status == 200, response.json()
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        items.extend(body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def test_list_is_newest_first_and_paginates(tenant: Tenant, use_case: UseCase) -> None:
    sent = [send(tenant, use_case, message=f"message {i}") for i in range(7)]
    items, pages = list_all(tenant, limit="3")
    assert [m["id"] for m in items] == [m["id"] for m in reversed(sent)]
    assert pages == 3
    drain_handoff_queue()


def ids_newest_first(messages: list[dict[str, Any]]) -> list[str]:
    # The index's sort key: created_at, then the id for messages of the same millisecond.
    return [
        m["id"] for m in sorted(messages, key=lambda m: (m["created_at"], m["id"]), reverse=True)
    ]


def test_list_filters_by_use_case_and_status(tenant: Tenant, use_case: UseCase) -> None:
    other = create_use_case(tenant.workspace_id, use_case_spec())
    mine = [send(tenant, use_case) for _ in range(3)]
    theirs = send(tenant, other)
    # One of them delivered, so that the status filter has something to leave out.
    delivered_one = mine[1]
    event = twilio_statuses.provider_event(
        account_sid=use_case.twilio_account_sid, provider_status="delivered", at=now_iso()
    )
    assert transitions.apply_provider_event(delivered_one["id"], event)

    items, _ = list_all(tenant, use_case_id=use_case.id, limit="2")
    assert [m["id"] for m in items] == ids_newest_first(mine)
    pending, _ = list_all(tenant, status="pending", limit="1")
    assert [m["id"] for m in pending] == ids_newest_first([mine[0], mine[2], theirs])
    delivered, pages = list_all(tenant, status="delivered")
    assert ([m["id"] for m in delivered], pages) == ([delivered_one["id"]], 1)
    assert delivered[0]["status"] == "delivered"
    canceled, pages = list_all(tenant, status="canceled")
    assert (canceled, pages) == ([], 1)
    drain_handoff_queue()


def test_list_never_shows_another_workspace(
    gateway: Any, tenant: Tenant, use_case: UseCase
) -> None:
    send(tenant, use_case)
    stranger = make_tenant(gateway)
    assert list_all(stranger) == ([], 1)
    # Naming the other workspace's use case does not help either.
    assert list_all(stranger, use_case_id=use_case.id) == ([], 1)
    drain_handoff_queue()


def test_a_cursor_cannot_be_forged_or_moved_to_another_listing(
    tenant: Tenant, use_case: UseCase
) -> None:
    for _ in range(2):
        send(tenant, use_case)
    first = tenant.api.request("GET", "/v1/sms/", query={"limit": "1"}).json()
    cursor = first["next_cursor"]
    assert cursor
    moved = tenant.api.request(
        "GET", "/v1/sms/", query={"limit": "1", "cursor": cursor, "use_case_id": use_case.id}
    )
    assert moved.status == 422
    assert moved.json()["error"]["code"] == "validation_error"
    garbage = tenant.api.request("GET", "/v1/sms/", query={"cursor": "!!notacursor"})
    assert garbage.status == 422
    assert garbage.json()["error"]["code"] == "validation_error"
    drain_handoff_queue()


def test_list_parameters_are_validated(tenant: Tenant) -> None:
    for query in ({"limit": "0"}, {"limit": "101"}, {"limit": "x"}, {"status": "lost"},
                  {"use_case_id": "nope"}, {"colour": "red"}):  # fmt: skip
        response = tenant.api.request("GET", "/v1/sms/", query=query)
        assert response.status == 422, query
        assert response.json()["error"]["code"] == "validation_error"


@pytest.fixture
def index_queries() -> Iterator[list[dict[str, Any]]]:
    """The parameters of every DynamoDB Query made from now on (real calls, to moto)."""
    queries: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        queries.append(params)

    events = aws_clients.dynamodb().meta.events
    events.register("before-parameter-build.dynamodb.Query", record, unique_id="queries")
    yield queries
    events.unregister("before-parameter-build.dynamodb.Query", unique_id="queries")


def partitions_read(queries: list[dict[str, Any]]) -> set[str]:
    return {q["ExpressionAttributeValues"][":p"]["S"] for q in queries}


def test_another_workspaces_use_case_id_reads_nothing_and_gives_no_cursor(
    gateway: Any,
    tenant: Tenant,
    use_case: UseCase,
    index_queries: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # More messages than one index page holds, and one index page per listing page: reading the
    # foreign partition would end on a cursor built from the other workspace's last item.
    monkeypatch.setattr(index_pages, "MAX_QUERIES_PER_PAGE", 1)
    for i in range(26):
        send(tenant, use_case, message=f"message {i}")
    stranger = make_tenant(gateway)
    index_queries.clear()

    response = stranger.api.request(
        "GET", "/v1/sms/", query={"use_case_id": use_case.id, "limit": "1"}
    )

    assert response.status == 200
    assert response.json() == {"items": [], "next_cursor": None}
    assert use_case.id not in partitions_read(index_queries)
    drain_handoff_queue()


def test_an_unknown_use_case_id_is_an_empty_page_without_a_query(
    tenant: Tenant, index_queries: list[dict[str, Any]]
) -> None:
    unknown = str(uuid.uuid4())

    response = tenant.api.request("GET", "/v1/sms/", query={"use_case_id": unknown})

    assert response.status == 200
    assert response.json() == {"items": [], "next_cursor": None}
    assert unknown not in partitions_read(index_queries)


def test_a_deleted_use_case_still_lists_its_messages(tenant: Tenant, use_case: UseCase) -> None:
    # The messages are the workspace's own and stay readable after the use case is retired.
    sent = [send(tenant, use_case) for _ in range(2)]
    assert tenant.api.request("DELETE", f"/v1/sms/use-cases/{use_case.id}").status == 204

    items, _ = list_all(tenant, use_case_id=use_case.id, limit="1")

    assert sorted(m["id"] for m in items) == sorted(m["id"] for m in sent)
    drain_handoff_queue()
