"""What happens when a dependency fails at the worst moment: nothing is lost, nothing is sent
twice, and a passing outage is not mistaken for a forgery or a permanent failure."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.stub import Stubber

from sms_gateway import aws_clients, handoff, handoff_queue, provider_credentials, transitions
from sms_gateway.clock import now_iso
from sms_gateway.use_cases import UseCase
from sms_local.gateway import HttpApiGateway
from tests.integration.conftest import Tenant
from tests.integration.test_send_api import drain_handoff_queue, send_body, stored_messages
from tests.integration.test_status_callback import callback


@pytest.fixture(autouse=True)
def _fresh() -> None:
    drain_handoff_queue()
    provider_credentials.reset()


def test_an_enqueue_that_failed_after_a_worker_took_the_message_is_a_success(
    tenant: Tenant, use_case: UseCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an SQS call that raised although the message reached the queue and a worker
    # claimed it at once
    real_enqueue = handoff_queue.enqueue_handoff

    def enqueue_then_fail(message_id: str) -> None:
        real_enqueue(message_id)
        transitions.claim_for_handoff(message_id, now_iso())
        raise ConnectionError("the answer was lost")

    monkeypatch.setattr(handoff_queue, "enqueue_handoff", enqueue_then_fail)
    response = tenant.api.send(send_body(use_case))
    # Then the caller is told it worked (a retry would text the person twice) and it is kept
    assert response.status == 201
    [stored] = stored_messages(tenant.workspace_id)
    assert stored["id"] == response.json()["id"] and stored["claimed_at"]


def test_a_secrets_outage_is_a_5xx_for_callbacks_not_a_forgery(
    gateway: HttpApiGateway, tenant: Tenant, use_case: UseCase
) -> None:
    message_id = tenant.api.send(send_body(use_case)).json()["id"]
    with Stubber(aws_clients.secretsmanager()) as stub:
        stub.add_client_error("get_secret_value", "ThrottlingException", http_status_code=400)
        result = callback(gateway, message_id, use_case.twilio_account_sid, "delivered")
    assert result.status == 503
    # And once Secrets Manager answers again, the same callback is applied
    assert callback(gateway, message_id, use_case.twilio_account_sid, "delivered").status == 204
    assert tenant.api.request("GET", f"/v1/sms/{message_id}").json()["status"] == "delivered"


def test_a_secrets_outage_makes_the_handoff_wait_not_fail(
    tenant: Tenant, use_case: UseCase
) -> None:
    message_id = tenant.api.send(send_body(use_case)).json()["id"]
    with (
        Stubber(aws_clients.secretsmanager()) as stub,
        pytest.raises(handoff.RetryHandoffLater),
    ):
        stub.add_client_error("get_secret_value", "InternalServiceError", http_status_code=500)
        handoff.hand_off(message_id)
    message: dict[str, Any] = tenant.api.request("GET", f"/v1/sms/{message_id}").json()
    assert message["status"] == "pending" and message["error_code"] is None
    # The claim was given back, so the next delivery of the SQS message may try again.
    assert transitions.claim_for_handoff(message_id, now_iso())


def test_unknown_accounts_are_remembered_briefly(gateway: HttpApiGateway) -> None:
    calls: list[str] = []

    def count(event_name: str, **kwargs: Any) -> None:
        calls.append(event_name)

    client = aws_clients.secretsmanager()
    client.meta.events.register("before-call.secrets-manager.GetSecretValue", count)
    try:
        made_up = "AC" + uuid.uuid4().hex
        for _ in range(3):
            assert callback_from(gateway, made_up).status == 403
    finally:
        client.meta.events.unregister("before-call.secrets-manager.GetSecretValue", count)
    assert len(calls) == 1


def callback_from(gateway: HttpApiGateway, account_sid: str) -> Any:
    from tests.integration.test_status_callback import callback_params, post_signed

    params = callback_params(account_sid, "delivered")
    return post_signed(gateway, f"message_id={uuid.uuid4()}", params, "not-a-token")
