"""End to end: the local stack over HTTP, as a caller and as Twilio reach it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from sms_gateway.logic.scheduling import SEND_NOW_WITHIN
from tests.e2e.conftest import Client, Stack, http

MOBILE = "+12025550143"
# Numbers no other test sends to, so what Twilio accepted for them is this test's alone.
IDEMPOTENCY_TO = "+12025552001"
SCHEDULED_TO = "+12025552002"
# How much later than the earliest scheduled time a scheduled send asks for: time enough for the
# request to reach the send function on a slow machine, which would otherwise send it at once.
SCHEDULING_MARGIN = timedelta(seconds=30)


def send(client: Client, use_case_id: str, to: str, message: str = "Your code is 123456") -> Any:
    reply = client.request(
        "POST",
        "/v1/sms/",
        {"use_case_id": use_case_id, "to_phone_number": to, "message": message},
    )
    assert reply.status == 201, reply.body
    return reply.json()


def create_use_case(stack: Stack, **overrides: Any) -> str:
    admin = stack.client("admin")
    current = admin.request("GET", f"/v1/sms/use-cases/{stack.info['use_case_id']}").json()
    spec = {
        k: v for k, v in current.items() if k not in {"id", "created_at", "updated_at"}
    } | overrides
    reply = admin.request("POST", "/v1/sms/use-cases", spec)
    assert reply.status == 201, reply.body
    return str(reply.json()["id"])


def test_send_is_delivered_from_the_geomatched_sender(stack: Stack) -> None:
    client = stack.client()
    sent = send(client, stack.info["use_case_id"], "+13125552671")
    assert sent["status"] == "pending"
    final = client.wait_for(sent["id"], {"delivered", "undelivered", "failed"})
    assert final["status"] == "delivered"
    assert final["from_number"] == "+13125550100"  # Chicago recipient, Chicago sender
    assert final["num_segments"] == 1
    assert final["handed_off_at"] <= final["delivered_at"]


def test_long_unicode_message_counts_segments(stack: Stack) -> None:
    client = stack.client()
    sent = send(client, stack.info["use_case_id"], MOBILE, "Привет " * 20)  # 140 chars, UCS-2
    final = client.wait_for(sent["id"], {"delivered"})
    assert final["num_segments"] == 3


@pytest.mark.parametrize(
    ("to", "status", "code"),
    [
        ("+14155550030", "undelivered", 30003),
        ("+14155550031", "undelivered", 30005),
        ("+14155550050", "failed", 30007),
        ("+15005550003", "failed", 21408),
        ("+15005550001", "failed", 21211),
    ],
)
def test_unsuccessful_outcomes_carry_their_error_codes(
    stack: Stack, to: str, status: str, code: int
) -> None:
    client = stack.client()
    sent = send(client, stack.info["use_case_id"], to)
    final = client.wait_for(sent["id"], {"delivered", "undelivered", "failed"})
    assert (final["status"], final["error_code"]) == (status, code)
    assert final["errored_at"] is not None
    assert final["delivered_at"] is None


def provider_statuses(message: dict[str, Any]) -> list[str]:
    """The provider statuses the message's callbacks reported, in the order they landed."""
    return [h["provider_status"] for h in message["history"] if h["event"] == "provider_status"]


def test_a_route_without_receipts_rests_at_sent(stack: Stack) -> None:
    client = stack.client()
    sent = send(client, stack.info["use_case_id"], "+14155550040")
    # Twilio's callbacks for this route are queued and sent, then nothing: once both landed,
    # no callback is left to come.
    final = client.wait_until(sent["id"], lambda m: len(provider_statuses(m)) == 2)
    assert sorted(provider_statuses(final)) == ["queued", "sent"]
    assert final["status"] == "sent"
    assert final["delivered_at"] is None and final["handed_off_at"] is not None


def test_send_api_errors(stack: Stack) -> None:
    client = stack.client()
    use_case = stack.info["use_case_id"]

    def code_of(payload: Any, who: Client = client) -> tuple[int, str]:
        reply = who.request("POST", "/v1/sms/", payload)
        return reply.status, reply.json()["error"]["code"]

    body = {"use_case_id": use_case, "to_phone_number": MOBILE, "message": "hi"}
    assert code_of({**body, "use_case_id": str(uuid.uuid4())}) == (404, "use_case_not_found")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"active": False}, "use_case_inactive"),
        ({"sender_pool": []}, "no_sender_in_pool"),
        ({"a2p_campaign_status": "pending"}, "a2p_campaign_not_verified"),
        ({"brand_status": "suspended"}, "brand_suspended"),
    ]
    for overrides, code in cases:
        broken = create_use_case(stack, **overrides)
        assert code_of({**body, "use_case_id": broken}) == (422, code)
    assert code_of({**body, "to_phone_number": "+1999"}) == (422, "phone_invalid")
    assert code_of({**body, "to_phone_number": "+442071838750"}) == (422, "phone_landline")
    assert code_of({**body, "to_phone_number": "+33612345678"}) == (422, "region_not_permitted")
    assert code_of({**body, "message": ""}) == (422, "validation_error")
    assert code_of({**body, "extra": 1}) == (422, "validation_error")
    # Twilio's 21610 (unsubscribed) puts the number on the opt-out list
    sent = send(client, use_case, "+15005550004")
    assert client.wait_for(sent["id"], {"failed"})["error_code"] == 21610
    # (the callback that failed the message writes the opt-out just after: poll, don't race)
    unsubscribed = {**body, "to_phone_number": "+15005550004"}
    assert eventually(lambda: code_of(unsubscribed), (422, "recipient_opted_out"))
    # Keys
    assert client.__class__(stack.api_url, None).request("POST", "/v1/sms/", body).status == 401
    assert code_of(body, Client(stack.api_url, "sk_live_" + "x" * 43)) == (401, "unauthorized")
    forbidden = stack.client("test").request("GET", "/v1/sms/use-cases")
    assert (forbidden.status, forbidden.json()["error"]["code"]) == (403, "forbidden")


def test_duplicated_and_reordered_callbacks_end_in_the_right_state(stack: Stack) -> None:
    client = stack.client()
    stack.simulator(duplicate_callbacks=True, reorder_callbacks=True)
    try:
        delivered = send(client, stack.info["use_case_id"], MOBILE)
        undelivered = send(client, stack.info["use_case_id"], "+14155550030")
        final = client.wait_for(delivered["id"], {"delivered"})
        bad = client.wait_for(undelivered["id"], {"undelivered"})
    finally:
        stack.simulator(duplicate_callbacks=False, reorder_callbacks=False)
    assert final["status"] == "delivered" and final["handed_off_at"] <= final["delivered_at"]
    assert (bad["status"], bad["error_code"]) == ("undelivered", 30003)
    # Once every late, duplicated callback has landed (queued, sent, delivered, each twice),
    # nothing moved backwards.
    later = client.wait_until(delivered["id"], lambda m: len(provider_statuses(m)) == 6)
    assert sorted(provider_statuses(later)) == sorted(["queued", "sent", "delivered"] * 2)
    assert later["status"] == "delivered"
    provider_events = [h for h in later["history"] if h["event"] == "provider_status"]
    assert sum(1 for h in provider_events if h["applied"]) == 1  # sent after delivered is dropped


def twilio_signature(url: str, params: dict[str, str], token: str) -> str:
    payload = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    digest = hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def test_forged_callback_is_refused_and_changes_nothing(stack: Stack) -> None:
    client = stack.client()
    sent = send(client, stack.info["use_case_id"], "+14155550040")
    before = client.wait_for(sent["id"], {"sent"})
    url = f"{stack.api_url}/v1/webhook/twilio/sms-status?message_id={sent['id']}"
    params = {
        "AccountSid": stack.info["twilio"]["account_sid"],
        "MessageSid": before["message_sid"],
        "MessageStatus": "delivered",
    }
    form = urlencode(params).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    bad_signature = twilio_signature(url, params, "not-the-token")
    forged = http("POST", url, body=form, headers={**headers, "X-Twilio-Signature": bad_signature})
    missing = http("POST", url, body=form, headers=headers)
    assert forged.status == missing.status == 403
    assert client.request("GET", f"/v1/sms/{sent['id']}").json()["status"] == "sent"
    # The same callback signed with the subaccount's token is applied.
    genuine = twilio_signature(url, params, stack.info["twilio"]["auth_token"])
    accepted = http("POST", url, body=form, headers={**headers, "X-Twilio-Signature": genuine})
    assert accepted.status == 204
    assert client.request("GET", f"/v1/sms/{sent['id']}").json()["status"] == "delivered"


def test_idempotency_key_retry_sends_once(stack: Stack) -> None:
    client = stack.client()
    key = {"Idempotency-Key": f"e2e-{uuid.uuid4()}"}
    body = {
        "use_case_id": stack.info["use_case_id"],
        "to_phone_number": IDEMPOTENCY_TO,
        "message": "k",
    }
    first = client.request("POST", "/v1/sms/", body, key)
    again = client.request("POST", "/v1/sms/", body, key)
    assert first.status == again.status == 201
    assert first.json()["id"] == again.json()["id"]
    final = client.wait_for(first.json()["id"], {"delivered"})
    assert [m["sid"] for m in stack.sent_to(IDEMPOTENCY_TO)] == [final["message_sid"]]
    other = client.request("POST", "/v1/sms/", {**body, "message": "other"}, key)
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_list_and_pagination(stack: Stack) -> None:
    client = stack.client()
    use_case = create_use_case(stack)
    ids = [send(client, use_case, MOBILE, f"n{i}")["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        query = urlencode(
            {"use_case_id": use_case, "limit": 2, **({"cursor": cursor} if cursor else {})}
        )
        page = client.request("GET", f"/v1/sms/?{query}").json()
        seen.extend(m["id"] for m in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))


def test_openapi_document_is_served(stack: Stack) -> None:
    reply = http("GET", f"{stack.api_url}/openapi.json")
    assert reply.status == 200
    assert "/v1/sms/" in json.loads(reply.body)["paths"]


def test_scheduled_message_is_delivered_after_its_time_and_a_canceled_one_never_sent(
    stack: Stack,
) -> None:
    client = stack.client()
    # A send_at within SEND_NOW_WITHIN is sent at once: ask for the earliest scheduled time plus
    # a margin for the request's way to the send function.
    lead = SEND_NOW_WITHIN + SCHEDULING_MARGIN
    send_at = (datetime.now(UTC) + lead).isoformat(timespec="seconds")
    body = {"use_case_id": stack.info["use_case_id"], "to_phone_number": SCHEDULED_TO}
    kept = client.request("POST", "/v1/sms/", {**body, "message": "hi", "send_at": send_at})
    dropped = client.request("POST", "/v1/sms/", {**body, "message": "no", "send_at": send_at})
    assert kept.json()["status"] == dropped.json()["status"] == "scheduled"
    canceled = client.request("POST", f"/v1/sms/{dropped.json()['id']}/cancel")
    assert (canceled.status, canceled.json()["status"]) == (200, "canceled")

    timeout = (lead + timedelta(minutes=1)).total_seconds()
    final = client.wait_for(kept.json()["id"], {"delivered"}, timeout=timeout)
    assert final["status"] == "delivered"
    assert final["handed_off_at"] >= kept.json()["send_at"]
    never_sent = client.request("GET", f"/v1/sms/{dropped.json()['id']}").json()
    assert (never_sent["status"], never_sent["message_sid"]) == ("canceled", None)
    assert [m["sid"] for m in stack.sent_to(SCHEDULED_TO)] == [final["message_sid"]]


def eventually(read: Callable[[], Any], expected: Any, timeout: float = 15.0) -> bool:
    """Whether `read()` gives `expected` before the deadline (checked every 50 ms)."""
    deadline = time.monotonic() + timeout
    while read() != expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_templated_send_from_a_sender_id_is_previewed_then_delivered_from_it(
    stack: Stack,
) -> None:
    """GB accepts alphanumeric senders: the simulated Twilio gets the sender ID as From."""
    admin, client = stack.client("admin"), stack.client()
    slug = f"e2e-{uuid.uuid4().hex[:8]}"
    created = admin.request(
        "POST", "/v1/sms/templates", {"slug": slug, "body": "Hi {{name}}, code {{code}}"}
    )
    registered = admin.request("POST", "/v1/sms/sender-ids", {"sender_id": "DemoCo"})
    body = {
        "use_case_id": stack.info["use_case_id"],
        "to_phone_number": "+447400123456",
        "template": slug,
        "variables": {"name": "Ann", "code": "42"},
        "sender_id": "DemoCo",
        "external_id": slug,
    }
    preview = client.request("POST", "/v1/sms/preview", body)
    sent = client.request("POST", "/v1/sms/", body)

    assert created.status == 201, created.body
    assert registered.status in (201, 409), registered.body
    assert preview.status == 200 and sent.status == 201, (preview.body, sent.body)
    assert preview.json()["body"] == sent.json()["body"] == "Hi Ann, code 42"
    assert (sent.json()["sender_id_applied"], sent.json()["encoding"]) == (True, "GSM7")
    final = client.wait_for(sent.json()["id"], {"delivered", "undelivered", "failed"})
    assert (final["status"], final["from_number"]) == ("delivered", "DemoCo")
    listed = client.request("GET", f"/v1/sms/?external_id={slug}").json()["items"]
    assert [m["id"] for m in listed] == [sent.json()["id"]]
