"""Input an attacker or a careless caller sends, answered with a 4xx that changes nothing; test and
live kept apart; a message that stays writable after any number of duplicate callbacks; and the
local HTTP front answering as API Gateway does."""

from __future__ import annotations

import http.client
import json
from datetime import timedelta
from typing import Any

import pytest

from sms_gateway.api.caller import ALL_SCOPES
from sms_gateway.config import get_settings
from sms_gateway.domain.clock import utc_now
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.store import api_keys, aws_clients, transitions
from sms_local.gateway import HttpApiGateway
from sms_local.http_server import ApiServer
from tests.integration.conftest import Api, Response, Tenant
from tests.integration.test_send_api import drain_handoff_queue, send_body
from tests.integration.test_status_callback import callback, get, new_message

NOT_FOUND = {"message": "Not Found"}


def listed_ids(api: Api, **query: str) -> list[str]:
    response = api.request("GET", "/v1/sms/", query=query)
    assert response.status == 200
    return [m["id"] for m in response.json()["items"]]


def assert_validation_error(response: Response) -> None:
    assert response.status == 422, response.raw
    assert response.json()["error"]["code"] == "validation_error"


# --- bodies no parser or store can take ----------------------------------------------------------

DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


def send_text(use_case: UseCase, message: str) -> bytes:
    # json.dumps writes a lone surrogate as its \ud800 escape: valid JSON, no valid Unicode.
    return json.dumps(send_body(use_case, message=message)).encode()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", DEEP_JSON),
        ("application/json", DEEP_OBJECT),
        ("application/json", "lone-surrogate"),
        ("application/json", b'{"\\udc00": 1}'),  # in a key
        ("application/json", b'{"use_case_id": 1' + b"0" * 5000 + b"}"),  # int() refuses it
        ("text/plain", b"\xff\xfe{}"),  # not UTF-8, passed on as text
        ("application/octet-stream", b"\xff\xfe{}"),  # not UTF-8, passed on base64-encoded
        ("application/x-www-form-urlencoded", b"\xc3\x28"),
        (None, b"\x80"),
    ],
    ids=[
        "deep-array",
        "deep-object",
        "lone-surrogate",
        "surrogate-key",
        "huge-int",
        "text-not-utf8",
        "binary-not-utf8",
        "form-not-utf8",
        "no-type-not-utf8",
    ],
)
def test_a_body_no_parser_or_store_can_take_is_a_422_that_stores_nothing(
    tenant: Tenant, use_case: UseCase, content_type: str | None, body: bytes | str
) -> None:
    raw = send_text(use_case, "x\ud800") if body == "lone-surrogate" else body
    assert isinstance(raw, bytes)
    headers = {"content-type": content_type} if content_type else {}

    assert_validation_error(tenant.api.request("POST", "/v1/sms/", raw_body=raw, headers=headers))
    assert_validation_error(
        tenant.api.request("POST", "/v1/sms/use-cases", raw_body=raw, headers=headers)
    )
    patched = tenant.api.request(
        "PATCH", f"/v1/sms/use-cases/{use_case.id}", raw_body=raw, headers=headers
    )
    assert_validation_error(patched)

    assert listed_ids(tenant.api) == []
    assert tenant.api.request("GET", "/v1/sms/use-cases").json()["items"] == [use_case.to_api()]


def test_json_sent_with_another_content_type_is_still_read(
    tenant: Tenant, use_case: UseCase
) -> None:
    # API Gateway passes it base64-encoded; it is the same JSON.
    raw = json.dumps(send_body(use_case)).encode()
    response = tenant.api.request(
        "POST", "/v1/sms/", raw_body=raw, headers={"content-type": "application/octet-stream"}
    )
    assert response.status == 201
    drain_handoff_queue()


@pytest.mark.parametrize("limit", ["\u00b2", "9" * 5000, "\uff15", "1e1", "-1", " 5"])
def test_a_limit_int_cannot_read_is_a_422(tenant: Tenant, limit: str) -> None:
    assert_validation_error(tenant.api.request("GET", "/v1/sms/", query={"limit": limit}))


@pytest.mark.parametrize(
    "change",
    [{"active": "false"}, {"active": 0}, {"name": 5}, {"sticky_sender": "true"}],
    ids=["active-string", "active-int", "name-int", "sticky-string"],
)
def test_use_case_fields_are_as_strict_as_the_send_body(
    tenant: Tenant, use_case: UseCase, change: dict[str, Any]
) -> None:
    path = f"/v1/sms/use-cases/{use_case.id}"
    assert_validation_error(tenant.api.request("PATCH", path, json_body=change))
    assert tenant.api.request("GET", path).json() == use_case.to_api()
    created = {
        **use_case.model_dump(mode="json", include={"name", "twilio_account_sid"}),
        **change,
    }
    assert_validation_error(tenant.api.request("POST", "/v1/sms/use-cases", json_body=created))


# --- test and live -------------------------------------------------------------------------------


def test_a_key_sees_and_cancels_only_messages_of_its_own_mode(
    tenant: Tenant, use_case: UseCase
) -> None:
    test_key = api_keys.issue_key(tenant.workspace_id, ALL_SCOPES, mode="test").secret
    apis = {"live": tenant.api, "test": tenant.api.with_key(test_key)}
    later = (utc_now() + timedelta(minutes=10)).isoformat()
    ids: dict[str, list[str]] = {"live": [], "test": []}
    for mode, api in apis.items():
        for _ in range(2):
            response = api.send(send_body(use_case, send_at=later))
            assert response.status == 201
            assert response.json()["test"] is (mode == "test")
            ids[mode].append(response.json()["id"])

    for mode, other in (("live", "test"), ("test", "live")):
        api = apis[mode]
        # Lists, whole, by use case, and page by page, hold only the key's own mode
        assert sorted(listed_ids(api)) == sorted(ids[mode])
        assert sorted(listed_ids(api, use_case_id=use_case.id)) == sorted(ids[mode])
        first = api.request("GET", "/v1/sms/", query={"limit": "1"}).json()
        assert first["items"][0]["id"] in ids[mode]
        cursor = first["next_cursor"]
        assert listed_ids(api, limit="1", cursor=cursor)[0] in ids[mode]
        # A cursor of one mode does not open the other's listing
        assert_validation_error(
            apis[other].request("GET", "/v1/sms/", query={"limit": "1", "cursor": cursor})
        )
        # The other mode's message is answered as a missing one, and cancel leaves it alone
        for message_id in ids[other]:
            for method, path in (
                ("GET", f"/v1/sms/{message_id}"),
                ("POST", f"/v1/sms/{message_id}/cancel"),
            ):
                refused = api.request(method, path)
                assert refused.status == 404
                assert refused.json()["error"]["code"] == "message_not_found"
        assert api.request("GET", f"/v1/sms/{ids[mode][0]}").status == 200

    for mode, api in apis.items():
        for message_id in ids[mode]:
            assert apis[mode].request("GET", f"/v1/sms/{message_id}").json()["status"] == (
                "scheduled"
            )
            canceled = api.request("POST", f"/v1/sms/{message_id}/cancel")
            assert (canceled.status, canceled.json()["status"]) == (200, "canceled")


# --- callbacks that must never fail, and never grow a message without bound -----------------------


def test_a_signed_callback_with_absurd_numbers_is_taken_without_them(
    gateway: HttpApiGateway, tenant: Tenant, use_case: UseCase
) -> None:
    message_id = new_message(tenant, use_case)
    account = use_case.twilio_account_sid
    sent = callback(gateway, message_id, account, "sent", NumSegments="9" * 5000)
    assert sent.status == 204
    undelivered = callback(gateway, message_id, account, "undelivered", ErrorCode="9" * 40)
    assert undelivered.status == 204

    message = get(tenant, message_id)
    assert message["status"] == "undelivered"
    assert message["num_segments"] is None  # Twilio's was no number, and no handoff ran
    assert message["error_code"] is None


def stored(message_id: str) -> dict[str, Any]:
    item = aws_clients.dynamodb().get_item(
        TableName=get_settings().messages_table, Key={"id": {"S": message_id}}, ConsistentRead=True
    )["Item"]
    return dict(item)


def test_duplicate_callbacks_cannot_grow_a_message_past_its_bound(
    gateway: HttpApiGateway,
    tenant: Tenant,
    use_case: UseCase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A small bound, so that a few replays reach it (the real one is the same code).
    monkeypatch.setattr(transitions, "MAX_HISTORY_ENTRIES", 5)
    message_id = new_message(tenant, use_case)
    account = use_case.twilio_account_sid
    assert callback(gateway, message_id, account, "sent").status == 204
    # When one signed callback is replayed many times
    replays = 12
    for _ in range(replays):
        assert callback(gateway, message_id, account, "sent").status == 204

    # Then the history keeps ignored events only up to the bound, and counts the rest
    history = get(tenant, message_id)["history"]
    assert len(history) == 5
    kept_ignored = [h for h in history if not h["applied"]]
    assert int(stored(message_id)[transitions.DROPPED_EVENTS]["N"]) == replays - len(kept_ignored)
    # And the message still takes its real status, which the history records
    assert callback(gateway, message_id, account, "delivered").status == 204
    message = get(tenant, message_id)
    assert message["status"] == "delivered"
    assert message["history"][-1]["status"] == "delivered"
    assert len(message["history"]) == 6


# --- the local HTTP front answers as API Gateway -------------------------------------------------


def over_http(
    server: ApiServer, method: str, path: str, *, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "PUT", "CONNECT", "FROB", "HEAD"])
@pytest.mark.parametrize("path", ["/v1/sms/", "/v1/sms/use-cases", "/nowhere"])
def test_a_method_no_route_has_is_api_gateway_s_404(
    server: ApiServer, method: str, path: str
) -> None:
    status, body = over_http(server, method, path)
    assert status == 404
    assert body == (b"" if method == "HEAD" else json.dumps(NOT_FOUND).encode())


@pytest.mark.parametrize(
    ("length", "status", "message"),
    [
        ("abc", 400, "Bad Request"),
        ("-1", 400, "Bad Request"),
        ("9" * 30, 413, "Request Entity Too Large"),
    ],
)
def test_a_body_length_that_cannot_be_read_is_refused_by_the_front(
    server: ApiServer, length: str, status: int, message: str
) -> None:
    answer = over_http(server, "POST", "/v1/sms/", headers={"content-length": length})
    assert answer == (status, json.dumps({"message": message}, separators=(",", ":")).encode())


def test_a_chunked_body_reaches_the_function_whole(
    server: ApiServer, tenant: Tenant, use_case: UseCase
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    raw = json.dumps(send_body(use_case)).encode()
    try:
        connection.request(
            "POST",
            "/v1/sms/",
            body=iter([raw[:10], raw[10:]]),
            headers={
                "authorization": f"Bearer {tenant.key}",
                "content-type": "application/json",
                "transfer-encoding": "chunked",
            },
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 201, response.read()
        assert json.loads(response.read())["to_number"] == send_body(use_case)["to_phone_number"]
    finally:
        connection.close()
    drain_handoff_queue()
