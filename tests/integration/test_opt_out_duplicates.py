"""An opt-out recorded for a number that is already on the list changes nothing and is no error,
on every path that records one: the status callback's 21610, the handoff's synchronous 21610 and
the operator's CLI. The entry keeps its first reason and time (opt_out_store.add_opt_out).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic import handoff
from sms_gateway.store import opt_out_store
from sms_local.gateway import HttpApiGateway
from sms_local.twilio_simulator import TwilioSimulator
from sms_tools import cli
from tests.integration.conftest import Tenant
from tests.integration.test_callback_opt_out import (
    UNSUBSCRIBED,
    send_error,
    stored_opt_out,
    unsubscribed_callback,
)
from tests.integration.test_handoff import (  # noqa: F401 - fixtures
    simulator,
    wired,
)
from tests.integration.test_send_api import MOBILE_US, drain_handoff_queue
from tests.integration.test_status_callback import get, new_message

# Twilio's test number for a recipient that answered STOP.
UNSUBSCRIBED_NUMBER = "+15005550004"


def operator_opts_out(
    capsys: pytest.CaptureFixture[str], use_case: UseCase, number: str, reason: str
) -> Any:
    """`sms-gateway-admin opt-out add --service ...`: the CLI's exit code must be 0; its output."""
    capsys.readouterr()  # drop what was logged before
    scope = ["--service", use_case.messaging_service_sid]
    args = ["opt-out", "add", *scope, "--number", number, "--reason", reason]
    assert cli.main(args) == 0
    return json.loads(capsys.readouterr().out)


def test_the_cli_adding_an_opt_out_twice_keeps_the_first(
    use_case: UseCase, capsys: pytest.CaptureFixture[str]
) -> None:
    assert operator_opts_out(capsys, use_case, MOBILE_US, "customer asked") == {"added": True}
    first = stored_opt_out(use_case)
    assert first is not None

    assert operator_opts_out(capsys, use_case, MOBILE_US, "bulk import") == {"added": False}

    assert stored_opt_out(use_case) == first
    assert first["reason"] == {"S": "customer asked"}


def test_a_21610_callback_for_a_number_already_opted_out_changes_no_entry(
    gateway: HttpApiGateway,
    tenant: Tenant,
    use_case: UseCase,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a message in flight, and its number put on the service's list by an operator since
    message_id = new_message(tenant, use_case)
    operator_opts_out(capsys, use_case, MOBILE_US, "customer asked")
    entry = stored_opt_out(use_case)

    # When Twilio reports the STOP for that message
    result = unsubscribed_callback(gateway, message_id, use_case)

    # Then the callback is applied and acknowledged, and the list entry is the operator's
    assert (result.status, result.body) == (204, b"")
    message = get(tenant, message_id)
    assert (message["status"], message["error_code"]) == ("failed", UNSUBSCRIBED)
    assert stored_opt_out(use_case) == entry
    assert send_error(tenant, use_case) == "recipient_opted_out"


def test_the_second_of_two_21610_callbacks_for_one_number_changes_no_entry(
    gateway: HttpApiGateway, tenant: Tenant, use_case: UseCase
) -> None:
    # Two messages to the same number were in flight when it answered STOP: both fail with
    # 21610, and the second callback (which moves its own message's status) finds the entry.
    first_id, second_id = new_message(tenant, use_case), new_message(tenant, use_case)
    assert unsubscribed_callback(gateway, first_id, use_case).status == 204
    entry = stored_opt_out(use_case)
    assert entry is not None and entry["reason"] == {"S": "twilio_21610"}

    result = unsubscribed_callback(gateway, second_id, use_case, status="undelivered")

    assert (result.status, result.body) == (204, b"")
    second = get(tenant, second_id)
    assert (second["status"], second["error_code"]) == ("undelivered", UNSUBSCRIBED)
    assert stored_opt_out(use_case) == entry


@pytest.mark.usefixtures("wired")
def test_the_handoffs_21610_for_a_number_already_opted_out_changes_no_entry(
    tenant: Tenant,
    use_case: UseCase,
    simulator: TwilioSimulator,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a message accepted for a number that the operator opts out before its handoff, and
    # Twilio refusing it at once as unsubscribed
    simulator.configure(reject_unsubscribed_synchronously=True)
    response = tenant.api.send(
        {"use_case_id": use_case.id, "to_phone_number": UNSUBSCRIBED_NUMBER, "message": "hi"}
    )
    assert response.status == 201
    message_id: str = response.json()["id"]
    drain_handoff_queue()
    operator_opts_out(capsys, use_case, UNSUBSCRIBED_NUMBER, "customer asked")
    entry = stored_opt_out(use_case, UNSUBSCRIBED_NUMBER)

    # When the handoff sends it
    outcome = handoff.hand_off(message_id)

    # Then the message ends refused, without an error, and the entry is the operator's
    assert outcome is handoff.HandoffOutcome.REJECTED
    message = get(tenant, message_id)
    assert (message["status"], message["error_code"]) == ("failed", UNSUBSCRIBED)
    assert simulator.create_count() == 1
    assert stored_opt_out(use_case, UNSUBSCRIBED_NUMBER) == entry
    assert opt_out_store.is_opted_out(
        [opt_out_store.service_scope(use_case.messaging_service_sid)], UNSUBSCRIBED_NUMBER
    )
