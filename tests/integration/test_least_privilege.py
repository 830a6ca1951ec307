"""Least privilege, both ways, read from what the code really does rather than from a list.

Every call is granted: the local stack holds each function to its role in template.yaml on every
AWS call its handler makes, in every test (sms_local.iam), and tests/integration/conftest.py fails
any test in which a function made a call its role does not grant, even one whose
AccessDeniedException the code swallowed. So every path some test runs is checked, not one
script.

Every grant is needed: the same fixture remembers, over the whole session, every (function,
action, resource) the functions' own code needed (tests marked `probes` run handlers of their own
and do not count). The check below runs after every other test (conftest orders it last) and
fails for a grant in template.yaml that no call of the code in any test matched: remove the
grant, or write the test of the path that needs it. It means something only when every test of
tests/integration ran, so it skips, saying why, when a file, a test or a keyword was chosen.
This does not depend on the order of the other tests: the set only grows, and all of it is read
at the end.

The grants only AWS itself uses on a function's behalf (its logs, its event source mapping, its
asynchronous dead-letter queue) are listed in AWS_USES, with what uses each.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Set
from types import SimpleNamespace
from typing import Any, cast

import pytest

from sms_gateway.domain.use_cases import UseCase
from sms_gateway.store import opt_out_store
from sms_local import iam
from sms_local import template as tpl
from sms_local.aws_resources import LocalStack
from sms_local.iam import Call, Grant
from sms_local.sqs_poller import SqsPoller
from sms_local.twilio_simulator import TwilioSimulator
from tests.integration.conftest import (
    INTEGRATION_DIR,
    Tenant,
    pytest_deselected,
    why_not_the_whole_directory,
)
from tests.integration.test_handoff import (  # noqa: F401 - fixtures
    message,
    poller,
    send,
    simulator,
    wired,
)
from tests.integration.test_send_api import send_body

# Grants no handler code calls, and what calls them instead.
AWS_USES: dict[tuple[str, Grant], str] = {
    ("HandoffFunction", ("logs:CreateLogStream", "HandoffLogGroup")): "Lambda's own logging",
    ("HandoffFunction", ("logs:PutLogEvents", "HandoffLogGroup")): "Lambda's own logging",
    ("HandoffFunction", ("sqs:ReceiveMessage", "HandoffQueue")): "the event source mapping",
    ("HandoffFunction", ("sqs:DeleteMessage", "HandoffQueue")): "the event source mapping",
    ("HandoffFunction", ("sqs:GetQueueAttributes", "HandoffQueue")): "the event source mapping",
    ("ScheduledDispatchFunction", ("sqs:SendMessage", "ScheduleDeadLetterQueue")): (
        "Lambda's asynchronous DLQ, after the function failed"
    ),
    **{
        (function, (f"logs:{action}", group)): "Lambda's own logging"
        for function, group in (
            ("UsageFunction", "UsageLogGroup"),
            ("CallerWebhookFunction", "CallerWebhookLogGroup"),
            ("ReplyForwardingFunction", "ReplyForwardingLogGroup"),
            ("EumEventsFunction", "EumEventsLogGroup"),
        )
        for action in ("CreateLogStream", "PutLogEvents")
    },
    **{
        (function, (f"sqs:{action}", queue)): "the event source mapping"
        for function, queue in (
            ("CallerWebhookFunction", "CallerWebhookQueue"),
            ("ReplyForwardingFunction", "ReplyForwardingQueue"),
            ("EumEventsFunction", "EumEventsQueue"),
        )
        for action in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")
    },
    **{
        ("UsageFunction", (f"dynamodb:{action}", "MessagesTable/stream")): (
            "the event source mapping"
        )
        for action in ("DescribeStream", "GetRecords", "GetShardIterator", "ListStreams")
    },
}


def template_grants(template: dict[str, Any]) -> set[tuple[str, Grant]]:
    return {
        (function, grant)
        for function in iam.function_names(template)
        for grant in iam.function_grants(template, function)
    }


def unused_grants(
    template: dict[str, Any], values: Mapping[str, str], exercised: Set[Call]
) -> set[tuple[str, Grant]]:
    """The grants of `template` that no call in `exercised` needed (those AWS uses aside)."""
    made: dict[str, set[Grant]] = {}
    for function, call in exercised:
        made.setdefault(function, set()).add(call)
    unused = set()
    for function, grant in template_grants(template):
        if (function, grant) in AWS_USES:
            continue
        policy = iam.FunctionPolicy(function, [grant], values)
        if not any(policy.allows(call) for call in made.get(function, ())):
            unused.add((function, grant))
    return unused


@pytest.mark.whole_session
def test_every_grant_is_needed_by_the_code_under_some_test(
    request: pytest.FixtureRequest, aws: LocalStack, exercised_calls: set[Call]
) -> None:
    reason = why_not_the_whole_directory(request.session)
    if reason is not None:
        pytest.skip(f"needs every test of tests/integration to have run: {reason}")
    template = tpl.project_template()
    values = iam.stack_values(aws)

    unused = unused_grants(template, values, exercised_calls)

    assert not unused, (
        "no test runs code that needs these grants: remove them from template.yaml, or test "
        f"the path that needs each: {sorted(unused)}"
    )
    # What AWS uses is still granted (Lambda would fail without it) and the code does not call it
    # (then it would not belong in AWS_USES).
    assert set(AWS_USES) <= template_grants(template)
    called = {
        (function, grant)
        for function, grant in AWS_USES
        if any(
            iam.FunctionPolicy(function, [grant], values).allows(call)
            for f, call in exercised_calls
            if f == function
        )
    }
    assert not called, f"the code calls these itself: take them out of AWS_USES: {called}"


def a_session(files: list[str], args: tuple[str, ...] = ("tests",)) -> Any:
    """What why_not_the_whole_directory reads of a session that collected tests from `files`."""
    config = SimpleNamespace(stash=pytest.Stash(), args=list(args))
    items = [SimpleNamespace(path=INTEGRATION_DIR / name, config=config) for name in files]
    return SimpleNamespace(items=items, config=config)


def test_the_grant_check_runs_only_when_every_integration_test_runs() -> None:
    every_file = sorted(p.name for p in INTEGRATION_DIR.glob("test_*.py"))
    assert why_not_the_whole_directory(cast(pytest.Session, a_session(every_file))) is None
    # One file left out, a test deselected (-k, -m, --deselect, --lf), or tests chosen by name
    partial = a_session([f for f in every_file if f != "test_scheduling.py"])
    assert "test_scheduling.py" in str(why_not_the_whole_directory(partial))
    deselected = a_session(every_file)
    pytest_deselected(deselected.items[:1])
    assert "deselected" in str(why_not_the_whole_directory(deselected))
    by_name = a_session(every_file, ("tests/integration/test_cli.py::test_errors",))
    assert "by name" in str(why_not_the_whole_directory(by_name))


def a_call_needing(grant: Grant, values: Mapping[str, str]) -> Grant:
    """A concrete call that `grant` allows (its wildcard stands for one name)."""
    action, resource = grant
    return action, iam.resolved_resources(resource, values)[0].replace("*", "msg-1")


def test_a_grant_no_call_needs_is_reported(aws: LocalStack) -> None:
    # Given the template with one grant more than the code needs, and a call for every other
    template = copy.deepcopy(tpl.project_template())
    values = iam.stack_values(aws)
    every_call = {
        (function, a_call_needing(grant, values)) for function, grant in template_grants(template)
    }
    statement = {"Effect": "Allow", "Action": "dynamodb:DeleteItem", "Resource": "MessagesTable"}
    template["Resources"]["CancelFunction"]["Properties"]["Policies"].append(
        {"Statement": [statement]}
    )
    # Then the check reports exactly that grant
    assert unused_grants(template, values, every_call) == {
        ("CancelFunction", ("dynamodb:DeleteItem", "MessagesTable"))
    }
    # ... and, in the template as it is, a grant whose only call is gone
    create = ("scheduler:CreateSchedule", "schedule/${MessageScheduleGroup}/*")
    without = every_call - {("SendFunction", a_call_needing(create, values))}
    assert unused_grants(tpl.project_template(), values, without) == {("SendFunction", create)}


def test_a_call_of_another_function_does_not_make_a_grant_needed(aws: LocalStack) -> None:
    template = tpl.project_template()
    values = iam.stack_values(aws)
    read = ("dynamodb:GetItem", "ApiKeysTable")
    # Only the use-case function reads API keys here: the authorizer's grant is then unneeded.
    unused = unused_grants(template, values, {("UseCasesFunction", read)})
    assert ("AuthorizerFunction", read) in unused
    assert ("UseCasesFunction", read) not in unused


# --- paths whose grant no other test needs ------------------------------------------------------


@pytest.mark.usefixtures("wired")
def test_a_number_twilio_refuses_at_once_as_unsubscribed_is_opted_out_by_the_handoff(
    tenant: Tenant,
    use_case: UseCase,
    simulator: TwilioSimulator,  # noqa: F811
    poller: SqsPoller,  # noqa: F811
) -> None:
    """Twilio answers 21610 at once (no callback ever comes): the handoff fails the message and
    writes the opt-out itself (HandoffFunction's PutItem on OptOutsTable), so the next send to
    the number is refused."""
    number = "+15005550004"
    simulator.configure(reject_unsubscribed_synchronously=True)
    message_id = send(tenant, use_case, number)

    deadline = time.monotonic() + 30  # the shared queue may hold other tests' records
    while message(tenant, message_id)["status"] == "pending" and time.monotonic() < deadline:
        poller.poll_once()

    final = message(tenant, message_id)
    assert (final["status"], final["error_code"]) == ("failed", 21610)
    assert simulator.messages == []  # refused, never accepted
    scope = opt_out_store.service_scope(use_case.messaging_service_sid)
    assert opt_out_store.is_opted_out([scope], number)
    again = tenant.api.send(send_body(use_case, to_phone_number=number))
    assert (again.status, again.json()["error"]["code"]) == (422, "recipient_opted_out")
