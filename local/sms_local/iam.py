"""What each function's role allows, read from template.yaml, and a check that makes the local
stack refuse, as AWS would, every AWS call a function's handler makes that its role does not grant.

moto enforces no IAM: without this, an action missing from a policy would pass every local run
and fail only in AWS with AccessDenied.

A grant is an (IAM action, resource) pair. Resources are named by logical id so that a policy
reads the way the template does: "MessagesTable", "MessagesTable/index/by_workspace",
"HandoffQueue", "HandoffLogGroup", "SchedulerInvokeRole", or, for an ARN built with Fn::Sub, the
part after the account ("secret:${TwilioSecretPrefix}*", "schedule/${MessageScheduleGroup}/*").
A call is named the same way, as the local stack names what it touches (tables and queues by
logical id), so the two compare directly once the ${...} left in a grant are resolved.

Attribution: functions run in-process here, so the function whose handler is running is held in
a context variable (per thread, as the local stack runs handlers in server threads). Calls made
outside any handler (test setup, the CLI, demo data, the pollers acting for Lambda's event
source mapping) are the operator's or AWS's own and are not checked.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from sms_local.aws_resources import ACCOUNT_ID, REGION, LocalStack, parameter_defaults
from sms_local.template import functions, resources_of_type

log = logging.getLogger(__name__)

Grant = tuple[str, str]
# (function, grant): a call a function's handler made, as the grant it needs.
Call = tuple[str, Grant]


class UnreadablePolicyError(ValueError):
    """A policy this module cannot read the way IAM would: refuse it rather than guess."""


# --- reading grants from the template ----------------------------------------------------------

# What the SAM policy templates grant (samtranslator/policy_templates_data/policy_templates.json;
# tests/unit/test_built_template.py compares this table with that file). A template not listed
# here is refused until it is added.
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
            if attribute == "StreamArn":
                # Read by the event source mapping (with the function's role), never by the
                # function's code: no call of a function names it.
                return f"{name}/stream"
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
    raise UnreadablePolicyError(f"a policy resource this module cannot read: {node!r}")


def statement_grants(statements: list[dict[str, Any]]) -> set[Grant]:
    grants: set[Grant] = set()
    for statement in statements:
        # A Deny, a NotAction or a NotResource would need IAM's whole evaluation logic.
        if statement["Effect"] != "Allow" or "NotAction" in statement or "NotResource" in statement:
            raise UnreadablePolicyError(f"only plain Allow statements are read: {statement}")
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                grants.add((action, resource_id(resource)))
    return grants


def sam_template_grants(name: str, parameters: dict[str, Any]) -> set[Grant]:
    if name not in SAM_POLICY_TEMPLATES:
        raise UnreadablePolicyError(f"add the SAM policy template {name} to the table")
    parameter, actions, resources = SAM_POLICY_TEMPLATES[name]
    target = resource_id(parameters[parameter])
    return {(action, pattern.format(target)) for action in actions for pattern in resources}


def policy_grants(policies: list[Any]) -> set[Grant]:
    """The grants of a SAM function's Policies (statements and policy templates)."""
    grants: set[Grant] = set()
    for policy in policies:
        if not isinstance(policy, dict):
            raise UnreadablePolicyError(
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
    AWSLambdaBasicExecutionRole and AWSXrayWriteOnlyAccess aside). A resource that is a
    parameter's Ref (a list of ARNs the operator gives) stays ${Name}, resolved with the local
    stack's values."""
    parameters = template.get("Parameters", {})
    return {
        (action, f"${{{resource}}}" if resource in parameters else resource)
        for action, resource in _written_grants(template, name)
    }


def _written_grants(template: dict[str, Any], name: str) -> set[Grant]:
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
        if dead_letter["Type"] != "SQS":
            raise UnreadablePolicyError(f"a dead-letter target other than SQS: {dead_letter}")
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


def role_name(template: dict[str, Any], name: str) -> str:
    """The role a function runs as: its own Role, or the one SAM creates, <Function>Role."""
    role = template["Resources"][name]["Properties"].get("Role")
    return resource_id(role) if role is not None else f"{name}Role"


# --- what a call needs -------------------------------------------------------------------------

# SQS authorizes a batch with the permission of the single action.
_SQS_BATCH_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
# A DynamoDB transaction is authorized item by item, with each item's own action.
_TRANSACTION_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}


# botocore's endpoint prefix where it is not the service's IAM prefix.
_IAM_PREFIXES = {"email": "ses"}


def required_grants(service: str, operation: str, params: Mapping[str, Any]) -> list[Grant]:
    """The grants an API call needs, named the way the template's grants are (by logical id, as
    the local stack names its tables and queues). `service` is botocore's endpoint prefix."""
    service = _IAM_PREFIXES.get(service, service)
    if service == "dynamodb" and operation in ("TransactWriteItems", "TransactGetItems"):
        return [
            (_TRANSACTION_ITEM_ACTIONS.get(kind, f"dynamodb:{kind}"), _table(request["TableName"]))
            for item in params.get("TransactItems", [])
            for kind, request in item.items()
        ]
    if service == "sqs":
        operation = _SQS_BATCH_ACTIONS.get(operation, operation)
    action = f"{service}:{operation}"
    needed = [(action, resource) for resource in concrete_resources(service, operation, params)]
    if service == "scheduler" and operation in ("CreateSchedule", "UpdateSchedule"):
        # The schedule's target role is passed to EventBridge Scheduler: AWS checks PassRole.
        target = params.get("Target")
        role_arn = target.get("RoleArn") if isinstance(target, dict) else None
        if role_arn:
            needed.append(("iam:PassRole", str(role_arn).rsplit("/", 1)[-1]))
    return needed


def concrete_resources(service: str, operation: str, params: Mapping[str, Any]) -> list[str]:
    """What an API call touches, named as the local stack names it (by logical id); "*" for a
    call this module cannot place, which no grant of ours allows."""
    if service == "dynamodb":
        if "RequestItems" in params:
            return [_table(name) for name in params["RequestItems"]]
        if "TableName" not in params:
            return ["*"]
        table = _table(params["TableName"])
        index = params.get("IndexName")
        return [f"{table}/index/{index}" if index else table]
    if service == "sqs":
        if "QueueUrl" in params:
            return [str(params["QueueUrl"]).rsplit("/", 1)[-1]]
        return [str(params["QueueName"])] if "QueueName" in params else ["*"]
    if service == "secretsmanager" and "SecretId" in params:
        return [_secret(str(params["SecretId"]))]
    if service == "ses" and "FromEmailAddress" in params:
        # SESv2 authorizes a send against the identity of its From address.
        return [f"identity/{params['FromEmailAddress']}"]
    if service == "sms-voice" and operation == "SendTextMessage":
        # IAM authorizes a send against its origination identity and its configuration set
        # (named here as the local stack names it, by logical id).
        return [
            _sms_voice_identity(str(params.get("OriginationIdentity", ""))),
            str(params.get("ConfigurationSetName") or "*"),
        ]
    if service == "scheduler" and "Name" in params:
        if operation.endswith("ScheduleGroup"):
            return [f"schedule-group/{params['Name']}"]
        if operation.endswith("Schedule"):
            return [f"schedule/{params.get('GroupName') or 'default'}/{params['Name']}"]
    return ["*"]


# An origination identity's id prefix -> its resource type in an sms-voice ARN.
_SMS_VOICE_ID_TYPES = {"pool-": "pool", "phone-": "phone-number", "senderid-": "sender-id"}


def _sms_voice_identity(identity: str) -> str:
    """An origination identity as its ARN's resource part; "*" for a phone number or a sender ID
    given as such, whose ARN only AWS knows (the local stack sends from pools)."""
    if identity.startswith("arn:"):
        return identity.split(":", 5)[-1]
    for prefix, kind in _SMS_VOICE_ID_TYPES.items():
        if identity.startswith(prefix):
            return f"{kind}/{identity}"
    return "*"


def _table(name: Any) -> str:
    """A table named by name or by ARN."""
    return str(name).rsplit(":table/", 1)[-1]


def _secret(secret_id: str) -> str:
    """secret:<name>, whether the call names the secret or gives its ARN."""
    parts = secret_id.split(":", 5)
    if secret_id.startswith("arn:") and len(parts) == 6:
        return parts[5]
    return f"secret:{secret_id}"


def arn_of(action: str, resource: str) -> str:
    """The ARN of a resource named as a grant names it, for AWS's error message."""
    service = action.split(":", 1)[0]
    if resource == "*":
        return "*"
    if service == "iam":
        return f"arn:aws:iam::{ACCOUNT_ID}:role/{resource}"
    if service == "dynamodb":
        return f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{resource}"
    return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{resource}"


# --- matching ----------------------------------------------------------------------------------


def substitute(pattern: str, values: Mapping[str, str]) -> str:
    """A grant's resource with the ${Name} it still holds (a parameter, a resource's Ref)
    replaced by the local stack's value; refuse one it cannot resolve, which would otherwise
    silently deny everything it covers."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise UnreadablePolicyError(f"{pattern}: no value for ${{{name}}} in the local stack")
        return values[name]

    return _SUB_VARIABLE.sub(replace, pattern)


def resolved_resources(resource: str, values: Mapping[str, str]) -> list[str]:
    """A grant's resource in the local stack's names: its ${Name} resolved; a parameter of
    ARNs, comma-separated, gives several (no ARN holds a comma), each named as a call names it,
    by its part after the account."""
    return [
        one.split(":", 5)[-1] if one.startswith("arn:") else one
        for one in substitute(resource, values).split(",")
    ]


def wildcard_pattern(pattern: str) -> re.Pattern[str]:
    """An IAM wildcard (* any characters, / included; ? one character) as a regex."""
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
        re.DOTALL,
    )


def stack_values(stack: LocalStack) -> dict[str, str]:
    """What ${Name} means in the local stack: the parameters' values and the resources' Refs."""
    return {**{k: str(v) for k, v in stack.parameters.items()}, **stack.refs}


def environment_values(
    template: dict[str, Any],
    environment: Mapping[str, str],
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """What ${Name} means in the local stack, read from the functions' resolved environment: a
    variable the template sets to !Ref Name holds Name's value (the parameters' values
    otherwise, the defaults where the stack gave none)."""
    values = {
        k: ",".join(map(str, v)) if isinstance(v, list) else str(v)
        for k, v in {**parameter_defaults(template), **(parameters or {})}.items()
    }
    for spec in functions(template).values():
        for variable, value in spec.environment.items():
            if isinstance(value, dict) and set(value) == {"Ref"} and variable in environment:
                values[str(value["Ref"])] = environment[variable]
    return values


def permitted(call: Grant, grants: Iterable[Grant], stack: LocalStack) -> bool:
    """Whether one of `grants` allows `call`, in the local stack's names."""
    return FunctionPolicy("", grants, stack_values(stack)).allows(call)


class FunctionPolicy:
    """One function's grants, resolved and compiled once: a check is a dict lookup and a match
    against the few resource patterns granted for that action."""

    def __init__(self, role: str, grants: Iterable[Grant], values: Mapping[str, str]) -> None:
        self.role = role
        # IAM compares actions case-insensitively; an action may itself hold a wildcard.
        self._grants = [
            (wildcard_pattern(action.lower()), wildcard_pattern(one))
            for action, resource in grants
            for one in resolved_resources(resource, values)
        ]
        self._by_action: dict[str, list[re.Pattern[str]]] = {}

    def allows(self, call: Grant) -> bool:
        action, resource = call
        return any(pattern.fullmatch(resource) for pattern in self._resources_for(action.lower()))

    def _resources_for(self, action: str) -> list[re.Pattern[str]]:
        patterns = self._by_action.get(action)
        if patterns is None:
            # A function calls a handful of actions: each worked out on first use, then looked up.
            patterns = [r for a, r in self._grants if a.fullmatch(action)]
            self._by_action[action] = patterns
        return patterns


class Policy:
    """Every function's grants as template.yaml gives them, in the local stack's names."""

    def __init__(self, template: dict[str, Any], values: Mapping[str, str]) -> None:
        self.functions = {
            name: FunctionPolicy(role_name(template, name), function_grants(template, name), values)
            for name in function_names(template)
        }

    def denied(self, function: str, needed: Iterable[Grant]) -> Grant | None:
        """The first of the grants a call needs that the function's role lacks; a function the
        template does not define has no role and is granted nothing."""
        policy = self.functions.get(function)
        for grant in needed:
            if policy is None or not policy.allows(grant):
                return grant
        return None

    def role_of(self, function: str) -> str:
        policy = self.functions.get(function)
        return policy.role if policy is not None else f"{function}Role"


# --- attribution and enforcement ---------------------------------------------------------------

_running: ContextVar[str | None] = ContextVar("sms_local_running_function", default=None)
_policy: Policy | None = None
_recorders: list[list[Call]] = []
_install_lock = threading.Lock()
_installed = False


@contextmanager
def running_as(function: str) -> Iterator[None]:
    """AWS calls made in this block, in this thread, are `function`'s."""
    token = _running.set(function)
    try:
        yield
    finally:
        _running.reset(token)


def running_function() -> str | None:
    return _running.get()


def enforce(policy: Policy | None) -> Policy | None:
    """Check every call a function's handler makes against `policy` from now on (None: stop
    checking); return the policy enforced until now."""
    global _policy
    previous, _policy = _policy, policy
    install()
    return previous


@contextmanager
def recording() -> Iterator[list[Call]]:
    """Every AWS call a function's handler makes in this block, granted or not, in order."""
    install()
    calls: list[Call] = []
    _recorders.append(calls)
    try:
        yield calls
    finally:
        _recorders.remove(calls)


def access_denied(client: Any, operation: str, function: str, role: str, grant: Grant) -> Any:
    """The error AWS answers with (DynamoDB, SQS, Secrets Manager and Scheduler alike), as the
    client's own exception class for that code."""
    action, resource = grant
    message = (
        f"User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role}/{function} is not authorized to "
        f"perform: {action} on resource: {arn_of(action, resource)} because no identity-based "
        f"policy allows the {action} action"
    )
    response: Any = {
        "Error": {"Code": "AccessDeniedException", "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 400, "HTTPHeaders": {}, "RetryAttempts": 0},
    }
    error_class: type[ClientError] = client.exceptions.from_code("AccessDeniedException")
    return error_class(response, operation)


def check_call(client: Any, operation: str, params: Mapping[str, Any]) -> None:
    """Refuse, before it is sent, a call the running function's role does not grant."""
    function = _running.get()
    if function is None:
        return  # not a function's call: the operator's or AWS's own
    needed = required_grants(client.meta.service_model.endpoint_prefix, operation, params)
    for calls in tuple(_recorders):
        calls.extend((function, grant) for grant in needed)
    policy = _policy
    if policy is None:
        return
    refused = policy.denied(function, needed)
    if refused is not None:
        log.warning("IAM denies %s on %s to %s", refused[0], refused[1], function)
        raise access_denied(client, operation, function, policy.role_of(function), refused)


def install() -> None:
    """Put the check in front of every botocore client, those created later included (the
    shared package caches its clients and tests reset them). Idempotent."""
    global _installed
    with _install_lock:
        if _installed:
            return
        make_api_call: Callable[..., Any] = BaseClient._make_api_call  # type: ignore[attr-defined]  # private, unstubbed

        def checked(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
            check_call(self, operation_name, api_params)
            return make_api_call(self, operation_name, api_params)

        BaseClient._make_api_call = checked  # type: ignore[attr-defined]  # private, unstubbed
        _installed = True
