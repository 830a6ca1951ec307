"""Creates the tables, queues and other resources of template.yaml in an AWS endpoint (moto in
server mode) and resolves the template's references to them, as CloudFormation would."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import boto3

from sms_local.template import resources_of_type

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"


@dataclass
class LocalStack:
    """What was created, by logical id: the value of Ref and of each GetAtt attribute."""

    endpoint_url: str
    parameters: dict[str, Any]
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    conditions: dict[str, Any] = field(default_factory=dict)
    # AWS End User Messaging SMS configuration sets (by name) -> the SNS topic their event
    # destination publishes to: what the provider simulator is configured with.
    configuration_sets: dict[str, str | None] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        factory: Any = boto3.client
        return factory(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's fixed fake credentials
        )

    def resolve(self, value: Any) -> Any:
        """Evaluate the intrinsic functions the template uses in function environments."""
        if isinstance(value, dict) and len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Ref":
                return self._ref(arg)
            if fn == "Fn::GetAtt":
                return self.attributes[arg[0]][arg[1]]
            if fn == "Fn::Sub":
                return self._sub(arg)
            if fn == "Fn::If":
                branch = arg[1] if self.condition(arg[0]) else arg[2]
                return self.resolve(branch)
            if fn == "Fn::Join":
                return arg[0].join(str(self.resolve(v)) for v in arg[1])
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def condition(self, name: str) -> bool:
        return bool(self._evaluate(self.conditions[name]))

    def _evaluate(self, expression: Any) -> Any:
        if isinstance(expression, dict) and len(expression) == 1:
            ((fn, arg),) = expression.items()
            if fn == "Fn::Not":
                return not self._evaluate(arg[0])
            if fn == "Fn::Equals":
                return self._evaluate(arg[0]) == self._evaluate(arg[1])
            if fn == "Fn::And":
                return all(self._evaluate(a) for a in arg)
            if fn == "Fn::Or":
                return any(self._evaluate(a) for a in arg)
            if fn == "Condition":
                return self.condition(arg)
        return self.resolve(expression)

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": "sms-gateway-local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.refs[name]

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name:
                resource, attribute = name.split(".", 1)
                return self.attributes[resource][attribute]
            return str(self._ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def environment(self, variables: dict[str, Any]) -> dict[str, str]:
        return {name: str(self.resolve(value)) for name, value in variables.items()}


def parameter_defaults(template: dict[str, Any]) -> dict[str, Any]:
    return {name: spec.get("Default", "") for name, spec in template.get("Parameters", {}).items()}


def create_resources(
    template: dict[str, Any], endpoint_url: str, parameters: dict[str, Any] | None = None
) -> LocalStack:
    stack = LocalStack(
        endpoint_url,
        {**parameter_defaults(template), **(parameters or {})},
        conditions=template.get("Conditions", {}),
    )
    # Routes' integrations are in-process here; the API id only appears in default URLs.
    stack.refs["HttpApi"] = "localapi01"
    _register_functions_and_roles(template, stack)
    _create_tables(template, stack)
    _create_queues(template, stack)
    _create_topics(template, stack)
    _register_configuration_sets(template, stack)
    _create_schedule_groups(template, stack)
    _verify_reply_email_sender(stack)
    return stack


def _verify_reply_email_sender(stack: LocalStack) -> None:
    """The operator's part of email forwarding: the ReplyEmailFrom address as an SES identity
    (moto verifies it at once; SES would after its owner confirms)."""
    sender = str(stack.parameters.get("ReplyEmailFrom") or "")
    if sender:
        stack.client("sesv2").create_email_identity(EmailIdentity=sender)


def function_arn(logical_id: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{logical_id}"


def _register_functions_and_roles(template: dict[str, Any], stack: LocalStack) -> None:
    """Functions run in-process and roles are not enforced here: only their names and ARNs."""
    for name in resources_of_type(template, "AWS::Serverless::Function"):
        stack.refs[name] = name
        stack.attributes[name] = {"Arn": function_arn(name)}
    for name in resources_of_type(template, "AWS::IAM::Role"):
        stack.refs[name] = name
        stack.attributes[name] = {"Arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"}


def _create_topics(template: dict[str, Any], stack: LocalStack) -> None:
    """SNS topics and their subscriptions (moto's SNS delivers to its SQS queues). Topic and
    queue policies are not enforced here."""
    sns = stack.client("sns")
    for name in resources_of_type(template, "AWS::SNS::Topic"):
        arn = sns.create_topic(Name=name)["TopicArn"]
        stack.refs[name] = arn
        stack.attributes[name] = {"TopicArn": arn, "TopicName": name}
    for resource in resources_of_type(template, "AWS::SNS::Subscription").values():
        props = resource["Properties"]
        attributes = {}
        if props.get("RawMessageDelivery"):
            attributes["RawMessageDelivery"] = "true"
        sns.subscribe(
            TopicArn=str(stack.resolve(props["TopicArn"])),
            Protocol=str(props["Protocol"]),
            Endpoint=str(stack.resolve(props["Endpoint"])),
            Attributes=attributes,
        )


def _register_configuration_sets(template: dict[str, Any], stack: LocalStack) -> None:
    """AWS End User Messaging SMS has no emulator in moto: the provider simulator holds the
    configuration sets, named by logical id, each with the topic of its SNS event destination."""
    for name, resource in resources_of_type(template, "AWS::SMSVOICE::ConfigurationSet").items():
        stack.refs[name] = name
        stack.attributes[name] = {
            "Arn": f"arn:aws:sms-voice:{REGION}:{ACCOUNT_ID}:configuration-set/{name}"
        }
        topics = [
            str(stack.resolve(destination["SnsDestination"]["TopicArn"]))
            for destination in resource["Properties"].get("EventDestinations", [])
            if "SnsDestination" in destination and destination.get("Enabled", True)
        ]
        stack.configuration_sets[name] = topics[0] if topics else None


def _create_schedule_groups(template: dict[str, Any], stack: LocalStack) -> None:
    scheduler = stack.client("scheduler")
    for name, resource in resources_of_type(template, "AWS::Scheduler::ScheduleGroup").items():
        group = str(stack.resolve(resource["Properties"]["Name"]))
        arn = scheduler.create_schedule_group(Name=group)["ScheduleGroupArn"]
        stack.refs[name] = group
        stack.attributes[name] = {"Arn": arn}


def _create_tables(template: dict[str, Any], stack: LocalStack) -> None:
    dynamodb = stack.client("dynamodb")
    for name, resource in resources_of_type(template, "AWS::DynamoDB::Table").items():
        props = resource["Properties"]
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        stream = props.get("StreamSpecification")
        if stream:
            request["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": stream["StreamViewType"],
            }
        description = dynamodb.create_table(**request)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"
        stack.refs[name] = name
        stack.attributes[name] = {"Arn": arn}
        if stream:
            stack.attributes[name]["StreamArn"] = description["LatestStreamArn"]


def _create_queues(template: dict[str, Any], stack: LocalStack) -> None:
    sqs = stack.client("sqs")
    queues = resources_of_type(template, "AWS::SQS::Queue")
    # Every queue first, then the redrive policies, which point at other queues' ARNs.
    for name, resource in queues.items():
        props = resource.get("Properties", {})
        attributes = {
            key: str(props[key])
            for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds")
            if key in props
        }
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        stack.refs[name] = url
        stack.attributes[name] = {"Arn": arn, "QueueName": name, "QueueUrl": url}
    for name, resource in queues.items():
        redrive = resource.get("Properties", {}).get("RedrivePolicy")
        if redrive:
            policy = {
                "deadLetterTargetArn": stack.resolve(redrive["deadLetterTargetArn"]),
                "maxReceiveCount": int(redrive["maxReceiveCount"]),
            }
            sqs.set_queue_attributes(
                QueueUrl=stack.refs[name], Attributes={"RedrivePolicy": json.dumps(policy)}
            )
