"""API keys through the HTTP API's authorizer: 401 without a valid key, 403 without the scope,
and one workspace never sees another's use cases or messages."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from sms_gateway.api.caller import SCOPE_MANAGE, SCOPE_READ, SCOPE_SEND
from sms_gateway.config import get_settings
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.store import api_keys, aws_clients
from tests.integration.conftest import Api, Tenant, make_tenant
from tests.integration.test_send_api import drain_handoff_queue, send_body

# Fixed ids: a test's id must be the same at every collection (make mutants resumes by test id).
NO_SUCH_MESSAGE = "5f263046-3ced-40fe-ad99-a3f8eb0c83ad"
NO_SUCH_USE_CASE = "1780a9c2-4a3e-4800-b87c-2b27aec3f736"

ROUTES = [
    ("POST", "/v1/sms/"),
    ("GET", "/v1/sms/"),
    ("GET", f"/v1/sms/{NO_SUCH_MESSAGE}"),
    ("POST", "/v1/sms/use-cases"),
    ("GET", "/v1/sms/use-cases"),
    ("GET", f"/v1/sms/use-cases/{NO_SUCH_USE_CASE}"),
    ("PATCH", f"/v1/sms/use-cases/{NO_SUCH_USE_CASE}"),
    ("DELETE", f"/v1/sms/use-cases/{NO_SUCH_USE_CASE}"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_missing_key_is_401(gateway: Any, method: str, path: str) -> None:
    response = Api(gateway).request(method, path)
    assert response.status == 401


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer sk_live_short",
        "Basic dXNlcjpwYXNz",
        "sk_live_" + "a" * 43,  # no Bearer
        "Bearer sk_prod_" + "a" * 43,
        "Bearer sk_live_" + "a" * 43,  # well-formed but unknown
        "Bearer",
    ],
)
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_bad_key_is_401(gateway: Any, method: str, path: str, authorization: str) -> None:
    response = Api(gateway).request(method, path, headers={"authorization": authorization})
    assert response.status == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_revoked_key_is_401(tenant: Tenant, use_case: UseCase) -> None:
    assert tenant.api.send(send_body(use_case)).status == 201
    [key] = api_keys.list_keys(tenant.workspace_id)
    api_keys.revoke_key(tenant.workspace_id, key["key_id"])
    response = tenant.api.send(send_body(use_case))
    assert response.status == 401
    assert response.json()["error"]["code"] == "unauthorized"
    drain_handoff_queue()


@pytest.mark.parametrize(
    ("scopes", "method", "path"),
    [
        ((SCOPE_READ, SCOPE_MANAGE), "POST", "/v1/sms/"),
        ((SCOPE_SEND,), "GET", "/v1/sms/"),
        ((SCOPE_SEND,), "GET", f"/v1/sms/{NO_SUCH_MESSAGE}"),
        ((SCOPE_SEND, SCOPE_READ), "POST", "/v1/sms/use-cases"),
        ((SCOPE_SEND, SCOPE_READ), "GET", "/v1/sms/use-cases"),
        ((SCOPE_SEND, SCOPE_READ), "PATCH", f"/v1/sms/use-cases/{NO_SUCH_USE_CASE}"),
        ((SCOPE_SEND, SCOPE_READ), "DELETE", f"/v1/sms/use-cases/{NO_SUCH_USE_CASE}"),
    ],
)
def test_key_without_the_scope_is_403(
    gateway: Any, scopes: tuple[str, ...], method: str, path: str
) -> None:
    limited = make_tenant(gateway, scopes)
    response = limited.api.request(method, path, json_body={})
    assert response.status == 403
    body = response.json()["error"]
    assert body["code"] == "forbidden"


def test_only_the_hash_of_a_key_is_stored(tenant: Tenant) -> None:
    items = aws_clients.dynamodb().scan(TableName=get_settings().api_keys_table)["Items"]
    flat = repr(items)
    assert tenant.key not in flat
    assert hashlib.sha256(tenant.key.encode()).hexdigest() in flat


def test_listed_keys_never_show_the_secret(tenant: Tenant) -> None:
    [key] = api_keys.list_keys(tenant.workspace_id)
    assert tenant.key not in repr(key)
    assert set(key) >= {"key_id", "workspace_id", "scopes", "mode", "created_at"}
    assert key["key_id"].startswith("key_")


def test_keys_have_the_documented_shape(gateway: Any) -> None:
    workspace = api_keys.create_workspace("shape")
    live = api_keys.issue_key(workspace["workspace_id"], (SCOPE_SEND,), mode="live")
    test = api_keys.issue_key(workspace["workspace_id"], (SCOPE_SEND,), mode="test")
    assert live.secret.startswith("sk_live_") and len(live.secret) >= len("sk_live_") + 43
    assert test.secret.startswith("sk_test_")
