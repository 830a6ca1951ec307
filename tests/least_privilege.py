"""What each function should be allowed to do; what template.yaml lets it do is read by
sms_local.iam (which the local stack enforces) and re-exported here.

A grant is an (IAM action, resource) pair. Resources are named by logical id so that a policy
reads the way the template does: "MessagesTable", "MessagesTable/index/by_workspace",
"HandoffQueue", "HandoffLogGroup", "SchedulerInvokeRole", or, for an ARN built with Fn::Sub, the
part after the account ("secret:${TwilioSecretPrefix}*", "schedule/${MessageScheduleGroup}/*").

The unit tests compare the template with EXPECTED_GRANTS; the integration tests check that what
the code really calls, for the sample events, is granted; tests/unit/test_built_template.py
checks that SAM's own translator produces the same grants.
"""

from __future__ import annotations

# Reading the grants from the template lives with the local stack, which enforces them; these
# names stay importable from here.
from sms_local.iam import (
    DYNAMODB_CRUD,
    DYNAMODB_READ,
    SAM_POLICY_TEMPLATES,
    SQS_POLLER,
    Grant,
    all_statements,
    as_list,
    function_grants,
    function_names,
    policy_grants,
    resource_id,
    sam_template_grants,
    statement_grants,
)

__all__ = [
    "DYNAMODB_CRUD",
    "DYNAMODB_READ",
    "EXPECTED_GRANTS",
    "SAM_POLICY_TEMPLATES",
    "SQS_POLLER",
    "Grant",
    "all_statements",
    "as_list",
    "function_grants",
    "function_names",
    "policy_grants",
    "resource_id",
    "sam_template_grants",
    "statement_grants",
]

EXPECTED_GRANTS: dict[str, set[Grant]] = {
    "AuthorizerFunction": {
        ("dynamodb:GetItem", "ApiKeysTable"),
    },
    "SendFunction": {
        ("dynamodb:GetItem", "UseCasesTable"),
        ("dynamodb:BatchGetItem", "OptOutsTable"),
        ("dynamodb:PutItem", "MessagesTable"),
        ("dynamodb:GetItem", "IdempotencyTable"),
        ("dynamodb:PutItem", "IdempotencyTable"),
        ("dynamodb:UpdateItem", "IdempotencyTable"),
        ("dynamodb:DeleteItem", "IdempotencyTable"),
        ("scheduler:CreateSchedule", "schedule/${MessageScheduleGroup}/*"),
        ("iam:PassRole", "SchedulerInvokeRole"),
    },
    "MessagesQueryFunction": {
        ("dynamodb:GetItem", "MessagesTable"),
        ("dynamodb:GetItem", "UseCasesTable"),
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
        ("dynamodb:UpdateItem", "MessagesTable"),
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
        ("dynamodb:BatchGetItem", "OptOutsTable"),
        ("dynamodb:PutItem", "OptOutsTable"),
        ("secretsmanager:GetSecretValue", "secret:${TwilioSecretPrefix}*"),
    },
    "StatusCallbackFunction": {
        ("dynamodb:UpdateItem", "MessagesTable"),
        ("dynamodb:PutItem", "OptOutsTable"),
        ("secretsmanager:GetSecretValue", "secret:${TwilioSecretPrefix}*"),
    },
}
