"""sms_gateway.logic.sending.send_message against DynamoDB and EventBridge Scheduler (moto, in this
process): the message it stores, the schedule it asks for, a replayed Idempotency-Key, and the
exact errors the send API answers with when a dependency fails or a key is reused.

The fast net for mutation testing of sending.py; the HTTP view is in
tests/integration/test_send_api.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest

from sms_gateway.domain.callers import Caller
from sms_gateway.domain.errors import (
    A2pCampaignNotVerifiedError,
    BrandSuspendedError,
    GatewayError,
    IdempotencyKeyReusedError,
    NoSenderInPoolError,
    RecipientOptedOutError,
    RegionNotPermittedError,
    SenderIdInvalidError,
    ServiceUnavailableError,
    UseCaseInactiveError,
    UseCaseNotFoundError,
    ValidationError,
)
from sms_gateway.domain.ids import message_id_for_key
from sms_gateway.domain.messages import Message, MessageStatus
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic import sending, template_admin
from sms_gateway.store import (
    aws_clients,
    idempotency,
    message_store,
    opt_out_store,
    schedules,
    sender_id_store,
    use_case_store,
)
from tests.unit.in_process_aws import SCHEDULER_SETTINGS, create_table, in_process_aws

WORKSPACE = "w1"
GROUP = "sms-schedules"
MOBILE_US = "+14155552671"
TABLES: dict[str, list[tuple[str, Literal["HASH", "RANGE"]]]] = {
    "MESSAGES_TABLE": [("id", "HASH")],
    "USE_CASES_TABLE": [("id", "HASH")],
    "OPT_OUTS_TABLE": [("scope", "HASH"), ("phone_number", "RANGE")],
    "CATALOG_TABLE": [("pk", "HASH"), ("sk", "RANGE")],
}


@pytest.fixture(autouse=True)
def aws() -> Iterator[None]:
    tables = {name: name.lower() for name in TABLES}
    with in_process_aws(**tables, SCHEDULE_GROUP_NAME=GROUP, **SCHEDULER_SETTINGS):
        use_case_store.clear_cache()
        for name, keys in TABLES.items():
            create_table(name.lower(), keys)
        aws_clients.scheduler().create_schedule_group(Name=GROUP)
        try:
            yield
        finally:
            use_case_store.clear_cache()


def stored_use_case(**overrides: Any) -> UseCase:
    account_sid = "AC" + uuid.uuid4().hex
    data: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "workspace_id": WORKSPACE,
        "name": "Appointment reminders",
        "twilio_account_sid": account_sid,
        "twilio_auth_token_secret": f"sms/twilio/{account_sid}",
        "messaging_service_sid": "MG" + uuid.uuid4().hex,
        "sender_pool": [{"sender": "+14155550100", "kind": "long_code"}],
        "a2p_campaign_status": "verified",
        "brand_status": "active",
        "allowed_countries": ["US"],
        "created_at": "2026-01-01T00:00:00.000Z",
        "updated_at": "2026-01-01T00:00:00.000Z",
        **overrides,
    }
    use_case = UseCase.model_validate(data)
    use_case_store.put_new_use_case(use_case)
    return use_case


def request(use_case: UseCase, **overrides: Any) -> sending.SendRequest:
    """A send body; an override of None leaves the field out."""
    data = {"use_case_id": use_case.id, "to_phone_number": MOBILE_US, "message": "Your code is 1"}
    merged = {name: value for name, value in {**data, **overrides}.items() if value is not None}
    return sending.SendRequest.model_validate(merged)


def later(hours: int = 2) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat(timespec="seconds")


def all_messages() -> list[Message]:
    items = aws_clients.dynamodb().scan(TableName="messages_table")["Items"]
    return [m for i in items if (m := message_store.get_message(i["id"]["S"])) is not None]


def refuse(service: str, operation: str, code: str) -> None:
    """The service refuses every call of `operation` (botocore's own retries spent)."""
    client: Any = getattr(aws_clients, service)()

    def handler(**_: Any) -> None:
        raise client.exceptions.ClientError(
            {"Error": {"Code": code, "Message": "refused by the test"}}, operation
        )

    client.meta.events.register(f"before-call.{service}.{operation}", handler)


def test_a_send_stores_one_pending_message_as_the_api_shows_it() -> None:
    use_case = stored_use_case()

    message = sending.send_message(WORKSPACE, request(use_case, message="Hello there"))

    assert all_messages() == [message]
    assert uuid.UUID(message.id).version == 4
    assert (message.workspace_id, message.use_case_id) == (WORKSPACE, use_case.id)
    assert message.account_sid == use_case.twilio_account_sid  # whose callbacks are trusted
    assert (message.to_number, message.body) == (MOBILE_US, "Hello there")
    assert (message.status, message.send_at, message.test) == (MessageStatus.PENDING, None, False)
    assert message.created_at == message.updated_at
    assert [h.model_dump(exclude_none=True) for h in message.history] == [
        {"at": message.created_at, "event": "created", "status": "pending", "applied": True}
    ]


def test_a_test_mode_send_is_marked_test() -> None:
    message = sending.send_message(WORKSPACE, request(stored_use_case()), test=True)
    assert message.test is True
    assert all_messages() == [message]


def test_a_send_for_later_is_stored_scheduled_with_its_schedule() -> None:
    send_at = later()

    message = sending.send_message(WORKSPACE, request(stored_use_case(), send_at=send_at))

    assert message.status is MessageStatus.SCHEDULED
    expected = datetime.fromisoformat(send_at).astimezone(UTC)
    assert message.send_at == expected.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert [(h.event, h.status) for h in message.history] == [("created", MessageStatus.SCHEDULED)]
    assert all_messages() == [message]
    schedule = aws_clients.scheduler().get_schedule(Name=f"msg-{message.id}", GroupName=GROUP)
    assert schedule["ScheduleExpression"] == f"at({expected:%Y-%m-%dT%H:%M:%S})"


def test_a_schedule_that_cannot_be_created_is_503_and_stores_nothing() -> None:
    refuse("scheduler", "CreateSchedule", "InternalServerException")

    with pytest.raises(ServiceUnavailableError) as unavailable:
        sending.send_message(WORKSPACE, request(stored_use_case(), send_at=later()))

    assert unavailable.value.message == "the message could not be scheduled; retry later"
    assert all_messages() == []


def test_a_message_that_cannot_be_stored_is_503() -> None:
    use_case = stored_use_case()
    refuse("dynamodb", "PutItem", "InternalServerError")

    with pytest.raises(ServiceUnavailableError) as unavailable:
        sending.send_message(WORKSPACE, request(use_case))

    assert unavailable.value.message == "the message could not be stored; retry later"


def test_a_keyed_send_gets_the_key_s_message_id_per_mode() -> None:
    use_case = stored_use_case()
    live = sending.send_message(WORKSPACE, request(use_case), idempotency_key="order-1")
    test = sending.send_message(WORKSPACE, request(use_case), test=True, idempotency_key="order-1")
    assert live.id == message_id_for_key(WORKSPACE, "live", "order-1")
    assert test.id == message_id_for_key(WORKSPACE, "test", "order-1")
    assert sorted(m.id for m in all_messages()) == sorted([live.id, test.id])


def test_a_retried_key_gets_its_stored_message_back() -> None:
    """The key's idempotency record is gone (expired): the same request gets the message the key
    already made, and nothing new is stored."""
    use_case = stored_use_case()
    first = sending.send_message(WORKSPACE, request(use_case), idempotency_key="order-1")

    again = sending.send_message(WORKSPACE, request(use_case), idempotency_key="order-1")

    assert again == first
    assert all_messages() == [first]


def test_a_retried_scheduled_send_whose_time_has_come_gets_its_message_back() -> None:
    # The first attempt scheduled it; the retry (no send_at now, or the same one) is the same send.
    use_case = stored_use_case()
    send_at = later()
    first = sending.send_message(
        WORKSPACE, request(use_case, send_at=send_at), idempotency_key="order-1"
    )
    same = sending.send_message(
        WORKSPACE, request(use_case, send_at=send_at), idempotency_key="order-1"
    )
    now = sending.send_message(WORKSPACE, request(use_case), idempotency_key="order-1")
    assert same == now == first
    assert all_messages() == [first]


@pytest.mark.parametrize(
    "changed",
    [
        {"message": "another text"},
        {"to_phone_number": "+14155550199"},
        {"send_at": "later"},
        {"use_case_id": "another"},
    ],
    ids=["body", "recipient", "send_at", "use_case"],
)
def test_a_key_reused_for_another_send_is_refused(changed: dict[str, str]) -> None:
    use_case = stored_use_case()
    send_at = later(1)
    first = sending.send_message(
        WORKSPACE, request(use_case, send_at=send_at), idempotency_key="order-1"
    )
    if changed.get("send_at") == "later":
        changed = {"send_at": later(3)}
    if changed.get("use_case_id") == "another":
        changed = {"use_case_id": stored_use_case().id}

    with pytest.raises(IdempotencyKeyReusedError) as refused:
        sending.send_message(
            WORKSPACE,
            request(use_case, **{"send_at": send_at, **changed}),
            idempotency_key="order-1",
        )

    assert refused.value.message == "this Idempotency-Key was used with a different request body"
    assert all_messages() == [first]


def test_an_unkeyed_send_never_takes_over_an_existing_schedule() -> None:
    """Only a retried key may find its schedule made already. A fresh id that names an existing
    schedule (another message's) is an error, not a message sent at someone else's time."""
    use_case = stored_use_case()
    taken = str(uuid.uuid4())
    schedules.create_message_schedule(taken, datetime.now(UTC) + timedelta(hours=5))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sending, "new_id", lambda: taken)
        with pytest.raises(schedules.ScheduleExistsError):
            sending.send_message(WORKSPACE, request(use_case, send_at=later()))

    assert all_messages() == []


@pytest.mark.parametrize("use_case_id", ["not-a-uuid", "missing", "deleted", "foreign"])
def test_an_unknown_deleted_or_foreign_use_case_is_not_found(use_case_id: str) -> None:
    ids = {
        "missing": str(uuid.uuid4()),
        "deleted": stored_use_case(deleted=True).id,
        "foreign": stored_use_case(workspace_id="w2").id,
    }
    wanted = ids.get(use_case_id, use_case_id)
    raw = {"use_case_id": wanted, "to_phone_number": MOBILE_US, "message": "hi"}

    with pytest.raises(UseCaseNotFoundError) as not_found:
        sending.send_message(WORKSPACE, sending.SendRequest.model_validate(raw))

    assert (not_found.value.message, not_found.value.details) == (
        "use case not found",
        {"use_case_id": wanted},
    )


def test_a_warm_function_reads_a_use_case_once_for_many_sends() -> None:
    """The send path's use-case cache: the second send within its TTL costs no read."""
    use_case = stored_use_case()
    reads: list[str] = []
    aws_clients.dynamodb().meta.events.register(
        "provide-client-params.dynamodb.GetItem",
        lambda params, **_: reads.append(params["TableName"]),
    )

    for _ in range(2):
        sending.send_message(WORKSPACE, request(use_case))

    assert reads.count("use_cases_table") == 1
    assert len(all_messages()) == 2


@pytest.mark.parametrize("scope", ["use_case", "service"])
def test_an_opted_out_recipient_is_refused(scope: str) -> None:
    use_case = stored_use_case()
    where = (
        opt_out_store.use_case_scope(use_case.id)
        if scope == "use_case"
        else opt_out_store.service_scope(use_case.messaging_service_sid)
    )
    opt_out_store.add_opt_out(where, MOBILE_US, "stop")

    with pytest.raises(RecipientOptedOutError) as refused:
        sending.send_message(WORKSPACE, request(use_case))

    assert refused.value.message == "the recipient has opted out of messages from this sender"
    assert all_messages() == []


@pytest.mark.parametrize("length", [0, 1601])
def test_a_message_must_be_1_to_1600_characters(length: int) -> None:
    use_case = stored_use_case()
    with pytest.raises(ValidationError) as refused:
        sending.send_message(WORKSPACE, request(use_case, message="x" * length))
    assert refused.value.message == "message must be 1 to 1600 characters"
    assert refused.value.details == {
        "errors": [{"field": "message", "issue": "length out of range"}]
    }


@pytest.mark.parametrize("length", [1, 1600])
def test_messages_of_1_and_1600_characters_are_sent(length: int) -> None:
    message = sending.send_message(WORKSPACE, request(stored_use_case(), message="x" * length))
    assert len(message.body) == length


def test_a_destination_outside_the_allowed_countries_is_refused_naming_it() -> None:
    use_case = stored_use_case(allowed_countries=["CA"])
    with pytest.raises(RegionNotPermittedError) as refused:
        sending.send_message(WORKSPACE, request(use_case))
    assert refused.value.message == "the destination country is not allowed for this use case"
    assert refused.value.details == {"country": "US"}
    assert all_messages() == []


@pytest.mark.parametrize(
    ("overrides", "error", "message", "details"),
    [
        ({"active": False}, UseCaseInactiveError, "the use case is not active", {}),
        (
            {"sender_pool": []},
            NoSenderInPoolError,
            "the use case's sender pool has no sender",
            {},
        ),
        (
            {"a2p_campaign_status": "pending"},
            A2pCampaignNotVerifiedError,
            "the sender pool has US long codes and the A2P 10DLC campaign is not verified",
            {"a2p_campaign_status": "pending"},
        ),
        (
            {"brand_status": "suspended"},
            BrandSuspendedError,
            "the brand registration behind the use case is suspended",
            {},
        ),
    ],
    ids=["inactive", "no-sender", "a2p-not-verified", "brand-suspended"],
)
def test_a_use_case_that_may_not_send_is_refused(
    overrides: dict[str, Any], error: type[GatewayError], message: str, details: dict[str, Any]
) -> None:
    use_case = stored_use_case(**overrides)
    with pytest.raises(error) as refused:
        sending.send_message(WORKSPACE, request(use_case))
    assert (refused.value.message, refused.value.details) == (message, details)
    assert all_messages() == []


def test_a_verified_campaign_or_a_pool_without_us_long_codes_may_send() -> None:
    toll_free = {"sender_pool": [{"sender": "+18005550100", "kind": "toll_free"}]}
    for overrides in ({}, {"a2p_campaign_status": "pending", **toll_free}):
        assert sending.send_message(WORKSPACE, request(stored_use_case(**overrides))).id


# --- What composing decided is part of the send an Idempotency-Key names -----------------------


def register_sender_id(sender_id: str) -> None:
    sender_id_store.register(WORKSPACE, sender_id, "2026-01-01T00:00:00.000Z")


def create_template(slug: str, body: str) -> str:
    return template_admin.create_template(WORKSPACE, {"slug": slug, "body": body}).id


@pytest.mark.parametrize(
    "changed",
    [
        {"external_id": "order-2"},
        {"validity_period": 60},
        {"sender_id": "Acme"},
        {"country": "GB"},
        {"message": None, "template": "greeting", "variables": {"name": "Ann"}},
    ],
    ids=["external_id", "validity_period", "sender_id", "country", "same-text-from-a-template"],
)
def test_a_key_reused_with_another_composition_is_refused(changed: dict[str, Any]) -> None:
    """The same text to the same person, but not the same send: another external id, validity,
    sender ID, country of pricing, or a template's text instead of the caller's own."""
    use_case = stored_use_case(allowed_countries=["US", "GB"])
    register_sender_id("Acme")
    create_template("greeting", "Hi {{name}}")
    first = sending.send_message(
        WORKSPACE, request(use_case, message="Hi Ann", external_id="order-1"), idempotency_key="k"
    )
    retry = {"message": "Hi Ann", "external_id": "order-1", **changed}

    with pytest.raises(IdempotencyKeyReusedError):
        sending.send_message(WORKSPACE, request(use_case, **retry), idempotency_key="k")
    assert all_messages() == [first]


def test_a_key_retried_with_the_same_composition_gets_its_message_back() -> None:
    use_case = stored_use_case(allowed_countries=["US", "GB"])
    register_sender_id("Acme")
    create_template("greeting", "Hi {{name}}")
    body = {
        "message": None,
        "template": "greeting",
        "variables": {"name": "Ann"},
        "sender_id": "Acme",
        "country": "GB",
        "external_id": "order-1",
        "validity_period": 60,
    }
    first = sending.send_message(WORKSPACE, request(use_case, **body), idempotency_key="k")
    again = sending.send_message(WORKSPACE, request(use_case, **body), idempotency_key="k")

    assert again == first
    assert (first.body, first.sender_id, first.country, first.validity_period) == (
        "Hi Ann",
        "Acme",
        "GB",
        60,
    )


def test_a_malformed_body_is_refused_as_the_request_body() -> None:
    with pytest.raises(ValidationError) as refused:
        sending.parse_send_request({"use_case_id": "u"})
    assert refused.value.message == "request body is invalid"


def test_send_once_gives_the_idempotency_store_the_invocation_s_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Powertools sizes an in-progress record's expiry from the invocation's remaining time, so
    that a retry after a crashed invocation is not refused for the whole record's life."""
    given: list[dict[str, Any]] = []

    def run_once(**kwargs: Any) -> dict[str, Any]:
        given.append(kwargs)
        return {"id": "m"}

    monkeypatch.setattr(idempotency, "run_once", run_once)
    context = object()
    caller = Caller(workspace_id=WORKSPACE, scopes=frozenset(), mode="live")

    answer = sending.send_once(
        caller,
        request(stored_use_case()),
        idempotency_key="k",
        lambda_context=context,  # type: ignore[arg-type]
    )

    assert answer == {"id": "m"}
    assert [kwargs["lambda_context"] for kwargs in given] == [context]


@pytest.mark.parametrize("length", [1601, 5000])
def test_a_template_rendered_past_1600_characters_is_refused_naming_the_template(
    length: int,
) -> None:
    use_case = stored_use_case()
    create_template("long", "{{text}}")
    with pytest.raises(ValidationError) as refused:
        sending.send_message(
            WORKSPACE,
            request(use_case, message=None, template="long", variables={"text": "x" * length}),
        )
    assert refused.value.message == "message must be 1 to 1600 characters"
    assert refused.value.details == {
        "errors": [{"field": "template", "issue": "length out of range"}]
    }
    assert all_messages() == []


def test_a_template_rendered_to_1600_characters_is_sent() -> None:
    create_template("long", "{{text}}")
    message = sending.send_message(
        WORKSPACE,
        request(stored_use_case(), message=None, template="long", variables={"text": "x" * 1600}),
    )
    assert len(message.body) == 1600


@pytest.mark.parametrize("sender_id", ["Unknown", "Acme!"])
def test_an_unregistered_or_malformed_sender_id_is_refused_naming_the_field(
    sender_id: str,
) -> None:
    register_sender_id("Acme")
    with pytest.raises(SenderIdInvalidError) as refused:
        sending.send_message(WORKSPACE, request(stored_use_case(), sender_id=sender_id))
    assert refused.value.details == {"field": "sender_id"}
    expected = (
        "this sender ID is not registered to the workspace (POST /v1/sms/sender-ids)"
        if sender_id == "Unknown"
        else "a sender ID is 1 to 11 characters of A-Z, a-z, 0-9 and space, "
        "with at least one letter"
    )
    assert refused.value.message == expected
    assert all_messages() == []
