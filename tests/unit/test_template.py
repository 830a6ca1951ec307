"""template.yaml, read the way CloudFormation and SAM will: what each function may do, its logs,
the alarms, the tables, the queues, the HTTP API, the outputs and the scan's suppressions."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sms_local import template as tpl
from tests.least_privilege import (
    all_statements,
    as_list,
    function_grants,
    function_names,
    resource_id,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = tpl.load_template()
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
FUNCTIONS = function_names(TEMPLATE)


def of_type(resource_type: str) -> dict[str, dict[str, Any]]:
    return tpl.resources_of_type(TEMPLATE, resource_type)


def props(name: str) -> dict[str, Any]:
    properties: dict[str, Any] = RESOURCES[name]["Properties"]
    return properties


# --- least privilege ---------------------------------------------------------------------------


# Whether each grant is needed, and enough, is checked against the code itself, on every path the
# integration tests run (tests/integration/test_least_privilege.py): here, only their shape.


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_wildcard_action_and_no_wildcard_resource(function: str) -> None:
    for action, resource in function_grants(TEMPLATE, function):
        service, _, name = action.partition(":")
        assert service and name and "*" not in action, action
        assert resource != "*" and not resource.startswith("*"), (action, resource)
        # A wildcard is only ever the tail of a named resource: its streams, indexes, the
        # schedules of our group, the secrets under our prefix.
        assert resource.count("*") <= 1 and (resource.endswith("*") or "*" not in resource)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_pass_role_only_to_the_scheduler(function: str) -> None:
    for statement in all_statements(TEMPLATE, function):
        if "iam:PassRole" in as_list(statement["Action"]):
            assert as_list(statement["Action"]) == ["iam:PassRole"]
            assert statement["Condition"] == {
                "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}
            }
            assert [resource_id(r) for r in as_list(statement["Resource"])] == [
                "SchedulerInvokeRole"
            ]


def test_functions_roles_are_sam_generated_or_written_out_in_the_template() -> None:
    # An explicit role replaces SAM's, so it must carry what SAM would have added.
    for function in FUNCTIONS:
        role = props(function).get("Role")
        if role is None:
            continue
        role_props = props(resource_id(role))
        assert "Policies" not in props(function), "Policies are ignored with an explicit Role"
        principal = role_props["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        assert principal == {"Service": "lambda.amazonaws.com"}
        assert [resource_id(a) for a in role_props["ManagedPolicyArns"]] == [
            "arn:${AWS::Partition}:iam::aws:policy/AWSXrayWriteOnlyAccess"
        ]
        log_group = resource_id(props(function)["LoggingConfig"]["LogGroup"])
        assert ("logs:PutLogEvents", log_group) in function_grants(TEMPLATE, function)


def test_the_scheduler_role_may_only_invoke_dispatch_and_park_in_its_dlq() -> None:
    role = props("SchedulerInvokeRole")
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "scheduler.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
        }
    ]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    grants = {(s["Action"], resource_id(s["Resource"])) for s in statements}
    assert grants == {
        ("lambda:InvokeFunction", "ScheduledDispatchFunction"),
        ("sqs:SendMessage", "ScheduleDeadLetterQueue"),
    }


def test_secrets_are_read_only_under_the_configured_prefix() -> None:
    secrets = {
        (function, resource)
        for function in FUNCTIONS
        for action, resource in function_grants(TEMPLATE, function)
        if action.startswith("secretsmanager:")
    }
    assert secrets == {
        ("HandoffFunction", "secret:${TwilioSecretPrefix}*"),
        ("StatusCallbackFunction", "secret:${TwilioSecretPrefix}*"),
        ("InboundSmsFunction", "secret:${TwilioSecretPrefix}*"),
    }
    assert TEMPLATE["Parameters"]["TwilioSecretPrefix"]["AllowedPattern"].endswith("/$")


# --- logs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_logs_to_its_own_group_with_retention(function: str) -> None:
    group = resource_id(props(function)["LoggingConfig"]["LogGroup"])
    group_props = props(group)
    assert RESOURCES[group]["Type"] == "AWS::Logs::LogGroup"
    assert group_props["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert group_props["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}/{function}"}


def test_log_groups_are_not_shared() -> None:
    groups = [resource_id(props(f)["LoggingConfig"]["LogGroup"]) for f in FUNCTIONS]
    assert len(set(groups)) == len(groups)


# --- alarms ------------------------------------------------------------------------------------


def alarms() -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in of_type("AWS::CloudWatch::Alarm").items()}


def metric_dimension(alarm: dict[str, Any]) -> str:
    ((dimension,),) = [alarm["Dimensions"]]
    return resource_id(dimension["Value"])


def test_every_dead_letter_queue_has_an_alarm() -> None:
    dead_letter_queues = {
        resource_id(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for q in of_type("AWS::SQS::Queue").values()
        if "RedrivePolicy" in q.get("Properties", {})
    } | {"ScheduleDeadLetterQueue"}
    alarmed = {
        metric_dimension(a)
        for a in alarms().values()
        if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"
    }
    assert dead_letter_queues == {
        "HandoffDeadLetterQueue",
        "ScheduleDeadLetterQueue",
        "CallerWebhookDeadLetterQueue",
        "ReplyForwardingDeadLetterQueue",
        "EumEventsDeadLetterQueue",
    }
    assert dead_letter_queues <= alarmed
    for alarm in alarms().values():
        if alarm.get("MetricName") == "ApproximateNumberOfMessagesVisible":
            assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_handoff_errors_are_alarmed() -> None:
    (alarm,) = [
        a
        for a in alarms().values()
        if a.get("Namespace") == "AWS/Lambda" and a.get("MetricName") == "Errors"
    ]
    assert metric_dimension(alarm) == "HandoffFunction"


def test_usage_falling_behind_the_stream_is_alarmed() -> None:
    (alarm,) = [a for a in alarms().values() if a.get("MetricName") == "IteratorAge"]
    assert metric_dimension(alarm) == "UsageFunction"
    # Lambda retries a failing batch until it succeeds: counters wait, never skip a record.
    (source,) = TEMPLATE["Resources"]["UsageFunction"]["Properties"]["Events"].values()
    assert source["Type"] == "DynamoDB"
    assert source["Properties"]["MaximumRetryAttempts"] == -1
    assert source["Properties"]["BisectBatchOnFunctionError"] is False


def test_refused_callbacks_are_counted_from_the_line_the_code_logs() -> None:
    (metric_filter,) = of_type("AWS::Logs::MetricFilter").values()
    filter_props = metric_filter["Properties"]
    assert resource_id(filter_props["LogGroupName"]) == "StatusCallbackLogGroup"
    pattern = re.fullmatch(r'\{ \$\.message = "([^"]+)" \}', filter_props["FilterPattern"])
    assert pattern, filter_props["FilterPattern"]
    source = (ROOT / "layers/shared/sms_gateway/providers/twilio/callbacks.py").read_text()
    assert f'logger.warning("{pattern.group(1)}"' in source
    # ... and the rate alarm divides that count by the function's invocations.
    (rate,) = [a for a in alarms().values() if "refused" in str(a.get("Metrics"))]
    metric_names = {
        m["MetricStat"]["Metric"]["MetricName"] for m in rate["Metrics"] if "MetricStat" in m
    }
    assert metric_names == {filter_props["MetricTransformations"][0]["MetricName"], "Invocations"}


def test_throttles_of_every_function_are_alarmed() -> None:
    throttled = {
        resource_id(m["MetricStat"]["Metric"]["Dimensions"][0]["Value"])
        for a in alarms().values()
        for m in a.get("Metrics", [])
        if m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == "Throttles"
    }
    assert throttled == set(FUNCTIONS)


def test_alarms_notify_the_topic_only_when_one_is_given() -> None:
    assert TEMPLATE["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    expected = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    for name, alarm in alarms().items():
        assert alarm["AlarmActions"] == expected, name
        assert alarm["OKActions"] == expected, name
        assert alarm["TreatMissingData"] == "notBreaching", name


# --- tables, queues, API -----------------------------------------------------------------------


@pytest.mark.parametrize("table", sorted(tpl.resources_of_type(TEMPLATE, "AWS::DynamoDB::Table")))
def test_tables_are_on_demand_recoverable_and_encrypted(table: str) -> None:
    table_props = props(table)
    assert table_props["BillingMode"] == "PAY_PER_REQUEST"
    assert table_props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table_props["SSESpecification"]["SSEEnabled"] is True


@pytest.mark.parametrize("table", sorted(tpl.resources_of_type(TEMPLATE, "AWS::DynamoDB::Table")))
def test_tables_holding_state_are_retained_and_protected_the_others_go(table: str) -> None:
    resource = RESOURCES[table]
    if table in ("IdempotencyTable", "WebhookAttemptsTable", "ProviderHealthTable"):
        # Records that expire, or state worth nothing after the stack: deleting the stack
        # deletes them (protection would make that fail).
        assert "DeletionPolicy" not in resource
        assert "DeletionProtectionEnabled" not in props(table)
        return
    assert resource["DeletionPolicy"] == "Retain"
    assert resource["UpdateReplacePolicy"] == "Retain"
    assert props(table)["DeletionProtectionEnabled"] == {"Fn::If": ["ProtectTables", True, False]}


# What a message's item holds from its creation on and never changes after: an index holding
# only these (and keys) is written when a message enters it, never by a status change.
MESSAGE_ATTRIBUTES_FIXED_AT_CREATION = frozenset(
    {"workspace_id", "use_case_id", "reply_forwarding"}
)


@pytest.mark.parametrize(
    "index", [i["IndexName"] for i in props("MessagesTable")["GlobalSecondaryIndexes"]]
)
def test_no_message_index_is_written_by_a_status_change(index: str) -> None:
    (spec,) = [
        i for i in props("MessagesTable")["GlobalSecondaryIndexes"] if i["IndexName"] == index
    ]
    projection = spec["Projection"]
    assert projection["ProjectionType"] in ("KEYS_ONLY", "INCLUDE")
    assert set(projection.get("NonKeyAttributes", [])) <= MESSAGE_ATTRIBUTES_FIXED_AT_CREATION


@pytest.mark.parametrize(
    "function", sorted(tpl.resources_of_type(TEMPLATE, "AWS::Serverless::Function"))
)
def test_a_change_of_the_shared_code_publishes_a_version_the_alias_points_at(
    function: str,
) -> None:
    # SAM's AutoPublishAlias names a version from the function's own code and a few properties:
    # without these, a fix in the shared layer would update $LATEST and leave every alias (so
    # every route, queue and stream) on the old code.
    assert props(function)["AutoPublishAliasAllProperties"] is True
    assert props("SharedLayer")["PublishLambdaVersion"] is True


def test_idempotency_records_expire() -> None:
    assert props("IdempotencyTable")["TimeToLiveSpecification"] == {
        "AttributeName": "expiration",
        "Enabled": True,
    }


@pytest.mark.parametrize("queue", sorted(tpl.resources_of_type(TEMPLATE, "AWS::SQS::Queue")))
def test_queues_are_encrypted(queue: str) -> None:
    assert props(queue)["SqsManagedSseEnabled"] is True


def test_handoff_visibility_timeout_covers_six_function_timeouts() -> None:
    timeout = props("HandoffFunction").get("Timeout", TEMPLATE["Globals"]["Function"]["Timeout"])
    assert props("HandoffQueue")["VisibilityTimeout"] >= 6 * timeout


def test_http_api_throttles_every_route_and_logs_json() -> None:
    (api,) = of_type("AWS::Serverless::HttpApi").values()
    api_props = api["Properties"]
    assert api_props["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }
    access = api_props["AccessLogSettings"]
    assert RESOURCES[resource_id(access["DestinationArn"])]["Type"] == "AWS::Logs::LogGroup"
    assert props(resource_id(access["DestinationArn"]))["RetentionInDays"] == {
        "Ref": "LogRetentionDays"
    }
    # API Gateway substitutes $context variables inside the string: what remains is JSON.
    fields = json.loads(re.sub(r"\$context\.[A-Za-z.]+", "x", access["Format"]))
    assert {"requestId", "routeKey", "status", "integrationError"} <= set(fields)
    assert not any("body" in key.lower() or "query" in key.lower() for key in fields)


def test_only_twilios_webhooks_skip_the_authorizer() -> None:
    open_routes = [r for r in tpl.http_routes(TEMPLATE) if not r.authorized]
    assert sorted((r.method, r.path, r.function) for r in open_routes) == [
        ("POST", "/v1/webhook/twilio/sms-inbound", "InboundSmsFunction"),
        ("POST", "/v1/webhook/twilio/sms-status", "StatusCallbackFunction"),
    ]


def test_no_function_environment_refers_to_the_http_api_it_is_routed_from() -> None:
    # The HttpApi references every routed function, so a reference back is a dependency cycle.
    routed = {r.function for r in tpl.http_routes(TEMPLATE)} | {"AuthorizerFunction"}
    for function in routed:
        env = props(function).get("Environment", {})
        assert "HttpApi" not in str(env), function


# --- parameters, outputs, deployment configuration ---------------------------------------------


def test_parameters_of_the_issue_exist() -> None:
    assert {
        "Stage", "PublicBaseUrl", "TwilioApiBaseUrl", "HandoffMaximumConcurrency",
        "LogRetentionDays", "AlarmTopicArn", "TableDeletionProtection", "TwilioSecretPrefix",
        "UseCaseCacheTtlSeconds", "ApiThrottlingRateLimit", "ApiThrottlingBurstLimit",
        "WebhookReservedConcurrency", "CallerWebhookRetryDelays",
    } <= set(TEMPLATE["Parameters"])  # fmt: skip


def test_status_webhooks_are_retried_for_more_than_a_day_within_what_sqs_can_hide() -> None:
    from sms_gateway.domain.caller_webhooks import parse_retry_delays
    from sms_gateway.domain.queue_delays import MAX_RETRY_DELAY_SECONDS

    parameter = TEMPLATE["Parameters"]["CallerWebhookRetryDelays"]
    delays = parse_retry_delays(parameter["Default"])
    assert sum(delays) >= 24 * 3600
    assert max(delays) <= MAX_RETRY_DELAY_SECONDS
    # The function moves a job to the dead-letter queue after its last attempt; the queue's
    # own redrive is a backstop past it.
    redrive = props("CallerWebhookQueue")["RedrivePolicy"]["maxReceiveCount"]
    assert redrive > len(delays) + 1
    function = props("CallerWebhookFunction")
    assert function["Environment"]["Variables"]["CALLER_WEBHOOK_RETRY_DELAYS"] == {
        "Ref": "CallerWebhookRetryDelays"
    }
    # SQS's advice for an event source mapping: 6 x the function's timeout.
    assert props("CallerWebhookQueue")["VisibilityTimeout"] >= 6 * function["Timeout"]


def test_outputs_name_the_urls_tables_and_queues() -> None:
    outputs = TEMPLATE["Outputs"]
    assert {"ApiUrl", "StatusCallbackUrl"} <= set(outputs)
    for table in tpl.resources_of_type(TEMPLATE, "AWS::DynamoDB::Table"):
        assert outputs[f"{table}Name"]["Value"] == {"Ref": table}
    for queue in tpl.resources_of_type(TEMPLATE, "AWS::SQS::Queue"):
        assert outputs[f"{queue}Url"]["Value"] == {"Ref": queue}
        assert outputs[f"{queue}Name"]["Value"] == {"Fn::GetAtt": [queue, "QueueName"]}


def test_samconfig_deploys_dev_and_prod_with_known_parameters() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for env in ("dev", "prod"):
        deploy = config[env]["deploy"]["parameters"]
        assert config[env]["global"]["parameters"]["stack_name"] == f"sms-gateway-{env}"
        assert deploy["capabilities"] == "CAPABILITY_IAM"
        overrides = dict(pair.split("=", 1) for pair in deploy["parameter_overrides"].split())
        assert set(overrides) <= set(TEMPLATE["Parameters"]), overrides
        assert overrides["Stage"] == env
        assert config[env]["logs"]["parameters"]["stack_name"] == f"sms-gateway-{env}"


# --- the security scan's suppressions ----------------------------------------------------------


def test_every_suppression_in_the_template_says_why() -> None:
    for name, resource in RESOURCES.items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (name, skip)
            assert len(skip.get("comment", "").split()) >= 5, f"{name}: say why {skip['id']}"


def test_every_suppression_in_the_scan_config_says_why() -> None:
    lines = (ROOT / ".checkov.yaml").read_text().splitlines()
    start = end = lines.index("skip-check:") + 1
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    entries = [i for i in range(start, end) if lines[i].strip().startswith("- ")]
    assert entries, "skip-check is empty: remove it"
    for i in entries:
        assert re.fullmatch(r"  - CKV2?_AWS_\d+", lines[i]), lines[i]
        assert lines[i - 1].strip().startswith("#"), f"{lines[i].strip()} needs a reason above it"


def _alarm_metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    props = alarm["Properties"]
    if "MetricName" in props:
        return [props]
    return [q["MetricStat"]["Metric"] for q in props.get("Metrics", []) if "MetricStat" in q]


def test_the_handoff_alarms_watch_metrics_the_handoff_emits_in_its_namespace() -> None:
    # The handoff's per-record failures never fail the invocation, so only its own metrics can
    # raise an alarm: a renamed metric or namespace would silence it without any error.
    source = (ROOT / "functions/handoff/app.py").read_text()
    namespace = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"][
        "POWERTOOLS_METRICS_NAMESPACE"
    ]
    service = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    watched = {
        metric["MetricName"]: metric
        for alarm in tpl.resources_of_type(TEMPLATE, "AWS::CloudWatch::Alarm").values()
        for metric in _alarm_metrics(alarm)
        if str(metric["MetricName"]).startswith("Handoff")
    }
    assert set(watched) == {"HandoffUnexpectedError", "HandoffOutcomeUnknown", "HandoffGaveUp"}
    for name, metric in watched.items():
        assert f'"{name}"' in source, f"functions/handoff/app.py no longer emits {name}"
        assert metric["Namespace"] == namespace
        assert metric["Dimensions"] == [{"Name": "service", "Value": service}]


# --- AWS End User Messaging SMS -----------------------------------------------------------------


def test_eum_events_reach_their_function_through_sns_and_sqs() -> None:
    # The configuration set's destination: the topic, for every SMS event
    [destination] = props("EumConfigurationSet")["EventDestinations"]
    assert destination["Enabled"] is True and destination["MatchingEventTypes"] == ["TEXT_ALL"]
    assert destination["SnsDestination"] == {"TopicArn": {"Ref": "EumEventsTopic"}}
    # Only AWS End User Messaging SMS of this account may publish to the topic
    [publish] = props("EumEventsTopicPolicy")["PolicyDocument"]["Statement"]
    assert publish["Principal"] == {"Service": "sms-voice.amazonaws.com"}
    assert publish["Action"] == "sns:Publish"
    condition = publish["Condition"]
    assert condition["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert str(condition["ArnLike"]["aws:SourceArn"]).endswith(":configuration-set/*'}")
    # The topic feeds the queue, raw (a body is the event's JSON), and only that topic may
    subscription = props("EumEventsSubscription")
    assert subscription["Protocol"] == "sqs" and subscription["RawMessageDelivery"] is True
    assert resource_id(subscription["Endpoint"]) == "EumEventsQueue"
    [send] = props("EumEventsQueuePolicy")["PolicyDocument"]["Statement"]
    assert send["Principal"] == {"Service": "sns.amazonaws.com"}
    assert send["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "EumEventsTopic"}}}
    # The queue feeds the function, which reports partial batch failures
    [event] = props("EumEventsFunction")["Events"].values()
    assert resource_id(event["Properties"]["Queue"]) == "EumEventsQueue"
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_handoff_may_send_through_aws_only_from_what_the_operator_listed() -> None:
    sends = {
        resource
        for action, resource in function_grants(TEMPLATE, "HandoffFunction")
        if action.startswith("sms-voice:")
    }
    assert sends == {"EumConfigurationSet", "${EumOriginationIdentityArns}"}
    assert {a for a, _ in function_grants(TEMPLATE, "HandoffFunction") if "sms-voice" in a} == {
        "sms-voice:SendTextMessage"
    }
    # The default names nothing that exists
    default = TEMPLATE["Parameters"]["EumOriginationIdentityArns"]["Default"]
    assert default.startswith("arn:aws:sms-voice:::")
