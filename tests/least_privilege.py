"""What template.yaml lets each function do, as sms_local.iam reads it (and the local stack
enforces it), re-exported here.

A grant is an (IAM action, resource) pair. Resources are named by logical id so that a policy
reads the way the template does: "MessagesTable", "MessagesTable/index/by_workspace",
"HandoffQueue", "HandoffLogGroup", "SchedulerInvokeRole", or, for an ARN built with Fn::Sub, the
part after the account ("secret:${TwilioSecretPrefix}*", "schedule/${MessageScheduleGroup}/*").

No hand-written list says what a function should be allowed: the integration tests check the
template against the code itself, on every path a test runs (every call the code makes is granted,
and every grant is needed by some call: tests/integration/test_least_privilege.py);
tests/unit/test_template.py checks the shape of the grants (no wildcards, PassRole only to the
scheduler); tests/unit/test_built_template.py checks that SAM's own translator produces the grants
read here.
"""

from __future__ import annotations

from sms_local import template as tpl

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

# Each function's grants as template.yaml gives them (the name SAM's translator is compared with).
EXPECTED_GRANTS: dict[str, set[Grant]] = {
    name: function_grants(tpl.project_template(), name)
    for name in function_names(tpl.project_template())
}
