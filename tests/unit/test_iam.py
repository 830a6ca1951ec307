"""The local stack's IAM check (sms_local.iam), without AWS: how a call is named, what a role read
from a template allows, who a call is attributed to, and the error a refused call raises before
anything is sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sms_local import iam
from sms_local import template as tpl
from sms_local.lambda_runtime import LambdaContext, load_handler
from sms_local.template import FunctionSpec


def sub_arn(service: str, tail: str) -> dict[str, str]:
    return {
        "Fn::Sub": f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{tail}"
    }


# Two functions, one with SAM policies, one with a role of its own, as template.yaml has them.
TEMPLATE: dict[str, Any] = {
    "Parameters": {"SecretPrefix": {"Type": "String", "Default": "default/prefix/"}},
    "Globals": {
        "Function": {"Environment": {"Variables": {"SECRET_PREFIX": {"Ref": "SecretPrefix"}}}}
    },
    "Resources": {
        "ReaderFunction": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "CodeUri": "functions/reader",
                "Handler": "app.handler",
                "Environment": {"Variables": {"GROUP": {"Ref": "Group"}}},
                "Policies": [
                    {"DynamoDBReadPolicy": {"TableName": {"Ref": "ItemsTable"}}},
                    {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["Queue", "QueueName"]}}},
                    {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "scheduler:CreateSchedule",
                                "Resource": sub_arn("scheduler", "schedule/${Group}/*"),
                            },
                            {
                                "Effect": "Allow",
                                "Action": "iam:PassRole",
                                "Resource": {"Fn::GetAtt": ["InvokeRole", "Arn"]},
                            },
                        ]
                    },
                ],
            },
        },
        "WriterFunction": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "CodeUri": "functions/writer",
                "Handler": "app.handler",
                "Role": {"Fn::GetAtt": ["WriterRole", "Arn"]},
            },
        },
        "WriterRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Policies": [
                    {
                        "PolicyDocument": {
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Action": ["dynamodb:PutItem"],
                                    "Resource": {"Fn::GetAtt": ["ItemsTable", "Arn"]},
                                },
                                {
                                    "Effect": "Allow",
                                    "Action": "secretsmanager:GetSecretValue",
                                    "Resource": sub_arn(
                                        "secretsmanager", "secret:${SecretPrefix}*"
                                    ),
                                },
                            ]
                        }
                    }
                ]
            },
        },
    },
}
# The functions' environment as the local stack resolved it.
ENVIRONMENT = {"SECRET_PREFIX": "sms.twilio/", "GROUP": "messages-dev"}
POLICY = iam.Policy(TEMPLATE, iam.environment_values(TEMPLATE, ENVIRONMENT))


@pytest.mark.parametrize(
    ("service", "operation", "params", "needed"),
    [
        ("dynamodb", "GetItem", {"TableName": "ItemsTable", "Key": {}},
         [("dynamodb:GetItem", "ItemsTable")]),
        ("dynamodb", "Query", {"TableName": "ItemsTable", "IndexName": "by_owner"},
         [("dynamodb:Query", "ItemsTable/index/by_owner")]),
        ("dynamodb", "BatchGetItem", {"RequestItems": {"A": {}, "B": {}}},
         [("dynamodb:BatchGetItem", "A"), ("dynamodb:BatchGetItem", "B")]),
        ("dynamodb", "GetItem",
         {"TableName": "arn:aws:dynamodb:us-east-1:123456789012:table/ItemsTable"},
         [("dynamodb:GetItem", "ItemsTable")]),
        ("dynamodb", "TransactWriteItems",
         {"TransactItems": [{"Put": {"TableName": "A"}}, {"ConditionCheck": {"TableName": "B"}}]},
         [("dynamodb:PutItem", "A"), ("dynamodb:ConditionCheckItem", "B")]),
        ("sqs", "SendMessage", {"QueueUrl": "http://127.0.0.1:5000/123456789012/Queue"},
         [("sqs:SendMessage", "Queue")]),
        ("sqs", "SendMessageBatch", {"QueueUrl": "http://127.0.0.1:5000/123456789012/Queue"},
         [("sqs:SendMessage", "Queue")]),
        ("secretsmanager", "GetSecretValue", {"SecretId": "sms/twilio/AC1"},
         [("secretsmanager:GetSecretValue", "secret:sms/twilio/AC1")]),
        ("secretsmanager", "GetSecretValue",
         {"SecretId": "arn:aws:secretsmanager:us-east-1:123456789012:secret:sms/twilio/AC1-AbCdEf"},
         [("secretsmanager:GetSecretValue", "secret:sms/twilio/AC1-AbCdEf")]),
        ("scheduler", "DeleteSchedule", {"Name": "m1", "GroupName": "g"},
         [("scheduler:DeleteSchedule", "schedule/g/m1")]),
        ("scheduler", "GetSchedule", {"Name": "m1"},
         [("scheduler:GetSchedule", "schedule/default/m1")]),
        ("scheduler", "CreateSchedule",
         {"Name": "m1", "GroupName": "g", "Target": {"Arn": "x", "RoleArn":
                                                     "arn:aws:iam::123456789012:role/InvokeRole"}},
         [("scheduler:CreateSchedule", "schedule/g/m1"), ("iam:PassRole", "InvokeRole")]),
        ("scheduler", "CreateScheduleGroup", {"Name": "g"},
         [("scheduler:CreateScheduleGroup", "schedule-group/g")]),
        ("sts", "GetCallerIdentity", {}, [("sts:GetCallerIdentity", "*")]),
        # A send is authorized against its origination identity and its configuration set.
        ("sms-voice", "SendTextMessage",
         {"OriginationIdentity": "pool-abc", "ConfigurationSetName": "EventsSet"},
         [("sms-voice:SendTextMessage", "pool/pool-abc"),
          ("sms-voice:SendTextMessage", "EventsSet")]),
        ("sms-voice", "SendTextMessage",
         {"OriginationIdentity": "arn:aws:sms-voice:us-east-1:123456789012:pool/pool-abc",
          "ConfigurationSetName": "EventsSet"},
         [("sms-voice:SendTextMessage", "pool/pool-abc"),
          ("sms-voice:SendTextMessage", "EventsSet")]),
        ("sms-voice", "SendTextMessage",
         {"OriginationIdentity": "phone-123", "ConfigurationSetName": "EventsSet"},
         [("sms-voice:SendTextMessage", "phone-number/phone-123"),
          ("sms-voice:SendTextMessage", "EventsSet")]),
        # A number or a sender ID as such: only AWS knows its ARN, so no grant of ours allows it
        ("sms-voice", "SendTextMessage",
         {"OriginationIdentity": "+12065550100", "ConfigurationSetName": "EventsSet"},
         [("sms-voice:SendTextMessage", "*"), ("sms-voice:SendTextMessage", "EventsSet")]),
    ],
)  # fmt: skip
def test_a_call_needs_its_action_on_what_it_touches_named_as_the_template_names_it(
    service: str, operation: str, params: dict[str, Any], needed: list[iam.Grant]
) -> None:
    assert iam.required_grants(service, operation, params) == needed


@pytest.mark.parametrize(
    ("grant", "allowed"),
    [
        (("dynamodb:GetItem", "ItemsTable"), True),
        (("dynamodb:Query", "ItemsTable/index/by_owner"), True),
        (("dynamodb:DeleteItem", "ItemsTable"), False),
        (("dynamodb:GetItem", "OtherTable"), False),
        (("dynamodb:GetItem", "ItemsTableCopy"), False),
        # SQSSendMessagePolicy grants sqs:SendMessage*
        (("sqs:SendMessage", "Queue"), True),
        (("sqs:SendMessage", "OtherQueue"), False),
        (("sqs:ReceiveMessage", "Queue"), False),
        (("scheduler:CreateSchedule", "schedule/messages-dev/m1"), True),
        (("scheduler:CreateSchedule", "schedule/default/m1"), False),
        (("scheduler:DeleteSchedule", "schedule/messages-dev/m1"), False),
        (("iam:PassRole", "InvokeRole"), True),
        (("iam:PassRole", "WriterRole"), False),
    ],
)
def test_a_function_with_sam_policies_may_do_exactly_what_they_grant(
    grant: iam.Grant, allowed: bool
) -> None:
    assert POLICY.denied("ReaderFunction", [grant]) == (None if allowed else grant)


@pytest.mark.parametrize(
    ("grant", "allowed"),
    [
        (("dynamodb:PutItem", "ItemsTable"), True),
        (("dynamodb:GetItem", "ItemsTable"), False),
        # The prefix is the stack's value, not the parameter's default, and its "." is a dot.
        (("secretsmanager:GetSecretValue", "secret:sms.twilio/AC1"), True),
        (("secretsmanager:GetSecretValue", "secret:smsXtwilio/AC1"), False),
        (("secretsmanager:GetSecretValue", "secret:default/prefix/AC1"), False),
        (("secretsmanager:GetSecretValue", "secret:other/AC1"), False),
    ],
)
def test_a_function_with_its_own_role_may_do_exactly_what_the_role_grants(
    grant: iam.Grant, allowed: bool
) -> None:
    assert POLICY.denied("WriterFunction", [grant]) == (None if allowed else grant)


def test_every_grant_a_call_needs_must_be_there() -> None:
    needed = [("dynamodb:PutItem", "ItemsTable"), ("dynamodb:PutItem", "OtherTable")]
    assert POLICY.denied("WriterFunction", needed) == ("dynamodb:PutItem", "OtherTable")


def test_a_function_the_template_does_not_define_is_granted_nothing() -> None:
    grant = ("dynamodb:GetItem", "ItemsTable")
    assert POLICY.denied("UnknownFunction", [grant]) == grant


def test_a_grant_naming_a_value_the_stack_lacks_is_refused_when_read() -> None:
    with pytest.raises(iam.UnreadablePolicyError, match="Group"):
        iam.Policy(TEMPLATE, iam.environment_values(TEMPLATE, {"SECRET_PREFIX": "p/"}))


def test_the_values_are_read_from_the_environment_and_the_parameters_defaults() -> None:
    values = iam.environment_values(TEMPLATE, {"GROUP": "g"})
    assert values == {"SecretPrefix": "default/prefix/", "Group": "g"}


def test_every_function_of_the_project_template_gets_a_policy() -> None:
    template = tpl.project_template()
    environment = {
        "TWILIO_SECRET_PREFIX": "sms/twilio/",
        "SCHEDULE_GROUP_NAME": "sms-gateway-dev-messages",
    }
    policy = iam.Policy(template, iam.environment_values(template, environment))
    assert set(policy.functions) == set(iam.function_names(template))
    assert policy.denied("HandoffFunction", [("dynamodb:PutItem", "OptOutsTable")]) is None
    refused = ("dynamodb:DeleteItem", "OptOutsTable")
    assert policy.denied("HandoffFunction", [refused]) == refused


@pytest.fixture
def enforced() -> Iterator[iam.Policy]:
    previous = iam.enforce(POLICY)
    yield POLICY
    iam.enforce(previous)


def unreachable_dynamodb() -> Any:
    """A client whose requests could not be sent (and sockets are off in unit tests)."""
    return boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.mark.usefixtures("enforced")
def test_a_refused_call_raises_access_denied_before_anything_is_sent() -> None:
    client = unreachable_dynamodb()
    with iam.running_as("ReaderFunction"), pytest.raises(ClientError) as raised:
        client.delete_item(TableName="ItemsTable", Key={"id": {"S": "1"}})
    error = raised.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert error["Message"] == (
        "User: arn:aws:sts::123456789012:assumed-role/ReaderFunctionRole/ReaderFunction is not "
        "authorized to perform: dynamodb:DeleteItem on resource: "
        "arn:aws:dynamodb:us-east-1:123456789012:table/ItemsTable because no identity-based "
        "policy allows the dynamodb:DeleteItem action"
    )
    assert raised.value.operation_name == "DeleteItem"


@pytest.mark.usefixtures("enforced")
def test_the_denial_names_the_role_the_function_runs_as() -> None:
    client = unreachable_dynamodb()
    with iam.running_as("WriterFunction"), pytest.raises(ClientError) as raised:
        client.get_item(TableName="ItemsTable", Key={"id": {"S": "1"}})
    assert "assumed-role/WriterRole/WriterFunction " in raised.value.response["Error"]["Message"]


@pytest.mark.usefixtures("enforced")
def test_a_call_outside_any_handler_is_not_checked() -> None:
    iam.check_call(unreachable_dynamodb(), "DeleteItem", {"TableName": "ItemsTable"})


@pytest.mark.usefixtures("enforced")
def test_a_granted_call_is_let_through() -> None:
    with iam.running_as("WriterFunction"):
        iam.check_call(unreachable_dynamodb(), "PutItem", {"TableName": "ItemsTable"})


def test_the_running_function_is_per_thread() -> None:
    both_inside = threading.Barrier(2, timeout=30)  # a guard against a hang, not a timing
    seen: dict[str, str | None] = {}

    def run(function: str) -> None:
        with iam.running_as(function):
            both_inside.wait()
            seen[function] = iam.running_function()

    threads = [threading.Thread(target=run, args=(f,)) for f in ("AFunction", "BFunction")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"AFunction": "AFunction", "BFunction": "BFunction"}
    assert iam.running_function() is None


def test_a_handler_loaded_by_the_runtime_runs_as_its_function_only_while_it_runs(
    tmp_path: Path,
) -> None:
    (tmp_path / "whoami_handler.py").write_text(
        "from sms_local import iam\n\n"
        "def handler(event, context):\n"
        "    return iam.running_function()\n"
    )
    spec = FunctionSpec("CancelFunction", str(tmp_path), "whoami_handler.handler")
    handler = load_handler(spec)
    assert iam.running_function() is None
    assert handler({}, LambdaContext("CancelFunction", 3)) == "CancelFunction"
    assert iam.running_function() is None


def test_a_parameter_of_arns_grants_each_of_them_and_nothing_else() -> None:
    grants = [("sms-voice:SendTextMessage", "${Identities}")]
    arns = (
        "arn:aws:sms-voice:us-east-1:123456789012:pool/pool-a,"
        "arn:aws:sms-voice:us-east-1:123456789012:phone-number/phone-b"
    )
    policy = iam.FunctionPolicy("Role", grants, {"Identities": arns})
    assert policy.allows(("sms-voice:SendTextMessage", "pool/pool-a"))
    assert policy.allows(("sms-voice:SendTextMessage", "phone-number/phone-b"))
    assert not policy.allows(("sms-voice:SendTextMessage", "pool/pool-c"))
    assert not policy.allows(("sms-voice:SendTextMessage", "*"))
