"""Integration fixtures: moto in server mode on 127.0.0.1 holding the resources of template.yaml,
and the HTTP API front of the local stack, which runs the authorizer and the handlers in-process."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from sms_gateway.api.caller import ALL_SCOPES
from sms_gateway.domain.use_cases import UseCase, UseCaseSpec
from sms_gateway.logic.use_case_admin import create_use_case
from sms_gateway.providers.twilio import credentials as provider_credentials
from sms_gateway.store import api_keys, aws_clients, price_store, use_case_store
from sms_local import iam
from sms_local import template as tpl
from sms_local.aws_emulator import start_local_aws
from sms_local.aws_resources import LocalStack, create_resources
from sms_local.gateway import HttpApiGateway, HttpResult
from sms_local.http_server import ApiServer
from sms_local.lambda_runtime import merged_environment, reset_cached_state, use_local_aws
from sms_local.pipe_runner import start_pipes, stop_pipes
from sms_local.stream_poller import start_stream_pollers, stop_stream_pollers

# What the status callback verifies signatures against (the deployed stack's PublicBaseUrl).
PUBLIC_BASE_URL = "https://sms.example.test"
CALLBACK_URL = f"{PUBLIC_BASE_URL}/v1/webhook/twilio/sms-status"

# The AWS End User Messaging SMS pool the handoff's role may send from here (the stack's
# EumOriginationIdentityArns), and the number it sends from in the simulator.
EUM_POOL_ID = "pool-0123456789abcdef0123456789abcdef"
EUM_POOL_ARN = f"arn:aws:sms-voice:us-east-1:123456789012:pool/{EUM_POOL_ID}"
EUM_POOL_NUMBER = "+12065550100"

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


# Package scope, not session: the server, and the pipes' threads polling it, stop when the
# integration tests end, not after the unit tests that a whole run collects after them (whose
# no-network guard would refuse the pipes' polls).
@pytest.fixture(scope="package")
def aws() -> Iterator[LocalStack]:
    server = start_local_aws()
    endpoint = server.endpoint_url
    template = tpl.project_template()
    stack = create_resources(
        template,
        endpoint,
        {"PublicBaseUrl": PUBLIC_BASE_URL, "EumOriginationIdentityArns": EUM_POOL_ARN},
    )
    use_local_aws(
        endpoint, merged_environment(tpl.functions(template), stack.environment), stack.parameters
    )
    # The table's stream queues handoffs, as HandoffPipe does on AWS.
    pipes = start_pipes(stack, tpl.stream_pipes(template))
    # And feeds the functions that read it directly (usage counters and refunds), only when a
    # test pumps them (stream_poller.pump_all): a consumer running in the background would make
    # its calls during whichever test is running.
    stream_pollers = start_stream_pollers(
        stack, tpl.stream_sources(template), tpl.functions(template), background=False
    )
    yield stack
    stop_stream_pollers(stream_pollers)
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
    price_store.clear_cache()


# --- what the functions' code calls in AWS, test by test and over the whole session -------------

INTEGRATION_DIR = Path(__file__).resolve().parent
_DESELECTED = pytest.StashKey[int]()


@dataclass(frozen=True)
class Roles:
    """Every function's role as template.yaml writes it, in the local stack's names."""

    policy: iam.Policy
    # Any action on whatever some role names: the stack's own resources.
    stack_resources: iam.FunctionPolicy

    def refuses(self, function: str, grant: iam.Grant) -> bool:
        """Whether the role refuses a call on one of the stack's resources. A call on a resource
        no role names (a table a test made missing on purpose, so that a write fails) is refused
        too, but stands for a failure the test injected, not for a grant the template lacks."""
        _, resource = grant
        if not self.stack_resources.allows(("any:Action", resource)):
            return False
        return self.policy.denied(function, [grant]) is not None


@pytest.fixture(scope="package")
def template_roles(aws: LocalStack) -> Roles:
    template = tpl.project_template()
    values = iam.stack_values(aws)
    named = {
        ("*", resource)
        for function in iam.function_names(template)
        for _, resource in iam.function_grants(template, function)
    }
    return Roles(iam.Policy(template, values), iam.FunctionPolicy("", named, values))


@pytest.fixture(scope="package")
def exercised_calls() -> set[iam.Call]:
    """Every (function, grant) the functions' own code needed in some test of this session, for
    the check that every grant is needed (tests/integration/test_least_privilege.py)."""
    return set()


@pytest.fixture(autouse=True)
def _the_code_s_calls_are_granted_and_remembered(
    request: pytest.FixtureRequest, template_roles: Roles, exercised_calls: set[iam.Call]
) -> Iterator[None]:
    """Fail a test in which a function made a call on the stack's resources that its role does
    not grant, even when the code swallowed the AccessDeniedException the local stack raised
    (the test would pass on a path that fails in AWS); and remember every call for the session's
    check that every grant is needed. Tests marked `probes` run handlers of their own under the
    functions' names: their calls say nothing about what the code needs, and some are refused
    on purpose."""
    if request.node.get_closest_marker("probes"):
        yield
        return
    with iam.recording() as calls:
        yield
    delete_schedules_made_by(calls)
    exercised_calls.update(calls)
    refused = sorted({(f, g) for f, g in calls if template_roles.refuses(f, g)})
    if refused:
        pytest.fail(f"calls template.yaml does not grant, so AWS would refuse them: {refused}")


def delete_schedules_made_by(calls: list[iam.Call]) -> None:
    """Delete the schedules a test's functions created: the group is shared, and a schedule left
    behind would come due in a later test that fires what is due (or lists the group)."""
    scheduler = aws_clients.scheduler()
    for _, (action, resource) in calls:
        if action == "scheduler:CreateSchedule":
            _, group, name = resource.split("/", 2)
            with contextlib.suppress(scheduler.exceptions.ResourceNotFoundException):
                scheduler.delete_schedule(Name=name, GroupName=group)


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.resolve().is_relative_to(INTEGRATION_DIR):
            item.config.stash[_DESELECTED] = item.config.stash.get(_DESELECTED, 0) + 1


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test marked whole_session reads what every other integration test did: it runs after
    # all of them, and before the package's fixtures (the server it reads through) end.
    last = [item for item in items if item.get_closest_marker("whole_session")]
    others = [item for item in items if item not in last]
    ours = [i for i, item in enumerate(others) if INTEGRATION_DIR in item.path.resolve().parents]
    at = ours[-1] + 1 if ours else len(others)
    items[:] = others[:at] + last + others[at:]


def why_not_the_whole_directory(session: pytest.Session) -> str | None:
    """Why this session does not run every test of tests/integration (None: it does): a check
    over the whole session means nothing when some tests did not run."""
    ran = {item.path.resolve() for item in session.items}
    missing = sorted(p.name for p in INTEGRATION_DIR.glob("test_*.py") if p.resolve() not in ran)
    if missing:
        return f"only part of tests/integration runs ({', '.join(missing)} not)"
    if session.config.stash.get(_DESELECTED, 0):
        return "some tests of tests/integration were deselected"
    if any("::" in arg for arg in session.config.args):
        return "tests were chosen by name"
    return None


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


@pytest.fixture(scope="package")
def gateway(aws: LocalStack) -> HttpApiGateway:
    template = tpl.project_template()
    # No authorizer cache here, so a revoked key is refused at once in tests.
    return HttpApiGateway(
        tpl.http_routes(template),
        tpl.functions(template),
        tpl.default_authorizer(template),
        authorizer_ttl_seconds=0,
    )


@pytest.fixture
def server(gateway: HttpApiGateway) -> Iterator[ApiServer]:
    """The HTTP API front over real HTTP on 127.0.0.1 (a free port)."""
    api = ApiServer(gateway)
    api.start()
    yield api
    api.stop()


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
