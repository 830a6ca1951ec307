"""POST /v1/sms/ through the HTTP API front (authorizer included) against moto."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from sms_gateway.config import get_settings
from sms_gateway.domain.use_cases import UseCase, UseCaseSpec
from sms_gateway.logic.use_case_admin import create_use_case, delete_use_case
from sms_gateway.store import api_keys, aws_clients, index_pages, opt_out_store
from sms_gateway.store.dynamo import from_item
from sms_local.pipe_runner import pump_all
from tests.integration.conftest import Api, Tenant, make_tenant, use_case_spec

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MOBILE_US = "+14155552671"
MOBILE_FR = "+33612345678"
LANDLINE_GB = "+442071838750"


def drain_handoff_queue(workspace_id: str | None = None) -> list[dict[str, Any]]:
    """Receive and delete everything queued for handoff (no worker runs in these tests); with a
    workspace, return only what was queued for its messages. The queue is shared by the whole
    session, and a message another test left invisible (a crashed batch) reappears later."""
    pump_all()  # what the outbox has not queued yet
    sqs = aws_clients.sqs()
    url = get_settings().handoff_queue_url
    bodies: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            if workspace_id is None:
                return bodies
            return [b for b in bodies if _workspace_of(b["message_id"]) == workspace_id]
        for message in batch:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _workspace_of(message_id: str) -> str | None:
    item = (
        aws_clients.dynamodb()
        .get_item(TableName=get_settings().messages_table, Key={"id": {"S": message_id}})
        .get("Item")
    )
    return from_item(item)["workspace_id"] if item else None


def stored_messages(workspace_id: str) -> list[dict[str, Any]]:
    response = aws_clients.dynamodb().query(
        TableName=get_settings().messages_table,
        IndexName="by_workspace",
        KeyConditionExpression="workspace_id = :w",
        ExpressionAttributeValues={":w": {"S": workspace_id}},
    )
    # The index holds keys only: the messages themselves are the table's.
    ids = [item["id"]["S"] for item in response["Items"]]
    found = index_pages.batch_get(get_settings().messages_table, "id", ids)
    return [found[i] for i in ids if i in found]


def send_body(use_case: UseCase, **overrides: Any) -> dict[str, Any]:
    return {
        "use_case_id": use_case.id,
        "to_phone_number": MOBILE_US,
        "message": "Your code is 123456",
        **overrides,
    }


@pytest.fixture(autouse=True)
def _empty_queue() -> None:
    drain_handoff_queue()


def assert_nothing_written(tenant: Tenant) -> None:
    assert stored_messages(tenant.workspace_id) == []
    assert drain_handoff_queue(tenant.workspace_id) == []


def test_send_stores_a_pending_message_and_queues_its_handoff(
    tenant: Tenant, use_case: UseCase
) -> None:
    response = tenant.api.send(send_body(use_case))

    assert response.status == 201
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) >= {
        "id", "use_case_id", "message_sid", "from_number", "to_number", "body", "num_segments",
        "status", "handed_off_at", "delivered_at", "errored_at", "error_code", "created_at",
        "updated_at",
    }  # fmt: skip
    uuid.UUID(body["id"])
    assert body["use_case_id"] == use_case.id
    assert body["to_number"] == MOBILE_US
    assert body["body"] == "Your code is 123456"
    assert body["status"] == "pending"
    # Resolved at handoff, so unknown at send time (documented).
    for field in ("message_sid", "from_number", "num_segments", "handed_off_at"):
        assert body[field] is None
    for field in ("delivered_at", "errored_at", "error_code"):
        assert body[field] is None
    assert ISO_UTC.match(body["created_at"])
    assert body["updated_at"] == body["created_at"]

    [item] = stored_messages(tenant.workspace_id)
    assert item["id"] == body["id"]
    assert item["status"] == "pending"
    assert item["workspace_id"] == tenant.workspace_id
    assert item["history"][0]["event"] == "created"
    assert drain_handoff_queue(tenant.workspace_id) == [{"message_id": body["id"]}]


def test_message_of_exactly_1600_characters_is_accepted(tenant: Tenant, use_case: UseCase) -> None:
    response = tenant.api.send(send_body(use_case, message="x" * 1600))
    assert response.status == 201
    assert len(response.json()["body"]) == 1600


def error_of(response: Any) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return response.status, body["error"]["code"]


def test_unknown_use_case_is_404(tenant: Tenant) -> None:
    response = tenant.api.send(
        {"use_case_id": str(uuid.uuid4()), "to_phone_number": MOBILE_US, "message": "hi"}
    )
    assert error_of(response) == (404, "use_case_not_found")
    assert_nothing_written(tenant)


def test_malformed_use_case_id_is_404(tenant: Tenant) -> None:
    response = tenant.api.send(
        {"use_case_id": "not-a-uuid", "to_phone_number": MOBILE_US, "message": "hi"}
    )
    assert error_of(response) == (404, "use_case_not_found")
    assert_nothing_written(tenant)


def test_deleted_use_case_is_404(tenant: Tenant, use_case: UseCase) -> None:
    delete_use_case(tenant.workspace_id, use_case.id)
    assert error_of(tenant.api.send(send_body(use_case))) == (404, "use_case_not_found")
    assert_nothing_written(tenant)


def test_another_workspaces_use_case_is_404(gateway: Any, use_case: UseCase) -> None:
    stranger = make_tenant(gateway)
    assert error_of(stranger.api.send(send_body(use_case))) == (404, "use_case_not_found")
    assert_nothing_written(stranger)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"active": False}, "use_case_inactive"),
        ({"sender_pool": []}, "no_sender_in_pool"),
        ({"a2p_campaign_status": "pending"}, "a2p_campaign_not_verified"),
        ({"a2p_campaign_status": "failed"}, "a2p_campaign_not_verified"),
        ({"a2p_campaign_status": "none"}, "a2p_campaign_not_verified"),
        ({"brand_status": "suspended"}, "brand_suspended"),
    ],
)
def test_use_case_state_errors(tenant: Tenant, overrides: dict[str, Any], expected: str) -> None:
    use_case = create_use_case(tenant.workspace_id, use_case_spec(**overrides))
    assert error_of(tenant.api.send(send_body(use_case))) == (422, expected)
    assert_nothing_written(tenant)


@pytest.mark.parametrize(
    "pool",
    [
        [{"sender": "+18005550100", "kind": "toll_free"}],
        [{"sender": "+16135550123", "kind": "long_code"}],  # a Canadian long code
        [{"sender": "ACME", "kind": "alphanumeric"}],
    ],
)
def test_a2p_campaign_is_only_required_for_us_long_codes(
    tenant: Tenant, pool: list[dict[str, str]]
) -> None:
    use_case = create_use_case(
        tenant.workspace_id, use_case_spec(sender_pool=pool, a2p_campaign_status="none")
    )
    assert tenant.api.send(send_body(use_case)).status == 201


@pytest.mark.parametrize(
    "number",
    [
        "4155552671",  # no plus
        "+1415555",  # too short for E.164
        "+1234567890123456",  # 16 digits
        "+1 415 555 2671",  # spaces
        "+1415555267a",
        "+19995552671",  # not a real area code
        "",
    ],
)
def test_invalid_destination_is_phone_invalid(
    tenant: Tenant, use_case: UseCase, number: str
) -> None:
    response = tenant.api.send(send_body(use_case, to_phone_number=number))
    assert error_of(response) == (422, "phone_invalid")
    assert_nothing_written(tenant)


def test_landline_is_refused(tenant: Tenant, use_case: UseCase) -> None:
    response = tenant.api.send(send_body(use_case, to_phone_number=LANDLINE_GB))
    assert error_of(response) == (422, "phone_landline")
    assert_nothing_written(tenant)


@pytest.mark.parametrize("scope_of", ["use_case", "service"])
def test_opted_out_recipient_is_refused(tenant: Tenant, use_case: UseCase, scope_of: str) -> None:
    scope = (
        opt_out_store.use_case_scope(use_case.id)
        if scope_of == "use_case"
        else opt_out_store.service_scope(use_case.messaging_service_sid)
    )
    opt_out_store.add_opt_out(scope, MOBILE_US, "test")
    assert error_of(tenant.api.send(send_body(use_case))) == (422, "recipient_opted_out")
    assert_nothing_written(tenant)
    # Removing the entry lets messages through again.
    opt_out_store.remove_opt_out(scope, MOBILE_US)
    assert tenant.api.send(send_body(use_case)).status == 201


def test_destination_country_must_be_allowed(tenant: Tenant, use_case: UseCase) -> None:
    response = tenant.api.send(send_body(use_case, to_phone_number=MOBILE_FR))
    assert error_of(response) == (422, "region_not_permitted")
    assert_nothing_written(tenant)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b"",
        b'{"use_case_id": "x", "to_phone_number": "+14155552671"}',
    ],
)
def test_malformed_body_is_validation_error(tenant: Tenant, raw: bytes) -> None:
    response = tenant.api.request(
        "POST", "/v1/sms/", raw_body=raw, headers={"content-type": "application/json"}
    )
    assert error_of(response) == (422, "validation_error")
    assert_nothing_written(tenant)


def test_unknown_field_is_rejected(tenant: Tenant, use_case: UseCase) -> None:
    response = tenant.api.send(send_body(use_case, priority="high"))
    status, code = error_of(response)
    assert (status, code) == (422, "validation_error")
    assert response.json()["error"]["errors"][0]["field"] == "priority"
    assert_nothing_written(tenant)


def test_wrong_type_is_rejected(tenant: Tenant, use_case: UseCase) -> None:
    response = tenant.api.send(send_body(use_case, message=12345))
    assert error_of(response) == (422, "validation_error")
    assert response.json()["error"]["errors"][0]["field"] == "message"
    assert_nothing_written(tenant)


@pytest.mark.parametrize("message", ["", "x" * 1601])
def test_message_length_is_checked(tenant: Tenant, use_case: UseCase, message: str) -> None:
    response = tenant.api.send(send_body(use_case, message=message))
    assert error_of(response) == (422, "validation_error")
    assert_nothing_written(tenant)


def test_checks_run_in_the_documented_order(tenant: Tenant) -> None:
    # Given a use case that fails every check at once
    broken = create_use_case(
        tenant.workspace_id,
        use_case_spec(
            active=False, sender_pool=[], a2p_campaign_status="none", brand_status="suspended",
            allowed_countries=[],
        ),
    )  # fmt: skip
    opt_out_store.add_opt_out(opt_out_store.use_case_scope(broken.id), MOBILE_FR, "test")
    body = send_body(broken, to_phone_number=MOBILE_FR, message="x" * 1601)
    # Then fixing one thing at a time reveals the next error of the documented order.
    steps: list[tuple[dict[str, Any], str]] = [
        ({}, "use_case_inactive"),
        ({"active": True}, "no_sender_in_pool"),
        ({"sender_pool": [{"sender": "+14155550100", "kind": "long_code"}]},
         "a2p_campaign_not_verified"),
        ({"a2p_campaign_status": "verified"}, "brand_suspended"),
        ({"brand_status": "active"}, "recipient_opted_out"),
        ({"allowed_countries": ["FR"]}, "recipient_opted_out"),
    ]  # fmt: skip
    spec = broken.model_dump(include=set(UseCaseSpec.model_fields))
    for change, expected in steps:
        spec.update(change)
        use_case = create_use_case(tenant.workspace_id, use_case_spec(**spec))
        opt_out_store.add_opt_out(opt_out_store.use_case_scope(use_case.id), MOBILE_FR, "t")
        assert error_of(tenant.api.send(send_body(use_case, **_without_id(body)))) == (
            422,
            expected,
        ), change
    # phone checks come before the opt-out list, the region after it, the length last
    assert error_of(tenant.api.send(send_body(use_case, to_phone_number="+1999"))) == (
        422,
        "phone_invalid",
    )
    assert error_of(tenant.api.send(send_body(use_case, to_phone_number=LANDLINE_GB))) == (
        422,
        "phone_landline",
    )
    spec["allowed_countries"] = ["US"]
    us_only = create_use_case(tenant.workspace_id, use_case_spec(**spec))
    long_to_fr = send_body(us_only, to_phone_number=MOBILE_FR, message="x" * 1601)
    assert error_of(tenant.api.send(long_to_fr)) == (422, "region_not_permitted")
    assert_nothing_written(tenant)


def _without_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "use_case_id"}


class FailingMessageWrite:
    """Makes DynamoDB refuse the put of a message (a throttle), as a before-call hook."""

    def __init__(self) -> None:
        self.refused = 0

    def __call__(self, params: dict[str, Any], **kwargs: Any) -> Any:
        # params is the serialized request: DynamoDB's is a JSON body.
        if json.loads(params["body"]).get("TableName") != get_settings().messages_table:
            return None
        self.refused += 1
        error = {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"}
        return AWSResponse("https://dynamodb", 400, HTTPHeaders(), None), {"Error": error}


def test_a_message_that_cannot_be_stored_is_503_and_nothing_is_queued(
    tenant: Tenant, use_case: UseCase
) -> None:
    # Given DynamoDB refuses every write of the message (botocore's own retries included)
    refuse = FailingMessageWrite()
    events = aws_clients.dynamodb().meta.events
    events.register("before-call.dynamodb.PutItem", refuse)
    try:
        response = tenant.api.send(send_body(use_case))
    finally:
        events.unregister("before-call.dynamodb.PutItem", refuse)
    # Then the caller is told to retry, and nothing was stored or queued
    assert refuse.refused >= 1
    assert error_of(response) == (503, "service_unavailable")
    assert response.headers.get("retry-after")
    assert_nothing_written(tenant)
    assert drain_handoff_queue(tenant.workspace_id) == []
    # And a retry succeeds
    assert tenant.api.send(send_body(use_case)).status == 201


def test_a_stored_message_is_queued_by_the_table_stream_not_by_the_send(
    tenant: Tenant, use_case: UseCase
) -> None:
    # The send function may not even call SQS (IAM): its write is what queues the handoff.
    message = tenant.api.send(send_body(use_case)).json()
    assert drain_handoff_queue(tenant.workspace_id) == [{"message_id": message["id"]}]


def test_idempotency_key_replays_the_first_response(tenant: Tenant, use_case: UseCase) -> None:
    key = {"idempotency-key": f"order-{uuid.uuid4()}"}
    first = tenant.api.send(send_body(use_case), headers=key)
    again = tenant.api.send(send_body(use_case), headers=key)
    assert first.status == again.status == 201
    assert again.json() == first.json()
    assert len(stored_messages(tenant.workspace_id)) == 1
    assert drain_handoff_queue(tenant.workspace_id) == [{"message_id": first.json()["id"]}]


@pytest.mark.parametrize("length", [1, 255])
def test_idempotency_keys_of_1_to_255_characters_are_taken(
    tenant: Tenant, use_case: UseCase, length: int
) -> None:
    key = {"idempotency-key": "k" * length}
    first = tenant.api.send(send_body(use_case), headers=key)
    assert first.status == 201
    assert tenant.api.send(send_body(use_case), headers=key).json() == first.json()
    drain_handoff_queue(tenant.workspace_id)


@pytest.mark.parametrize("key", ["", "k" * 256], ids=["empty", "256-characters"])
def test_an_idempotency_key_of_another_length_is_refused_naming_the_header(
    tenant: Tenant, use_case: UseCase, key: str
) -> None:
    response = tenant.api.send(send_body(use_case), headers={"idempotency-key": key})
    assert (response.status, response.json()) == (
        422,
        {
            "error": {
                "code": "validation_error",
                "message": "Idempotency-Key must be 1 to 255 characters",
                "errors": [{"field": "Idempotency-Key", "issue": "length out of range"}],
            }
        },
    )
    assert stored_messages(tenant.workspace_id) == []


KEY_REUSED = {
    "error": {
        "code": "idempotency_key_reused",
        "message": "this Idempotency-Key was used with a different request body",
    }
}


def test_idempotency_key_with_another_body_is_refused(tenant: Tenant, use_case: UseCase) -> None:
    key = {"idempotency-key": f"order-{uuid.uuid4()}"}
    assert tenant.api.send(send_body(use_case), headers=key).status == 201
    response = tenant.api.send(send_body(use_case, message="another text"), headers=key)
    assert (response.status, response.json()) == (422, KEY_REUSED)
    assert len(stored_messages(tenant.workspace_id)) == 1


def test_idempotency_keys_are_per_workspace(
    gateway: Any, tenant: Tenant, use_case: UseCase
) -> None:
    other = make_tenant(gateway)
    other_use_case = create_use_case(other.workspace_id, use_case_spec())
    key = {"idempotency-key": f"shared-{uuid.uuid4()}"}
    mine = tenant.api.send(send_body(use_case), headers=key)
    theirs = other.api.send(send_body(other_use_case), headers=key)
    # Each workspace got a message of its own, not the other's answer replayed.
    assert mine.status == theirs.status == 201
    assert theirs.json()["id"] != mine.json()["id"]
    assert [m["id"] for m in stored_messages(tenant.workspace_id)] == [mine.json()["id"]]
    assert [m["id"] for m in stored_messages(other.workspace_id)] == [theirs.json()["id"]]


def test_idempotency_keys_are_per_mode(gateway: Any, tenant: Tenant, use_case: UseCase) -> None:
    # Given the same key and body sent first with a test key, then with a live key
    test_key = api_keys.issue_key(tenant.workspace_id, ("messages:send",), "test")
    key = {"idempotency-key": f"order-{uuid.uuid4()}"}
    simulated = Api(gateway, test_key.secret).send(send_body(use_case), headers=key)
    live = tenant.api.send(send_body(use_case), headers=key)
    # Then the live request is a message of its own, which will really be sent
    assert simulated.status == live.status == 201
    assert simulated.json()["test"] is True and live.json()["test"] is False
    assert live.json()["id"] != simulated.json()["id"]
    assert len(stored_messages(tenant.workspace_id)) == 2


def test_a_retried_key_replays_its_message_after_the_idempotency_record_is_gone(
    tenant: Tenant, use_case: UseCase
) -> None:
    # Given a keyed send whose idempotency record later disappeared (it expired after 24 h, or
    # the first attempt died after storing the message and its in-progress record expired)
    key = {"idempotency-key": f"order-{uuid.uuid4()}"}
    first = tenant.api.send(send_body(use_case), headers=key)
    assert first.status == 201
    forget_idempotency_records()
    # When the caller retries the same request with the same key
    again = tenant.api.send(send_body(use_case), headers=key)
    # Then it gets the same message back, and the person one SMS
    assert again.status == 201
    assert again.json()["id"] == first.json()["id"]
    assert len(stored_messages(tenant.workspace_id)) == 1
    assert drain_handoff_queue(tenant.workspace_id) == [{"message_id": first.json()["id"]}]
    # And another request reusing the key is refused, even without the record
    for changed in ({"message": "another text"}, {"to_phone_number": "+14155550199"}):
        forget_idempotency_records()
        other = tenant.api.send(send_body(use_case, **changed), headers=key)
        assert (other.status, other.json()) == (422, KEY_REUSED), changed
    assert len(stored_messages(tenant.workspace_id)) == 1


def forget_idempotency_records() -> None:
    table = get_settings().idempotency_table
    dynamodb = aws_clients.dynamodb()
    for item in dynamodb.scan(TableName=table).get("Items", []):
        dynamodb.delete_item(TableName=table, Key={"id": item["id"]})


def test_failed_request_does_not_burn_its_idempotency_key(
    tenant: Tenant, use_case: UseCase
) -> None:
    key = {"idempotency-key": f"order-{uuid.uuid4()}"}
    bad = tenant.api.send(send_body(use_case, to_phone_number=LANDLINE_GB), headers=key)
    assert error_of(bad) == (422, "phone_landline")
    assert tenant.api.send(send_body(use_case), headers=key).status == 201


class CallCounter:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, event_name: str, **kwargs: Any) -> None:
        # event name: before-call.<service>.<Operation>
        _prefix, service, operation = event_name.split(".")
        self.calls.append(f"{service}.{operation}")


def test_a_send_makes_one_write_and_no_enqueue(tenant: Tenant, use_case: UseCase) -> None:
    counter = CallCounter()
    clients = [aws_clients.dynamodb(), aws_clients.sqs()]
    for client in clients:
        client.meta.events.register("before-call.*.*", counter)
    try:
        assert tenant.api.send(send_body(use_case)).status == 201  # cold use-case cache
        cold = list(counter.calls)
        counter.calls.clear()
        assert tenant.api.send(send_body(use_case)).status == 201  # warm
        warm = list(counter.calls)
    finally:
        for client in clients:
            client.meta.events.unregister("before-call.*.*", counter)
    # The authorizer's key lookup is one read; the send itself: opt-out read and one put (the
    # table's stream queues the handoff). A cold function also reads the use case and the
    # destination's price, which it then caches.
    assert sorted(warm) == sorted(["dynamodb.GetItem", "dynamodb.BatchGetItem", "dynamodb.PutItem"])
    assert sorted(cold) == sorted([*warm, "dynamodb.GetItem", "dynamodb.GetItem"])
