"""Inbound messages through the local stack's real parts: Twilio's incoming-message webhook
(signed with the twilio SDK's RequestValidator, the reference), the opt-out lists it changes,
the replies it links to what was sent, GET /v1/sms/inbound, and the forwarding of replies by
webhook (verified with the Standard Webhooks library), SMS and email (moto's SES)."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from standardwebhooks import Webhook

from sms_gateway.domain import clock
from sms_gateway.domain.callers import ALL_SCOPES
from sms_gateway.domain.inbound import inbound_id_for
from sms_gateway.domain.limits import SendRate
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.logic import inbound as inbound_logic
from sms_gateway.logic import limits_admin, reply_forwarding
from sms_gateway.logic.use_case_admin import create_use_case
from sms_gateway.store import (
    api_keys,
    aws_clients,
    inbound_store,
    opt_out_store,
    transitions,
    use_case_store,
)
from sms_local import template as tpl
from sms_local.aws_resources import LocalStack
from sms_local.gateway import HttpApiGateway, HttpResult
from sms_local.lambda_runtime import invoke
from sms_local.sqs_poller import SqsPoller, sqs_event
from tests.integration.conftest import (
    AUTH_TOKENS,
    PUBLIC_BASE_URL,
    Tenant,
    create_twilio_secret,
    make_tenant,
    restore_settings,
    set_settings,
    use_case_spec,
)
from tests.integration.test_caller_webhooks import (  # noqa: F401 - a fixture
    Receiver,
    drain_webhook_queue,
    receivers,
    run_webhooks,
    secret_of,
)
from tests.integration.test_send_api import drain_handoff_queue, send_body
from tests.integration.test_send_crashes import Killed
from tests.integration.test_status_callback import sign

PATH = "/v1/webhook/twilio/sms-inbound"
SENDER = "+14155550100"
REPLY_EMAIL_FROM = "replies@sms-gateway.test"


# --- helpers -----------------------------------------------------------------------------------


def a_person() -> str:
    """A mobile number of its own per test: the lists and the reply index are shared."""
    return f"+1415555{uuid.uuid4().int % 10_000:04d}"


def ready_use_case(tenant: Tenant, **overrides: Any) -> UseCase:
    """A use case whose subaccount the tenant owns (an operator's binding) and whose token is
    in Secrets Manager: what a Messaging Service's incoming messages need."""
    created = create_use_case(tenant.workspace_id, use_case_spec(**overrides))
    if created.twilio_account_sid not in AUTH_TOKENS:
        create_twilio_secret(created.twilio_account_sid)
    assert api_keys.bind_twilio_account(tenant.workspace_id, created.twilio_account_sid)
    return created


def incoming_form(use_case: UseCase, person: str, body: str, **extra: str) -> dict[str, str]:
    sid = extra.pop("MessageSid", "SM" + uuid.uuid4().hex)
    form = {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "FromCountry": "US",
        "To": SENDER,
        "MessagingServiceSid": use_case.messaging_service_sid,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": use_case.twilio_account_sid,
        "From": person,
        "ApiVersion": "2010-04-01",
    }
    form.update(extra)
    return form


def post_incoming(
    gateway: HttpApiGateway,
    form: Mapping[str, str],
    *,
    query: str = "",
    signature: str | None = None,
) -> HttpResult:
    url = f"{PUBLIC_BASE_URL}{PATH}" + (f"?{query}" if query else "")
    token = AUTH_TOKENS[form["AccountSid"]]
    headers = {
        "host": "127.0.0.1",
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": signature if signature is not None else sign(url, form, token),
    }
    return gateway.handle("POST", PATH, query, headers, urlencode(form).encode())


def text_in(
    gateway: HttpApiGateway, use_case: UseCase, person: str, body: str, *, test: bool = False
) -> str:
    """A person texts our sender; the id of the stored inbound message."""
    form = incoming_form(use_case, person, body)
    result = post_incoming(gateway, form, query="mode=test" if test else "")
    assert result.status == 200, result.body
    assert result.body == b"<Response/>"
    assert result.headers["content-type"] == "text/xml"
    return inbound_id_for(form["AccountSid"], form["MessageSid"])


def sent_to(tenant: Tenant, use_case: UseCase, person: str, **fields: Any) -> str:
    """A message handed to Twilio from SENDER (as its acceptance records it)."""
    response = tenant.api.send(send_body(use_case, to_phone_number=person, **fields))
    assert response.status == 201, response.json()
    message_id: str = response.json()["id"]
    drain_handoff_queue()
    transitions.record_acceptance(message_id, clock.now_iso(), "SM" + uuid.uuid4().hex, 1, SENDER)
    return message_id


def replying_to_webhook(tenant: Tenant, receiver: Receiver) -> tuple[UseCase, str]:
    """A use case, and a person sent a message whose replies go to `receiver`."""
    use_case = ready_use_case(tenant)
    person = a_person()
    sent_to(tenant, use_case, person, reply_forwarding={"webhook_url": receiver.url})
    return use_case, person


def inbound(tenant: Tenant, inbound_id: str, key: str | None = None) -> dict[str, Any]:
    api = tenant.api if key is None else tenant.api.with_key(key)
    response = api.request("GET", f"/v1/sms/inbound/{inbound_id}")
    assert response.status == 200, response.json()
    found: dict[str, Any] = response.json()
    return found


def listing(
    tenant: Tenant, query: dict[str, str] | None = None, key: str | None = None
) -> list[dict[str, Any]]:
    api = tenant.api if key is None else tenant.api.with_key(key)
    response = api.request("GET", "/v1/sms/inbound", query=query)
    assert response.status == 200, response.json()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def key_of_test_mode(tenant: Tenant) -> str:
    return api_keys.issue_key(tenant.workspace_id, ALL_SCOPES, "test").secret


# --- the webhook: signatures, duplicates, keywords -----------------------------------------------


def test_a_stop_refuses_the_next_send_and_a_start_lifts_it(
    gateway: HttpApiGateway, tenant: Tenant
) -> None:
    use_case = ready_use_case(tenant)
    person = a_person()
    assert tenant.api.send(send_body(use_case, to_phone_number=person)).status == 201

    stop = text_in(gateway, use_case, person, "  stop ")

    refused = tenant.api.send(send_body(use_case, to_phone_number=person))
    assert refused.status == 422
    assert refused.json()["error"]["code"] == "recipient_opted_out"
    assert inbound(tenant, stop)["keyword"] == "stop"

    start = text_in(gateway, use_case, person, "Start")

    assert tenant.api.send(send_body(use_case, to_phone_number=person)).status == 201
    assert inbound(tenant, start)["keyword"] == "start"
    changes = opt_out_store.list_changes(
        opt_out_store.service_scope(use_case.messaging_service_sid), person
    )
    assert [(c["action"], c["source"], c["cause_id"]) for c in changes] == [
        ("opted_out", "keyword", stop),
        ("opted_in", "keyword", start),
    ]
    drain_handoff_queue()


@pytest.mark.parametrize("word", ["STOPALL", "unsubscribe", "Cancel", "END", "quit", "OPTOUT"])
def test_every_opt_out_keyword_opts_out(gateway: HttpApiGateway, tenant: Tenant, word: str) -> None:
    use_case = ready_use_case(tenant)
    person = a_person()
    text_in(gateway, use_case, person, word)
    refused = tenant.api.send(send_body(use_case, to_phone_number=person))
    assert refused.json()["error"]["code"] == "recipient_opted_out"


def test_help_is_flagged_and_changes_no_list(gateway: HttpApiGateway, tenant: Tenant) -> None:
    use_case = ready_use_case(tenant)
    person = a_person()
    help_id = text_in(gateway, use_case, person, "HELP")
    assert inbound(tenant, help_id)["keyword"] == "help"
    assert tenant.api.send(send_body(use_case, to_phone_number=person)).status == 201
    assert (
        opt_out_store.list_changes(
            opt_out_store.service_scope(use_case.messaging_service_sid), person
        )
        == []
    )
    drain_handoff_queue()


def test_a_word_that_only_contains_a_keyword_is_a_reply(
    gateway: HttpApiGateway, tenant: Tenant
) -> None:
    use_case = ready_use_case(tenant)
    person = a_person()
    reply = text_in(gateway, use_case, person, "please don't stop")
    assert inbound(tenant, reply)["keyword"] is None
    assert tenant.api.send(send_body(use_case, to_phone_number=person)).status == 201
    drain_handoff_queue()


def test_a_redelivered_stop_after_a_start_changes_nothing(
    gateway: HttpApiGateway, tenant: Tenant
) -> None:
    use_case = ready_use_case(tenant)
    person = a_person()
    stop = incoming_form(use_case, person, "STOP")
    assert post_incoming(gateway, stop).status == 200
    text_in(gateway, use_case, person, "START")

    # Twilio delivers the STOP once more (the same MessageSid).
    assert post_incoming(gateway, stop).status == 200

    assert tenant.api.send(send_body(use_case, to_phone_number=person)).status == 201
    assert len(listing(tenant, {"from": person})) == 2
    drain_handoff_queue()


@pytest.mark.parametrize("winner", ["operator", "person"])
def test_a_list_changed_between_its_read_and_the_write_is_read_again(
    gateway: HttpApiGateway, tenant: Tenant, monkeypatch: pytest.MonkeyPatch, winner: str
) -> None:
    """A STOP whose read of the list is overtaken by another change (an operator's opt-out, or
    the person's own START landing first) loses its transaction, reads the list again and
    records exactly what changes it."""
    use_case = ready_use_case(tenant)
    person = a_person()
    scope = opt_out_store.service_scope(use_case.messaging_service_sid)
    if winner == "person":
        opt_out_store.add_opt_out(scope, person)
    real_read = opt_out_store.is_listed
    reads: list[bool] = []

    def read_then_overtaken(read_scope: str, number: str) -> bool:
        listed = real_read(read_scope, number)
        reads.append(listed)
        if len(reads) == 1:
            # The other side wins the race: it changes the list right after this read.
            if winner == "operator":
                opt_out_store.add_opt_out(scope, person)
            else:
                opt_out_store.remove_opt_out(scope, person, opt_out_store.OptOutSource.KEYWORD)
        return listed

    monkeypatch.setattr(opt_out_store, "is_listed", read_then_overtaken)

    text_in(gateway, use_case, person, "STOP")

    assert reads == ([False, True] if winner == "operator" else [True, False])
    assert opt_out_store.is_listed(scope, person)
    actions = [(c["action"], c["source"]) for c in opt_out_store.list_changes(scope, person)]
    if winner == "operator":
        assert actions == [("opted_out", "operator")]
    else:
        assert actions == [
            ("opted_out", "operator"),
            ("opted_in", "keyword"),
            ("opted_out", "keyword"),
        ]


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda form: ({**form, "Body": "START"}, None), id="body-changed"),
        pytest.param(lambda form: (form, "bm90IGEgc2lnbmF0dXJl"), id="wrong-signature"),
        pytest.param(lambda form: (form, ""), id="no-signature"),
    ],
)
def test_a_request_twilio_did_not_sign_is_refused_and_stores_nothing(
    gateway: HttpApiGateway, tenant: Tenant, forge: Callable[..., Any]
) -> None:
    use_case = ready_use_case(tenant)
    person = a_person()
    form = incoming_form(use_case, person, "STOP")
    url = f"{PUBLIC_BASE_URL}{PATH}"
    signature = sign(url, form, AUTH_TOKENS[use_case.twilio_account_sid])
    forged, forged_signature = forge(form)

    result = post_incoming(
        gateway, forged, signature=signature if forged_signature is None else forged_signature
    )

    assert result.status == 403
    assert json.loads(result.body)["error"]["code"] == "forbidden"
    assert listing(tenant) == []
    assert tenant.api.send(send_body(use_case, to_phone_number=person)).status == 201
    drain_handoff_queue()


def test_a_test_mode_url_signed_as_a_live_one_is_refused(
    gateway: HttpApiGateway, tenant: Tenant
) -> None:
    use_case = ready_use_case(tenant)
    form = incoming_form(use_case, a_person(), "hello")
    live_signature = sign(f"{PUBLIC_BASE_URL}{PATH}", form, AUTH_TOKENS[form["AccountSid"]])
    result = post_incoming(gateway, form, query="mode=test", signature=live_signature)
    assert result.status == 403


def test_an_account_no_workspace_owns_stores_nothing(
    gateway: HttpApiGateway, tenant: Tenant
) -> None:
    # A use case whose subaccount was never bound to the workspace by an operator.
    use_case = create_use_case(tenant.workspace_id, use_case_spec())
    create_twilio_secret(use_case.twilio_account_sid)
    result = post_incoming(gateway, incoming_form(use_case, a_person(), "STOP"))
    assert result.status == 200
    assert listing(tenant) == []


# --- replies linked to what was sent -------------------------------------------------------------


def test_a_reply_is_linked_to_the_latest_message_to_that_person(
    gateway: HttpApiGateway, tenant: Tenant
) -> None:
    use_case = ready_use_case(tenant)
    person = a_person()
    sent_to(tenant, use_case, person)
    latest = sent_to(tenant, use_case, person)
    sent_to(tenant, use_case, a_person())  # to someone else, later

    reply_id = text_in(gateway, use_case, person, "Yes, see you then")

    reply = inbound(tenant, reply_id)
    assert reply == {
        "id": reply_id,
        "use_case_id": use_case.id,
        "from_number": person,
        "to_number": SENDER,
        "body": "Yes, see you then",
        "num_segments": 1,
        "received_at": reply["received_at"],
        "keyword": None,
        "in_reply_to": latest,
        "test": False,
    }
    assert listing(tenant) == [reply]
    assert listing(tenant, {"use_case_id": use_case.id}) == [reply]
    assert listing(tenant, {"from": person}) == [reply]
    assert listing(tenant, {"from": a_person()}) == []


def test_a_reply_to_nobody_we_wrote_to_is_stored_unlinked(
    gateway: HttpApiGateway, tenant: Tenant
) -> None:
    use_case = ready_use_case(tenant)
    reply_id = text_in(gateway, use_case, a_person(), "who is this?")
    assert inbound(tenant, reply_id)["in_reply_to"] is None


def test_a_message_older_than_30_days_is_not_answered(
    gateway: HttpApiGateway, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_case = ready_use_case(tenant)
    person = a_person()
    sent_to(tenant, use_case, person)
    later = clock.utc_now() + timedelta(days=30, minutes=1)
    monkeypatch.setattr(inbound_logic, "utc_now", lambda: later)

    reply_id = text_in(gateway, use_case, person, "late answer")

    assert inbound(tenant, reply_id)["in_reply_to"] is None


def test_a_reply_never_links_to_another_tenant_s_message(
    gateway: HttpApiGateway, tenant: Tenant
) -> None:
    # Both tenants send from the same number to the same person; the other one last.
    other = make_tenant(gateway)
    ours = ready_use_case(tenant)
    theirs = ready_use_case(other)
    person = a_person()
    mine = sent_to(tenant, ours, person)
    sent_to(other, theirs, person)

    reply_id = text_in(gateway, ours, person, "ok")

    assert inbound(tenant, reply_id)["in_reply_to"] == mine
    assert listing(other) == []
    missing = other.api.request("GET", f"/v1/sms/inbound/{reply_id}")
    assert missing.status == 404
    assert missing.json()["error"]["code"] == "inbound_message_not_found"


def test_a_use_case_of_another_workspace_lists_nothing(
    gateway: HttpApiGateway, tenant: Tenant
) -> None:
    other = make_tenant(gateway)
    theirs = ready_use_case(other)
    text_in(gateway, theirs, a_person(), "hi")
    assert listing(tenant, {"use_case_id": theirs.id}) == []


@pytest.mark.parametrize(
    "query", [{"from": "4155552671"}, {"use_case_id": "nope"}, {"colour": "red"}]
)
def test_a_bad_listing_parameter_is_a_validation_error(
    tenant: Tenant, query: dict[str, str]
) -> None:
    response = tenant.api.request("GET", "/v1/sms/inbound", query=query)
    assert response.status == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_test_mode_sees_only_test_inbound_and_its_stop_stops_only_test_sends(
    gateway: HttpApiGateway, tenant: Tenant
) -> None:
    use_case = ready_use_case(tenant)
    key = key_of_test_mode(tenant)
    person = a_person()
    response = tenant.api.with_key(key).send(send_body(use_case, to_phone_number=person))
    assert response.status == 201
    test_message = response.json()["id"]
    drain_handoff_queue()
    transitions.record_acceptance(test_message, clock.now_iso(), "SM" + uuid.uuid4().hex, 1, SENDER)
    live_message = sent_to(tenant, use_case, person)

    reply_id = text_in(gateway, use_case, person, "STOP", test=True)

    assert inbound(tenant, reply_id, key)["in_reply_to"] == test_message
    assert inbound(tenant, reply_id, key)["test"] is True
    assert listing(tenant) == []
    assert tenant.api.request("GET", f"/v1/sms/inbound/{reply_id}").status == 404
    refused = tenant.api.with_key(key).send(send_body(use_case, to_phone_number=person))
    assert refused.json()["error"]["code"] == "recipient_opted_out"
    assert tenant.api.send(send_body(use_case, to_phone_number=person)).status == 201
    assert live_message != test_message
    drain_handoff_queue()


# --- reply forwarding ----------------------------------------------------------------------------


@pytest.fixture
def email_forwarding(aws: LocalStack) -> Iterator[str]:
    """The operator's part: a verified SES sender, named in ReplyEmailFrom."""
    aws_clients.sesv2().create_email_identity(EmailIdentity=REPLY_EMAIL_FROM)
    saved = set_settings(
        REPLY_EMAIL_FROM=REPLY_EMAIL_FROM,
        CALLER_WEBHOOK_ALLOW_LOOPBACK_HTTP="true",
        CALLER_WEBHOOK_RETRY_DELAYS="0,0,0",
    )
    yield REPLY_EMAIL_FROM
    drain_webhook_queue()
    restore_settings(saved)


def run_forwarding(aws: LocalStack) -> None:
    """The pipe queues the new replies' jobs; ReplyForwardingFunction takes them."""
    template = tpl.project_template()
    [source] = [s for s in tpl.sqs_sources(template) if s.function == "ReplyForwardingFunction"]
    poller = SqsPoller(aws, source, tpl.functions(template)["ReplyForwardingFunction"])
    while poller.poll_once() > 0:
        pass


def sent_emails(aws: LocalStack) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{aws.endpoint_url}/moto-api/data.json") as answer:  # noqa: S310
        data = json.load(answer)
    messages: list[dict[str, Any]] = data["ses"]["Message"]
    return messages


def test_a_reply_is_forwarded_by_webhook_sms_and_email(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    receivers: Callable[..., Receiver],  # noqa: F811 - the fixture
    email_forwarding: str,
) -> None:
    use_case = ready_use_case(tenant)
    receiver = receivers()
    person, colleague = a_person(), a_person()
    inbox = f"desk-{uuid.uuid4().hex[:6]}@example.com"
    message_id = sent_to(
        tenant,
        use_case,
        person,
        reply_forwarding={"webhook_url": receiver.url, "to_sms": colleague, "to_email": inbox},
    )
    stored = tenant.api.request("GET", f"/v1/sms/{message_id}").json()
    assert stored["reply_forwarding"] == {
        "webhook_url": receiver.url,
        "webhook_method": None,
        "to_sms": colleague,
        "to_email": inbox,
    }

    reply_id = text_in(gateway, use_case, person, "Running 10 minutes late")
    run_forwarding(aws)
    run_webhooks(aws)

    # The webhook, signed with the workspace's secret.
    [delivery] = receiver.received
    event = Webhook(secret_of(tenant)).verify(delivery.body, delivery.headers)
    assert event["type"] == "message.reply"
    assert event["data"] == inbound(tenant, reply_id)
    assert delivery.headers["webhook-id"] == f"msg_{reply_id.replace('-', '')}_1"
    # The SMS, a message of the same use case that names the reply.
    forwarded = [
        m
        for m in tenant.api.request("GET", "/v1/sms/", query={"limit": "100"}).json()["items"]
        if m["forwarded_from"] == reply_id
    ]
    assert [(m["to_number"], m["use_case_id"], m["body"]) for m in forwarded] == [
        (colleague, use_case.id, f"Reply from {person}: Running 10 minutes late")
    ]
    # The email, through SES.
    [email] = [e for e in sent_emails(aws) if e["destinations"]["ToAddresses"] == [inbox]]
    assert email["source"] == REPLY_EMAIL_FROM
    assert "Running 10 minutes late" in email["body"] and person in email["body"]

    # The job again (a redelivery): nothing is sent twice.
    reply_forwarding.forward(reply_id)
    run_webhooks(aws)
    assert len(receiver.received) == 1
    assert len([e for e in sent_emails(aws) if e["destinations"]["ToAddresses"] == [inbox]]) == 1
    again = tenant.api.request("GET", "/v1/sms/", query={"limit": "100"}).json()["items"]
    assert len([m for m in again if m["forwarded_from"] == reply_id]) == 1
    drain_handoff_queue()


def test_a_forwarding_killed_before_its_outcome_was_recorded_sends_the_sms_once(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    email_forwarding: str,
) -> None:
    use_case = ready_use_case(tenant)
    person, colleague = a_person(), a_person()
    sent_to(tenant, use_case, person, reply_forwarding={"to_sms": colleague})
    reply_id = text_in(gateway, use_case, person, "call me")
    real_mark = inbound_store.mark_forwarded

    def killed(*args: Any) -> bool:
        raise Killed

    monkeypatch.setattr(inbound_store, "mark_forwarded", killed)
    with pytest.raises(Killed):
        reply_forwarding.forward(reply_id)
    monkeypatch.setattr(inbound_store, "mark_forwarded", real_mark)
    # Meanwhile the colleague opts out: the SMS went out all the same, and the record says so.
    opt_out_store.add_opt_out(opt_out_store.use_case_scope(use_case.id), colleague)

    # The job comes back (the queue's redelivery).
    outcomes = reply_forwarding.forward(reply_id)

    listed = tenant.api.request("GET", "/v1/sms/", query={"limit": "100"}).json()["items"]
    forwarded = [m for m in listed if m["forwarded_from"] == reply_id]
    assert len(forwarded) == 1
    assert outcomes == {"sms": f"sent:{forwarded[0]['id']}"}
    drain_handoff_queue()


def forward_in_function(aws: LocalStack, reply_id: str) -> dict[str, Any]:
    """ReplyForwardingFunction on one job for `reply_id`, as its event source mapping gives it."""
    spec = tpl.functions(tpl.project_template())["ReplyForwardingFunction"]
    job = {
        "MessageId": str(uuid.uuid4()),
        "ReceiptHandle": "handle",
        "Body": json.dumps({"inbound_id": reply_id}),
        "Attributes": {"ApproximateReceiveCount": "1"},
    }
    result: dict[str, Any] = invoke(
        spec, sqs_event([job], aws.attributes["ReplyForwardingQueue"]["Arn"])
    )
    return result


def test_a_forwarded_sms_is_a_send_against_the_workspace_s_limits(
    aws: LocalStack, gateway: HttpApiGateway, tenant: Tenant, email_forwarding: str
) -> None:
    use_case = ready_use_case(tenant)
    person, colleague = a_person(), a_person()
    # One send a day: the message itself takes it.
    limits_admin.set_send_rate(tenant.workspace_id, SendRate(Decimal(1) / 86400, 1))
    sent_to(tenant, use_case, person, reply_forwarding={"to_sms": colleague})
    reply_id = text_in(gateway, use_case, person, "hello")
    use_case_store.clear_cache()  # the function's own sandbox reads the use case itself

    # Refused for the send rate: left for a retry, nothing recorded, nothing sent.
    assert forward_in_function(aws, reply_id)["batchItemFailures"]
    stored = inbound_store.get_inbound(reply_id)
    assert stored is not None and stored.forwarded == {}

    # The operator lifts the rate for a quota; the retry sends it, spending from the quota.
    limits_admin.set_send_rate(tenant.workspace_id, None)
    limits_admin.set_monthly_segments(tenant.workspace_id, 1000)
    assert forward_in_function(aws, reply_id) == {"batchItemFailures": []}
    stored = inbound_store.get_inbound(reply_id)
    assert stored is not None and stored.forwarded is not None
    assert stored.forwarded["sms"].startswith("sent:")
    drain_handoff_queue()


def test_a_test_reply_is_forwarded_as_a_test_message_and_no_real_email(
    aws: LocalStack, gateway: HttpApiGateway, tenant: Tenant, email_forwarding: str
) -> None:
    use_case = ready_use_case(tenant)
    key = key_of_test_mode(tenant)
    person, colleague = a_person(), a_person()
    inbox = f"desk-{uuid.uuid4().hex[:6]}@example.com"
    forwarding = {"to_sms": colleague, "to_email": inbox}
    response = tenant.api.with_key(key).send(
        send_body(use_case, to_phone_number=person, reply_forwarding=forwarding)
    )
    assert response.status == 201, response.json()
    drain_handoff_queue()
    transitions.record_acceptance(
        response.json()["id"], clock.now_iso(), "SM" + uuid.uuid4().hex, 1, SENDER
    )
    reply_id = text_in(gateway, use_case, person, "a test answer", test=True)

    assert forward_in_function(aws, reply_id) == {"batchItemFailures": []}

    listed = tenant.api.with_key(key).request("GET", "/v1/sms/", query={"limit": "100"})
    [forwarded] = [m for m in listed.json()["items"] if m["forwarded_from"] == reply_id]
    assert forwarded["test"] is True and forwarded["to_number"] == colleague
    stored = inbound_store.get_inbound(reply_id)
    assert stored is not None and stored.forwarded is not None
    assert stored.forwarded["email"] == "simulated"
    assert [e for e in sent_emails(aws) if e["destinations"]["ToAddresses"] == [inbox]] == []
    drain_handoff_queue()


def test_a_wallet_without_a_quota_pays_nothing_for_a_forwarded_sms(
    aws: LocalStack, gateway: HttpApiGateway, tenant: Tenant, email_forwarding: str
) -> None:
    """A wallet pays what a quota does not cover; without a quota nothing is charged: the
    forwarded SMS's write only checks that the workspace's limits stay so."""
    use_case = ready_use_case(tenant)
    person, colleague = a_person(), a_person()
    limits_admin.top_up(tenant.workspace_id, Decimal("5"), "USD")
    sent_to(tenant, use_case, person, reply_forwarding={"to_sms": colleague})
    reply_id = text_in(gateway, use_case, person, "thanks")

    assert forward_in_function(aws, reply_id) == {"batchItemFailures": []}

    stored = inbound_store.get_inbound(reply_id)
    assert stored is not None and stored.forwarded is not None
    assert stored.forwarded["sms"].startswith("sent:")
    wallet = tenant.api.request("GET", "/v1/usage").json()["wallet"]
    assert wallet == {"balance": "5", "currency": "USD"}
    drain_handoff_queue()


def test_a_reply_twilio_delivers_twice_is_forwarded_once(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    receivers: Callable[..., Receiver],  # noqa: F811 - the fixture
    email_forwarding: str,
) -> None:
    receiver = receivers()
    use_case, person = replying_to_webhook(tenant, receiver)
    form = incoming_form(use_case, person, "on my way")

    assert post_incoming(gateway, form).status == 200
    assert post_incoming(gateway, form).status == 200
    run_forwarding(aws)
    run_webhooks(aws)

    assert len(receiver.received) == 1
    assert len(listing(tenant, {"from": person})) == 1


def test_the_reply_webhook_s_attempts_are_listed_for_its_workspace_only(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    receivers: Callable[..., Receiver],  # noqa: F811 - the fixture
    email_forwarding: str,
) -> None:
    receiver = receivers(script=[500])
    use_case, person = replying_to_webhook(tenant, receiver)
    reply_id = text_in(gateway, use_case, person, "see you")
    run_forwarding(aws)
    run_webhooks(aws)

    response = tenant.api.request("GET", f"/v1/sms/inbound/{reply_id}/webhook-attempts")
    assert response.status == 200
    attempts = response.json()["items"]
    assert [(a["type"], a["attempt"], a["status_code"]) for a in attempts] == [
        ("message.reply", 1, 500),
        ("message.reply", 2, 204),
    ]
    other = make_tenant(gateway)
    missing = other.api.request("GET", f"/v1/sms/inbound/{reply_id}/webhook-attempts")
    assert missing.status == 404
    assert missing.json()["error"]["code"] == "inbound_message_not_found"


def test_a_keyword_is_not_forwarded(
    aws: LocalStack,
    gateway: HttpApiGateway,
    tenant: Tenant,
    receivers: Callable[..., Receiver],  # noqa: F811 - the fixture
    email_forwarding: str,
) -> None:
    receiver = receivers()
    use_case, person = replying_to_webhook(tenant, receiver)

    stop_id = text_in(gateway, use_case, person, "STOP")
    run_forwarding(aws)
    run_webhooks(aws)

    assert receiver.received == []
    stored = inbound_store.get_inbound(stop_id)
    assert stored is not None and stored.forward_channels is None


def test_a_forwarded_sms_to_an_opted_out_number_is_refused_and_not_retried(
    aws: LocalStack, gateway: HttpApiGateway, tenant: Tenant, email_forwarding: str
) -> None:
    use_case = ready_use_case(tenant)
    person, colleague = a_person(), a_person()
    opt_out_store.add_opt_out(opt_out_store.use_case_scope(use_case.id), colleague)
    sent_to(tenant, use_case, person, reply_forwarding={"to_sms": colleague})

    reply_id = text_in(gateway, use_case, person, "hello")
    run_forwarding(aws)

    stored = inbound_store.get_inbound(reply_id)
    assert stored is not None
    assert stored.forwarded == {"sms": "refused:recipient_opted_out"}


@pytest.mark.parametrize(
    ("forwarding", "code"),
    [
        ({}, "validation_error"),
        ({"webhook_method": "GET", "to_sms": "+14155552671"}, "validation_error"),
        ({"to_sms": "0412 345 678"}, "validation_error"),
        ({"to_email": "not an address"}, "validation_error"),
        ({"webhook_url": "https://127.0.0.1/hook"}, "callback_url_invalid"),
        ({"to_sms": "+14155552671", "fax": "+1"}, "validation_error"),
    ],
)
def test_a_bad_reply_forwarding_is_refused_and_stores_nothing(
    tenant: Tenant, use_case: UseCase, forwarding: dict[str, Any], code: str
) -> None:
    response = tenant.api.send(send_body(use_case, reply_forwarding=forwarding))
    assert response.status == 422
    assert response.json()["error"]["code"] == code
    assert drain_handoff_queue(tenant.workspace_id) == []


def test_email_forwarding_without_a_configured_sender_is_refused(
    tenant: Tenant, use_case: UseCase
) -> None:
    response = tenant.api.send(
        send_body(use_case, reply_forwarding={"to_email": "desk@example.com"})
    )
    assert response.status == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert "not configured" in response.json()["error"]["message"]
