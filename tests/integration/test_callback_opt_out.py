"""A STOP reported in a status callback puts the number on the Messaging Service's opt-out list.

Through a Messaging Service Twilio accepts a send to a number that answered STOP and reports it
later: MessageStatus failed (or undelivered) with ErrorCode 21610. The callback must record the
opt-out, so the next send to that number is refused at the API instead of reaching Twilio.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import pytest

from sms_gateway import config
from sms_gateway.config import get_settings
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic.use_case_admin import create_use_case
from sms_gateway.store import aws_clients, opt_out_store
from sms_local.gateway import HttpApiGateway, HttpResult
from sms_local.sqs_poller import SqsPoller
from sms_local.twilio_simulator import TwilioSimulator
from tests.integration.conftest import (
    AUTH_TOKENS,
    Tenant,
    create_twilio_secret,
    use_case_spec,
)
from tests.integration.test_handoff import (  # noqa: F401 - fixtures
    poller,
    send,
    simulator,
    wait_for,
    wired,
)
from tests.integration.test_send_api import MOBILE_US, send_body
from tests.integration.test_status_callback import (
    callback_params,
    get,
    new_message,
    post_signed,
)

UNSUBSCRIBED = 21610


def unsubscribed_callback(
    gateway: HttpApiGateway,
    message_id: str,
    use_case: UseCase,
    *,
    status: str = "failed",
    error_code: int = UNSUBSCRIBED,
    to: str = MOBILE_US,
    account_sid: str | None = None,
) -> HttpResult:
    """The callback Twilio sends for a service send to a number that answered STOP."""
    account = account_sid or use_case.twilio_account_sid
    params = callback_params(
        account,
        status,
        ErrorCode=str(error_code),
        MessagingServiceSid=use_case.messaging_service_sid,
        To=to,
    )
    return post_signed(gateway, urlencode({"message_id": message_id}), params, AUTH_TOKENS[account])


def opted_out_of_service(use_case: UseCase, number: str = MOBILE_US) -> bool:
    return opt_out_store.is_opted_out(
        [opt_out_store.service_scope(use_case.messaging_service_sid)], number
    )


def stored_opt_out(use_case: UseCase, number: str = MOBILE_US) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        aws_clients.dynamodb()
        .get_item(
            TableName=get_settings().opt_outs_table,
            Key={
                "scope": {"S": opt_out_store.service_scope(use_case.messaging_service_sid)},
                "phone_number": {"S": number},
            },
            ConsistentRead=True,
        )
        .get("Item")
    )
    return item


def send_error(tenant: Tenant, use_case: UseCase, number: str = MOBILE_US) -> str | None:
    response = tenant.api.send(send_body(use_case, to_phone_number=number))
    if response.status == 201:
        return None
    code: str = response.json()["error"]["code"]
    return code


@pytest.fixture
def message_id(tenant: Tenant, use_case: UseCase) -> str:
    return new_message(tenant, use_case)


@pytest.mark.parametrize("status", ["failed", "undelivered"])
def test_a_21610_callback_opts_the_number_out_of_the_service(
    gateway: HttpApiGateway, tenant: Tenant, use_case: UseCase, message_id: str, status: str
) -> None:
    result = unsubscribed_callback(gateway, message_id, use_case, status=status)

    assert (result.status, result.body) == (204, b"")
    assert (get(tenant, message_id)["status"], get(tenant, message_id)["error_code"]) == (
        status,
        UNSUBSCRIBED,
    )
    assert opted_out_of_service(use_case)
    # The next send to that number is refused before it costs a Twilio call.
    assert send_error(tenant, use_case) == "recipient_opted_out"


def test_a_repeated_callback_keeps_one_opt_out_and_is_acknowledged(
    gateway: HttpApiGateway, tenant: Tenant, use_case: UseCase, message_id: str
) -> None:
    assert unsubscribed_callback(gateway, message_id, use_case).status == 204
    first = stored_opt_out(use_case)
    assert first is not None and first["reason"] == {"S": "twilio_21610"}

    # Twilio may send the same callback twice; the second finds the opt-out already there.
    assert unsubscribed_callback(gateway, message_id, use_case).status == 204

    assert stored_opt_out(use_case) == first


def test_other_error_codes_do_not_opt_the_number_out(
    gateway: HttpApiGateway, tenant: Tenant, use_case: UseCase, message_id: str
) -> None:
    assert unsubscribed_callback(gateway, message_id, use_case, error_code=30007).status == 204

    assert get(tenant, message_id)["status"] == "failed"
    assert not opted_out_of_service(use_case)
    assert send_error(tenant, use_case) is None


def test_a_callback_for_no_message_of_ours_opts_nobody_out(
    gateway: HttpApiGateway, tenant: Tenant, use_case: UseCase
) -> None:
    # Correctly signed, but no message with this id was sent through this subaccount.
    assert unsubscribed_callback(gateway, str(uuid.uuid4()), use_case).status == 204

    assert not opted_out_of_service(use_case)


def test_another_subaccounts_callback_opts_nobody_out(
    gateway: HttpApiGateway, tenant: Tenant, use_case: UseCase, message_id: str
) -> None:
    # Signed by another of our subaccounts: genuine, but not for this message.
    other = create_use_case(tenant.workspace_id, use_case_spec())
    create_twilio_secret(other.twilio_account_sid)

    result = unsubscribed_callback(
        gateway, message_id, use_case, account_sid=other.twilio_account_sid
    )

    assert result.status == 204
    assert get(tenant, message_id)["status"] == "pending"
    assert not opted_out_of_service(use_case)


@contextmanager
def opt_outs_table_unavailable() -> Iterator[None]:
    """The opt-out write fails with a ClientError (here: a table that does not exist)."""
    saved = os.environ["OPT_OUTS_TABLE"]
    os.environ["OPT_OUTS_TABLE"] = f"missing-{uuid.uuid4().hex}"
    config.reset_settings()
    try:
        yield
    finally:
        os.environ["OPT_OUTS_TABLE"] = saved
        config.reset_settings()


def test_a_failed_opt_out_write_is_a_503_and_the_redelivery_records_it(
    gateway: HttpApiGateway, tenant: Tenant, use_case: UseCase, message_id: str
) -> None:
    with opt_outs_table_unavailable():
        result = unsubscribed_callback(gateway, message_id, use_case)

    # Not a silent 204: the lost opt-out shows as a 5xx in the API's metrics and access log.
    assert result.status == 503
    assert b'"code":"service_unavailable"' in result.body
    # The status itself was applied before the opt-out was attempted.
    assert get(tenant, message_id)["status"] == "failed"
    assert not opted_out_of_service(use_case)

    # A redelivery of the same callback (only recorded now: the status already moved) adds it.
    assert unsubscribed_callback(gateway, message_id, use_case).status == 204
    assert opted_out_of_service(use_case)


# --- end to end: the simulator reports the STOP the way Twilio does ---------------------------


def test_a_service_send_to_an_unsubscribed_number_ends_failed_and_opted_out(
    tenant: Tenant,
    use_case: UseCase,
    simulator: TwilioSimulator,  # noqa: F811
    wired: None,  # noqa: F811
    poller: SqsPoller,  # noqa: F811
) -> None:
    number = "+15005550004"
    message_id = send(tenant, use_case, number)
    assert poller.poll_once() == 1

    final = wait_for(tenant, message_id, {"failed"})

    assert (final["status"], final["error_code"]) == ("failed", UNSUBSCRIBED)
    assert final["message_sid"].startswith("SM")  # Twilio accepted it first
    assert simulator.wait_idle()
    assert [e["http_status"] for e in simulator.callback_log] == [204]
    assert opted_out_of_service(use_case, number)
    assert send_error(tenant, use_case, number) == "recipient_opted_out"
    assert simulator.create_count() == 1
