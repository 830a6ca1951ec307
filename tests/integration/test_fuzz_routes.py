"""No input gets a 5xx: property-based tests of every route of the HTTP API and of the Twilio
status webhook, through the local API Gateway front (authorizer included) against moto.

They send arbitrary bytes with any Content-Type; JSON of any shape and depth (lone surrogates,
numbers no parser or store can take, the right field names with arbitrary values); arbitrary
Unicode in path ids, query strings and headers; unknown methods and paths; and Twilio callbacks,
unsigned and correctly signed, with absurd field values. Every answer must be below 500. A 4xx
from one of our functions must be our error body {"error": {"code": ..., "message": ...}}; the only
other bodies are API Gateway's own: 404 {"message": "Not Found"} when no route matches, 401
{"message": "Unauthorized"} when an authorized route is called without an Authorization header,
and 403 {"message": "Forbidden"} when the authorizer denies. A refused request changes nothing:
the workspace's messages and use cases are the same after it.

The examples are derandomized and no example database is kept: every run tries the same inputs,
and the minimal failing example hypothesis prints reproduces as it is. Strings such as $MESSAGE
in an example stand for the test's own resources (see Target.fill).
"""

from __future__ import annotations

import base64
import http.client
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sms_gateway.api.caller import ALL_SCOPES, SCOPE_READ
from sms_gateway.config import get_settings
from sms_gateway.domain.clock import utc_now
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic.use_case_admin import create_use_case
from sms_gateway.store import api_keys, aws_clients, index_pages
from sms_local.gateway import HttpApiGateway, HttpResult
from sms_local.http_server import ApiServer
from tests.integration.conftest import AUTH_TOKENS, PUBLIC_BASE_URL, Tenant, use_case_spec
from tests.integration.test_send_api import drain_handoff_queue, send_body
from tests.integration.test_status_callback import PATH as WEBHOOK
from tests.integration.test_status_callback import callback_url, sign
from tests.integration.test_status_callback import no_public_base_url as no_public_base_url

NOT_FOUND = {"message": "Not Found"}
UNAUTHORIZED = {"message": "Unauthorized"}
FORBIDDEN = {"message": "Forbidden"}

SEND = ("POST", "/v1/sms/")
ROUTES = [
    SEND,
    ("GET", "/v1/sms/"),
    ("GET", "/v1/sms/{id}"),
    ("POST", "/v1/sms/{id}/cancel"),
    ("POST", "/v1/sms/use-cases"),
    ("GET", "/v1/sms/use-cases"),
    ("GET", "/v1/sms/use-cases/{id}"),
    ("PATCH", "/v1/sms/use-cases/{id}"),
    ("DELETE", "/v1/sms/use-cases/{id}"),
    ("POST", WEBHOOK),
    ("POST", "/v1/sms/preview"),
    ("POST", "/v1/sms/templates"),
    ("GET", "/v1/sms/templates"),
    ("GET", "/v1/sms/templates/{id}"),
    ("PATCH", "/v1/sms/templates/{id}"),
    ("DELETE", "/v1/sms/templates/{id}"),
    ("POST", "/v1/sms/sender-ids"),
    ("GET", "/v1/sms/sender-ids"),
    ("DELETE", "/v1/sms/sender-ids/{id}"),
    ("POST", "/v1/webhook/twilio/sms-inbound"),
    ("GET", "/v1/sms/inbound"),
    ("GET", "/v1/sms/inbound/{id}"),
    ("GET", "/v1/sms/inbound/{id}/webhook-attempts"),
    ("GET", "/v1/sms/{id}/webhook-attempts"),
]
BODY_ROUTES = [
    SEND,
    ("POST", "/v1/sms/use-cases"),
    ("PATCH", "/v1/sms/use-cases/{id}"),
    ("POST", "/v1/sms/preview"),
    ("POST", "/v1/sms/templates"),
    ("PATCH", "/v1/sms/templates/{id}"),
    ("POST", "/v1/sms/sender-ids"),
]
ID_ROUTES = [route for route in ROUTES if "{id}" in route[1]]
LIST_ROUTES = [
    ("GET", "/v1/sms/"),
    ("GET", "/v1/sms/use-cases"),
    ("GET", "/v1/sms/templates"),
    ("GET", "/v1/sms/sender-ids"),
    ("GET", "/v1/sms/inbound"),
]
# Methods no route has (API Gateway answers 404 for them, as for a path no route has).
UNKNOWN_METHODS = ["TRACE", "OPTIONS", "HEAD", "PUT", "CONNECT", "FROB", "PROPFIND"]
SENT_ID = "SM" + "1" * 32  # the MessageSid signed callbacks give the test's message
OTHER_ID = "00000000-0000-4000-8000-000000000000"  # a UUID no resource has

FUZZ = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


# --- the test's own resources, and the placeholders examples name them by -----------------------


@dataclass
class Target:
    """A tenant with resources of every kind, which the examples name by placeholders."""

    gateway: HttpApiGateway
    tenant: Tenant
    use_case: UseCase
    # What PATCH and DELETE aim at, so that the use case sends go through stays as it is.
    spare: UseCase
    message_id: str
    scheduled_id: str
    cursor: str
    keys: dict[str, str | None]
    values: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        account = self.use_case.twilio_account_sid
        self.values = {
            "$USE_CASE": self.use_case.id,
            "$SPARE": self.spare.id,
            "$MESSAGE": self.message_id,
            "$SCHEDULED": self.scheduled_id,
            "$OTHER": OTHER_ID,
            "$WORKSPACE": self.tenant.workspace_id,
            "$ACCOUNT": account,
            "$SERVICE": self.use_case.messaging_service_sid,
            "$SECRET": self.use_case.twilio_auth_token_secret,
            "$CURSOR": self.cursor,
            "$SOON": (utc_now() + timedelta(days=1)).isoformat(),
        }

    def __repr__(self) -> str:
        return f"Target({self.values})"

    def fill(self, text: str) -> str:
        for name, value in self.values.items():
            text = text.replace(name, value)
        return text

    def fill_json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.fill(value)
        if isinstance(value, list):
            return [self.fill_json(v) for v in value]
        if isinstance(value, dict):
            return {self.fill(k): self.fill_json(v) for k, v in value.items()}
        return value

    def path(self, method: str, template: str, id_: str = "$MESSAGE") -> str:
        if "use-cases/{id}" in template and method in ("PATCH", "DELETE"):
            id_ = id_.replace("$USE_CASE", "$SPARE")
        return self.fill(template.replace("{id}", id_))

    def headers(self, auth: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"host": "127.0.0.1"}
        if self.keys[auth] is not None:
            headers["authorization"] = str(self.keys[auth])
        headers.update({name.lower(): self.fill(value) for name, value in (extra or {}).items()})
        return headers


def send(
    target: Target, method: str, path: str, query: str, headers: dict[str, str], body: bytes
) -> HttpResult:
    """One request through the gateway, checked: below 500, a 4xx with the right body, and a
    refused request that changes nothing."""
    mutating = method.upper() in ("POST", "PATCH", "DELETE", "PUT")
    before = state_of(target) if mutating else None
    result = target.gateway.handle(method, path, query, headers, body)
    assert_answered(target, method, path, query, headers, body, result)
    if before is not None and 400 <= result.status < 500:
        assert state_of(target) == before, f"refused, yet changed: {method} {path!r}"
    return result


def assert_answered(
    target: Target,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    result: HttpResult,
) -> None:
    shown = (
        f"{method} {path[:300]!r} query={query[:300]!r} headers={dict(headers)!r:.600} "
        f"body={body[:300]!r} -> {result.status} {result.body[:500]!r}"
    )
    assert result.status < 500, shown
    if result.status < 400:
        return
    try:
        answer = json.loads(result.body)
    except ValueError:
        pytest.fail(f"a {result.status} that is not JSON: {shown}")
    matched = target.gateway.match(method.upper(), path)
    if matched is None:
        assert (result.status, answer) == (404, NOT_FOUND), shown
        return
    route, _ = matched
    if answer == UNAUTHORIZED and route.authorized:
        # API Gateway's own, without calling the authorizer: no identity source in the request.
        assert result.status == 401 and not headers.get("authorization"), shown
    elif answer == FORBIDDEN and route.authorized:
        assert result.status == 403, shown  # the authorizer denied
    else:
        assert_error_body(answer, shown)


def assert_error_body(answer: Any, shown: str) -> None:
    assert isinstance(answer, dict) and set(answer) == {"error"}, shown
    error = answer["error"]
    assert isinstance(error, dict), shown
    assert isinstance(error.get("code"), str) and error["code"], shown
    assert isinstance(error.get("message"), str) and error["message"], shown


State = tuple[frozenset[tuple[str, ...]], frozenset[tuple[str, ...]]]


def state_of(target: Target) -> State:
    """What a request could change: the workspace's messages and use cases (every write of
    either sets its updated_at)."""
    settings_ = get_settings()
    client = aws_clients.dynamodb()
    key = {":w": {"S": target.tenant.workspace_id}}
    messages = client.query(
        TableName=settings_.messages_table,
        IndexName="by_workspace",
        KeyConditionExpression="workspace_id = :w",
        ExpressionAttributeValues=key,
    )["Items"]
    # The index holds keys only: the messages themselves are the table's.
    found = index_pages.batch_get(settings_.messages_table, "id", [m["id"]["S"] for m in messages])
    use_cases = client.query(
        TableName=settings_.use_cases_table,
        IndexName="by_workspace",
        KeyConditionExpression="workspace_id = :w",
        ExpressionAttributeValues=key,
        ProjectionExpression="id, updated_at, deleted",
    )["Items"]
    return (
        frozenset((m["id"], m["status"], m["updated_at"]) for m in found.values()),
        frozenset((u["id"]["S"], u["updated_at"]["S"], str(u["deleted"])) for u in use_cases),
    )


def sent(target: Target, body: dict[str, Any]) -> dict[str, Any]:
    headers = target.headers("key", {"content-type": "application/json"})
    result = target.gateway.handle("POST", "/v1/sms/", "", headers, json.dumps(body).encode())
    assert result.status == 201, result.body
    answer: dict[str, Any] = json.loads(result.body)
    return answer


@pytest.fixture
def target(gateway: HttpApiGateway, tenant: Tenant, use_case: UseCase) -> Iterator[Target]:
    account, service = use_case.twilio_account_sid, use_case.messaging_service_sid
    # An operator gave the workspace the account and its service: use cases can be created and
    # changed through the API, so bodies with the right fields get past the owner checks.
    assert api_keys.bind_twilio_account(tenant.workspace_id, account)
    assert api_keys.bind_messaging_service(account, service)
    spare = create_use_case(
        tenant.workspace_id,
        use_case_spec(twilio_account_sid=account, messaging_service_sid=service),
    )
    test_key = api_keys.issue_key(tenant.workspace_id, ALL_SCOPES, mode="test").secret
    read_key = api_keys.issue_key(tenant.workspace_id, (SCOPE_READ,)).secret
    keys: dict[str, str | None] = {
        "key": f"Bearer {tenant.key}",
        "none": None,
        "empty": "",
        "unknown": "Bearer sk_live_" + "A" * 43,  # well-formed, no such key
        "malformed": "Bearer not-a-key",
        "basic": "Basic dXNlcjpwYXNz",
        "test": f"Bearer {test_key}",
        "read_only": f"Bearer {read_key}",
    }
    partial = Target(gateway, tenant, use_case, spare, "", "", "", keys)
    message_id = sent(partial, send_body(use_case))["id"]
    sent(partial, send_body(use_case, message="second"))
    soon = (utc_now() + timedelta(days=1)).isoformat()
    scheduled_id = sent(partial, send_body(use_case, send_at=soon))["id"]
    listing = gateway.handle("GET", "/v1/sms/", "limit=1", partial.headers("key"), b"")
    cursor = json.loads(listing.body)["next_cursor"]
    assert isinstance(cursor, str)
    drain_handoff_queue()
    yield Target(gateway, tenant, use_case, spare, message_id, scheduled_id, cursor, keys)
    # What the examples sent is never handed off here; leave no handoff for later tests.
    drain_handoff_queue()


# --- strategies ---------------------------------------------------------------------------------

# Anything but a lone surrogate, which no HTTP request or API Gateway event can carry outside JSON
# escapes (http.server reads headers as Latin-1; API Gateway passes valid UTF-8).
CHARS = st.characters(exclude_categories=["Cs"])
SURROGATES = st.characters(categories=["Cs"])
text = st.text(CHARS, max_size=40)
header_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\x00"))
auths = st.sampled_from(["key", "none", "empty", "unknown", "malformed", "basic", "test",
                         "read_only"])  # fmt: skip

CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/x-www-form-urlencoded",
    "text/plain",
    "text/html; charset=latin-1",
    "application/octet-stream",
    "multipart/form-data; boundary=x",
    "application/xml",
    "image/png",
    "",
]
content_types = st.none() | st.sampled_from(CONTENT_TYPES) | header_text

# Bytes that are some parser's corner: not UTF-8, a UTF-8 lone surrogate, BOMs, UTF-16 JSON.
ODD_BYTES = [
    b"",
    b"\x00",
    b"\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b'{"message": "\xed\xa0\x80"}',
    b"\xef\xbb\xbf{}",
    "{}".encode("utf-16"),
    b"null",
    b"[]",
    b"{}",
    b'"x"',
    b"1e999",
    b"NaN",
    b"-",
    b"{",
    b"=",
    b"&&=&=x&%zz=%ff",
    b"AccountSid=AC00000000000000000000000000000000",
]
bodies = st.sampled_from(ODD_BYTES) | st.binary(max_size=300)

# Path ids: the test's own resources, ids in forms uuid.UUID also reads, and any text.
PATH_IDS = [
    "$MESSAGE",
    "$SCHEDULED",
    "$USE_CASE",
    "$SPARE",
    "$OTHER",
    "{$MESSAGE}",
    "urn:uuid:$MESSAGE",
    "$MESSAGE%00",
    "%2F",
    "%",
    "..",
    ".",
    "use-cases",
    "cancel",
    "x" * 5000,
    "\u00b2",
    "\U0001f600",
    "null",
    " ",
]
path_ids = st.sampled_from(PATH_IDS) | st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="/"), min_size=1, max_size=60
)


@dataclass(frozen=True)
class Raw:
    """JSON text spliced in as it is: numbers json.dumps cannot write or Python cannot read."""

    text: str


RAW_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "-0",
    "1e-400",
    "1" + "0" * 5000,  # more digits than int() takes
    "-" + "9" * 4301,
    "9" * 39,  # more digits than DynamoDB stores
    "1E400",
    "0.1e1",
]
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**45), max_value=10**45)
    | st.floats()  # NaN and infinities too: json.dumps writes them as NaN and Infinity
    | st.sampled_from(RAW_NUMBERS).map(Raw)
    | text
    | st.text(CHARS | SURROGATES, max_size=10)  # json.dumps writes lone surrogates as \udXXX
    | st.sampled_from(["$USE_CASE", "$OTHER", "", "x" * 1600, "x" * 1601])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(CHARS | SURROGATES, max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def fields(values: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the right field names (each present or not), valid or arbitrary values,
    and sometimes a field no model has."""
    return st.builds(
        lambda known, extra: {**extra, **known},
        st.fixed_dictionaries({}, optional={k: v | json_values for k, v in values.items()}),
        st.dictionaries(text, json_values, max_size=2),
    )


PHONES = [
    "+14155552671",
    "+33612345678",
    "+442071838750",  # a landline
    "+1415555267",
    "+" + "9" * 15,
    "+" + "9" * 16,
    "+\u0661\u0664\u0661\u0665\u0665\u0665\u0665\u0662\u0666\u0667\u0661",  # Arabic-Indic digits
    "+\uff11\uff14\uff11\uff15\uff15\uff15\uff15\uff12\uff16\uff17\uff11",  # full-width digits
    "+\U0001d7cf\U0001d7d2\U0001d7cf\U0001d7d3\U0001d7d3\U0001d7d3\U0001d7d3\U0001d7d0\U0001d7d4"
    "\U0001d7d5\U0001d7cf",  # mathematical bold digits
    "14155552671",
    "",
]
SEND_AT = [
    "$SOON",
    "2030-01-01T00:00:00Z",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+23:59",
    "2030-01-01T00:00:00+99:00",
    "2030-13-45T25:61:61Z",
    "2030-01-01t00:00:00z",
    "2030-01-01T00:00:00.1234567891234Z",
    "2030-01-01",
    "2030-01-01T00:00:00",
    "\uff12\uff10\uff13\uff10-01-01T00:00:00Z",
    "",
]
send_shaped = fields(
    {
        "use_case_id": st.sampled_from(["$USE_CASE", "$SPARE", "$OTHER", "not-a-uuid"]),
        "to_phone_number": st.sampled_from(PHONES),
        "message": st.sampled_from(["hi", "x" * 1600, "x" * 1601, "", "\U0001f600" * 800]) | text,
        "send_at": st.sampled_from(SEND_AT) | st.none(),
    }
)
SENDERS = [
    {"sender": "+14155550100", "kind": "long_code"},
    {"sender": "+18005550100", "kind": "toll_free"},
    {"sender": "12345", "kind": "short_code"},
    {"sender": "ACME", "kind": "alphanumeric"},
    {"sender": "+4407400123456", "kind": "long_code"},
    {"sender": "+1415555010\uff10", "kind": "long_code"},
]
sender_entries = st.sampled_from(SENDERS) | st.fixed_dictionaries(
    {"sender": text | st.sampled_from(PHONES), "kind": st.sampled_from(["long_code", "x"]) | text}
)
use_case_shaped = fields(
    {
        "name": st.sampled_from(["n", "x" * 200, "x" * 201]) | text,
        "active": st.booleans(),
        "twilio_account_sid": st.sampled_from(["$ACCOUNT", "AC" + "0" * 32, "AC"]),
        "twilio_auth_token_secret": st.sampled_from(["$SECRET", "sms/twilio/x", "x" * 600]),
        "messaging_service_sid": st.sampled_from(["$SERVICE", "MG" + "0" * 32]),
        "sender_pool": st.lists(sender_entries, max_size=3),
        "sticky_sender": st.booleans(),
        "area_code_geomatch": st.booleans(),
        "a2p_campaign_status": st.sampled_from(["none", "pending", "verified", "failed", "X"]),
        "brand_status": st.sampled_from(["active", "suspended", "ACTIVE"]),
        "allowed_countries": st.lists(st.sampled_from(["US", "GB", "XX", "us", "\u00dcS"])),
    }
)
json_documents = json_values | send_shaped | use_case_shaped


def to_json(value: Any, *, ascii_only: bool) -> str:
    """JSON text with Raw values spliced in; lone surrogates written as escapes (ascii_only) or
    as themselves (then encoded with surrogatepass: bytes that are not UTF-8)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, list):
        return "[" + ",".join(to_json(v, ascii_only=ascii_only) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(
                json.dumps(k, ensure_ascii=ascii_only) + ":" + to_json(v, ascii_only=ascii_only)
                for k, v in value.items()
            )
            + "}"
        )
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, ensure_ascii=ascii_only)


# --- every route, any bytes -----------------------------------------------------------------------


@FUZZ
@given(
    route=st.sampled_from(ROUTES),
    id_=path_ids,
    body=bodies,
    content_type=content_types,
    auth=auths,
)
@example(route=SEND, id_="", body=b"\xff\xfe{}", content_type="application/octet-stream",
         auth="key")  # fmt: skip
@example(route=SEND, id_="", body=b"\xc3\x28", content_type="application/x-www-form-urlencoded",
         auth="key")  # fmt: skip
@example(route=SEND, id_="", body=b"\xff\xfe{}", content_type="text/plain", auth="key")
@example(route=ROUTES[7], id_="$USE_CASE", body=b"\xed\xa0\x80", content_type=None, auth="key")
def test_any_bytes_to_any_route(
    target: Target,
    route: tuple[str, str],
    id_: str,
    body: bytes,
    content_type: str | None,
    auth: str,
) -> None:
    method, template = route
    extra = {"content-type": content_type} if content_type is not None else {}
    path = target.path(method, template, id_)
    result = send(target, method, path, "", target.headers(auth, extra), body)
    if template == WEBHOOK:
        # Nothing unsigned is Twilio's.
        assert result.status == 403 and json.loads(result.body)["error"]["code"] == "forbidden"


# --- bodies: JSON of any shape and depth ----------------------------------------------------------


@FUZZ
@given(
    route=st.sampled_from([*BODY_ROUTES, ("POST", WEBHOOK)]),
    document=json_documents,
    ascii_only=st.booleans(),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", None]
    ),
)
@example(route=SEND, document={"message": "\ud800"}, ascii_only=True,
         content_type="application/json")  # fmt: skip
@example(route=SEND, document={"\udc00": 1}, ascii_only=True, content_type="application/json")
@example(route=SEND, document={"message": "\ud800"}, ascii_only=False,
         content_type="application/octet-stream")  # fmt: skip
@example(route=SEND, document={"use_case_id": Raw("1" + "0" * 5000)}, ascii_only=True,
         content_type="application/json")  # fmt: skip
@example(route=SEND, document=Raw("9" * 4301), ascii_only=True, content_type="application/json")
@example(route=BODY_ROUTES[1], document={"name": Raw("1" + "0" * 5000)}, ascii_only=True,
         content_type="application/json")  # fmt: skip
@example(route=BODY_ROUTES[2], document={"name": Raw("NaN")}, ascii_only=True,
         content_type="application/json")  # fmt: skip
@example(route=SEND, document={"message": "x" * 1_000_000}, ascii_only=True,
         content_type="application/json")  # fmt: skip
def test_json_of_any_shape(
    target: Target, route: tuple[str, str], document: Any, ascii_only: bool,
    content_type: str | None,
) -> None:  # fmt: skip
    method, template = route
    raw = to_json(target.fill_json(document), ascii_only=ascii_only)
    body = raw.encode("utf-8", "surrogatepass")
    extra = {"content-type": content_type} if content_type is not None else {}
    path = target.path(method, template, "$USE_CASE")
    result = send(target, method, path, "", target.headers("key", extra), body)
    if template == WEBHOOK:
        assert result.status == 403


def nested(shape: str, depth: int, route: tuple[str, str]) -> bytes:
    if shape == "array":
        return b"[" * depth + b"]" * depth
    if shape == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    # Deep inside a field the route reads, past the check that the body is an object.
    name = b"message" if route == SEND else b"sender_pool"
    return b'{"' + name + b'":' + b"[" * depth + b"]" * depth + b"}"


# json's parsers and encoders stop near Python's C recursion limit (10,000 levels less what the
# stack already holds: 9,974 in a handler here): densely around it, where a document just shallow
# enough for json.loads could still be too deep for what reads it next.
DEPTHS = [2, 1_000, 9_000, *range(9_950, 10_001, 5), 20_000, 100_000]


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
def test_deeply_nested_json(target: Target, route: tuple[str, str]) -> None:
    method, template = route
    path = target.path(method, template, "$USE_CASE")
    before = state_of(target)
    for shape in ("array", "object", "in-a-field"):
        for content_type in ("application/json", "application/octet-stream"):
            headers = target.headers("key", {"content-type": content_type})
            for depth in DEPTHS:
                body = nested(shape, depth, route)
                result = target.gateway.handle(method, path, "", headers, body)
                assert_answered(target, method, path, "", headers, body, result)
                assert result.status == 422, (shape, content_type, depth, result)
    assert state_of(target) == before


# --- path ids, query strings, headers -------------------------------------------------------------


@FUZZ
@given(route=st.sampled_from(ID_ROUTES), id_=path_ids, auth=st.sampled_from(["key", "test"]))
@example(route=ID_ROUTES[0], id_="x" * 5000, auth="key")
@example(route=ID_ROUTES[4], id_="{$USE_CASE}", auth="key")
def test_any_path_id(target: Target, route: tuple[str, str], id_: str, auth: str) -> None:
    method, template = route
    body = b"{}" if method == "PATCH" else b""
    headers = target.headers(auth, {"content-type": "application/json"})
    send(target, method, target.path(method, template, id_), "", headers, body)


@dataclass(frozen=True)
class ForgedCursor:
    """A cursor of the test's own listing, written by hand: well-formed, any key inside."""

    id_: str
    sort_suffix: str
    use_case: bool

    def encode(self, target: Target) -> str:
        name, value = (
            ("use_case_id", target.use_case.id)
            if self.use_case
            else ("workspace_id", target.tenant.workspace_id)
        )
        key = {"id": self.id_, name: value, "s": "live#" + self.sort_suffix}
        return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


ascii_printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
forged_cursors = st.builds(
    ForgedCursor,
    id_=ascii_printable | st.sampled_from(["", "$MESSAGE", "x" * 3000]),
    sort_suffix=ascii_printable | st.sampled_from(["", "\x7e" * 3000]),
    use_case=st.booleans(),
)
QUERY_NAMES = [
    "limit", "status", "cursor", "use_case_id", "external_id", "LIMIT", "limit[]", "", "x",
]  # fmt: skip
QUERY_VALUES = [
    "\u00b2",
    "\uff15",
    "\u0663",
    "9" * 5000,
    "0",
    "1",
    "100",
    "101",
    "-1",
    "1.5",
    " 1",
    "1e1",
    "",
    "$USE_CASE",
    "$OTHER",
    "{$USE_CASE}",
    "pending",
    "PENDING",
    "delivered",
    "$CURSOR",
    "$CURSOR$CURSOR",
    "=",
    "%",
    "x" * 5000,
]
query_values: st.SearchStrategy[str | ForgedCursor] = (
    st.sampled_from(QUERY_VALUES) | text | forged_cursors
)
query_pairs = st.lists(st.tuples(st.sampled_from(QUERY_NAMES) | text, query_values), max_size=5)


@FUZZ
@given(
    route=st.sampled_from([*LIST_ROUTES, ("GET", "/v1/sms/{id}")]),
    pairs=query_pairs,
    raw=st.none() | st.text(CHARS, max_size=60),
    auth=st.sampled_from(["key", "test", "read_only"]),
)
@example(route=LIST_ROUTES[0], pairs=[("limit", "\u00b2")], raw=None, auth="key")
@example(route=LIST_ROUTES[0], pairs=[("limit", "9" * 5000)], raw=None, auth="key")
@example(route=LIST_ROUTES[0], pairs=[("limit", "1"), ("limit", "2")], raw=None, auth="key")
@example(route=LIST_ROUTES[0], pairs=[("cursor", "$CURSOR"), ("use_case_id", "$USE_CASE")],
         raw=None, auth="key")  # fmt: skip
@example(
    route=LIST_ROUTES[0],
    pairs=[("cursor", ForgedCursor("x" * 3000, "", use_case=False))],
    raw=None,
    auth="key",
)
@example(
    route=LIST_ROUTES[0],
    pairs=[("cursor", ForgedCursor("", "", use_case=False))],
    raw=None,
    auth="key",
)
@example(
    route=LIST_ROUTES[0],
    pairs=[
        ("use_case_id", "$USE_CASE"),
        ("status", "pending"),
        ("cursor", ForgedCursor("x" * 3000, "~" * 3000, use_case=True)),
    ],
    raw=None,
    auth="key",
)
def test_any_query_string(
    target: Target,
    route: tuple[str, str],
    pairs: list[tuple[str, str | ForgedCursor]],
    raw: str | None,
    auth: str,
) -> None:
    method, template = route
    if raw is not None:
        query = target.fill(raw)
    else:
        query = urlencode(
            [
                (
                    target.fill(k),
                    v.encode(target) if isinstance(v, ForgedCursor) else target.fill(v),
                )
                for k, v in pairs
            ]
        )
    send(target, method, target.path(method, template), query, target.headers(auth), b"")


header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True)
IDEMPOTENCY_KEYS = ["", " ", "k" * 255, "k" * 256, "\u00e9" * 255, "k" * 100_000, "\t", "$MESSAGE"]


@settings(FUZZ, max_examples=30)
@given(
    idempotency_key=st.none() | st.sampled_from(IDEMPOTENCY_KEYS) | header_text,
    extra=st.dictionaries(
        header_names | st.sampled_from(["content-type", "host", "authorization"]),
        header_text,
        max_size=3,
    ),
    message=st.text(CHARS, min_size=1, max_size=20),
    auth=auths,
)
@example(idempotency_key="k" * 100_000, extra={}, message="hi", auth="key")
@example(idempotency_key="\u00e9" * 255, extra={}, message="hi", auth="key")
@example(idempotency_key="k", extra={"host": "\U0001f600"}, message="hi", auth="key")
@example(idempotency_key="k" * 255, extra={}, message="hi", auth="test")
def test_any_headers_on_a_send(
    target: Target,
    idempotency_key: str | None,
    extra: dict[str, str],
    message: str,
    auth: str,
) -> None:
    headers = target.headers(auth, {"content-type": "application/json", **extra})
    if idempotency_key is not None:
        headers["idempotency-key"] = idempotency_key
    body = json.dumps(send_body(target.use_case, message=message)).encode()
    first = send(target, "POST", "/v1/sms/", "", headers, body)
    if idempotency_key is not None:
        # The retry of a keyed send gets the same answer, and a refused one changes nothing.
        again = send(target, "POST", "/v1/sms/", "", headers, body)
        assert again.status == first.status, (first, again)


# --- the Twilio webhook ---------------------------------------------------------------------------

NUMBERS = ["9" * 5000, "9" * 40, "9" * 38, "-1", "\u00b2", "\u0663", "0", "30003", "21610",
           "1e3", " 1", "0" * 40 + "1", ""]  # fmt: skip
STATUSES = ["queued", "sent", "delivered", "read", "undelivered", "failed", "DELIVERED", "",
            "x" * 1000]  # fmt: skip
form_text = st.text(CHARS, max_size=30)
CALLBACK_FIELDS: dict[str, st.SearchStrategy[str]] = {
    "MessageStatus": st.sampled_from(STATUSES) | form_text,
    "SmsStatus": st.sampled_from(STATUSES) | form_text,
    "MessageSid": st.sampled_from([SENT_ID, "SM" + uuid.UUID(int=7).hex, "", "x" * 3000])
    | form_text,
    "SmsSid": st.sampled_from([SENT_ID, ""]) | form_text,
    "ErrorCode": st.sampled_from(NUMBERS) | form_text,
    "NumSegments": st.sampled_from(NUMBERS) | form_text,
    "From": st.sampled_from(["+14155550100", "", "x" * 3000]) | form_text,
    "To": st.sampled_from(["+14155552671", "+442071838750", "+1" + "9" * 20, ""]) | form_text,
    "MessagingServiceSid": st.sampled_from(["$SERVICE", "MG" + "0" * 32]) | form_text,
    "ApiVersion": form_text,
}
callback_forms = st.builds(
    lambda known, extra: {**extra, **known},
    st.fixed_dictionaries({"AccountSid": st.just("$ACCOUNT")}, optional=CALLBACK_FIELDS),
    st.dictionaries(form_text, form_text, max_size=2),
)
callback_queries = st.lists(
    st.tuples(
        st.sampled_from(["message_id", "x"]) | form_text,
        st.sampled_from(["$MESSAGE", "$SCHEDULED", "$OTHER", "urn:uuid:$MESSAGE", ""]) | form_text,
    ),
    max_size=3,
)


def webhook_headers(signature: str | None, content_type: str | None) -> dict[str, str]:
    headers = {"host": "127.0.0.1", "user-agent": "TwilioProxy/1.1"}
    if content_type is not None:
        headers["content-type"] = content_type
    if signature is not None:
        headers["x-twilio-signature"] = signature
    return headers


# A query string as it can arrive: what a request line can carry (no space, control character or
# '#'), which is also what Twilio signs.
raw_queries = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#"))


def query_text(target: Target, query: list[tuple[str, str]] | str) -> str:
    """The query as sent: pairs url-encoded, or any text as it is."""
    if isinstance(query, str):
        return target.fill(query)
    return urlencode([(target.fill(k), target.fill(v)) for k, v in query])


FORM_TYPES = ["application/x-www-form-urlencoded", "application/json", "text/plain", None]


@settings(FUZZ, max_examples=30)
@given(
    form=callback_forms,
    query=callback_queries | raw_queries,
    content_type=st.sampled_from(FORM_TYPES),
)
@example(form={"AccountSid": "$ACCOUNT", "MessageStatus": "sent", "NumSegments": "9" * 5000},
         query=[("message_id", "$MESSAGE")], content_type=FORM_TYPES[0])  # fmt: skip
@example(form={"AccountSid": "$ACCOUNT", "MessageStatus": "sent", "NumSegments": "9" * 40},
         query=[("message_id", "$MESSAGE")], content_type=FORM_TYPES[0])  # fmt: skip
@example(form={"AccountSid": "$ACCOUNT", "MessageStatus": "failed", "ErrorCode": "9" * 5000},
         query=[("message_id", "$MESSAGE")], content_type=FORM_TYPES[0])  # fmt: skip
@example(form={"AccountSid": "$ACCOUNT", "MessageStatus": "undelivered", "ErrorCode": "9" * 40},
         query=[("message_id", "$MESSAGE")], content_type=FORM_TYPES[0])  # fmt: skip
@example(form={"AccountSid": "$ACCOUNT", "MessageStatus": "sent", "NumSegments": "\u00b2",
               "ErrorCode": "-1"}, query=[("message_id", "$MESSAGE")],
         content_type=FORM_TYPES[0])  # fmt: skip
@example(form={"AccountSid": "$ACCOUNT", "MessageStatus": "failed", "ErrorCode": "21610",
               "MessagingServiceSid": "$SERVICE", "To": "+1" + "9" * 20},
         query=[("message_id", "$MESSAGE")], content_type=FORM_TYPES[0])  # fmt: skip
@example(form={"AccountSid": "$ACCOUNT", "MessageStatus": "sent", "MessageSid": "x" * 3000},
         query=[("message_id", "$SCHEDULED")], content_type=None)  # fmt: skip
@example(form={"AccountSid": "$ACCOUNT", "MessageStatus": "x" * 500_000},
         query=[("message_id", "$MESSAGE")], content_type=FORM_TYPES[0])  # fmt: skip
def test_a_signed_callback_with_any_fields_is_acknowledged(
    target: Target,
    form: dict[str, str],
    query: list[tuple[str, str]] | str,
    content_type: str | None,
) -> None:
    params = {target.fill(k): target.fill(v) for k, v in form.items()}
    raw_query = query_text(target, query)
    token = AUTH_TOKENS[target.use_case.twilio_account_sid]
    headers = webhook_headers(sign(callback_url(raw_query), params, token), content_type)
    result = send(target, "POST", WEBHOOK, raw_query, headers, urlencode(params).encode())
    # Twilio's, whatever it says: acknowledged (anything else and Twilio retries it).
    assert (result.status, result.body) == (204, b""), result
    # And whatever it stored reads back: the listing reads every message of the workspace, and
    # one message is read with its history.
    for path in (f"/v1/sms/{target.message_id}", "/v1/sms/"):
        assert send(target, "GET", path, "", target.headers("key"), b"").status == 200


@FUZZ
@given(
    body=bodies | callback_forms,
    signature=st.sampled_from(["none", "garbage", "wrong-token", "tampered", "other-url"]),
    garbage=header_text,
    query=callback_queries | raw_queries,
    content_type=st.sampled_from(FORM_TYPES) | header_text,
)
def test_an_unsigned_callback_is_refused(
    target: Target,
    body: bytes | dict[str, str],
    signature: str,
    garbage: str,
    query: list[tuple[str, str]] | str,
    content_type: str | None,
) -> None:
    raw_query = query_text(target, query)
    params = {target.fill(k): target.fill(v) for k, v in body.items()} if isinstance(
        body, dict
    ) else {"AccountSid": target.use_case.twilio_account_sid}  # fmt: skip
    token = AUTH_TOKENS[target.use_case.twilio_account_sid]
    # What is sent always differs from what was signed, where anything was.
    sent_params = {**params, "MessageStatus": params.get("MessageStatus", "") + "x"}
    raw = body if isinstance(body, bytes) else urlencode(sent_params).encode()
    header = {
        "none": None,
        "garbage": garbage,
        "wrong-token": sign(callback_url(raw_query), params, "not-the-token"),
        "tampered": sign(callback_url(raw_query), params, token),
        "other-url": sign(callback_url(raw_query + "&x=1"), sent_params, token),
    }[signature]
    result = send(target, "POST", WEBHOOK, raw_query, webhook_headers(header, content_type), raw)
    assert result.status == 403
    assert json.loads(result.body)["error"]["code"] == "forbidden"


INBOUND = "/v1/webhook/twilio/sms-inbound"
INBOUND_FIELDS: dict[str, st.SearchStrategy[str]] = {
    "MessageSid": st.sampled_from(
        ["SM" + uuid.UUID(int=9).hex, "MM" + uuid.UUID(int=10).hex, "", "x" * 3000]
    )
    | form_text,
    "From": st.sampled_from(["+14155552671", "+1" + "9" * 20, "", "x" * 3000, "72345"]) | form_text,
    "To": st.sampled_from(["+14155550100", "+12125550100", ""]) | form_text,
    "Body": st.sampled_from(["STOP", " start ", "HELP", "x" * 5000, "", "\ufffe"]) | form_text,
    "MessagingServiceSid": st.sampled_from(["$SERVICE", "MG" + "0" * 32]) | form_text,
    "NumSegments": st.sampled_from(NUMBERS) | form_text,
    "NumMedia": st.sampled_from(["0", "1", "x"]) | form_text,
}
inbound_forms = st.builds(
    lambda known, extra: {**extra, **known},
    st.fixed_dictionaries({"AccountSid": st.just("$ACCOUNT")}, optional=INBOUND_FIELDS),
    st.dictionaries(form_text, form_text, max_size=2),
)


@settings(FUZZ, max_examples=30)
@given(
    form=inbound_forms,
    query=st.sampled_from(["", "mode=test", "mode=live", "mode=test&mode=test"]) | raw_queries,
    content_type=st.sampled_from(FORM_TYPES),
)
@example(
    form={"AccountSid": "$ACCOUNT", "MessageSid": "SM" + uuid.UUID(int=11).hex,
          "From": "+14155552671", "To": "+14155550100", "Body": "STOP",
          "MessagingServiceSid": "$SERVICE"},
    query="", content_type=FORM_TYPES[0],
)  # fmt: skip
def test_a_signed_incoming_message_with_any_fields_is_acknowledged(
    target: Target, form: dict[str, str], query: str, content_type: str | None
) -> None:
    params = {target.fill(k): target.fill(v) for k, v in form.items()}
    raw_query = target.fill(query)
    url = f"{PUBLIC_BASE_URL}{INBOUND}" + (f"?{raw_query}" if raw_query else "")
    token = AUTH_TOKENS[target.use_case.twilio_account_sid]
    headers = webhook_headers(sign(url, params, token), content_type)
    result = send(target, "POST", INBOUND, raw_query, headers, urlencode(params).encode())
    # Twilio's, whatever it says: an empty TwiML answer (anything else and Twilio retries it).
    assert (result.status, result.body) == (200, b"<Response/>"), result
    # And whatever it stored reads back, in both modes.
    for key in ("key", "test"):
        listed = send(target, "GET", "/v1/sms/inbound", "", target.headers(key), b"")
        assert listed.status == 200
        for item in json.loads(listed.body)["items"]:
            path = f"/v1/sms/inbound/{item['id']}"
            assert send(target, "GET", path, "", target.headers(key), b"").status == 200


@FUZZ
@given(body=bodies | inbound_forms, signature=st.sampled_from(["none", "garbage", "tampered"]))
def test_an_unsigned_incoming_message_is_refused(
    target: Target, body: bytes | dict[str, str], signature: str
) -> None:
    params = {target.fill(k): target.fill(v) for k, v in body.items()} if isinstance(
        body, dict
    ) else {"AccountSid": target.use_case.twilio_account_sid}  # fmt: skip
    token = AUTH_TOKENS[target.use_case.twilio_account_sid]
    sent_params = {**params, "Body": params.get("Body", "") + "x"}
    raw = body if isinstance(body, bytes) else urlencode(sent_params).encode()
    header = {
        "none": None,
        "garbage": "bm90IGEgc2lnbmF0dXJl",
        "tampered": sign(f"{PUBLIC_BASE_URL}{INBOUND}", params, token),
    }[signature]
    result = send(target, "POST", INBOUND, "", webhook_headers(header, FORM_TYPES[0]), raw)
    assert result.status == 403
    assert json.loads(result.body)["error"]["code"] == "forbidden"
    listed = send(target, "GET", "/v1/sms/inbound", "", target.headers("key"), b"")
    assert json.loads(listed.body)["items"] == []


HOSTS = [
    "abc123defg.execute-api.us-east-1.amazonaws.com",
    "127.0.0.1",
    "host:99999",
    "host:abc",
    "[::1",
    "[::1]:443",
    "user@host",
    "host/path?x#y",
    "",
    "\U0001f600.example",
    "a" * 5000,
]


@pytest.mark.usefixtures("no_public_base_url")
@settings(FUZZ, max_examples=30)
@given(
    host=st.sampled_from(HOSTS) | header_text,
    form=callback_forms,
    query=callback_queries,
    signed=st.booleans(),
)
def test_a_callback_on_any_host_without_a_public_base_url(
    target: Target,
    host: str,
    form: dict[str, str],
    query: list[tuple[str, str]],
    signed: bool,
) -> None:
    # With no public base URL the signed URL is built from the request's own domain.
    params = {target.fill(k): target.fill(v) for k, v in form.items()}
    raw_query = query_text(target, query)
    token = AUTH_TOKENS[target.use_case.twilio_account_sid]
    url = callback_url(raw_query, base=f"https://{host}")
    headers = {
        **webhook_headers(sign(url, params, token) if signed else None, FORM_TYPES[0]),
        "host": host,
    }
    result = send(target, "POST", WEBHOOK, raw_query, headers, urlencode(params).encode())
    assert result.status in (204, 403), result
    if not signed:
        assert result.status == 403


# --- methods and paths no route has ---------------------------------------------------------------

ANY_PATHS = [
    "/v1/sms/",
    "/v1/sms/$MESSAGE",
    "/v1/sms/$MESSAGE/cancel",
    "/v1/sms/use-cases",
    "/v1/sms/use-cases/$USE_CASE",
    WEBHOOK,
]
UNROUTED_PATHS = [
    "/",
    "",
    "/v1",
    "/v1/sms",  # API Gateway's routes are exact: no trailing-slash folding
    "/v1/sms//",
    "//v1/sms/",
    "/V1/SMS/",
    "/v1/sms/use-cases/",
    "/v1/sms/$MESSAGE/cancel/",
    "/v1/sms/a/b",
    "/v1/webhook/twilio/",
    "/openapi.json",
    "/v1/sms/%2F",
]


@pytest.mark.parametrize("method", UNKNOWN_METHODS)
def test_a_method_no_route_has_is_not_found(target: Target, method: str) -> None:
    for path in [*ANY_PATHS, *UNROUTED_PATHS]:
        result = send(target, method, target.fill(path), "", target.headers("key"), b"{}")
        assert (result.status, json.loads(result.body)) == (404, NOT_FOUND), (method, path)


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE", *UNKNOWN_METHODS, "get"])
    | st.from_regex(r"[A-Z]{1,10}", fullmatch=True),
    path=st.sampled_from([*ANY_PATHS, *UNROUTED_PATHS])
    | st.text(CHARS, max_size=40).map(lambda t: "/v1/sms/" + t),
    body=bodies,
)
def test_any_method_on_any_path(target: Target, method: str, path: str, body: bytes) -> None:
    headers = target.headers("key", {"content-type": "application/json"})
    send(target, method, target.fill(path), "", headers, body)


# --- the same through the local HTTP front (sms_local.http_server) --------------------------------


@pytest.fixture(scope="module")
def front(gateway: HttpApiGateway) -> Iterator[ApiServer]:
    server = ApiServer(gateway)  # port 0 on 127.0.0.1
    server.start()
    yield server
    server.stop()


def over_http(
    server: ApiServer, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> HttpResult:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        if body or method not in ("GET", "HEAD"):
            connection.putheader("content-length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return HttpResult(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()


@pytest.mark.parametrize("method", UNKNOWN_METHODS)
def test_a_method_no_route_has_is_not_found_over_http(
    front: ApiServer, target: Target, method: str
) -> None:
    for path in [*ANY_PATHS, "/", "/v1/sms", "/nowhere"]:
        result = over_http(front, method, quote(target.fill(path)), target.headers("key"), b"")
        assert result.status == 404, (method, path, result)
        if method != "HEAD":
            assert json.loads(result.body) == NOT_FOUND, (method, path, result)


@settings(FUZZ, max_examples=40)
@given(
    method=st.none()  # the route's own
    | st.sampled_from(["GET", "POST", "PATCH", "DELETE", *UNKNOWN_METHODS])
    | st.from_regex(r"[A-Z]{1,10}", fullmatch=True),
    route=st.sampled_from(ROUTES),
    id_=path_ids,
    query=st.text(CHARS, max_size=30),
    body=bodies,
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_any_request_over_http(
    front: ApiServer,
    target: Target,
    method: str | None,
    route: tuple[str, str],
    id_: str,
    query: str,
    body: bytes,
    content_type: str,
) -> None:
    method = method or route[0]
    path = quote(target.path(method, route[1], id_), safe="/%")
    raw_query = quote(target.fill(query), safe="=&")
    headers = {**target.headers("key"), "content-type": content_type}
    result = over_http(front, method, f"{path}?{raw_query}" if raw_query else path, headers, body)
    if method == "HEAD":
        assert result.status < 500, (method, path, result)
        return
    assert_answered(target, method, path, raw_query, headers, body, result)
