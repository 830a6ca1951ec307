"""Integration fixtures: moto in server mode on 127.0.0.1 holding the resources of template.yaml,
and the HTTP API front of the local stack, which runs the authorizer and the handlers in-process."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

from sms_gateway import (
    api_keys,
    aws_clients,
    provider_credentials,
    use_case_store,
)
from sms_gateway.api.caller import ALL_SCOPES
from sms_gateway.use_case_admin import create_use_case
from sms_gateway.use_cases import UseCase, UseCaseSpec
from sms_local import template as tpl
from sms_local.aws_emulator import start_local_aws
from sms_local.aws_resources import LocalStack, create_resources
from sms_local.gateway import HttpApiGateway, HttpResult
from sms_local.lambda_runtime import merged_environment, reset_cached_state, use_local_aws
from sms_local.pipe_runner import start_pipes, stop_pipes

# What the status callback verifies signatures against (the deployed stack's PublicBaseUrl).
PUBLIC_BASE_URL = "https://sms.example.test"
CALLBACK_URL = f"{PUBLIC_BASE_URL}/v1/webhook/twilio/sms-status"

# AccountSid -> auth token of every subaccount secret the tests created.
AUTH_TOKENS: dict[str, str] = {}


def create_twilio_secret(account_sid: str) -> str:
    """Store a subaccount's auth token where the convention says it lives; return the token."""
    token = uuid.uuid4().hex
    aws_clients.secretsmanager().create_secret(
        Name=provider_credentials.secret_name_for_account(account_sid), SecretString=token
    )
    AUTH_TOKENS[account_sid] = token
    return token


@pytest.fixture(scope="session")
def aws() -> Iterator[LocalStack]:
    server = start_local_aws()
    endpoint = server.endpoint_url
    template = tpl.project_template()
    stack = create_resources(template, endpoint, {"PublicBaseUrl": PUBLIC_BASE_URL})
    use_local_aws(endpoint, merged_environment(tpl.functions(template), stack.environment))
    # The table's stream queues handoffs, as HandoffPipe does on AWS.
    pipes = start_pipes(stack, tpl.stream_pipes(template))
    yield stack
    stop_pipes(stack, pipes)
    server.stop()


def set_settings(**values: str) -> dict[str, str | None]:
    """Change the functions' environment (and forget what was derived from it); returns what to
    restore."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    reset_cached_state()
    return saved


def restore_settings(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    reset_cached_state()


@pytest.fixture(autouse=True)
def _fresh_caches(aws: LocalStack) -> None:
    use_case_store.clear_cache()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)


class Api:
    """A caller of the HTTP API: requests go through the gateway, authorizer included."""

    def __init__(self, gateway: HttpApiGateway, key: str | None = None) -> None:
        self.gateway = gateway
        self.key = key

    def with_key(self, key: str | None) -> Api:
        return Api(self.gateway, key)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        raw_body: bytes | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        all_headers = {"host": "127.0.0.1", **(headers or {})}
        if self.key is not None:
            all_headers.setdefault("authorization", f"Bearer {self.key}")
        body = raw_body
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers.setdefault("content-type", "application/json")
        result: HttpResult = self.gateway.handle(
            method, path, urlencode(query or {}), all_headers, body or b""
        )
        return Response(result.status, result.headers, result.body)

    def send(self, body: Any, **kwargs: Any) -> Response:
        return self.request("POST", "/v1/sms/", json_body=body, **kwargs)


@pytest.fixture(scope="session")
def gateway(aws: LocalStack) -> HttpApiGateway:
    template = tpl.project_template()
    # No authorizer cache here, so a revoked key is refused at once in tests.
    return HttpApiGateway(
        tpl.http_routes(template),
        tpl.functions(template),
        tpl.default_authorizer(template),
        authorizer_ttl_seconds=0,
    )


@dataclass
class Tenant:
    workspace_id: str
    key: str
    api: Api


def make_tenant(gateway: HttpApiGateway, scopes: tuple[str, ...] = ALL_SCOPES) -> Tenant:
    workspace = api_keys.create_workspace(f"test-{uuid.uuid4().hex[:8]}")
    issued = api_keys.issue_key(workspace["workspace_id"], scopes)
    return Tenant(workspace["workspace_id"], issued.secret, Api(gateway, issued.secret))


@pytest.fixture
def tenant(gateway: HttpApiGateway) -> Tenant:
    return make_tenant(gateway)


def use_case_spec(**overrides: Any) -> UseCaseSpec:
    account_sid = overrides.pop("twilio_account_sid", None) or "AC" + uuid.uuid4().hex
    data: dict[str, Any] = {
        "name": "Appointment reminders",
        "twilio_account_sid": account_sid,
        "twilio_auth_token_secret": f"sms/twilio/{account_sid}",
        "messaging_service_sid": "MG" + uuid.uuid4().hex,
        "sender_pool": [
            {"sender": "+14155550100", "kind": "long_code"},
            {"sender": "+12125550100", "kind": "long_code"},
        ],
        "a2p_campaign_status": "verified",
        "brand_status": "active",
        "allowed_countries": ["US", "CA", "GB"],
    }
    data.update(overrides)
    return UseCaseSpec.model_validate(data)


@pytest.fixture
def use_case(tenant: Tenant) -> UseCase:
    """A ready use case whose subaccount's auth token is in Secrets Manager."""
    created = create_use_case(tenant.workspace_id, use_case_spec())
    create_twilio_secret(created.twilio_account_sid)
    return created
