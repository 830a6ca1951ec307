"""End to end: a caller's receiver on 127.0.0.1 gets the status webhooks of a message sent through
the local stack, signed (Standard Webhooks), retried after it fails, each event once after
dedupe by webhook-id, with the order recoverable from `sequence`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.e2e.conftest import Stack

# How long the test waits for the webhooks: the local schedule retries within seconds.
PATIENCE_SECONDS = 90


@dataclass
class FlakyReceiver:
    """Refuses the first `failures` attempts of each webhook-id (HTTP 500), then takes it."""

    failures: int
    received: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            seen = sum(
                1 for h, _, _ in self.received if h.get("webhook-id") == headers.get("webhook-id")
            )
            status = 500 if seen < self.failures else 204
            self.received.append((headers, body, status))
            return status

    def taken(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(h, b) for h, b, status in self.received if status == 204]


@pytest.fixture
def receiver() -> Iterator[FlakyReceiver]:
    flaky = FlakyReceiver(failures=2)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            status = flaky.answer({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    flaky.url = f"http://127.0.0.1:{server.server_address[1]}/sms/status"
    yield flaky
    server.shutdown()
    server.server_close()


def test_a_receiver_that_fails_twice_gets_every_event_once_verified_and_ordered(
    stack: Stack, receiver: FlakyReceiver
) -> None:
    client = stack.client()
    reply = client.request(
        "POST",
        "/v1/sms/",
        {
            "use_case_id": stack.info["use_case_id"],
            "to_phone_number": "+12025552010",
            "message": "Your code is 424242",
            "status_callback_url": receiver.url,
        },
    )
    assert reply.status == 201, reply.body
    message_id = reply.json()["id"]
    final = client.wait_for(message_id, {"delivered", "undelivered", "failed"}, timeout=60)
    assert final["status"] == "delivered"

    # Every applied transition after pending is an event: here sent, then delivered.
    deadline = time.monotonic() + PATIENCE_SECONDS
    while len({h["webhook-id"] for h, _ in receiver.taken()}) < 2:
        assert time.monotonic() < deadline, receiver.received
        time.sleep(0.2)

    secret = stack.client("admin").request("GET", "/v1/webhook-secret").json()["secret"]
    webhook = Webhook(secret)
    # Every request, refused or taken, carries a valid signature.
    payloads = [webhook.verify(body, headers) for headers, body, _ in receiver.received]
    assert {p["data"]["id"] for p in payloads} == {message_id}
    by_id: dict[str, dict[str, Any]] = {}
    for headers, body in receiver.taken():
        by_id.setdefault(headers["webhook-id"], webhook.verify(body, headers))
    events = sorted(by_id.values(), key=lambda p: p["data"]["sequence"])
    assert [e["type"] for e in events] == ["message.sent", "message.delivered"]
    assert [e["data"]["status"] for e in events] == ["sent", "delivered"]
    assert events[0]["data"]["sequence"] < events[1]["data"]["sequence"]
    # Each event was refused twice and taken on its third attempt, under one webhook-id.
    for webhook_id in by_id:
        statuses = [s for h, _, s in receiver.received if h["webhook-id"] == webhook_id]
        assert statuses[:3] == [500, 500, 204]

    attempts = client.request("GET", f"/v1/sms/{message_id}/webhook-attempts").json()["items"]
    for event_type in ("message.sent", "message.delivered"):
        assert [a["status_code"] for a in attempts if a["type"] == event_type][:3] == [
            500,
            500,
            204,
        ]
