"""Failover between Twilio and AWS End User Messaging SMS, each through its simulator: the next
provider is tried at once when the one before certainly did not take the message, never after an
unknown outcome or a refusal about the recipient; every attempt is recorded; a provider that keeps
failing is tried last for a while. No message is ever accepted by both providers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from sms_gateway.domain.clock import utc_now
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic import handoff
from sms_gateway.logic.use_case_admin import create_use_case
from sms_gateway.store import message_store, opt_out_store, provider_health, transitions
from sms_local import template as tpl
from sms_local.aws_resources import LocalStack
from sms_local.eum_simulator import EumSimulator, EumSimulatorConfig
from sms_local.http_server import ApiServer
from sms_local.sqs_poller import SqsPoller
from sms_local.twilio_simulator import SimulatorConfig, TwilioSimulator
from tests.integration.conftest import (
    AUTH_TOKENS,
    EUM_POOL_ARN,
    EUM_POOL_ID,
    EUM_POOL_NUMBER,
    Tenant,
    create_twilio_secret,
    restore_settings,
    set_settings,
    use_case_spec,
)
from tests.integration.test_handoff import queued_record, run_handoff, send
from tests.integration.test_send_api import drain_handoff_queue

EUM = {"name": "aws_eum", "origination_identity": EUM_POOL_ID}
TWILIO = {"name": "twilio"}
# A failure-counting window no test straddles (its boundaries are 2001 and 2033): failures a test
# counts are in one window whenever it runs.
WHOLE_RUN_WINDOW = str(10**9)
# A number no simulator treats specially.
PLAIN_TO = "+14155552671"


@dataclass
class Providers:
    twilio: TwilioSimulator
    eum: EumSimulator
    events: SqsPoller

    def accepted(self) -> tuple[int, int]:
        """How many messages each provider took: Twilio's, AWS End User Messaging SMS's."""
        return len(self.twilio.messages), len(self.eum.messages)


def make_use_case(tenant: Tenant, providers: list[dict[str, str]]) -> UseCase:
    created = create_use_case(tenant.workspace_id, use_case_spec(providers=providers))
    create_twilio_secret(created.twilio_account_sid)
    return created


@pytest.fixture
def both_first(tenant: Tenant) -> UseCase:
    return make_use_case(tenant, [TWILIO, EUM])


@pytest.fixture
def eum_first(tenant: Tenant) -> UseCase:
    return make_use_case(tenant, [EUM, TWILIO])


@pytest.fixture
def providers(
    aws: LocalStack, server: ApiServer, both_first: UseCase, eum_first: UseCase
) -> Iterator[Providers]:
    """Both simulators, the handoff pointed at them and Twilio's callbacks at the local front;
    both providers healthy at the start."""
    use_cases = (both_first, eum_first)
    twilio = TwilioSimulator(
        SimulatorConfig(
            accounts={u.twilio_account_sid: AUTH_TOKENS[u.twilio_account_sid] for u in use_cases},
            services={
                u.messaging_service_sid: [s.sender for s in u.sender_pool] for u in use_cases
            },
            callback_delays=(0.01, 0.01),
        )
    )
    eum = EumSimulator(
        EumSimulatorConfig(
            origination_identities={EUM_POOL_ID: EUM_POOL_NUMBER, EUM_POOL_ARN: EUM_POOL_NUMBER},
            configuration_sets=dict(aws.configuration_sets),
            sns_endpoint_url=aws.endpoint_url,
            event_delays=(0.01, 0.01),
        )
    )
    twilio.start()
    eum.start()
    saved = set_settings(
        TWILIO_API_BASE_URL=twilio.base_url,
        PUBLIC_BASE_URL=server.url,
        AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2=eum.base_url,
        PROVIDER_READ_TIMEOUT_SECONDS="2",
        PROVIDER_FAILURE_WINDOW_SECONDS=WHOLE_RUN_WINDOW,
    )
    for name in ("twilio", "aws_eum"):
        provider_health.reset(name, utc_now())
    drain_handoff_queue()
    template = tpl.project_template()
    [source] = [s for s in tpl.sqs_sources(template) if s.function == "EumEventsFunction"]
    yield Providers(
        twilio, eum, SqsPoller(aws, source, tpl.functions(template)["EumEventsFunction"])
    )
    restore_settings(saved)
    for name in ("twilio", "aws_eum"):
        provider_health.reset(name, utc_now())
    twilio.stop()
    eum.stop()
    drain_handoff_queue()


def hand_off(aws: LocalStack, message_id: str) -> Any:
    """One delivery of the message's handoff record; the function's batch answer."""
    return run_handoff(aws, [queued_record(aws, message_id)])


def read(tenant: Tenant, message_id: str) -> dict[str, Any]:
    body: dict[str, Any] = tenant.api.request("GET", f"/v1/sms/{message_id}").json()
    return body


def settle(
    tenant: Tenant, providers: Providers, message_id: str, final: set[str], timeout: float = 15
) -> dict[str, Any]:
    """Apply the providers' reports (Twilio calls back by itself; AWS's events are taken from
    EumEventsQueue) until the message is in one of `final`."""
    deadline = time.monotonic() + timeout
    while True:
        providers.events.poll_once()
        current = read(tenant, message_id)
        if current["status"] in final or time.monotonic() > deadline:
            return current
        time.sleep(0.05)


def sent_and_settled(
    aws: LocalStack, tenant: Tenant, providers: Providers, use_case: UseCase
) -> tuple[str, dict[str, Any]]:
    """A message to PLAIN_TO through `use_case`, handed off once and delivered; its id and it."""
    message_id = send(tenant, use_case, PLAIN_TO)
    hand_off(aws, message_id)
    return message_id, settle(tenant, providers, message_id, {"delivered"})


def outcomes(message: dict[str, Any]) -> list[tuple[str, str, int | None]]:
    return [(a["provider"], a["outcome"], a["error_code"]) for a in message["provider_attempts"]]


# --- which provider takes it --------------------------------------------------------------------


def test_with_twilio_down_the_message_is_delivered_through_aws(
    aws: LocalStack, tenant: Tenant, both_first: UseCase, providers: Providers
) -> None:
    providers.twilio.configure(outage=True)
    message_id = send(tenant, both_first, PLAIN_TO)

    assert hand_off(aws, message_id) == {"batchItemFailures": []}
    message = settle(tenant, providers, message_id, {"delivered"})

    assert message["status"] == "delivered"
    assert message["provider"] == "aws_eum"
    assert outcomes(message) == [("twilio", "retry_later", 20503), ("aws_eum", "accepted", None)]
    [taken] = providers.eum.messages
    assert message["message_sid"] == taken["message_id"]
    assert message["provider_attempts"][1]["provider_message_id"] == taken["message_id"]
    # The sender is the pool's number, as AWS's events report it.
    assert message["from_number"] == EUM_POOL_NUMBER
    # Twilio was asked once and took nothing; AWS took it once.
    assert providers.twilio.create_count() == 1
    assert providers.accepted() == (0, 1)


def test_with_no_outage_the_same_use_case_sends_through_twilio(
    aws: LocalStack, tenant: Tenant, both_first: UseCase, providers: Providers
) -> None:
    _, message = sent_and_settled(aws, tenant, providers, both_first)

    assert (message["status"], message["provider"]) == ("delivered", "twilio")
    assert outcomes(message) == [("twilio", "accepted", None)]
    assert message["provider_attempts"][0]["provider_message_id"] == message["message_sid"]
    assert providers.eum.send_count() == 0
    assert providers.accepted() == (1, 0)


def test_a_use_case_may_put_aws_first(
    aws: LocalStack, tenant: Tenant, eum_first: UseCase, providers: Providers
) -> None:
    message_id, message = sent_and_settled(aws, tenant, providers, eum_first)

    assert (message["status"], message["provider"]) == ("delivered", "aws_eum")
    assert providers.twilio.create_count() == 0
    # What AWS was asked: our message in its context, TRANSACTIONAL, the stack's set.
    [taken] = providers.eum.messages
    assert taken["context"] == {"message_id": message_id}
    assert taken["message_type"] == "TRANSACTIONAL"
    assert taken["configuration_set"] == "EumConfigurationSet"
    assert taken["origination_identity"] == EUM_POOL_ID


def test_an_account_error_at_twilio_fails_over_at_once(
    aws: LocalStack, tenant: Tenant, providers: Providers
) -> None:
    # The use case's Twilio token is not where it should be: Twilio cannot be asked at all.
    created = create_use_case(tenant.workspace_id, use_case_spec(providers=[TWILIO, EUM]))
    _, message = sent_and_settled(aws, tenant, providers, created)

    assert message["provider"] == "aws_eum"
    assert outcomes(message) == [("twilio", "refused", 99002), ("aws_eum", "accepted", None)]


# --- when the next provider is not tried --------------------------------------------------------


def test_a_recipient_error_fails_the_message_without_failover(
    aws: LocalStack, tenant: Tenant, both_first: UseCase, providers: Providers
) -> None:
    message_id = send(tenant, both_first, "+15005550001")  # Twilio: 21211, invalid number

    hand_off(aws, message_id)
    message = read(tenant, message_id)

    assert (message["status"], message["error_code"]) == ("failed", 21211)
    assert outcomes(message) == [("twilio", "refused", 21211)]
    assert message["provider"] is None
    assert providers.eum.send_count() == 0


def test_an_opt_out_aws_reports_fails_the_message_and_lists_the_number(
    aws: LocalStack, tenant: Tenant, eum_first: UseCase, providers: Providers
) -> None:
    message_id = send(tenant, eum_first, "+15005550004")  # AWS: DESTINATION_PHONE_NUMBER_OPTED_OUT

    hand_off(aws, message_id)
    message = read(tenant, message_id)

    assert (message["status"], message["error_code"]) == ("failed", 21610)
    assert outcomes(message) == [("aws_eum", "refused", 21610)]
    assert providers.twilio.create_count() == 0
    scope = opt_out_store.service_scope(eum_first.messaging_service_sid)
    [change] = opt_out_store.list_changes(scope, "+15005550004")
    assert (change["source"], change["cause_id"]) == ("aws_eum_opted_out", message_id)


def test_an_unknown_outcome_is_never_sent_again_through_the_other_provider(
    aws: LocalStack, tenant: Tenant, both_first: UseCase, providers: Providers
) -> None:
    saved = set_settings(PROVIDER_READ_TIMEOUT_SECONDS="0.3")
    try:
        message_id = send(tenant, both_first, "+14155550777")  # Twilio holds its answer
        hand_off(aws, message_id)
    finally:
        restore_settings(saved)
    message = read(tenant, message_id)

    # Failed as "may have been sent" (99001), unless Twilio's callback already told what
    # became of it (the simulator took it while it held its answer): never sent elsewhere.
    assert outcomes(message) == [("twilio", "unknown", None)]
    assert providers.eum.send_count() == 0
    assert message["error_code"] == 99001 or message["status"] == "delivered"


def test_when_every_provider_refuses_for_good_the_first_refusal_is_the_error(
    aws: LocalStack, tenant: Tenant, both_first: UseCase, providers: Providers
) -> None:
    # Twilio 21408 and AWS's DESTINATION_COUNTRY_BLOCKED: the route, at both.
    message_id = send(tenant, both_first, "+15005550003")

    hand_off(aws, message_id)
    message = read(tenant, message_id)

    assert (message["status"], message["error_code"]) == ("failed", 21408)
    assert outcomes(message) == [("twilio", "refused", 21408), ("aws_eum", "refused", 21408)]
    assert providers.accepted() == (0, 0)


def test_when_every_provider_is_down_the_message_waits_then_goes(
    aws: LocalStack, tenant: Tenant, both_first: UseCase, providers: Providers
) -> None:
    providers.twilio.configure(outage=True)
    providers.eum.configure(outage=True)
    message_id = send(tenant, both_first, PLAIN_TO)

    record = queued_record(aws, message_id)
    answer = run_handoff(aws, [record])

    # Handed back to the queue (with backoff), unclaimed, every attempt recorded.
    assert answer == {"batchItemFailures": [{"itemIdentifier": record["MessageId"]}]}
    waiting = read(tenant, message_id)
    assert waiting["status"] == "pending"
    assert outcomes(waiting) == [
        ("twilio", "retry_later", 20503),
        ("aws_eum", "retry_later", 20503),
    ]

    providers.twilio.configure(outage=False)
    providers.eum.configure(outage=False)
    aws.client("sqs").send_message(
        QueueUrl=aws.refs["HandoffQueue"], MessageBody=f'{{"message_id": "{message_id}"}}'
    )
    run_handoff(aws, [queued_record(aws, message_id, receive_count=2)])
    message = settle(tenant, providers, message_id, {"delivered"})

    assert (message["status"], message["provider"]) == ("delivered", "twilio")
    assert outcomes(message)[2:] == [("twilio", "accepted", None)]
    assert providers.accepted() == (1, 0)


# --- races and crashes --------------------------------------------------------------------------


def test_a_worker_that_lost_its_claim_never_calls_the_next_provider(
    aws: LocalStack,
    tenant: Tenant,
    both_first: UseCase,
    providers: Providers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given Twilio down, and another delivery that resolves this worker's claim (as stale) just
    # as Twilio's refusal is written
    providers.twilio.configure(outage=True)
    message_id = send(tenant, both_first, PLAIN_TO)
    hand_to_next = transitions.hand_to_next_provider

    def resolved_first(message_id: str, claimed_at: str, **kwargs: Any) -> bool:
        assert transitions.fail(
            message_id, claimed_at, 99001,
            claimed_at=claimed_at, reason="handoff_outcome_unknown",
        )  # fmt: skip
        return hand_to_next(message_id, claimed_at, **kwargs)

    monkeypatch.setattr(transitions, "hand_to_next_provider", resolved_first)

    # When this worker goes on
    answer = run_handoff(aws, [queued_record(aws, message_id)])

    # Then it stops: AWS is never asked, and the message stays as the other worker ended it
    assert answer["batchItemFailures"]
    assert providers.eum.send_count() == 0
    message = read(tenant, message_id)
    assert (message["status"], message["error_code"]) == ("failed", 99001)


def test_a_worker_that_kept_its_claim_wins_over_a_late_resolver(
    aws: LocalStack,
    tenant: Tenant,
    both_first: UseCase,
    providers: Providers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The other side of the race: the worker fails over and AWS's answer is recorded before
    # the other delivery tries to resolve the claim
    providers.twilio.configure(outage=True)
    message_id = send(tenant, both_first, PLAIN_TO)
    record_acceptance = transitions.record_acceptance
    late: list[bool] = []

    def resolver_after(message_id: str, *args: Any, **kwargs: Any) -> bool:
        recorded = record_acceptance(message_id, *args, **kwargs)
        claimed_at = read_claim(message_id)
        late.append(
            transitions.fail(
                message_id, claimed_at, 99001,
                claimed_at=claimed_at, reason="handoff_outcome_unknown",
            )
        )  # fmt: skip
        return recorded

    monkeypatch.setattr(transitions, "record_acceptance", resolver_after)

    run_handoff(aws, [queued_record(aws, message_id)])
    message = settle(tenant, providers, message_id, {"delivered"})

    # The resolver's write is refused (an answer is recorded): delivered, through AWS, once
    assert late == [False]
    assert (message["status"], message["provider"]) == ("delivered", "aws_eum")
    assert providers.accepted() == (0, 1)


def read_claim(message_id: str) -> str:
    stored = message_store.get_message(message_id)
    assert stored is not None and stored.claimed_at is not None
    return stored.claimed_at


def test_a_worker_that_dies_after_aws_took_the_message_leaves_it_delivered_once(
    aws: LocalStack,
    tenant: Tenant,
    both_first: UseCase,
    providers: Providers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given Twilio down, and a worker killed after AWS took the message, before recording it
    providers.twilio.configure(outage=True)
    message_id = send(tenant, both_first, PLAIN_TO)

    class Killed(BaseException):
        pass

    def die(*args: Any, **kwargs: Any) -> bool:
        raise Killed

    monkeypatch.setattr(transitions, "record_acceptance", die)
    with pytest.raises(Killed):
        handoff.hand_off(message_id)
    monkeypatch.undo()

    # When AWS's events arrive and the record comes back after the claim went stale
    message = settle(tenant, providers, message_id, {"delivered"})
    saved = set_settings(HANDOFF_CLAIM_TIMEOUT_SECONDS="0")
    try:
        assert handoff.hand_off(message_id) is handoff.HandoffOutcome.ALREADY_HANDLED
    finally:
        restore_settings(saved)

    # Then the events delivered it through AWS, and nobody sent it again
    assert (message["status"], message["message_sid"]) == (
        "delivered",
        providers.eum.messages[0]["message_id"],
    )
    assert providers.accepted() == (0, 1)
    assert outcomes(message) == [("twilio", "retry_later", 20503)]


# --- health-based routing -----------------------------------------------------------------------


def test_a_provider_that_keeps_failing_is_tried_last_until_its_cool_down_ends(
    aws: LocalStack, tenant: Tenant, both_first: UseCase, providers: Providers
) -> None:
    saved = set_settings(PROVIDER_FAILURE_THRESHOLD="2", PROVIDER_COOLDOWN_SECONDS="600")
    try:
        providers.twilio.configure(outage=True)
        for _ in range(2):
            hand_off(aws, send(tenant, both_first, PLAIN_TO))
        providers.twilio.configure(outage=False)
        creates = providers.twilio.create_count()

        # Twilio is back, but new messages start at AWS for the cool-down
        message_id = send(tenant, both_first, PLAIN_TO)
        hand_off(aws, message_id)
        message = settle(tenant, providers, message_id, {"delivered"})
        assert outcomes(message) == [("aws_eum", "accepted", None)]
        assert providers.twilio.create_count() == creates
        [twilio, eum] = provider_health.status(utc_now())
        assert (twilio.provider, twilio.cooling_at(utc_now())) == ("twilio", True)
        assert twilio.failures_in_window >= 2
        assert (eum.provider, eum.cooling_at(utc_now())) == ("aws_eum", False)
        # It comes back by itself when the cool-down ends
        assert twilio.cooling_until is not None
        assert twilio.cooling_at(utc_now() + timedelta(seconds=601)) is False
        assert "twilio" not in provider_health.cooling(utc_now() + timedelta(seconds=601))
    finally:
        restore_settings(saved)


def test_a_refusal_does_not_count_against_a_providers_health(
    aws: LocalStack, tenant: Tenant, both_first: UseCase, providers: Providers
) -> None:
    saved = set_settings(PROVIDER_FAILURE_THRESHOLD="1")
    try:
        hand_off(aws, send(tenant, both_first, "+15005550003"))  # refused by both, for good
        assert provider_health.cooling(utc_now() + timedelta(seconds=10)) == frozenset()
    finally:
        restore_settings(saved)


def test_an_unreadable_health_state_does_not_stop_a_message(
    aws: LocalStack,
    tenant: Tenant,
    both_first: UseCase,
    providers: Providers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    saved = set_settings(PROVIDER_HEALTH_TABLE="no-such-table-" + uuid.uuid4().hex[:6])
    try:
        message_id = send(tenant, both_first, PLAIN_TO)
        hand_off(aws, message_id)
    finally:
        restore_settings(saved)
    assert settle(tenant, providers, message_id, {"delivered"})["provider"] == "twilio"


def test_a_send_botocore_refuses_to_make_reaches_no_one_and_fails_over(
    aws: LocalStack, tenant: Tenant, eum_first: UseCase, providers: Providers
) -> None:
    # A stack without its configuration set's name: botocore refuses the request itself
    saved = set_settings(EUM_CONFIGURATION_SET="")
    try:
        message_id = send(tenant, eum_first, PLAIN_TO)
        hand_off(aws, message_id)
    finally:
        restore_settings(saved)
    message = settle(tenant, providers, message_id, {"delivered"})

    assert outcomes(message) == [("aws_eum", "refused", 99006), ("twilio", "accepted", None)]
    assert providers.eum.send_count() == 0
    # Nothing reached AWS: its health is untouched
    assert provider_health.cooling(utc_now()) == frozenset()
    [_, eum] = provider_health.status(utc_now())
    assert eum.failures_in_window == 0


def test_an_aws_error_after_the_request_left_is_one_request_and_never_resent(
    aws: LocalStack, tenant: Tenant, eum_first: UseCase, providers: Providers
) -> None:
    message_id = send(tenant, eum_first, "+14155550500")  # AWS answers 500

    hand_off(aws, message_id)
    message = read(tenant, message_id)

    # botocore did not retry it, and nothing else sent it
    assert providers.eum.send_count() == 1
    assert providers.twilio.create_count() == 0
    assert (message["status"], message["error_code"]) == ("failed", 99001)
    assert outcomes(message) == [("aws_eum", "unknown", None)]
