"""POST /v1/sms/ with an Idempotency-Key when the key's first request has not finished (409) and
when the idempotency store fails (503): the documented error bodies, and no message stored or
queued by the refused request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from sms_gateway.config import get_settings
from sms_gateway.domain.ids import message_id_for_key
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.store import aws_clients
from tests.integration.conftest import Response, Tenant
from tests.integration.test_send_api import (
    drain_handoff_queue,
    forget_idempotency_records,
    send_body,
    stored_messages,
)

IN_USE = {
    "error": {
        "code": "idempotency_key_in_use",
        "message": "a request with this Idempotency-Key is still in progress; retry shortly",
    }
}
STORE_UNAVAILABLE = {
    "error": {
        "code": "service_unavailable",
        "message": "idempotency store unavailable; retry later",
    }
}


class Killed(BaseException):
    """The send function's sandbox stopped here (no `except Exception` can catch it, so
    Powertools cannot clean up its in-progress record, as when Lambda times a function out)."""


def tables_of(params: dict[str, Any]) -> set[str]:
    # params is the serialized request: DynamoDB's is a JSON body, naming one table, or several
    # for a batch.
    request = json.loads(params["body"])
    return {request["TableName"]} if "TableName" in request else set(request["RequestItems"])


@pytest.fixture(autouse=True)
def _empty_queue() -> None:
    drain_handoff_queue()


Hook = Callable[..., Any]


@pytest.fixture
def dynamodb_hooks() -> Iterator[Callable[[str, Hook], None]]:
    """hook(operation, handler): run `handler` before each call of that DynamoDB operation,
    until the test ends."""
    events = aws_clients.dynamodb().meta.events
    installed: list[tuple[str, Hook]] = []

    def hook(operation: str, handler: Hook) -> None:
        events.register(f"before-call.dynamodb.{operation}", handler)
        installed.append((operation, handler))

    yield hook
    for operation, handler in installed:
        events.unregister(f"before-call.dynamodb.{operation}", handler)


class Operations:
    """Every DynamoDB call made, as (operation, table)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, event_name: str, params: dict[str, Any], **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        self.calls.extend((operation, table) for table in tables_of(params))

    def on(self, table: str) -> list[str]:
        return [operation for operation, t in self.calls if t == table]


def assert_nothing_of(tenant: Tenant, key: str) -> None:
    """No message for this workspace, none under the key's id, none queued for handoff."""
    assert stored_messages(tenant.workspace_id) == []
    keyed_id = message_id_for_key(tenant.workspace_id, "live", key)
    assert "Item" not in aws_clients.dynamodb().get_item(
        TableName=get_settings().messages_table, Key={"id": {"S": keyed_id}}, ConsistentRead=True
    )
    assert drain_handoff_queue(tenant.workspace_id) == []


def send(tenant: Tenant, body: dict[str, Any], key: str) -> Response:
    return tenant.api.send(body, headers={"idempotency-key": key})


# --- 409: the key's first request is still in progress ------------------------------------------


def test_a_key_whose_first_request_is_still_in_progress_is_409_and_sends_nothing(
    tenant: Tenant, use_case: UseCase, dynamodb_hooks: Callable[[str, Hook], None]
) -> None:
    # Given a keyed send stopped after it took the key and before it stored its message: its
    # in-progress record stays until the invocation's deadline.
    key = f"order-{uuid.uuid4()}"
    body = send_body(use_case)
    messages_table = get_settings().messages_table

    def die_before_storing(params: dict[str, Any], **_: Any) -> None:
        if messages_table in tables_of(params):
            raise Killed

    dynamodb_hooks("PutItem", die_before_storing)
    with pytest.raises(Killed):
        send(tenant, body, key)
    # (the next attempts may store their message)
    aws_clients.dynamodb().meta.events.unregister(
        "before-call.dynamodb.PutItem", die_before_storing
    )
    watched = Operations()
    dynamodb_hooks("*", watched)

    # When the caller sends the same request with the same key meanwhile
    response = send(tenant, body, key)

    # Then it is told the key is in use, and nothing is stored or queued for it
    assert (response.status, response.json()) == (409, IN_USE)
    assert response.headers["content-type"] == "application/json"
    assert watched.on(messages_table) == []
    assert_nothing_of(tenant, key)
    # And once the in-progress record has expired (forgetting it stands for the expiry), the
    # same request goes through, once.
    forget_idempotency_records()
    sent = send(tenant, body, key)
    assert sent.status == 201
    assert [m["id"] for m in stored_messages(tenant.workspace_id)] == [sent.json()["id"]]
    assert drain_handoff_queue(tenant.workspace_id) == [{"message_id": sent.json()["id"]}]


# --- 503: the idempotency store fails -----------------------------------------------------------


def refuse_on(table: str, code: str) -> Hook:
    """DynamoDB refuses every call on `table` with `code` (botocore's own attempts spent)."""

    def refuse(params: dict[str, Any], **_: Any) -> Any:
        if table not in tables_of(params):
            return None
        error = {"Code": code, "Message": "refused by the test"}
        return AWSResponse("https://dynamodb", 500, HTTPHeaders(), None), {"Error": error}

    return refuse


@pytest.mark.parametrize("code", ["InternalServerError", "ProvisionedThroughputExceededException"])
def test_an_unavailable_idempotency_store_is_503_and_sends_nothing(
    tenant: Tenant,
    use_case: UseCase,
    dynamodb_hooks: Callable[[str, Hook], None],
    code: str,
) -> None:
    key = f"order-{uuid.uuid4()}"
    body = send_body(use_case)
    watched = Operations()
    dynamodb_hooks("*", watched)
    # Given the idempotency table refuses every call
    dynamodb_hooks("*", refuse_on(get_settings().idempotency_table, code))

    response = send(tenant, body, key)

    # Then the caller is told to retry, before anything of the send was done
    assert (response.status, response.json()) == (503, STORE_UNAVAILABLE)
    assert response.headers["retry-after"] == "5"
    assert watched.on(get_settings().idempotency_table) != []  # the store was asked
    assert watched.on(get_settings().messages_table) == []
    assert watched.on(get_settings().opt_outs_table) == []
    assert_nothing_of(tenant, key)


def test_after_a_503_from_the_store_the_same_key_goes_through(
    tenant: Tenant, use_case: UseCase, dynamodb_hooks: Callable[[str, Hook], None]
) -> None:
    key = f"order-{uuid.uuid4()}"
    body = send_body(use_case)
    refuse = refuse_on(get_settings().idempotency_table, "InternalServerError")
    dynamodb_hooks("*", refuse)
    assert send(tenant, body, key).status == 503

    aws_clients.dynamodb().meta.events.unregister("before-call.dynamodb.*", refuse)
    sent = send(tenant, body, key)

    # The failed request left no in-progress record behind: no 409, one message.
    assert sent.status == 201
    assert [m["id"] for m in stored_messages(tenant.workspace_id)] == [sent.json()["id"]]
    assert drain_handoff_queue(tenant.workspace_id) == [{"message_id": sent.json()["id"]}]


def test_a_send_whose_answer_could_not_be_saved_is_answered_and_never_sent_twice(
    tenant: Tenant, use_case: UseCase, dynamodb_hooks: Callable[[str, Hook], None]
) -> None:
    # Given the store fails only when the send saves its answer, after the message was stored
    key = f"order-{uuid.uuid4()}"
    body = send_body(use_case)
    refuse = refuse_on(get_settings().idempotency_table, "InternalServerError")
    dynamodb_hooks("UpdateItem", refuse)

    first = send(tenant, body, key)

    # Then the caller is told what happened (201, the stored message), not that nothing was
    [stored] = stored_messages(tenant.workspace_id)
    assert stored["id"] == message_id_for_key(tenant.workspace_id, "live", key)
    assert first.status == 201
    assert first.json()["id"] == stored["id"]
    # When the caller retries with the key while the first request's record is still in progress
    aws_clients.dynamodb().meta.events.unregister("before-call.dynamodb.UpdateItem", refuse)
    in_progress = send(tenant, body, key)
    assert (in_progress.status, in_progress.json()) == (409, IN_USE)
    # and after it expired (forgetting it stands for the expiry)
    forget_idempotency_records()
    again = send(tenant, body, key)
    # Then it gets the stored message back: one message, queued once.
    assert again.status == 201
    assert again.json()["id"] == stored["id"]
    assert [m["id"] for m in stored_messages(tenant.workspace_id)] == [stored["id"]]
    assert drain_handoff_queue(tenant.workspace_id) == [{"message_id": stored["id"]}]
