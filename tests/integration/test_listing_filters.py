"""GET /v1/sms/?status=...: a filtered listing pages through a partition that holds other
statuses too, ending pages on a cursor (mid index page, or where a sparse filter stopped reading),
and following the cursors gives every matching message once, newest first, and nothing else.
"""

from __future__ import annotations

from typing import Any

import pytest

from sms_gateway.domain.clock import now_iso
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic.use_case_admin import create_use_case
from sms_gateway.providers.twilio import statuses as twilio_statuses
from sms_gateway.store import index_pages, transitions
from sms_local.gateway import HttpApiGateway
from tests.integration.conftest import Tenant, make_tenant, use_case_spec
from tests.integration.test_read_api import send
from tests.integration.test_send_api import drain_handoff_queue

# What message_store reads from the index per query when filtering.
INDEX_PAGE = 25
# More messages than one index query reads.
MESSAGES = 40


def settle(message: dict[str, Any], use_case: UseCase, provider_status: str) -> None:
    event = twilio_statuses.provider_event(
        account_sid=use_case.twilio_account_sid, provider_status=provider_status, at=now_iso()
    )
    assert transitions.apply_provider_event(message["id"], event)


def newest_first(messages: list[dict[str, Any]]) -> list[str]:
    # The index's sort key: created_at, then the id for messages of the same millisecond.
    return [
        m["id"] for m in sorted(messages, key=lambda m: (m["created_at"], m["id"]), reverse=True)
    ]


Listing = tuple[Tenant, UseCase, dict[str, list[dict[str, Any]]]]


@pytest.fixture(scope="module")
def workspace(gateway: HttpApiGateway) -> Listing:
    """A workspace of its own (the tests only read it) with two use cases, whose messages are,
    in creation order, delivered, pending, undelivered, pending, delivered, ... (interleaved, so
    that every index page holds some of each). Returns the tenant, its main use case, and the
    messages: 'all', and 'mine' (the main use case's)."""
    tenant = make_tenant(gateway)
    use_case = create_use_case(tenant.workspace_id, use_case_spec())
    other = create_use_case(tenant.workspace_id, use_case_spec())
    messages: dict[str, list[dict[str, Any]]] = {"all": [], "mine": []}
    pattern = ["delivered", "pending", "undelivered", "pending"]
    for i in range(MESSAGES):
        owner = use_case if i % 5 else other  # one in five through the other use case
        message = send(tenant, owner, message=f"message {i}")
        status = pattern[i % len(pattern)]
        if status != "pending":
            settle(message, owner, status)
        message["status"] = status
        messages["all"].append(message)
        if owner is use_case:
            messages["mine"].append(message)
    drain_handoff_queue()
    return tenant, use_case, messages


def pages_of(tenant: Tenant, **query: str) -> list[dict[str, Any]]:
    """Every page of a listing, following next_cursor to its end."""
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        response = tenant.api.request("GET", "/v1/sms/", query=params)
        assert response.status == 200, response.json()
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        pages.append(page)
        assert len(pages) <= MESSAGES + 1, "the cursors never end"
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


def assert_lists_exactly(pages: list[dict[str, Any]], expected: list[str], limit: int) -> None:
    ids = [m["id"] for page in pages for m in page["items"]]
    # every match once (no duplicate across pages, none missed), in order
    assert ids == expected
    assert all(len(page["items"]) <= limit for page in pages)
    cursors = [page["next_cursor"] for page in pages[:-1]]
    assert len(set(cursors)) == len(cursors)


@pytest.mark.parametrize("status", ["delivered", "pending", "undelivered"])
@pytest.mark.parametrize("limit", [1, 3, 7])
def test_a_status_filtered_listing_pages_through_every_match_once(
    workspace: Listing, status: str, limit: int
) -> None:
    tenant, _, messages = workspace
    expected = newest_first([m for m in messages["all"] if m["status"] == status])

    pages = pages_of(tenant, status=status, limit=str(limit))

    assert_lists_exactly(pages, expected, limit)
    # The pages before the last are full: each ended on a cursor because it was.
    assert len(pages) >= 2
    assert all(len(page["items"]) == limit for page in pages[:-1])
    assert all(m["status"] == status for page in pages for m in page["items"])


@pytest.mark.parametrize("status", ["delivered", "undelivered"])
def test_a_page_filled_by_the_last_match_of_an_index_page_still_has_a_cursor(
    workspace: Listing, status: str
) -> None:
    # Given a limit that the matches among the newest index page fill exactly: the page ends on
    # the last item DynamoDB returned, while the index goes on.
    tenant, _, messages = workspace
    expected = newest_first([m for m in messages["all"] if m["status"] == status])
    newest = set(newest_first(messages["all"])[:INDEX_PAGE])
    limit = sum(message_id in newest for message_id in expected)
    assert 0 < limit < len(expected)

    pages = pages_of(tenant, status=status, limit=str(limit))

    assert [m["id"] for m in pages[0]["items"]] == expected[:limit]
    assert pages[0]["next_cursor"] is not None
    assert_lists_exactly(pages, expected, limit)


@pytest.mark.parametrize("status", ["delivered", "undelivered"])
def test_a_status_and_use_case_filtered_listing_pages_through_every_match_once(
    workspace: Listing, status: str
) -> None:
    tenant, use_case, messages = workspace
    expected = newest_first([m for m in messages["mine"] if m["status"] == status])
    assert len(expected) > 2

    pages = pages_of(tenant, use_case_id=use_case.id, status=status, limit="2")

    assert_lists_exactly(pages, expected, 2)
    assert len(pages) >= 2
    assert all(m["use_case_id"] == use_case.id for page in pages for m in page["items"])
    assert all(len(page["items"]) == 2 for page in pages[:-1])


@pytest.mark.parametrize("use_case_filter", [False, True])
def test_a_sparse_filter_stops_reading_on_a_cursor_and_resumes_there(
    workspace: Listing, monkeypatch: pytest.MonkeyPatch, use_case_filter: bool
) -> None:
    # Given a listing page may read only one index page (25 messages): a filter that finds fewer
    # than `limit` there ends its page on a cursor where the reading stopped, not on a match.
    monkeypatch.setattr(index_pages, "MAX_QUERIES_PER_PAGE", 1)
    tenant, use_case, messages = workspace
    pool = messages["mine"] if use_case_filter else messages["all"]
    expected = newest_first([m for m in pool if m["status"] == "undelivered"])
    query = {"status": "undelivered", "limit": "20"}
    if use_case_filter:
        query["use_case_id"] = use_case.id

    pages = pages_of(tenant, **query)

    assert_lists_exactly(pages, expected, 20)
    # It took more than one page although every match fits in one: the first ended short, on a
    # cursor.
    assert len(expected) <= 20 < len(pool)
    assert len(pages) >= 2
    assert len(pages[0]["items"]) < len(expected)
    assert pages[0]["next_cursor"] is not None
