"""What each function may do, read from template.yaml, and what it should be allowed to do.

A grant is an (IAM action, resource) pair. Resources are named by logical id so that a policy
reads the way the template does: "MessagesTable", "MessagesTable/index/by_workspace",
"HandoffQueue", "HandoffLogGroup", "SchedulerInvokeRole", or, for an ARN built with Fn::Sub, the
part after the account ("secret:${TwilioSecretPrefix}*", "schedule/${MessageScheduleGroup}/*").

The unit tests compare the template with EXPECTED_GRANTS; the integration tests check that what
the code really calls, for the sample events, is granted; tests/unit/test_built_template.py
checks that SAM's own translator produces the same grants.
"""

from __future__ import annotations

import re
from typing import Any

from sms_local.template import resources_of_type

Grant = tuple[str, str]

# What the SAM policy templates grant (samtranslator/policy_templates_data/policy_templates.json;
# test_built_template.py compares this table with that file). A template not listed here fails
# the tests until it is added.
DYNAMODB_READ = (
    "dynamodb:GetItem", "dynamodb:Scan", "dynamodb:Query", "dynamodb:BatchGetItem",
    "dynamodb:DescribeTable",
)  # fmt: skip
DYNAMODB_CRUD = (
    "dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Scan",
    "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem", "dynamodb:BatchGetItem",
    "dynamodb:DescribeTable", "dynamodb:ConditionCheckItem",
)  # fmt: skip
SQS_POLLER = (
    "sqs:ChangeMessageVisibility", "sqs:ChangeMessageVisibilityBatch", "sqs:DeleteMessage",
    "sqs:DeleteMessageBatch", "sqs:GetQueueAttributes", "sqs:ReceiveMessage",
)  # fmt: skip
SAM_POLICY_TEMPLATES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    # name: (parameter naming the resource, actions, resources with {} for that resource)
    "DynamoDBReadPolicy": ("TableName", DYNAMODB_READ, ("{}", "{}/index/*")),
    "DynamoDBCrudPolicy": ("TableName", DYNAMODB_CRUD, ("{}", "{}/index/*")),
    "SQSSendMessagePolicy": ("QueueName", ("sqs:SendMessage*",), ("{}",)),
    "SQSPollerPolicy": ("QueueName", SQS_POLLER, ("{}",)),
}

# How an ARN built with Fn::Sub starts, up to the account.
_ARN_PREFIX = re.compile(
    r"^arn:\$\{AWS::Partition\}:[a-z0-9-]+:\$\{AWS::Region\}:\$\{AWS::AccountId\}:"
)
_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")

EXPECTED_GRANTS: dict[str, set[Grant]] = {
    "AuthorizerFunction": {
        ("dynamodb:GetItem", "ApiKeysTable"),
    },
    "SendFunction": {
        ("dynamodb:GetItem", "UseCasesTable"),
        ("dynamodb:BatchGetItem", "OptOutsTable"),
        ("dynamodb:PutItem", "MessagesTable"),
        ("dynamodb:DeleteItem", "MessagesTable"),
        ("dynamodb:GetItem", "IdempotencyTable"),
        ("dynamodb:PutItem", "IdempotencyTable"),
        ("dynamodb:UpdateItem", "IdempotencyTable"),
        ("dynamodb:DeleteItem", "IdempotencyTable"),
        ("sqs:SendMessage", "HandoffQueue"),
        ("scheduler:CreateSchedule", "schedule/${MessageScheduleGroup}/*"),
        ("iam:PassRole", "SchedulerInvokeRole"),
    },
    "MessagesQueryFunction": {
        ("dynamodb:GetItem", "MessagesTable"),
        ("dynamodb:Query", "MessagesTable/index/by_workspace"),
        ("dynamodb:Query", "MessagesTable/index/by_use_case"),
    },
    "UseCasesFunction": {
        ("dynamodb:GetItem", "ApiKeysTable"),
        ("dynamodb:GetItem", "UseCasesTable"),
        ("dynamodb:PutItem", "UseCasesTable"),
        ("dynamodb:UpdateItem", "UseCasesTable"),
        ("dynamodb:Query", "UseCasesTable/index/by_workspace"),
    },
    "CancelFunction": {
        ("dynamodb:GetItem", "MessagesTable"),
        ("dynamodb:UpdateItem", "MessagesTable"),
        ("scheduler:DeleteSchedule", "schedule/${MessageScheduleGroup}/*"),
    },
    "ScheduledDispatchFunction": {
        ("dynamodb:GetItem", "MessagesTable"),
        ("dynamodb:UpdateItem", "MessagesTable"),
        ("sqs:SendMessage", "HandoffQueue"),
        # Its asynchronous-invocation DLQ (DeadLetterQueue): SAM grants this itself.
        ("sqs:SendMessage", "ScheduleDeadLetterQueue"),
    },
    "HandoffFunction": {
        # HandoffRole is written out in full, logs included (no AWSLambdaBasicExecutionRole).
        ("logs:CreateLogStream", "HandoffLogGroup"),
        ("logs:PutLogEvents", "HandoffLogGroup"),
        ("sqs:ReceiveMessage", "HandoffQueue"),
        ("sqs:DeleteMessage", "HandoffQueue"),
        ("sqs:GetQueueAttributes", "HandoffQueue"),
        ("sqs:ChangeMessageVisibility", "HandoffQueue"),
        ("dynamodb:GetItem", "MessagesTable"),
        ("dynamodb:UpdateItem", "MessagesTable"),
        ("dynamodb:GetItem", "UseCasesTable"),
        ("dynamodb:PutItem", "OptOutsTable"),
        ("secretsmanager:GetSecretValue", "secret:${TwilioSecretPrefix}*"),
    },
    "StatusCallbackFunction": {
        ("dynamodb:UpdateItem", "MessagesTable"),
        ("secretsmanager:GetSecretValue", "secret:${TwilioSecretPrefix}*"),
    },
}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resource_id(node: Any) -> str:
    """A policy Resource as a logical id, or as the ARN's tail after the account."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and len(node) == 1:
        ((fn, arg),) = node.items()
        if fn == "Fn::GetAtt":
            name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            if attribute in ("Arn", "QueueName"):
                return str(name)
        if fn == "Ref":
            return str(arg)
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

            def replace(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in variables:
                    return resource_id(variables[name])
                if name.endswith(".Arn"):
                    return name.removesuffix(".Arn")
                return match.group(0)

            tail = _ARN_PREFIX.sub("", _SUB_VARIABLE.sub(replace, text))
            return tail.removeprefix("table/")
    raise AssertionError(f"a policy resource this test cannot read: {node!r}")


def statement_grants(statements: list[dict[str, Any]]) -> set[Grant]:
    grants: set[Grant] = set()
    for statement in statements:
        assert statement["Effect"] == "Allow", statement
        assert "NotAction" not in statement and "NotResource" not in statement, statement
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                grants.add((action, resource_id(resource)))
    return grants


def sam_template_grants(name: str, parameters: dict[str, Any]) -> set[Grant]:
    assert name in SAM_POLICY_TEMPLATES, f"add the SAM policy template {name} to the table"
    parameter, actions, resources = SAM_POLICY_TEMPLATES[name]
    target = resource_id(parameters[parameter])
    return {(action, pattern.format(target)) for action in actions for pattern in resources}


def policy_grants(policies: list[Any]) -> set[Grant]:
    """The grants of a SAM function's Policies (statements and policy templates)."""
    grants: set[Grant] = set()
    for policy in policies:
        assert isinstance(policy, dict), (
            f"a managed policy by name is not least privilege: {policy}"
        )
        if "Statement" in policy:
            grants |= statement_grants(policy["Statement"])
            continue
        ((name, parameters),) = policy.items()
        grants |= sam_template_grants(name, parameters)
    return grants


def function_grants(template: dict[str, Any], name: str) -> set[Grant]:
    """Everything a function's role allows, as far as template.yaml says (SAM's managed
    AWSLambdaBasicExecutionRole and AWSXrayWriteOnlyAccess aside)."""
    props = template["Resources"][name]["Properties"]
    if "Role" in props:
        role_name = resource_id(props["Role"])
        role = template["Resources"][role_name]["Properties"]
        grants: set[Grant] = set()
        for policy in role.get("Policies", []):
            grants |= statement_grants(policy["PolicyDocument"]["Statement"])
        return grants
    grants = policy_grants(props.get("Policies", []))
    dead_letter = props.get("DeadLetterQueue")
    if dead_letter:
        assert dead_letter["Type"] == "SQS"
        grants.add(("sqs:SendMessage", resource_id(dead_letter["TargetArn"])))
    return grants


def all_statements(template: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Every policy statement written in the template for a function's role."""
    props = template["Resources"][name]["Properties"]
    if "Role" in props:
        role = template["Resources"][resource_id(props["Role"])]["Properties"]
        return [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    return [s for p in props.get("Policies", []) if "Statement" in p for s in p["Statement"]]


def function_names(template: dict[str, Any]) -> list[str]:
    return sorted(resources_of_type(template, "AWS::Serverless::Function"))
