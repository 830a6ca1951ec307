"""End to end: a phone answers through the simulator (POST /_simulator/inbound posts Twilio's
signed incoming-message webhook to the local stack). A STOP refuses the next send and a START
lifts it; a reply shows in GET /v1/sms/inbound linked to the message it answers, and is
forwarded by webhook (verified with the Standard Webhooks library), by SMS (in the message list)
and by email (in moto's SES)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.e2e.conftest import Stack, http

PATIENCE_SECONDS = 60


def answer(stack: Stack, person: str, sender: str, body: str) -> dict[str, Any]:
    """The person texts `body` to our `sender`; the simulator's account of the webhook."""
    reply = http(
        "POST",
        f"{stack.info['simulator_url']}/_simulator/inbound",
        body=json.dumps({"from": person, "to": sender, "body": body}).encode(),
    )
    assert reply.status == 200, reply.body
    result: dict[str, Any] = reply.json()
    assert [a["http_status"] for a in result["attempts"]] == [200], result
    assert result["attempts"][0]["body"] == "<Response/>"
    return result


def eventually[T](probe: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.2)


def send(stack: Stack, to: str, **fields: Any) -> dict[str, Any]:
    client = stack.client()
    reply = client.request(
        "POST",
        "/v1/sms/",
        {
            "use_case_id": stack.info["use_case_id"],
            "to_phone_number": to,
            "message": "Hi",
            **fields,
        },
    )
    assert reply.status == 201, reply.body
    return client.wait_for(reply.json()["id"], {"delivered"}, timeout=PATIENCE_SECONDS)


def a_person() -> str:
    return f"+1212555{uuid.uuid4().int % 9000 + 1000:04d}"


def test_stop_refuses_the_next_send_and_start_lifts_it(stack: Stack) -> None:
    person = a_person()
    delivered = send(stack, person)
    client = stack.client()

    answer(stack, person, delivered["from_number"], "STOP")

    refused = client.request(
        "POST",
        "/v1/sms/",
        {"use_case_id": stack.info["use_case_id"], "to_phone_number": person, "message": "Hi"},
    )
    assert refused.status == 422
    assert refused.json()["error"]["code"] == "recipient_opted_out"

    answer(stack, person, delivered["from_number"], "start")

    assert send(stack, person)["status"] == "delivered"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with lock:
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sms/replies", received
    server.shutdown()
    server.server_close()


def test_a_reply_is_linked_and_forwarded_three_ways(
    stack: Stack, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = receiver
    person, colleague = a_person(), a_person()
    inbox = f"desk-{uuid.uuid4().hex[:8]}@example.com"
    client = stack.client()
    delivered = send(
        stack,
        person,
        reply_forwarding={"webhook_url": url, "to_sms": colleague, "to_email": inbox},
    )

    answer(stack, person, delivered["from_number"], "Can we move it to 3pm?")

    # Linked to the message it answers.
    def the_reply() -> dict[str, Any] | None:
        listed = client.request("GET", f"/v1/sms/inbound?from=%2B{person[1:]}").json()["items"]
        return listed[0] if listed else None

    reply = eventually(the_reply, "the reply in GET /v1/sms/inbound")
    assert reply["in_reply_to"] == delivered["id"]
    assert reply["body"] == "Can we move it to 3pm?"
    assert reply["to_number"] == delivered["from_number"]
    assert reply["keyword"] is None
    assert client.request("GET", f"/v1/sms/inbound/{reply['id']}").json() == reply

    # By webhook, signed with the workspace's secret.
    headers, body = eventually(lambda: received[0] if received else None, "the reply webhook")
    secret = stack.client("admin").request("GET", "/v1/webhook-secret").json()["secret"]
    event = Webhook(secret).verify(body, headers)
    assert event["type"] == "message.reply"
    assert event["data"] == reply

    # By SMS: a message of the same use case naming the reply.
    def the_forwarded_sms() -> dict[str, Any] | None:
        items = client.request("GET", "/v1/sms/?limit=100").json()["items"]
        return next((m for m in items if m["forwarded_from"] == reply["id"]), None)

    forwarded = eventually(the_forwarded_sms, "the forwarded SMS in the message list")
    assert forwarded["to_number"] == colleague
    assert forwarded["use_case_id"] == stack.info["use_case_id"]
    assert forwarded["body"] == f"Reply from {person}: Can we move it to 3pm?"

    # By email, through SES (moto's).
    def the_email() -> dict[str, Any] | None:
        data = http("GET", f"{stack.info['aws_endpoint_url']}/moto-api/data.json").json()
        emails = data.get("ses", {}).get("Message", [])
        return next((e for e in emails if e["destinations"]["ToAddresses"] == [inbox]), None)

    email = eventually(the_email, "the forwarded email in SES")
    assert email["source"] == stack.info["reply_email_from"]
    assert "Can we move it to 3pm?" in email["body"]
