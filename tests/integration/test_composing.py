"""Composing a message through the HTTP API: templates, sender IDs, country, external id,
validity period, smart encoding, encoding and segments, cost, and the preview that answers all of
it without sending."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sms_gateway.api.caller import SCOPE_MANAGE, SCOPE_READ, SCOPE_SEND
from sms_gateway.config import get_settings
from sms_gateway.domain import error_codes
from sms_gateway.domain.clock import iso
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic import handoff
from sms_gateway.logic.use_case_admin import create_use_case
from sms_gateway.store import aws_clients, price_store
from sms_local.gateway import HttpApiGateway
from sms_local.twilio_simulator import TwilioSimulator
from tests.integration.conftest import Tenant, create_twilio_secret, make_tenant, use_case_spec
from tests.integration.test_handoff import (  # noqa: F401 - fixtures
    queued_record,
    run_handoff,
    simulator,
    wait_for,
    wired,
)
from tests.integration.test_send_api import (
    MOBILE_US,
    drain_handoff_queue,
    send_body,
    stored_messages,
)

MOBILE_GB = "+447400123456"
MOBILE_GB_2 = "+447400123457"


@pytest.fixture(autouse=True)
def _empty_queue() -> None:
    drain_handoff_queue()


def create_template(tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = tenant.api.request("POST", "/v1/sms/templates", json_body=body)
    assert response.status == 201, response.json()
    created: dict[str, Any] = response.json()
    return created


def register(tenant: Tenant, sender_id: str) -> None:
    response = tenant.api.request("POST", "/v1/sms/sender-ids", json_body={"sender_id": sender_id})
    assert response.status == 201, response.json()


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def sent(tenant: Tenant, use_case: UseCase, **fields: Any) -> dict[str, Any]:
    response = tenant.api.send(send_body(use_case, **fields))
    assert response.status == 201, response.json()
    body: dict[str, Any] = response.json()
    return body


# --- Templates ----------------------------------------------------------------------------------


def test_a_template_is_created_read_by_id_and_by_slug_and_lists_its_variables(
    tenant: Tenant,
) -> None:
    created = create_template(
        tenant,
        slug="otp",
        body="Hi {{name}}, your code is {{code}}. {{name}}, it expires soon.",
        description="One-time code",
    )

    assert created["variables"] == ["name", "code"]
    assert uuid.UUID(created["id"])
    assert set(created) == {
        "id", "slug", "body", "description", "variables", "created_at", "updated_at",
    }  # fmt: skip
    by_id = tenant.api.request("GET", f"/v1/sms/templates/{created['id']}")
    by_slug = tenant.api.request("GET", "/v1/sms/templates/otp")
    assert by_id.status == by_slug.status == 200
    assert by_id.json() == by_slug.json() == created


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"slug": "Upper", "body": "x"}, "slug"),
        ({"slug": "a" * 65, "body": "x"}, "slug"),
        ({"slug": "", "body": "x"}, "slug"),
        ({"slug": "has space", "body": "x"}, "slug"),
        ({"slug": str(uuid.uuid4()), "body": "x"}, "slug"),
        ({"slug": "ok", "body": ""}, "body"),
        ({"slug": "ok", "body": "x" * 1601}, "body"),
        ({"slug": "ok", "body": "Hi {{Name}}"}, "body"),
        ({"slug": "ok", "body": "Hi {{ name }}"}, "body"),
        ({"slug": "ok", "body": "Hi {{name"}, "body"),
        ({"slug": "ok", "body": "Hi {{1st}}"}, "body"),
        ({"slug": "ok", "body": "x", "description": "d" * 256}, "description"),
        ({"slug": "ok", "body": 5}, "body"),
        ({"slug": "ok"}, "body"),
        ({"slug": "ok", "body": "x", "colour": "red"}, "colour"),
    ],
)
def test_an_invalid_template_is_refused_and_nothing_is_stored(
    tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    response = tenant.api.request("POST", "/v1/sms/templates", json_body=body)

    assert response.status == 422
    assert error_code(response) == "validation_error"
    assert field in {e["field"] for e in response.json()["error"]["errors"]}
    assert tenant.api.request("GET", "/v1/sms/templates").json()["items"] == []


def test_a_slug_is_unique_in_a_workspace_but_not_across_workspaces(
    tenant: Tenant, gateway: HttpApiGateway
) -> None:
    create_template(tenant, slug="otp", body="first")
    again = tenant.api.request("POST", "/v1/sms/templates", json_body={"slug": "otp", "body": "x"})
    other = make_tenant(gateway)

    assert again.status == 409 and error_code(again) == "template_slug_taken"
    assert create_template(other, slug="otp", body="theirs")["body"] == "theirs"
    assert tenant.api.request("GET", "/v1/sms/templates/otp").json()["body"] == "first"


def test_another_workspace_s_template_is_not_found(tenant: Tenant, gateway: HttpApiGateway) -> None:
    created = create_template(tenant, slug="mine", body="secret text")
    other = make_tenant(gateway)

    for name in (created["id"], "mine"):
        for method in ("GET", "DELETE"):
            response = other.api.request(method, f"/v1/sms/templates/{name}")
            assert response.status == 404 and error_code(response) == "template_not_found"
        patched = other.api.request("PATCH", f"/v1/sms/templates/{name}", json_body={"body": "x"})
        assert patched.status == 404
    assert tenant.api.request("GET", "/v1/sms/templates/mine").json()["body"] == "secret text"


def test_templates_list_in_slug_order_page_by_page(tenant: Tenant) -> None:
    slugs = ["delta", "alpha", "charlie", "echo", "bravo"]
    for slug in slugs:
        create_template(tenant, slug=slug, body=f"{slug} {{{{x}}}}")

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = tenant.api.request("GET", "/v1/sms/templates", query=query).json()
        seen += [t["slug"] for t in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(slugs)
    assert pages == 3
    bad = tenant.api.request("GET", "/v1/sms/templates", query={"cursor": "bm90LWEtY3Vyc29y"})
    assert bad.status == 422 and error_code(bad) == "validation_error"
    unknown = tenant.api.request("GET", "/v1/sms/templates", query={"status": "x"})
    assert unknown.status == 422


def test_a_template_is_changed_renamed_and_deleted(tenant: Tenant) -> None:
    created = create_template(tenant, slug="old", body="Hello {{name}}")
    changed = tenant.api.request(
        "PATCH", "/v1/sms/templates/old", json_body={"slug": "new", "body": "Bye {{who}}"}
    )

    assert changed.status == 200, changed.json()
    assert changed.json()["id"] == created["id"]
    assert changed.json()["variables"] == ["who"]
    assert tenant.api.request("GET", "/v1/sms/templates/old").status == 404
    assert tenant.api.request("GET", f"/v1/sms/templates/{created['id']}").json()["slug"] == "new"
    create_template(tenant, slug="taken", body="x")
    clash = tenant.api.request("PATCH", "/v1/sms/templates/new", json_body={"slug": "taken"})
    assert clash.status == 409 and error_code(clash) == "template_slug_taken"
    invalid = tenant.api.request("PATCH", "/v1/sms/templates/new", json_body={"body": "{{"})
    assert invalid.status == 422
    unknown = tenant.api.request("PATCH", "/v1/sms/templates/new", json_body={"colour": "red"})
    assert unknown.status == 422
    assert tenant.api.request("GET", "/v1/sms/templates/new").json()["body"] == "Bye {{who}}"

    assert tenant.api.request("DELETE", f"/v1/sms/templates/{created['id']}").status == 204
    assert tenant.api.request("GET", "/v1/sms/templates/new").status == 404
    assert tenant.api.request("DELETE", "/v1/sms/templates/new").status == 404
    slugs = [t["slug"] for t in tenant.api.request("GET", "/v1/sms/templates").json()["items"]]
    assert slugs == ["taken"]


def test_templates_need_the_templates_scope(gateway: HttpApiGateway) -> None:
    tenant = make_tenant(gateway, (SCOPE_SEND, SCOPE_READ, SCOPE_MANAGE))
    for method, path in (("GET", "/v1/sms/templates"), ("POST", "/v1/sms/templates")):
        response = tenant.api.request(method, path, json_body={"slug": "a", "body": "b"})
        assert response.status == 403 and error_code(response) == "forbidden"


# --- Sending with a template ---------------------------------------------------------------------


def test_a_send_renders_the_template_and_keeps_its_text_when_the_template_changes(
    tenant: Tenant, use_case: UseCase
) -> None:
    template = create_template(tenant, slug="otp", body="Hi {{name}}, code {{code}}")
    message = sent(
        tenant, use_case, message=None, template="otp", variables={"name": "Ann", "code": "42"}
    )
    by_id = sent(
        tenant,
        use_case,
        message=None,
        template=template["id"],
        variables={"name": "{{code}}", "code": "7"},
    )
    tenant.api.request("PATCH", "/v1/sms/templates/otp", json_body={"body": "Changed {{name}}"})

    assert message["body"] == "Hi Ann, code 42"
    assert message["template_id"] == template["id"]
    # A value is inserted as text: a placeholder inside it is never expanded.
    assert by_id["body"] == "Hi {{code}}, code 7"
    stored = tenant.api.request("GET", f"/v1/sms/{message['id']}").json()
    assert stored["body"] == "Hi Ann, code 42"


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"template": "nope", "variables": {}}, 404, "template_not_found"),
        ({"template": str(uuid.uuid4())}, 404, "template_not_found"),
        ({"template": "otp", "variables": {"name": "A"}}, 422, "template_variable_missing"),
        ({"template": "otp"}, 422, "template_variable_missing"),
        (
            {"template": "otp", "variables": {"name": "A", "code": "1", "extra": "x"}},
            422,
            "template_variable_unknown",
        ),
        ({"template": "otp", "variables": {"name": "A", "code": 1}}, 422, "validation_error"),
        ({"template": "otp", "variables": ["A"]}, 422, "validation_error"),
        (
            {"template": "otp", "variables": {"name": "x" * 1600, "code": "1"}},
            422,
            "validation_error",
        ),
    ],
)
def test_a_template_send_that_cannot_be_rendered_is_refused_and_stores_nothing(
    tenant: Tenant, use_case: UseCase, fields: dict[str, Any], status: int, code: str
) -> None:
    create_template(tenant, slug="otp", body="Hi {{name}}, code {{code}}")
    response = tenant.api.send({**send_body(use_case), "message": None, **fields})

    assert response.status == status, response.json()
    assert error_code(response) == code
    assert stored_messages(tenant.workspace_id) == []


def test_missing_and_unknown_variables_are_named(tenant: Tenant, use_case: UseCase) -> None:
    create_template(tenant, slug="otp", body="{{b}} {{a}} {{c}}")
    missing = tenant.api.send(
        {**send_body(use_case), "message": None, "template": "otp", "variables": {"a": "1"}}
    )
    unknown = tenant.api.send(
        {
            **send_body(use_case),
            "message": None,
            "template": "otp",
            "variables": {"a": "1", "b": "2", "c": "3", "z": "9", "y": "8"},
        }
    )

    assert missing.json()["error"]["missing"] == ["b", "c"]
    assert unknown.json()["error"]["unknown"] == ["y", "z"]


@pytest.mark.parametrize(
    "fields",
    [
        {"template": "otp"},  # beside the message send_body already has
        {"message": None},
        {"message": None, "template": None},
        {"variables": {"a": "b"}},  # without a template
    ],
)
def test_exactly_one_of_message_and_template(
    tenant: Tenant, use_case: UseCase, fields: dict[str, Any]
) -> None:
    create_template(tenant, slug="otp", body="hi")
    body = {**send_body(use_case), **fields}
    body = {k: v for k, v in body.items() if v is not None or k not in ("message", "template")}
    response = tenant.api.send(body)

    assert response.status == 422 and error_code(response) == "validation_error"


# --- Sender IDs ---------------------------------------------------------------------------------


def test_sender_ids_are_registered_listed_and_removed(tenant: Tenant) -> None:
    for sender_id in ("Zeta", "Acme Shop", "A1"):
        register(tenant, sender_id)
    again = tenant.api.request("POST", "/v1/sms/sender-ids", json_body={"sender_id": "Acme Shop"})
    listed = tenant.api.request("GET", "/v1/sms/sender-ids").json()

    assert again.status == 409 and error_code(again) == "sender_id_already_registered"
    assert [s["sender_id"] for s in listed["items"]] == ["A1", "Acme Shop", "Zeta"]
    assert listed["next_cursor"] is None
    assert tenant.api.request("DELETE", "/v1/sms/sender-ids/Acme%20Shop").status == 204
    gone = tenant.api.request("DELETE", "/v1/sms/sender-ids/Acme%20Shop")
    assert gone.status == 404 and error_code(gone) == "sender_id_not_found"
    listed = tenant.api.request("GET", "/v1/sms/sender-ids").json()
    assert [s["sender_id"] for s in listed["items"]] == ["A1", "Zeta"]


@pytest.mark.parametrize(
    "sender_id", ["", "TwelveChars1", "12345", "Acme!", "Ácme", "Acme\n", "   ", "Acme-Co"]
)
def test_a_sender_id_that_breaks_the_rules_is_refused(tenant: Tenant, sender_id: str) -> None:
    response = tenant.api.request("POST", "/v1/sms/sender-ids", json_body={"sender_id": sender_id})

    assert response.status == 422 and error_code(response) == "sender_id_invalid"
    assert tenant.api.request("GET", "/v1/sms/sender-ids").json()["items"] == []


@pytest.mark.parametrize("body", [{}, {"sender_id": 5}, {"sender_id": "Acme", "x": 1}])
def test_a_malformed_registration_is_a_validation_error(
    tenant: Tenant, body: dict[str, Any]
) -> None:
    response = tenant.api.request("POST", "/v1/sms/sender-ids", json_body=body)
    assert response.status == 422 and error_code(response) == "validation_error"


def test_a_send_uses_a_registered_sender_id_where_the_country_accepts_it(
    tenant: Tenant, use_case: UseCase, gateway: HttpApiGateway
) -> None:
    register(tenant, "Acme")
    to_gb = sent(tenant, use_case, to_phone_number=MOBILE_GB, sender_id="Acme")
    to_us = sent(tenant, use_case, sender_id="Acme")
    plain = sent(tenant, use_case)

    assert (to_gb["sender_id"], to_gb["sender_id_applied"]) == ("Acme", True)
    assert (to_us["sender_id"], to_us["sender_id_applied"]) == ("Acme", False)
    assert (plain["sender_id"], plain["sender_id_applied"]) == (None, None)
    other = make_tenant(gateway)
    other_case = create_use_case(other.workspace_id, use_case_spec())
    foreign = other.api.send(send_body(other_case, to_phone_number=MOBILE_GB, sender_id="Acme"))
    assert foreign.status == 422 and error_code(foreign) == "sender_id_invalid"
    malformed = tenant.api.send(send_body(use_case, sender_id="Acme!"))
    assert malformed.status == 422 and error_code(malformed) == "sender_id_invalid"


def test_the_handoff_sends_from_an_applied_sender_id(
    tenant: Tenant,
    use_case: UseCase,
    simulator: TwilioSimulator,  # noqa: F811
    wired: None,  # noqa: F811
    aws: Any,
) -> None:
    register(tenant, "Acme")
    message = sent(tenant, use_case, to_phone_number=MOBILE_GB, sender_id="Acme")
    run_handoff(aws, [queued_record(aws, message["id"])])
    done = wait_for(tenant, message["id"], {"delivered"})

    assert done["from_number"] == "Acme"
    [provider_message] = [m for m in simulator.messages if m["to"] == MOBILE_GB]
    assert provider_message["from"] == "Acme"


def test_a_message_past_its_validity_period_at_handoff_fails_unsent(
    tenant: Tenant,
    use_case: UseCase,
    simulator: TwilioSimulator,  # noqa: F811
    wired: None,  # noqa: F811
    aws: Any,
) -> None:
    message = sent(tenant, use_case, validity_period=60)
    # As if it had waited here for two minutes (the provider was down).
    aws_clients.dynamodb().update_item(
        TableName=get_settings().messages_table,
        Key={"id": {"S": message["id"]}},
        UpdateExpression="SET created_at = :then",
        ExpressionAttributeValues={":then": {"S": iso(datetime.now(UTC) - timedelta(minutes=2))}},
    )
    assert handoff.hand_off(message["id"]) is handoff.HandoffOutcome.REJECTED
    failed = tenant.api.request("GET", f"/v1/sms/{message['id']}").json()

    assert (failed["status"], failed["error_code"]) == (
        "failed",
        error_codes.VALIDITY_PERIOD_EXPIRED,
    )
    assert simulator.messages == []


def test_the_handoff_gives_twilio_the_validity_period(
    tenant: Tenant,
    use_case: UseCase,
    simulator: TwilioSimulator,  # noqa: F811
    wired: None,  # noqa: F811
    aws: Any,
) -> None:
    message = sent(tenant, use_case, validity_period=1)
    simulator.configure(callback_delays=(2.0, 0.05))
    run_handoff(aws, [queued_record(aws, message["id"])])
    done = wait_for(tenant, message["id"], {"failed", "delivered"})

    # Twilio's queue held it past its validity period: its own 30036.
    assert (done["status"], done["error_code"]) == ("failed", 30036)


# --- Country, external id, validity period --------------------------------------------------------


def test_country_overrides_the_number_s_country_for_the_region_check(
    tenant: Tenant, use_case: UseCase
) -> None:
    as_gb = sent(tenant, use_case, country="GB")
    us_only = create_use_case(tenant.workspace_id, use_case_spec(allowed_countries=["US"]))
    create_twilio_secret(us_only.twilio_account_sid)
    refused = tenant.api.send(send_body(us_only, country="GB"))

    assert as_gb["country"] == "GB"
    assert sent(tenant, use_case)["country"] == "US"
    assert refused.status == 422 and error_code(refused) == "region_not_permitted"
    assert refused.json()["error"]["country"] == "GB"


@pytest.mark.parametrize(
    "fields",
    [
        {"country": "gb"},
        {"country": "XX"},
        {"country": "GBR"},
        {"country": 44},
        {"external_id": ""},
        {"external_id": "x" * 256},
        {"external_id": "a\nb"},
        {"external_id": 7},
        {"validity_period": 0},
        {"validity_period": 36_001},
        {"validity_period": "60"},
        {"validity_period": True},
        {"validity_period": 1.5},
        {"smart_encoding": "yes"},
        {"sender_id": 5},
    ],
)
def test_a_malformed_new_field_is_a_validation_error_and_stores_nothing(
    tenant: Tenant, use_case: UseCase, fields: dict[str, Any]
) -> None:
    response = tenant.api.send(send_body(use_case, **fields))

    assert response.status == 422 and error_code(response) == "validation_error"
    assert [e["field"] for e in response.json()["error"]["errors"]] == list(fields)
    assert stored_messages(tenant.workspace_id) == []


def test_external_id_and_validity_period_are_stored_and_returned(
    tenant: Tenant, use_case: UseCase
) -> None:
    message = sent(tenant, use_case, external_id="order-1 ✓", validity_period=36_000)
    read = tenant.api.request("GET", f"/v1/sms/{message['id']}").json()

    assert (message["external_id"], message["validity_period"]) == ("order-1 ✓", 36_000)
    assert (read["external_id"], read["validity_period"]) == ("order-1 ✓", 36_000)
    plain = sent(tenant, use_case)
    assert (plain["external_id"], plain["validity_period"], plain["template_id"]) == (
        None,
        None,
        None,
    )


def test_messages_are_listed_by_external_id_in_the_caller_s_workspace_and_mode(
    tenant: Tenant, use_case: UseCase, gateway: HttpApiGateway
) -> None:
    first = sent(tenant, use_case, external_id="order-7")
    sent(tenant, use_case, external_id="order-8")
    second = sent(tenant, use_case, external_id="order-7", to_phone_number=MOBILE_GB)
    test_key = make_tenant(gateway)  # another workspace with the same external id
    other_case = create_use_case(test_key.workspace_id, use_case_spec())
    test_key.api.send(send_body(other_case, external_id="order-7"))

    page = tenant.api.request("GET", "/v1/sms/", query={"external_id": "order-7"}).json()
    assert [m["id"] for m in page["items"]] == [second["id"], first["id"]]
    one = tenant.api.request(
        "GET", "/v1/sms/", query={"external_id": "order-7", "limit": "1"}
    ).json()
    rest = tenant.api.request(
        "GET",
        "/v1/sms/",
        query={"external_id": "order-7", "limit": "1", "cursor": one["next_cursor"]},
    ).json()
    assert [m["id"] for m in one["items"] + rest["items"]] == [second["id"], first["id"]]
    assert rest["next_cursor"] is None
    with_use_case = tenant.api.request(
        "GET", "/v1/sms/", query={"external_id": "order-7", "use_case_id": use_case.id}
    ).json()
    assert len(with_use_case["items"]) == 2
    bad = tenant.api.request("GET", "/v1/sms/", query={"external_id": "x" * 256})
    assert bad.status == 422


# --- Encoding, segments, smart encoding, cost -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "GSM7", 1),
        ("a" * 161, "GSM7", 2),
        # GSM-7's extension characters take two septets each.
        ("{" * 80, "GSM7", 1),
        ("{" * 81, "GSM7", 2),
        ("€" * 77 + "a" * 7, "GSM7", 2),
        # One emoji makes the whole message UCS-2.
        ("a" * 69 + "😀", "UCS2", 2),
        ("a" * 68 + "😀", "UCS2", 1),
        # A surrogate pair is never split: 66 + 2 does not fit a 67-unit part.
        ("ж" * 66 + "😀" + "ж" * 66, "UCS2", 3),
        ("ж" * 65 + "😀" + "ж" * 67, "UCS2", 2),
    ],
)
def test_the_send_answers_its_encoding_and_segment_count(
    tenant: Tenant, use_case: UseCase, text: str, encoding: str, segments: int
) -> None:
    message = sent(tenant, use_case, message=text)

    assert (message["encoding"], message["segments"]) == (encoding, segments)
    assert message["num_segments"] is None  # the provider's count, after handoff
    assert message["cost"]["segments"] == segments


def test_smart_encoding_replaces_look_alikes_when_that_makes_the_body_gsm7(
    tenant: Tenant, use_case: UseCase
) -> None:
    pasted = "\u201cHello\u201d \u2013 it\u2019s\u00a0ready\u2026"
    smart = sent(tenant, use_case, message=pasted, smart_encoding=True)
    plain = sent(tenant, use_case, message=pasted)
    with_emoji = sent(tenant, use_case, message=pasted + "😀", smart_encoding=True)

    assert (smart["body"], smart["encoding"]) == ('"Hello" - it\'s ready...', "GSM7")
    assert (plain["body"], plain["encoding"]) == (pasted, "UCS2")
    # An emoji keeps it UCS-2 anyway: the text is sent as written.
    assert (with_emoji["body"], with_emoji["encoding"]) == (pasted + "😀", "UCS2")


def test_the_cost_is_committed_from_the_destination_s_price(
    tenant: Tenant, use_case: UseCase, gateway: HttpApiGateway
) -> None:
    price_store.set_price("GB", "0.0400", "USD", iso(datetime.now(UTC)))
    try:
        to_gb = sent(tenant, use_case, to_phone_number=MOBILE_GB, message="a" * 200)
        to_us = sent(tenant, use_case, message="hi")
        priced_as_gb = sent(tenant, use_case, message="hi", country="GB")
        to_ca = sent(tenant, use_case, to_phone_number="+14165550123", message="hi")
    finally:
        price_store.unset_price("GB")

    assert to_gb["cost"] == {
        "amount": "0.0800", "currency": "USD", "unit_price": "0.0400", "segments": 2,
    }  # fmt: skip
    assert to_us["cost"] == {
        "amount": "0.0083", "currency": "USD", "unit_price": "0.0083", "segments": 1,
    }  # fmt: skip
    assert priced_as_gb["cost"]["unit_price"] == "0.0400"
    # No price known for Canada: no cost rather than a made-up one.
    assert to_ca["cost"] is None
    test_tenant = make_tenant(gateway)
    test_key = test_tenant.api.with_key(_issue_test_key(test_tenant.workspace_id))
    test_case = create_use_case(test_tenant.workspace_id, use_case_spec())
    free = test_key.send(send_body(test_case, message="a" * 200))
    assert free.json()["cost"] == {
        "amount": "0", "currency": "USD", "unit_price": "0", "segments": 2,
    }  # fmt: skip


def _issue_test_key(workspace_id: str) -> str:
    from sms_gateway.store import api_keys

    return api_keys.issue_key(workspace_id, (SCOPE_SEND, SCOPE_READ), "test").secret


# --- Preview ------------------------------------------------------------------------------------


def test_a_preview_writes_and_sends_nothing_and_refuses_as_the_send_does(
    tenant: Tenant, use_case: UseCase
) -> None:
    register(tenant, "Acme")
    preview = tenant.api.request(
        "POST",
        "/v1/sms/preview",
        json_body=send_body(use_case, to_phone_number=MOBILE_GB, sender_id="Acme", message="hé"),
    )
    unknown = tenant.api.request(
        "POST", "/v1/sms/preview", json_body=send_body(use_case, use_case_id=str(uuid.uuid4()))
    )
    landline = tenant.api.request(
        "POST", "/v1/sms/preview", json_body=send_body(use_case, to_phone_number="+442071838750")
    )

    assert preview.status == 200, preview.json()
    assert preview.json()["characters_until_next_segment"] == 158
    assert preview.json()["sender_id_applied"] is True
    assert (unknown.status, error_code(unknown)) == (404, "use_case_not_found")
    assert (landline.status, error_code(landline)) == (422, "phone_landline")
    assert stored_messages(tenant.workspace_id) == []
    assert drain_handoff_queue(tenant.workspace_id) == []


_PREVIEW_CASE = st.fixed_dictionaries(
    {
        "text": st.text(
            alphabet=st.sampled_from("ab {}€é\u201c\u2019\u2026😀ж\u00a0"), min_size=1, max_size=400
        ),
        "use_template": st.booleans(),
        "smart_encoding": st.booleans(),
        "to": st.sampled_from([MOBILE_US, MOBILE_GB, MOBILE_GB_2]),
        "sender_id": st.sampled_from([None, "Acme"]),
        "country": st.sampled_from([None, "GB", "US"]),
        "external_id": st.sampled_from([None, "ext-1"]),
        "validity_period": st.sampled_from([None, 1, 36_000]),
        "send_at_minutes": st.sampled_from([None, 10]),
    }
)


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=_PREVIEW_CASE)
def test_the_preview_answers_what_the_send_then_stores(
    tenant: Tenant, use_case: UseCase, case: dict[str, Any]
) -> None:
    register_once(tenant, "Acme")
    body: dict[str, Any] = {"use_case_id": use_case.id, "to_phone_number": case["to"]}
    if case["use_template"]:
        slug = f"t{uuid.uuid4().hex[:8]}"
        create_template(tenant, slug=slug, body="{{v}}")
        body |= {"template": slug, "variables": {"v": case["text"]}}
    else:
        body["message"] = case["text"]
    for name in ("smart_encoding", "sender_id", "country", "external_id", "validity_period"):
        if case[name] is not None:
            body[name] = case[name]
    if case["send_at_minutes"] is not None:
        moment = datetime.now(UTC) + timedelta(minutes=case["send_at_minutes"])
        body["send_at"] = moment.isoformat(timespec="seconds")

    preview = tenant.api.request("POST", "/v1/sms/preview", json_body=body)
    send = tenant.api.send(body)

    assert preview.status == 200, preview.json()
    assert send.status == 201, send.json()
    stored = tenant.api.request("GET", f"/v1/sms/{send.json()['id']}").json()
    answered = preview.json()
    room = answered.pop("characters_until_next_segment")
    assert answered == {name: stored[name] for name in answered}
    assert room >= 0


_registered: set[tuple[str, str]] = set()


def register_once(tenant: Tenant, sender_id: str) -> None:
    if (tenant.workspace_id, sender_id) not in _registered:
        register(tenant, sender_id)
        _registered.add((tenant.workspace_id, sender_id))
