"""Status webhooks to callers, the pure part: which change of a message is an event, what the
receiver gets, and that the Standard Webhooks reference library accepts our signatures."""

from __future__ import annotations

import json
import random
import time
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from sms_gateway.domain import caller_webhooks as cw
from sms_gateway.domain.messages import HistoryEntry, Message, MessageStatus
from sms_gateway.domain.queue_delays import MAX_RETRY_DELAY_SECONDS

S = MessageStatus
URL = "https://hooks.example.com/sms?tenant=7"


def message(status: S, *, before: tuple[S, ...] | None = None, **fields: Any) -> Message:
    """A message in `status`, having passed through `before` (by default: created pending)."""
    if before is None:
        before = () if status in (S.PENDING, S.SCHEDULED) else (S.PENDING,)
    statuses = (*before, status)
    defaults: dict[str, Any] = {
        "id": "3f1c9a52-1d1e-4a70-9a1b-6f3c2d4e5f60",
        "workspace_id": "ws1",
        "use_case_id": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "to_number": "+14155552671",
        "body": "Your code is 123456 ✓",
        "status": status,
        "created_at": "2026-11-26T10:00:00.000Z",
        "updated_at": "2026-11-26T10:00:05.000Z",
        "status_callback_url": URL,
        "history": [
            HistoryEntry(at="2026-11-26T10:00:00.000Z", event="e", status=s) for s in statuses
        ],
    }
    return Message(**{**defaults, **fields})


def image(m: Message) -> dict[str, Any]:
    return {k: v for k, v in m.model_dump(mode="json").items() if v is not None}


def test_a_status_change_of_a_message_with_a_url_is_one_event_with_its_sequence() -> None:
    old, new = message(S.PENDING), message(S.SENT)
    job = cw.job_for_change("MODIFY", image(old), image(new))
    assert job is not None
    assert job.type == "message.sent"
    assert job.sequence == 2
    assert job.url == URL and job.method == "POST"
    assert job.webhook_id == cw.webhook_id_for(new.id, 2)
    # The message as GET returns it, without its history, and the sequence.
    assert job.data == {**new.to_api(), "sequence": 2}
    assert "history" not in job.data


@pytest.mark.parametrize("status", [S.SENT, S.DELIVERED, S.UNDELIVERED, S.FAILED, S.CANCELED])
def test_each_status_a_receiver_hears_of_has_its_type(status: S) -> None:
    job = cw.job_for_change("MODIFY", image(message(S.PENDING)), image(message(status)))
    assert job is not None and job.type == f"message.{status.value}"


def test_sequences_grow_along_a_message_s_life() -> None:
    scheduled = message(S.SCHEDULED)
    pending = message(S.PENDING, before=(S.SCHEDULED,))
    sent = message(S.SENT, before=(S.SCHEDULED, S.PENDING))
    delivered = message(S.DELIVERED, before=(S.SCHEDULED, S.PENDING, S.SENT))
    sequences = [
        job.sequence
        for old, new in ((scheduled, pending), (pending, sent), (sent, delivered))
        if (job := cw.job_for_change("MODIFY", image(old), image(new))) is not None
    ]
    assert sequences == [3, 4]  # pending is no event; each later one is numbered higher


def test_ignored_provider_events_do_not_move_the_sequence() -> None:
    sent = message(S.SENT)
    sent.history.append(
        HistoryEntry(at="2026-11-26T10:00:06.000Z", event="provider_status", applied=False)
    )
    assert cw.status_sequence(sent) == 2


@pytest.mark.parametrize(
    ("event", "old", "new"),
    [
        # The same status: other facts recorded (the provider's sid), not a status change.
        ("MODIFY", message(S.SENT), message(S.SENT, message_sid="SM1")),
        # Statuses no receiver hears of.
        ("INSERT", None, message(S.PENDING)),
        ("MODIFY", message(S.SCHEDULED), message(S.PENDING)),
        # No URL, or receipts turned off.
        ("MODIFY", message(S.PENDING), message(S.SENT, status_callback_url=None)),
        ("MODIFY", message(S.PENDING), message(S.SENT, delivery_receipt=False)),
        # An expiry.
        ("REMOVE", message(S.DELIVERED), None),
    ],
)
def test_changes_that_are_not_events(event: str, old: Message | None, new: Message | None) -> None:
    assert (
        cw.job_for_change(event, image(old) if old else None, image(new) if new else None) is None
    )


def test_an_item_that_is_not_a_whole_message_is_no_event_and_no_error() -> None:
    assert cw.job_for_change("MODIFY", {"id": "x"}, {"id": "x", "status": "sent"}) is None


def test_a_message_stored_in_a_status_that_is_an_event_is_one() -> None:
    job = cw.job_for_change("INSERT", None, image(message(S.FAILED)))
    assert job is not None and job.type == "message.failed"


def _job(method: cw.CallbackMethod = "POST") -> cw.WebhookJob:
    job = cw.job_for_change("MODIFY", image(message(S.PENDING)), image(message(S.DELIVERED)))
    assert job is not None
    return job.model_copy(update={"method": method})


def test_the_reference_library_verifies_a_post_and_gets_the_payload() -> None:
    secret = cw.new_secret()
    request = cw.signed_request(_job(), [secret], int(time.time()))
    assert request.method == "POST" and request.body is not None
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "message.delivered"
    assert payload["timestamp"] == "2026-11-26T10:00:05.000Z"
    assert payload["data"]["status"] == "delivered" and payload["data"]["sequence"] == 2
    assert payload == json.loads(request.body)
    assert request.headers["webhook-id"] == _job().webhook_id


def test_a_tampered_body_or_another_secret_fails_verification() -> None:
    secret = cw.new_secret()
    request = cw.signed_request(_job(), [secret], int(time.time()))
    assert request.body is not None
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b"delivered", b"failed!!!"), request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(cw.new_secret()).verify(request.body, request.headers)


def test_a_get_carries_the_fields_as_parameters_and_its_signature_covers_them() -> None:
    secret = cw.new_secret()
    request = cw.signed_request(_job("GET"), [secret], int(time.time()))
    assert request.body is None and request.url == URL
    assert request.query is not None
    params = dict(parse_qsl(request.query))
    assert request.query.startswith("type=message.delivered&timestamp=")
    assert params["status"] == "delivered" and params["sequence"] == "2"
    assert params["body"] == "Your code is 123456 ✓"
    assert "errored_at" not in params  # a null is left out
    Webhook(secret).verify(request.query, request.headers, json_parse=False)


def test_during_a_rotation_both_secrets_sign_and_either_verifies() -> None:
    old, new = cw.new_secret(), cw.new_secret()
    request = cw.signed_request(_job(), [new, old], int(time.time()))
    assert request.body is not None
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(request.body, request.headers)


def test_secrets_have_the_specification_s_shape_and_differ() -> None:
    first, second = cw.new_secret(), cw.new_secret()
    assert first.startswith("whsec_") and first != second
    Webhook(first)  # the library reads it


def test_the_default_schedule_retries_for_more_than_a_day() -> None:
    from sms_gateway.config import Settings

    default = Settings.model_fields["caller_webhook_retry_delays"].default
    assert sum(cw.parse_retry_delays(default)) >= 24 * 3600


@given(
    delays=st.lists(st.integers(0, MAX_RETRY_DELAY_SECONDS), min_size=1, max_size=10),
    seed=st.integers(),
)
def test_a_retry_waits_at_least_its_scheduled_delay_and_at_most_a_fifth_more(
    delays: list[int], seed: int
) -> None:
    rng = random.Random(seed)
    schedule = tuple(delays)
    for attempt, base in enumerate(schedule, start=1):
        delay = cw.retry_delay(schedule, attempt, rng)
        assert delay is not None
        assert base <= delay <= min(MAX_RETRY_DELAY_SECONDS, round(base * 1.2))
    assert cw.retry_delay(schedule, len(schedule) + 1, rng) is None


def test_a_schedule_past_what_sqs_can_hide_is_refused() -> None:
    with pytest.raises(ValueError, match="retry delay"):
        cw.parse_retry_delays(f"5,{MAX_RETRY_DELAY_SECONDS + 1}")
