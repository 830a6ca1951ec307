"""POST /v1/webhook/twilio/sms-status through the HTTP API front against moto.

Callbacks are signed with the twilio SDK's RequestValidator (the reference implementation), over
the URL the handoff gives Twilio, and state is read back through GET /v1/sms/{id}.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from sms_gateway import config, providers
from sms_gateway.config import get_settings
from sms_gateway.domain import clock
from sms_gateway.domain.errors import ForbiddenError
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic import status_updates
from sms_gateway.logic.use_case_admin import create_use_case
from sms_gateway.providers.interface import CallbackRequest
from sms_gateway.providers.twilio import callbacks as status_callback
from sms_gateway.providers.twilio import credentials as provider_credentials
from sms_gateway.store import aws_clients, secrets, transitions
from sms_local import http_events, lambda_runtime
from sms_local import template as tpl
from sms_local.gateway import HttpApiGateway, HttpResult
from tests.integration.conftest import (
    AUTH_TOKENS,
    CALLBACK_URL,
    Tenant,
    create_twilio_secret,
    use_case_spec,
)
from tests.integration.test_send_api import ISO_UTC, drain_handoff_queue, send_body
from tests.unit.test_transitions import CARRIER_SAYS, provider_may_move
from tests.unit.test_transitions import RANK as RULES_RANK
from tests.unit.test_transitions import TERMINAL as RULES_TERMINAL

PATH = "/v1/webhook/twilio/sms-status"
MESSAGE_SID = "SM" + "0" * 31 + "1"
SENDER = "+14155550100"
# API Gateway's default domain: the host a deployed callback arrives on without a custom domain.
EXECUTE_API_HOST = "abc123defg.execute-api.us-east-1.amazonaws.com"
# The error codes Twilio reports with these statuses (the simulator's magic numbers use them too).
ERROR_CODES = {"undelivered": "30003", "failed": "30007"}
TERMINAL = {"delivered", "undelivered", "failed"}


# --- helpers -----------------------------------------------------------------------------------


def new_message(tenant: Tenant, use_case: UseCase) -> str:
    """A pending message with no MessageSid yet: no handoff worker runs in these tests."""
    response = tenant.api.send(send_body(use_case))
    assert response.status == 201
    drain_handoff_queue()
    message_id: str = response.json()["id"]
    return message_id


def callback_params(account_sid: str, status: str, **extra: str) -> dict[str, str]:
    """The form Twilio posts (the fields the simulator sends, as Twilio sends them)."""
    params = {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "From": SENDER,
        "MessageSid": MESSAGE_SID,
        "MessageStatus": status,
        "SmsSid": MESSAGE_SID,
        "SmsStatus": status,
        "To": "+14155552671",
    }
    if status in ERROR_CODES:
        params["ErrorCode"] = ERROR_CODES[status]
    params.update(extra)
    return params


def sign(url: str, params: Mapping[str, str], token: str) -> str:
    signature: str = RequestValidator(token).compute_signature(url, dict(params))
    return signature


def callback_url(query: str, base: str | None = None) -> str:
    """The URL Twilio signs: the public one the handoff gives it, unless `base` says otherwise."""
    url = CALLBACK_URL if base is None else f"{base}{PATH}"
    return f"{url}?{query}" if query else url


def post(
    gateway: HttpApiGateway,
    query: str,
    params: Mapping[str, str],
    signature: str | None,
    *,
    host: str = "127.0.0.1",
    body: bytes | None = None,
) -> HttpResult:
    headers = {
        "host": host,
        "content-type": "application/x-www-form-urlencoded",
        "user-agent": "TwilioProxy/1.1",
    }
    if signature is not None:
        headers["x-twilio-signature"] = signature
    raw = urlencode(params).encode() if body is None else body
    return gateway.handle("POST", PATH, query, headers, raw)


def post_signed(
    gateway: HttpApiGateway, query: str, params: Mapping[str, str], token: str
) -> HttpResult:
    """Signed as Twilio signs: over the public callback URL with this query and these params."""
    return post(gateway, query, params, sign(callback_url(query), params, token))


def callback(
    gateway: HttpApiGateway, message_id: str, account_sid: str, status: str, **extra: str
) -> HttpResult:
    """A genuine callback for one message, signed with its subaccount's token."""
    query = urlencode({"message_id": message_id})
    params = callback_params(account_sid, status, **extra)
    return post_signed(gateway, query, params, AUTH_TOKENS[account_sid])


def get(tenant: Tenant, message_id: str) -> dict[str, Any]:
    response = tenant.api.request("GET", f"/v1/sms/{message_id}")
    assert response.status == 200
    body: dict[str, Any] = response.json()
    return body


def provider_entries(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [h for h in message["history"] if h["event"] == "provider_status"]


def assert_forbidden(result: HttpResult) -> None:
    assert result.status == 403
    assert result.headers["content-type"] == "application/json"
    assert b'"code":"forbidden"' in result.body


def stored_item(message_id: str) -> dict[str, Any] | None:
    response = aws_clients.dynamodb().get_item(
        TableName=get_settings().messages_table,
        Key={"id": {"S": message_id}},
        ConsistentRead=True,
    )
    return response.get("Item")


@pytest.fixture
def message_id(tenant: Tenant, use_case: UseCase) -> str:
    return new_message(tenant, use_case)


@pytest.fixture
def account(use_case: UseCase) -> str:
    return use_case.twilio_account_sid


# --- transitions -------------------------------------------------------------------------------


def test_sent_moves_pending_to_sent(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str
) -> None:
    result = callback(gateway, message_id, account, "sent", NumSegments="2")

    assert (result.status, result.body) == (204, b"")
    message = get(tenant, message_id)
    assert message["status"] == "sent"
    assert ISO_UTC.match(message["handed_off_at"])
    assert message["updated_at"] == message["handed_off_at"]
    assert message["delivered_at"] is message["errored_at"] is message["error_code"] is None
    # The provider's facts fill what the handoff has not stored yet; its count replaces ours.
    assert (message["message_sid"], message["from_number"]) == (MESSAGE_SID, SENDER)
    assert message["num_segments"] == 2
    assert provider_entries(message) == [
        {
            "at": message["handed_off_at"],
            "event": "provider_status",
            "status": "sent",
            "provider_status": "sent",
            "error_code": None,
            "applied": True,
        }
    ]


@pytest.mark.parametrize("provider_status", ["delivered", "read"])
def test_delivered_from_pending_sets_delivered_at_and_handed_off_at(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str, provider_status: str
) -> None:
    assert callback(gateway, message_id, account, provider_status).status == 204

    message = get(tenant, message_id)
    assert message["status"] == "delivered"
    assert ISO_UTC.match(message["delivered_at"])
    # It was never marked sent, so the delivery also tells when it was handed off.
    assert message["handed_off_at"] == message["delivered_at"]
    assert message["errored_at"] is message["error_code"] is None
    [entry] = provider_entries(message)
    assert (entry["status"], entry["provider_status"], entry["applied"]) == (
        "delivered",
        provider_status,
        True,
    )


def test_delivered_after_sent_keeps_handed_off_at(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str
) -> None:
    callback(gateway, message_id, account, "sent")
    handed_off_at = get(tenant, message_id)["handed_off_at"]

    assert callback(gateway, message_id, account, "delivered").status == 204

    message = get(tenant, message_id)
    assert message["status"] == "delivered"
    assert message["handed_off_at"] == handed_off_at
    entries = provider_entries(message)
    assert [e["applied"] for e in entries] == [True, True]
    assert message["delivered_at"] == message["updated_at"] == entries[1]["at"]
    assert message["errored_at"] is message["error_code"] is None


def test_undelivered_records_errored_at_and_the_error_code(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str
) -> None:
    callback(gateway, message_id, account, "sent")
    assert callback(gateway, message_id, account, "undelivered").status == 204

    message = get(tenant, message_id)
    assert message["status"] == "undelivered"
    assert ISO_UTC.match(message["errored_at"])
    assert message["error_code"] == 30003
    assert message["delivered_at"] is None
    sent, undelivered = provider_entries(message)
    assert message["errored_at"] == message["updated_at"] == undelivered["at"]
    assert message["handed_off_at"] == sent["at"]  # the later answer keeps the handoff time
    assert (undelivered["status"], undelivered["error_code"]) == ("undelivered", 30003)


def test_undelivered_before_sent_also_sets_handed_off_at(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str
) -> None:
    # The carrier reported on it, so it was handed off: the same state as with `sent` first.
    assert callback(gateway, message_id, account, "undelivered").status == 204

    message = get(tenant, message_id)
    assert message["status"] == "undelivered"
    assert message["handed_off_at"] == message["errored_at"]
    assert message["error_code"] == 30003


def test_failed_from_pending(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str
) -> None:
    assert callback(gateway, message_id, account, "failed").status == 204

    message = get(tenant, message_id)
    assert message["status"] == "failed"
    assert ISO_UTC.match(message["errored_at"])
    assert message["error_code"] == 30007
    assert message["handed_off_at"] is message["delivered_at"] is None


@pytest.mark.parametrize("provider_status", ["accepted", "queued", "sending", "scheduled"])
def test_statuses_that_change_nothing_are_only_recorded(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str, provider_status: str
) -> None:
    before = get(tenant, message_id)

    assert callback(gateway, message_id, account, provider_status).status == 204

    message = get(tenant, message_id)
    assert message["status"] == "pending"
    assert message["updated_at"] == before["updated_at"]
    assert message["handed_off_at"] is None
    # The facts are still worth keeping: From is the sender the Messaging Service chose.
    assert (message["message_sid"], message["from_number"]) == (MESSAGE_SID, SENDER)
    [entry] = provider_entries(message)
    assert entry["status"] is None
    assert (entry["provider_status"], entry["applied"]) == (provider_status, False)


def test_sms_status_and_sms_sid_stand_in_for_the_message_fields(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str
) -> None:
    query = urlencode({"message_id": message_id})
    params = {
        "AccountSid": account,
        "SmsSid": MESSAGE_SID,
        "SmsStatus": "DELIVERED",  # and the status is compared case-insensitively
        "ErrorCode": "not-a-number",
    }
    assert post_signed(gateway, query, params, AUTH_TOKENS[account]).status == 204

    message = get(tenant, message_id)
    assert (message["status"], message["message_sid"]) == ("delivered", MESSAGE_SID)
    assert message["from_number"] is None
    assert provider_entries(message)[0]["error_code"] is None


def test_a_callback_before_the_handoff_stored_the_sid_is_applied(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str
) -> None:
    # Twilio can call back before the handoff worker has recorded its answer: the message is
    # still pending, with no MessageSid to look it up by; the id in the URL finds it anyway.
    assert get(tenant, message_id)["message_sid"] is None

    assert callback(gateway, message_id, account, "delivered").status == 204
    message = get(tenant, message_id)
    assert (message["status"], message["message_sid"]) == ("delivered", MESSAGE_SID)

    # The handoff's late record of the acceptance does not undo the delivery.
    assert transitions.record_acceptance(message_id, clock.now_iso(), MESSAGE_SID, 1, SENDER)
    after = get(tenant, message_id)
    assert (after["status"], after["delivered_at"]) == ("delivered", message["delivered_at"])


# --- duplicates and regressions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sequence", "final"),
    [
        (["delivered", "sent"], "delivered"),
        (["delivered", "delivered"], "delivered"),
        (["delivered", "read"], "delivered"),
        (["sent", "sent"], "sent"),
        # Failed only from pending (docs/architecture.md); a message Twilio sent ends delivered or
        # undelivered.
        (["sent", "failed"], "sent"),
        (["undelivered", "delivered"], "undelivered"),
        (["failed", "sent"], "failed"),
        (["failed", "undelivered"], "failed"),
    ],
)
def test_duplicates_and_regressions_are_recorded_but_dropped(
    gateway: HttpApiGateway,
    tenant: Tenant,
    message_id: str,
    account: str,
    sequence: list[str],
    final: str,
) -> None:
    first, *rest = sequence
    callback(gateway, message_id, account, first)
    settled = get(tenant, message_id)

    for status in rest:
        assert callback(gateway, message_id, account, status).status == 204

    message = get(tenant, message_id)
    assert message["status"] == final
    # Nothing but the history moved: no timestamp, error code or updated_at was touched.
    assert {k: v for k, v in message.items() if k != "history"} == {
        k: v for k, v in settled.items() if k != "history"
    }
    entries = provider_entries(message)
    assert [e["provider_status"] for e in entries] == sequence
    assert [e["applied"] for e in entries] == [True] + [False] * len(rest)


# --- refused callbacks -------------------------------------------------------------------------


def assert_refused_and_unchanged(
    tenant: Tenant, message_id: str, before: dict[str, Any], result: HttpResult
) -> None:
    assert_forbidden(result)
    assert get(tenant, message_id) == before


def signed_post(
    gateway: HttpApiGateway,
    message_id: str,
    account: str,
    *,
    token: str | None = None,
    signed_query: str | None = None,
    sent_params: Mapping[str, str] | None = None,
) -> HttpResult:
    """Sign one thing and send another (each keyword changes one side of the request)."""
    query = urlencode({"message_id": message_id})
    params = callback_params(account, "delivered")
    signature = sign(
        callback_url(query if signed_query is None else signed_query),
        params,
        AUTH_TOKENS[account] if token is None else token,
    )
    return post(gateway, query, params if sent_params is None else sent_params, signature)


def test_missing_signature_is_refused(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str
) -> None:
    before = get(tenant, message_id)
    query = urlencode({"message_id": message_id})
    result = post(gateway, query, callback_params(account, "delivered"), None)
    assert_refused_and_unchanged(tenant, message_id, before, result)


@pytest.mark.parametrize("signature", ["", "not base64 at all", "é" * 28, "A" * 28])
def test_malformed_signature_is_refused(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str, signature: str
) -> None:
    before = get(tenant, message_id)
    query = urlencode({"message_id": message_id})
    result = post(gateway, query, callback_params(account, "delivered"), signature)
    assert_refused_and_unchanged(tenant, message_id, before, result)


def test_signature_with_the_wrong_token_is_refused(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str
) -> None:
    before = get(tenant, message_id)
    result = signed_post(gateway, message_id, account, token=uuid.uuid4().hex)
    assert_refused_and_unchanged(tenant, message_id, before, result)


@pytest.mark.parametrize(
    "tampering",
    [
        {"MessageStatus": "undelivered"},
        {"ErrorCode": "30003"},
        {"From": "+14155550199"},
    ],
)
def test_tampered_parameter_is_refused(
    gateway: HttpApiGateway,
    tenant: Tenant,
    message_id: str,
    account: str,
    tampering: dict[str, str],
) -> None:
    before = get(tenant, message_id)
    sent = {**callback_params(account, "delivered"), **tampering}
    result = signed_post(gateway, message_id, account, sent_params=sent)
    assert_refused_and_unchanged(tenant, message_id, before, result)


def test_signature_over_another_messages_url_is_refused(
    gateway: HttpApiGateway, tenant: Tenant, use_case: UseCase, message_id: str, account: str
) -> None:
    # A genuine callback for one message, replayed onto another message's URL.
    other_id = new_message(tenant, use_case)
    before, other_before = get(tenant, message_id), get(tenant, other_id)

    result = signed_post(
        gateway, message_id, account, signed_query=urlencode({"message_id": other_id})
    )

    assert_refused_and_unchanged(tenant, message_id, before, result)
    assert get(tenant, other_id) == other_before


def test_signature_over_the_request_host_is_refused_when_a_public_url_is_set(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str
) -> None:
    # With PUBLIC_BASE_URL configured, the Host header plays no part in what was signed.
    before = get(tenant, message_id)
    query = urlencode({"message_id": message_id})
    params = callback_params(account, "delivered")
    url = callback_url(query, base=f"https://{EXECUTE_API_HOST}")
    result = post(
        gateway, query, params, sign(url, params, AUTH_TOKENS[account]), host=EXECUTE_API_HOST
    )
    assert_refused_and_unchanged(tenant, message_id, before, result)


def test_unknown_account_is_refused(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str
) -> None:
    # Well-formed and correctly signed with some token, but no secret exists for the account.
    before = get(tenant, message_id)
    stranger = "AC" + uuid.uuid4().hex
    query = urlencode({"message_id": message_id})
    params = callback_params(stranger, "delivered")
    result = post(gateway, query, params, sign(callback_url(query), params, uuid.uuid4().hex))
    assert_refused_and_unchanged(tenant, message_id, before, result)


@pytest.mark.parametrize("account_sid", [None, "", "AC123", "../admin/AC" + "0" * 32])
def test_missing_or_malformed_account_sid_is_refused(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str, account_sid: str | None
) -> None:
    before = get(tenant, message_id)
    query = urlencode({"message_id": message_id})
    params = callback_params(account, "delivered")
    if account_sid is None:
        del params["AccountSid"]
    else:
        params["AccountSid"] = account_sid
    result = post_signed(gateway, query, params, AUTH_TOKENS[account])
    assert_refused_and_unchanged(tenant, message_id, before, result)


@pytest.mark.parametrize("body", [b"", b"\xff\xfe not utf-8"])
def test_empty_or_undecodable_body_is_refused(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str, body: bytes
) -> None:
    before = get(tenant, message_id)
    query = urlencode({"message_id": message_id})
    signature = sign(callback_url(query), {}, AUTH_TOKENS[account])
    result = post(gateway, query, {}, signature, body=body)
    assert_refused_and_unchanged(tenant, message_id, before, result)


def test_another_use_cases_account_cannot_move_the_message(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str
) -> None:
    # The other subaccount's token signs correctly, so the request is Twilio's and answered 204;
    # but the message was sent through another subaccount, and transitions only lets that one
    # move it (or even add to its history): nothing changes.
    other = create_use_case(tenant.workspace_id, use_case_spec())
    create_twilio_secret(other.twilio_account_sid)
    before = get(tenant, message_id)

    result = callback(gateway, message_id, other.twilio_account_sid, "delivered")

    assert (result.status, result.body) == (204, b"")
    assert get(tenant, message_id) == before


# --- acknowledged and ignored ------------------------------------------------------------------


def test_unknown_message_is_acknowledged_and_nothing_is_created(
    gateway: HttpApiGateway, account: str
) -> None:
    unknown = str(uuid.uuid4())
    assert callback(gateway, unknown, account, "delivered").status == 204
    # The update is conditional on the item existing: a callback never creates a message.
    assert stored_item(unknown) is None


@pytest.mark.parametrize(
    "query",
    [
        "",
        "message_id=not-a-uuid",
        "message_id=",
        "other=1",
        "message_id={id}&message_id={id}",
    ],
)
def test_callback_without_one_valid_message_id_is_acknowledged(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str, query: str
) -> None:
    query = query.format(id=message_id)
    before = get(tenant, message_id)
    params = callback_params(account, "delivered")
    result = post_signed(gateway, query, params, AUTH_TOKENS[account])
    assert (result.status, result.body) == (204, b"")
    assert get(tenant, message_id) == before


def test_callback_without_a_status_is_acknowledged(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str
) -> None:
    before = get(tenant, message_id)
    query = urlencode({"message_id": message_id})
    params = {"AccountSid": account, "MessageSid": MESSAGE_SID}
    result = post_signed(gateway, query, params, AUTH_TOKENS[account])
    assert result.status == 204
    assert get(tenant, message_id) == before


# --- how the request arrives -------------------------------------------------------------------


def test_plain_text_body_is_accepted(tenant: Tenant, message_id: str, account: str) -> None:
    # The gateway base64-encodes form bodies (as API Gateway does for non-text content types);
    # the handler must read the form the same way when an event carries it as plain text.
    query = urlencode({"message_id": message_id})
    params = callback_params(account, "sent")
    event = http_events.http_event(
        method="POST",
        raw_path=PATH,
        raw_query=query,
        headers={
            "host": "127.0.0.1",
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": sign(callback_url(query), params, AUTH_TOKENS[account]),
        },
        route_key=f"POST {PATH}",
    )
    event["body"] = urlencode(params)
    event["isBase64Encoded"] = False
    spec = tpl.functions(tpl.project_template())["StatusCallbackFunction"]

    result = lambda_runtime.invoke(spec, event)

    assert result["statusCode"] == 204
    assert get(tenant, message_id)["status"] == "sent"


@pytest.fixture
def no_public_base_url() -> Iterator[None]:
    """PUBLIC_BASE_URL empty, as in a stack deployed without a custom domain."""
    saved = os.environ["PUBLIC_BASE_URL"]
    os.environ["PUBLIC_BASE_URL"] = ""
    config.reset_settings()
    try:
        yield
    finally:
        os.environ["PUBLIC_BASE_URL"] = saved
        config.reset_settings()


@pytest.mark.usefixtures("no_public_base_url")
def test_without_a_public_base_url_the_execute_api_domain_is_signed(
    gateway: HttpApiGateway, tenant: Tenant, message_id: str, account: str
) -> None:
    query = urlencode({"message_id": message_id})
    params = callback_params(account, "sent")
    token = AUTH_TOKENS[account]

    # What the handoff then gives Twilio is the default execute-api URL: the request's domain.
    public = sign(callback_url(query), params, token)
    assert_forbidden(post(gateway, query, params, public, host=EXECUTE_API_HOST))
    default = sign(callback_url(query, base=f"https://{EXECUTE_API_HOST}"), params, token)
    assert post(gateway, query, params, default, host=EXECUTE_API_HOST).status == 204

    assert get(tenant, message_id)["status"] == "sent"


def test_the_logic_raises_the_domain_error_the_route_maps_to_403(
    message_id: str, account: str
) -> None:
    before = stored_item(message_id)
    with pytest.raises(ForbiddenError):
        status_updates.handle_status_callback(
            providers.TWILIO,
            CallbackRequest(
                body=urlencode(callback_params(account, "delivered")),
                raw_query=urlencode({"message_id": message_id}),
                domain_name="127.0.0.1",
                headers={"x-twilio-signature": "bogus"},
            ),
        )
    assert stored_item(message_id) == before


# --- any order, any duplication ----------------------------------------------------------------
# The expectation comes from the status machine's rules as docs/architecture.md states them
# (tests.unit.test_transitions writes them down without the module's tables), never from running
# the same callbacks through the gateway in another order.

# Every MessageStatus Twilio reports in an outbound message's callbacks.
TWILIO_STATUSES = (
    "accepted", "scheduled", "queued", "sending", "sent", "delivered", "read", "undelivered",
    "failed", "canceled", "partially_delivered",
)  # fmt: skip


@dataclass(frozen=True)
class Callback:
    status: str
    num_segments: int | None = None  # NumSegments, when the callback carries it


def deliver_all(
    gateway: HttpApiGateway, tenant: Tenant, use_case: UseCase, order: list[Callback]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A new message, these callbacks one after the other, checking after each that the status
    never went back down a message's life; the message, and its provider entries in order."""
    message_id = new_message(tenant, use_case)
    account = use_case.twilio_account_sid
    status = "pending"
    for arriving in order:
        extra = {} if arriving.num_segments is None else {"NumSegments": str(arriving.num_segments)}
        assert callback(gateway, message_id, account, arriving.status, **extra).status == 204
        # A strongly consistent read of the item: cheaper than a GET per step, same data.
        item = stored_item(message_id)
        assert item is not None
        now = item["status"]["S"]
        if status in RULES_TERMINAL:
            assert now == status, f"{status} left after {arriving} in {order}"
        elif now != status:
            assert RULES_RANK[now] > RULES_RANK[status], f"{status} -> {now} in {order}"
        status = now
    message = get(tenant, message_id)
    entries = provider_entries(message)
    assert [e["provider_status"] for e in entries] == [c.status for c in order]
    return message, entries


def assert_follows_the_rules(message: dict[str, Any], order: list[Callback]) -> None:
    """Fold the callbacks, in the order they arrived, through the rules; compare every field."""
    entries = provider_entries(message)
    status = "pending"
    set_by: dict[str, int] = {}  # field -> the callback (index) whose arrival set it
    error_code = None
    segments = None
    applied: list[bool] = []
    for index, arriving in enumerate(order):
        target = CARRIER_SAYS.get(arriving.status)
        moves = target is not None and provider_may_move(status, target)
        applied.append(moves)
        if arriving.num_segments is not None:
            segments = arriving.num_segments  # Twilio's count replaces our own, applied or not
        if not moves:
            continue
        assert target is not None
        status = target
        set_by["updated_at"] = index
        if target == "sent":
            set_by["handed_off_at"] = index
        elif target == "delivered":
            set_by["delivered_at"] = index
            set_by.setdefault("handed_off_at", index)
        else:
            set_by["errored_at"] = index
            error_code = int(ERROR_CODES[arriving.status])
            if target == "undelivered":
                set_by.setdefault("handed_off_at", index)

    assert message["status"] == status
    assert message["error_code"] == error_code
    assert message["num_segments"] == segments
    for field in ("handed_off_at", "delivered_at", "errored_at"):
        expected = entries[set_by[field]]["at"] if field in set_by else None
        assert message[field] == expected, field
    created_at = message["history"][0]["at"]
    assert message["updated_at"] == (
        entries[set_by["updated_at"]]["at"] if "updated_at" in set_by else created_at
    )
    # Every callback is in the history, in order, with what it did.
    assert [e["applied"] for e in entries] == applied
    assert [e["status"] for e in entries] == [
        CARRIER_SAYS[c.status] if moved else None for c, moved in zip(order, applied, strict=True)
    ]
    assert [e["error_code"] for e in entries] == [
        int(ERROR_CODES[c.status]) if c.status in ERROR_CODES else None for c in order
    ]
    # Every callback carries the MessageSid and From: the first one fills them in.
    assert (message["message_sid"], message["from_number"]) == (MESSAGE_SID, SENDER)


def reproducible(max_examples: int) -> settings:
    """derandomize and no database: the same examples on every run, so a failure reproduces."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


callbacks = st.builds(
    Callback,
    # Half the draws among the statuses that can move ours, so that most orders test a rule.
    status=st.sampled_from(tuple(CARRIER_SAYS)) | st.sampled_from(TWILIO_STATUSES),
    num_segments=st.none() | st.integers(1, 4),
)


def calls(*statuses: str) -> list[Callback]:
    return [Callback(s) for s in statuses]


@reproducible(max_examples=30)
@given(order=st.lists(callbacks, min_size=1, max_size=6))
# Each refusal of the rules, tried on every run whatever the draws: failed after sent, and each
# terminal status followed by every status that could have moved it.
@example(order=calls("queued", "sent", "failed"))
@example(order=calls("delivered", "undelivered", "failed", "sent", "read"))
@example(order=calls("undelivered", "delivered", "read", "failed", "sent"))
@example(order=calls("failed", "delivered", "undelivered", "sent", "read"))
@example(order=calls("sent", "sent", "read", "delivered"))
def test_any_callbacks_in_any_order_end_as_the_status_machine_says(
    gateway: HttpApiGateway, tenant: Tenant, use_case: UseCase, order: list[Callback]
) -> None:
    message, _ = deliver_all(gateway, tenant, use_case, order)

    assert_follows_the_rules(message, order)


# What Twilio reports for one message, whatever the order: the statuses of each way a message's
# life can go, and where it must end, with the fields that ending sets.
LIFECYCLES: dict[str, tuple[tuple[str, ...], str]] = {
    "delivered": (("accepted", "queued", "sending", "sent", "delivered"), "delivered"),
    "read": (("accepted", "queued", "sending", "sent", "delivered", "read"), "delivered"),
    "undelivered": (("accepted", "queued", "sending", "sent", "undelivered"), "undelivered"),
    "failed": (("accepted", "queued", "failed"), "failed"),
    "still sent": (("accepted", "queued", "sending", "sent"), "sent"),
    "still queued": (("accepted", "scheduled", "queued", "sending"), "pending"),
}


def shuffled_with_duplicates(statuses: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    """Every status of the life at least once, some more than once, in any order."""
    return st.lists(st.sampled_from(statuses), max_size=3).flatmap(
        lambda extra: st.permutations([*statuses, *extra])
    )


@pytest.mark.parametrize("life", list(LIFECYCLES))
@reproducible(max_examples=8)
@given(data=st.data())
def test_a_messages_callbacks_in_any_order_end_in_its_final_status(
    gateway: HttpApiGateway, tenant: Tenant, use_case: UseCase, life: str, data: st.DataObject
) -> None:
    statuses, final = LIFECYCLES[life]
    order = data.draw(shuffled_with_duplicates(statuses), label="order")

    message, entries = deliver_all(gateway, tenant, use_case, [Callback(s) for s in order])

    assert message["status"] == final
    handed_off = final in ("sent", "delivered", "undelivered")
    assert (message["handed_off_at"] is not None) == handed_off
    assert (message["delivered_at"] is not None) == (final == "delivered")
    assert (message["errored_at"] is not None) == (final in ("undelivered", "failed"))
    assert message["error_code"] == {"undelivered": 30003, "failed": 30007}.get(final)
    if final in ("delivered", "undelivered"):
        # handed off no later than the carrier's answer, even when `sent` came after it
        assert message["handed_off_at"] <= (message["delivered_at"] or message["errored_at"])
    # Exactly one callback ended it (the first of its final status to arrive); pending and sent
    # were reached by at most one each.
    moved = [e["status"] for e in entries if e["applied"]]
    assert moved.count(final) == (0 if final == "pending" else 1)
    assert len(moved) == len(set(moved))
    assert all(e["status"] is None for e in entries if not e["applied"])


# --- concurrent callbacks ----------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_callbacks_settle_on_one_terminal_state(
    tenant: Tenant, message_id: str, account: str, round_: int
) -> None:
    # Eight callbacks at once for one message. Each thread runs the callback logic itself (the
    # signature check and the conditional writes against moto's server): Powertools' resolver
    # keeps the current event in a class attribute, so its handlers are not safe to run on
    # several threads of one process (Lambda never does).
    statuses = ["delivered", "undelivered", "sent", "delivered", "undelivered", "sent",
                "delivered", "undelivered"]  # fmt: skip
    query = urlencode({"message_id": message_id})
    token = AUTH_TOKENS[account]
    barrier = threading.Barrier(len(statuses))
    errors: list[BaseException] = []

    def fire(status: str) -> None:
        params = callback_params(account, status)
        body = urlencode(params)
        signature = sign(callback_url(query), params, token)
        barrier.wait()
        try:
            status_updates.handle_status_callback(
                providers.TWILIO,
                CallbackRequest(
                    body=body,
                    raw_query=query,
                    domain_name="127.0.0.1",
                    headers={"x-twilio-signature": signature},
                ),
            )
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=fire, args=(s,)) for s in statuses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)  # bounds a failure only
    # A callback still running would make the assertions below look at a state not yet final.
    assert not [t for t in threads if t.is_alive()]
    assert errors == []

    message = get(tenant, message_id)
    entries = provider_entries(message)
    assert len(entries) == len(statuses)  # every callback is in the history
    terminal = [e for e in entries if e["applied"] and e["status"] in TERMINAL]
    assert len(terminal) == 1
    assert message["status"] == terminal[0]["status"]
    assert message["handed_off_at"] is not None
    if message["status"] == "delivered":
        assert message["delivered_at"] is not None
        assert message["errored_at"] is message["error_code"] is None
    else:
        assert message["status"] == "undelivered"
        assert message["errored_at"] is not None and message["error_code"] == 30003
        assert message["delivered_at"] is None
    assert sum(e["applied"] and e["status"] == "sent" for e in entries) <= 1


# --- auth token rotation -----------------------------------------------------------------------


class FrozenClock:
    """A monotonic clock that moves only when told, so no assertion depends on elapsed time."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock_for_fresh_reads(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    frozen = FrozenClock()
    limiter = status_callback.FreshReadLimiter(
        status_callback.FRESH_READ_INTERVAL_SECONDS, clock=frozen
    )
    monkeypatch.setattr(status_callback, "fresh_reads", limiter)
    return frozen


@pytest.fixture
def secret_reads(account: str) -> Iterator[list[str]]:
    """The SecretId of every GetSecretValue call made from now on: real calls to moto, counted
    on the client the token provider uses."""
    secrets.reset()  # the next provider is built on the client counted here
    reads: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        reads.append(params["SecretId"])

    events = aws_clients.secretsmanager().meta.events
    events.register(
        "before-parameter-build.secrets-manager.GetSecretValue", record, unique_id="reads"
    )
    yield reads
    events.unregister("before-parameter-build.secrets-manager.GetSecretValue", unique_id="reads")


def rotate_token(account: str) -> str:
    """What an operator does after rotating the subaccount's auth token in Twilio."""
    token = uuid.uuid4().hex
    aws_clients.secretsmanager().put_secret_value(
        SecretId=provider_credentials.secret_name_for_account(account), SecretString=token
    )
    AUTH_TOKENS[account] = token
    return token


def forged(gateway: HttpApiGateway, message_id: str, account: str) -> HttpResult:
    return signed_post(gateway, message_id, account, token=uuid.uuid4().hex)


@pytest.mark.usefixtures("clock_for_fresh_reads")
def test_a_callback_signed_with_a_rotated_token_is_applied(
    gateway: HttpApiGateway,
    tenant: Tenant,
    message_id: str,
    account: str,
    secret_reads: list[str],
) -> None:
    secret = provider_credentials.secret_name_for_account(account)
    assert callback(gateway, message_id, account, "sent").status == 204
    assert secret_reads == [secret]  # read once, then cached
    rotate_token(account)

    # Twilio now signs with the new token while the old one is still cached.
    result = callback(gateway, message_id, account, "delivered")

    assert (result.status, result.body) == (204, b"")
    assert get(tenant, message_id)["status"] == "delivered"
    assert secret_reads == [secret, secret]  # one read past the cache
    # The fresh token is cached from then on.
    assert callback(gateway, message_id, account, "read").status == 204
    assert secret_reads == [secret, secret]


def test_forgeries_after_a_rotation_are_refused_without_rereading_the_secret(
    gateway: HttpApiGateway,
    tenant: Tenant,
    message_id: str,
    account: str,
    secret_reads: list[str],
    clock_for_fresh_reads: FrozenClock,
) -> None:
    assert callback(gateway, message_id, account, "sent").status == 204
    rotate_token(account)
    assert callback(gateway, message_id, account, "delivered").status == 204
    reads_after_rotation = len(secret_reads)
    before = get(tenant, message_id)

    for _ in range(5):
        assert_forbidden(forged(gateway, message_id, account))

    assert len(secret_reads) == reads_after_rotation
    assert get(tenant, message_id) == before
    # Once the interval has passed, a mismatch may look again, once.
    clock_for_fresh_reads.now += status_callback.FRESH_READ_INTERVAL_SECONDS
    for _ in range(3):
        assert_forbidden(forged(gateway, message_id, account))
    assert len(secret_reads) == reads_after_rotation + 1


def test_a_forgery_before_any_rotation_costs_one_read_per_interval(
    gateway: HttpApiGateway,
    tenant: Tenant,
    message_id: str,
    account: str,
    secret_reads: list[str],
    clock_for_fresh_reads: FrozenClock,
) -> None:
    before = get(tenant, message_id)

    for _ in range(5):
        assert_forbidden(forged(gateway, message_id, account))

    # The cache's read, and one read past it to rule out a rotation: not one per forgery.
    assert len(secret_reads) == 2
    assert get(tenant, message_id) == before
    # A genuine callback still verifies against the (unchanged) cached token.
    assert callback(gateway, message_id, account, "sent").status == 204
    assert len(secret_reads) == 2
