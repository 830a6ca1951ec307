"""End to end, failover: the demo use case sends through Twilio, and through AWS End User
Messaging SMS while Twilio is in outage; no message is ever accepted by both providers."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Stack, http

# Numbers no other test sends to, so what each provider took for them is this test's alone.
NORMAL_TO = "+12025553001"
OUTAGE_TO = "+12025553002"


def twilio(stack: Stack, **knobs: bool) -> dict[str, Any]:
    return stack.simulator(**knobs)


def eum_messages(stack: Stack, to: str) -> list[dict[str, Any]]:
    reply = http("GET", f"{stack.info['eum']['simulator_url']}/_simulator/messages")
    assert reply.status == 200, reply.body
    return [m for m in reply.json()["messages"] if m["destination"] == to]


def send(stack: Stack, to: str) -> str:
    reply = stack.client().request(
        "POST",
        "/v1/sms/",
        {"use_case_id": stack.info["use_case_id"], "to_phone_number": to, "message": "Code 4711"},
    )
    assert reply.status == 201, reply.body
    return str(reply.json()["id"])


def attempts(message: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["provider"], a["outcome"]) for a in message["provider_attempts"]]


def test_twilio_in_outage_hands_the_demo_use_case_to_aws_and_back(stack: Stack) -> None:
    client = stack.client()
    # With no outage the demo use case sends through Twilio
    normal = client.wait_for(send(stack, NORMAL_TO), {"delivered", "undelivered", "failed"})
    assert (normal["status"], normal["provider"]) == ("delivered", "twilio")
    assert attempts(normal) == [("twilio", "accepted")]

    # With Twilio in outage, through AWS End User Messaging SMS, Twilio's refusal first
    assert twilio(stack, outage=True)["outage"] is True
    try:
        message_id = send(stack, OUTAGE_TO)
        failed_over = client.wait_for(message_id, {"delivered", "undelivered", "failed"})
    finally:
        twilio(stack, outage=False)
    assert (failed_over["status"], failed_over["provider"]) == ("delivered", "aws_eum")
    assert attempts(failed_over) == [("twilio", "retry_later"), ("aws_eum", "accepted")]
    assert failed_over["provider_attempts"][0]["error_code"] == 20503
    assert failed_over["from_number"] == stack.info["eum"]["origination_number"]
    history = [h["provider_status"] for h in failed_over["history"] if h.get("provider_status")]
    assert "TEXT_DELIVERED" in history

    # No message was ever accepted by both: each provider took exactly its own
    assert [m["sid"] for m in stack.sent_to(NORMAL_TO)] == [normal["message_sid"]]
    assert stack.sent_to(OUTAGE_TO) == []
    assert eum_messages(stack, NORMAL_TO) == []
    [taken] = eum_messages(stack, OUTAGE_TO)
    assert taken["message_id"] == failed_over["message_sid"]
    assert taken["context"] == {"message_id": message_id}
