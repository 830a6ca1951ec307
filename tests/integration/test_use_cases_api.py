"""The use-case management API, through the authorizer, against moto."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sms_gateway.store import api_keys
from tests.integration.conftest import Tenant, make_tenant
from tests.integration.test_send_api import drain_handoff_queue

# The Twilio subaccount an operator gave the test's workspace, and a Messaging Service of that
# account (set per test).
ACCOUNT = {"sid": "", "service": ""}


@pytest.fixture(autouse=True)
def _workspace_account(tenant: Tenant) -> None:
    ACCOUNT["sid"] = "AC" + uuid.uuid4().hex
    ACCOUNT["service"] = "MG" + uuid.uuid4().hex
    assert api_keys.bind_twilio_account(tenant.workspace_id, ACCOUNT["sid"])
    assert api_keys.bind_messaging_service(ACCOUNT["sid"], ACCOUNT["service"])


def resource(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Appointment reminders",
        "active": True,
        "twilio_account_sid": ACCOUNT["sid"],
        "twilio_auth_token_secret": f"sms/twilio/{ACCOUNT['sid']}",
        "messaging_service_sid": ACCOUNT["service"],
        "sender_pool": [
            {"sender": "+14155550100", "kind": "long_code"},
            {"sender": "ACME", "kind": "alphanumeric"},
        ],
        "sticky_sender": True,
        "area_code_geomatch": True,
        "a2p_campaign_status": "verified",
        "brand_status": "active",
        "allowed_countries": ["US", "CA", "GB"],
    }
    data.update(overrides)
    return data


def create(tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    response = tenant.api.request("POST", "/v1/sms/use-cases", json_body=resource(**overrides))
    assert response.status == 201, response.json()
    body: dict[str, Any] = response.json()
    return body


def test_create_returns_the_resource_with_id_and_times(tenant: Tenant) -> None:
    body = create(tenant)
    uuid.UUID(body["id"])
    assert body["created_at"] == body["updated_at"]
    assert {k: v for k, v in body.items() if k not in {"id", "created_at", "updated_at"}} == (
        # What a use case has when its owner names no status webhook receiver.
        resource()
        | {
            "status_callback_url": None,
            "status_callback_method": "POST",
            # Twilio alone unless the owner names more.
            "providers": [{"name": "twilio"}],
        }
    )


def test_get_list_patch_and_delete(tenant: Tenant) -> None:
    created = create(tenant)
    path = f"/v1/sms/use-cases/{created['id']}"
    assert tenant.api.request("GET", path).json() == created
    listed = tenant.api.request("GET", "/v1/sms/use-cases").json()["items"]
    assert [u["id"] for u in listed] == [created["id"]]

    patched = tenant.api.request("PATCH", path, json_body={"name": "OTP", "active": False})
    assert patched.status == 200
    assert patched.json()["name"] == "OTP" and patched.json()["active"] is False
    assert patched.json()["updated_at"] >= created["updated_at"]
    assert tenant.api.request("GET", path).json()["name"] == "OTP"

    assert tenant.api.request("DELETE", path).status == 204
    assert tenant.api.request("GET", path).status == 404
    assert tenant.api.request("GET", "/v1/sms/use-cases").json()["items"] == []
    assert tenant.api.request("DELETE", path).status == 404


def test_a_deleted_use_case_cannot_send(tenant: Tenant) -> None:
    created = create(tenant)
    tenant.api.request("DELETE", f"/v1/sms/use-cases/{created['id']}")
    response = tenant.api.send(
        {"use_case_id": created["id"], "to_phone_number": "+14155552671", "message": "hi"}
    )
    assert response.status == 404
    assert response.json()["error"]["code"] == "use_case_not_found"


def test_workspaces_are_isolated(gateway: Any, tenant: Tenant) -> None:
    # Given workspace A's use case and message
    mine = create(tenant)
    sent = tenant.api.send(
        {"use_case_id": mine["id"], "to_phone_number": "+14155552671", "message": "hi"}
    ).json()
    other = make_tenant(gateway)
    path = f"/v1/sms/use-cases/{mine['id']}"
    # Then workspace B gets exactly what a missing resource gets
    missing = f"/v1/sms/use-cases/{uuid.uuid4()}"
    for method, body in (("GET", None), ("PATCH", {"name": "mine now"}), ("DELETE", None)):
        theirs = other.api.request(method, path, json_body=body)
        nothing = other.api.request(method, missing, json_body=body)
        assert theirs.status == nothing.status == 404
        assert theirs.json()["error"]["code"] == nothing.json()["error"]["code"]
    assert other.api.request("GET", "/v1/sms/use-cases").json()["items"] == []
    assert other.api.request("GET", f"/v1/sms/{sent['id']}").status == 404
    send_as_other = other.api.send(
        {"use_case_id": mine["id"], "to_phone_number": "+14155552671", "message": "hi"}
    )
    assert send_as_other.status == 404
    # And A's use case is untouched
    assert tenant.api.request("GET", path).json()["name"] == mine["name"]
    drain_handoff_queue()


INVALID = [
    ({"twilio_account_sid": "AB0123456789abcdef0123456789abcdef"}, "twilio_sid_invalid"),
    ({"twilio_account_sid": "AC0123"}, "twilio_sid_invalid"),
    ({"messaging_service_sid": "MG0123456789ABCDEF0123456789ABCDEF"}, "twilio_sid_invalid"),
    ({"messaging_service_sid": "AC0123456789abcdef0123456789abcdef"}, "twilio_sid_invalid"),
    ({"allowed_countries": ["USA"]}, "country_invalid"),
    ({"allowed_countries": ["us"]}, "country_invalid"),
    ({"allowed_countries": ["XX"]}, "country_invalid"),
    ({"allowed_countries": ["US", "US"]}, "country_duplicate"),
    ({"sender_pool": [{"sender": "ACME SMS LTD1", "kind": "alphanumeric"}]}, "sender_invalid"),
    ({"sender_pool": [{"sender": "12345", "kind": "alphanumeric"}]}, "sender_invalid"),
    ({"sender_pool": [{"sender": "AC-ME", "kind": "alphanumeric"}]}, "sender_invalid"),
    ({"sender_pool": [{"sender": "", "kind": "alphanumeric"}]}, "sender_invalid"),
    ({"sender_pool": [{"sender": "4155550100", "kind": "long_code"}]}, "sender_invalid"),
    ({"sender_pool": [{"sender": "+19995550100", "kind": "long_code"}]}, "sender_invalid"),
    ({"sender_pool": [{"sender": "+14155550100", "kind": "toll_free"}]}, "sender_kind_mismatch"),
    ({"sender_pool": [{"sender": "+18005550100", "kind": "long_code"}]}, "sender_kind_mismatch"),
    ({"sender_pool": [{"sender": "+14155550100", "kind": "pager"}]}, "enum"),
    (
        {"sender_pool": [{"sender": "+14155550100", "kind": "long_code"}] * 2},
        "sender_duplicate",
    ),
    ({"a2p_campaign_status": "approved"}, "enum"),
    ({"brand_status": "paused"}, "enum"),
    ({"active": "yes please"}, "bool_type"),
    ({"active": "false"}, "bool_type"),  # strict: a string is not a boolean
    ({"name": ""}, "string_too_short"),
    ({"twilio_auth_token": "secret"}, "extra_forbidden"),
    ({"twilio_auth_token_secret": "has spaces in it"}, "string_pattern_mismatch"),
    ({"twilio_auth_token_secret": "prod/db/password"}, "secret_outside_prefix"),
]


@pytest.mark.parametrize(("overrides", "code"), INVALID)
def test_create_validation_errors(tenant: Tenant, overrides: dict[str, Any], code: str) -> None:
    response = tenant.api.request("POST", "/v1/sms/use-cases", json_body=resource(**overrides))
    assert response.status == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert code in [e["code"] for e in error["errors"]], error
    assert tenant.api.request("GET", "/v1/sms/use-cases").json()["items"] == []


@pytest.mark.parametrize("missing", ["name", "twilio_account_sid", "messaging_service_sid"])
def test_create_requires_fields(tenant: Tenant, missing: str) -> None:
    body = resource()
    del body[missing]
    response = tenant.api.request("POST", "/v1/sms/use-cases", json_body=body)
    assert response.status == 422
    assert [e["field"] for e in response.json()["error"]["errors"]] == [missing]


@pytest.mark.parametrize(("overrides", "code"), INVALID)
def test_patch_validation_errors_change_nothing(
    tenant: Tenant, overrides: dict[str, Any], code: str
) -> None:
    created = create(tenant)
    path = f"/v1/sms/use-cases/{created['id']}"
    response = tenant.api.request("PATCH", path, json_body=overrides)
    assert response.status == 422
    assert code in [e["code"] for e in response.json()["error"]["errors"]]
    assert tenant.api.request("GET", path).json() == created


def test_patch_rejects_null_for_a_required_field(tenant: Tenant) -> None:
    created = create(tenant)
    path = f"/v1/sms/use-cases/{created['id']}"
    response = tenant.api.request("PATCH", path, json_body={"name": None})
    assert response.status == 422


def test_a_change_applies_to_the_next_send(tenant: Tenant) -> None:
    created = create(tenant, allowed_countries=["US"])
    assert tenant.api.send(send_body_for(created, "+447400123456")).status == 422
    tenant.api.request(
        "PATCH", f"/v1/sms/use-cases/{created['id']}", json_body={"allowed_countries": ["GB"]}
    )
    # The PATCH ran in this process, so the send path's cache was refreshed by the write.
    assert tenant.api.send(send_body_for(created, "+447400123456")).status == 201
    drain_handoff_queue()


def send_body_for(use_case: dict[str, Any], number: str) -> dict[str, Any]:
    return {"use_case_id": use_case["id"], "to_phone_number": number, "message": "hi"}


def test_only_a_subaccount_of_the_workspace_can_be_used(gateway: Any, tenant: Tenant) -> None:
    # Given another workspace's subaccount, and one no operator assigned
    other = make_tenant(gateway)
    theirs = "AC" + uuid.uuid4().hex
    api_keys.bind_twilio_account(other.workspace_id, theirs)
    unassigned = "AC" + uuid.uuid4().hex
    for sid in (theirs, unassigned):
        body = resource(twilio_account_sid=sid, twilio_auth_token_secret=f"sms/twilio/{sid}")
        response = tenant.api.request("POST", "/v1/sms/use-cases", json_body=body)
        assert response.status == 422
        codes = [e["code"] for e in response.json()["error"]["errors"]]
        assert codes == ["twilio_account_not_in_workspace"]
    # Nor can a use case be moved onto one
    created = create(tenant)
    patch = {"twilio_account_sid": theirs, "twilio_auth_token_secret": f"sms/twilio/{theirs}"}
    moved = tenant.api.request("PATCH", f"/v1/sms/use-cases/{created['id']}", json_body=patch)
    assert moved.status == 422
    assert tenant.api.request("GET", f"/v1/sms/use-cases/{created['id']}").json() == created


def test_only_a_messaging_service_of_the_use_cases_account_can_be_named(
    gateway: Any, tenant: Tenant
) -> None:
    # Given another tenant's account with its service, which has an opted-out number
    other = make_tenant(gateway)
    theirs, their_service = "AC" + uuid.uuid4().hex, "MG" + uuid.uuid4().hex
    assert api_keys.bind_twilio_account(other.workspace_id, theirs)
    assert api_keys.bind_messaging_service(theirs, their_service)
    unbound = "MG" + uuid.uuid4().hex
    # When this tenant names that service, or one no operator bound, on its own account
    for service in (their_service, unbound):
        body = resource(messaging_service_sid=service)
        response = tenant.api.request("POST", "/v1/sms/use-cases", json_body=body)
        # Then it is refused, so it can never send through it nor read its opt-out list
        assert response.status == 422
        codes = [e["code"] for e in response.json()["error"]["errors"]]
        assert codes == ["messaging_service_not_in_account"]
    # Nor can a use case be moved onto it
    created = create(tenant)
    patch = {"messaging_service_sid": their_service}
    moved = tenant.api.request("PATCH", f"/v1/sms/use-cases/{created['id']}", json_body=patch)
    assert moved.status == 422
    assert tenant.api.request("GET", f"/v1/sms/use-cases/{created['id']}").json() == created
    # And a service stays bound to the account that has it
    assert not api_keys.bind_messaging_service(ACCOUNT["sid"], their_service)


def test_the_secret_must_be_the_accounts_by_convention(tenant: Tenant) -> None:
    body = resource(twilio_auth_token_secret="sms/twilio/AC" + "0" * 32)
    response = tenant.api.request("POST", "/v1/sms/use-cases", json_body=body)
    assert response.status == 422
    assert [e["code"] for e in response.json()["error"]["errors"]] == ["secret_outside_prefix"]


# --- providers ----------------------------------------------------------------------------------


def test_a_use_case_sends_through_the_providers_it_lists_from_identities_it_was_given(
    gateway: Any, tenant: Tenant
) -> None:
    pool = "pool-" + uuid.uuid4().hex
    eum = {"name": "aws_eum", "origination_identity": pool}
    # An identity no operator gave this workspace is refused, and nothing is created
    response = tenant.api.request(
        "POST", "/v1/sms/use-cases", json_body=resource(providers=[{"name": "twilio"}, eum])
    )
    assert response.status == 422
    [error] = response.json()["error"]["errors"]
    assert (error["field"], error["code"]) == (
        "providers.1.origination_identity",
        "origination_identity_not_in_workspace",
    )
    # Another workspace's is refused the same way
    other = make_tenant(gateway)
    assert api_keys.bind_eum_identity(other.workspace_id, pool)
    assert not api_keys.bind_eum_identity(tenant.workspace_id, pool)
    response = tenant.api.request("POST", "/v1/sms/use-cases", json_body=resource(providers=[eum]))
    assert response.status == 422
    # Its own is taken, in the order given, with the stack's configuration set by default
    mine = "pool-" + uuid.uuid4().hex
    assert api_keys.bind_eum_identity(tenant.workspace_id, mine)
    created = create(
        tenant, providers=[{"name": "aws_eum", "origination_identity": mine}, {"name": "twilio"}]
    )
    assert created["providers"] == [
        {"name": "aws_eum", "origination_identity": mine, "configuration_set": None},
        {"name": "twilio"},
    ]
    # And it cannot be moved onto the other workspace's identity
    patch = {"providers": [{"name": "aws_eum", "origination_identity": pool}]}
    moved = tenant.api.request("PATCH", f"/v1/sms/use-cases/{created['id']}", json_body=patch)
    assert moved.status == 422


@pytest.mark.parametrize(
    ("providers", "code"),
    [
        ([], "too_short"),
        ([{"name": "twilio"}, {"name": "twilio"}], "provider_duplicate"),
        ([{"name": "carrier-pigeon"}], "union_tag_invalid"),
        ([{"name": "aws_eum"}], "missing"),
        ([{"name": "aws_eum", "origination_identity": "pool 1"}], "string_pattern_mismatch"),
        ([{"name": "twilio", "origination_identity": "pool-1"}], "extra_forbidden"),
        (
            [{"name": "aws_eum", "origination_identity": "pool-1", "configuration_set": "a b"}],
            "string_pattern_mismatch",
        ),
    ],
)
def test_a_providers_list_is_checked(tenant: Tenant, providers: Any, code: str) -> None:
    response = tenant.api.request(
        "POST", "/v1/sms/use-cases", json_body=resource(providers=providers)
    )
    assert response.status == 422
    assert code in [e["code"] for e in response.json()["error"]["errors"]]
