"""Operator CLI: workspaces, API keys, use cases, opt-outs and prices in the configured tables.

Tables come from the same environment variables the functions read (MESSAGES_TABLE, ...), from
a deployed stack's outputs with --stack NAME, or from the info file of a running local stack
(`make dev INFO_FILE=...`) with --local INFO_FILE.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from sms_gateway import config
from sms_gateway.api.caller import ALL_SCOPES
from sms_gateway.domain import pricing
from sms_gateway.domain.clock import now_iso, utc_now
from sms_gateway.domain.errors import GatewayError, ValidationError
from sms_gateway.domain.ids import is_uuid
from sms_gateway.domain.limits import is_period, money_text
from sms_gateway.domain.provider_choices import AwsEumChoice, OriginationIdentity, ProviderName
from sms_gateway.domain.use_cases import AccountSid, MessagingServiceSid, is_country_code
from sms_gateway.logic import limits_admin, scheduling, stuck_messages, usage, use_case_admin
from sms_gateway.store import (
    api_keys,
    aws_clients,
    opt_out_store,
    price_store,
    provider_health,
    use_case_store,
)

# Stack output -> environment variable the settings read.
_STACK_OUTPUTS = {
    "MessagesTableName": "MESSAGES_TABLE",
    "UseCasesTableName": "USE_CASES_TABLE",
    "OptOutsTableName": "OPT_OUTS_TABLE",
    "ApiKeysTableName": "API_KEYS_TABLE",
    "IdempotencyTableName": "IDEMPOTENCY_TABLE",
    "CatalogTableName": "CATALOG_TABLE",
    "HandoffQueueUrl": "HANDOFF_QUEUE_URL",
    "ProviderHealthTableName": "PROVIDER_HEALTH_TABLE",
}


# The local stack's AWS (moto) takes any credentials: these fixed fake ones, so that whatever the
# shell holds for a real account is never sent, not even to 127.0.0.1.
_LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# What would otherwise choose other credentials or another endpoint than the info file's.
_LOCAL_OVERRIDDEN = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")


class UsageError(Exception):
    """The operator's input cannot be used (a file that is missing or not what it should be):
    reported as a message, exit code 2, as argparse reports a wrong command line."""


def _load_stack_outputs(stack_name: str) -> None:
    import boto3  # only this path needs CloudFormation

    stacks = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    for output, variable in _STACK_OUTPUTS.items():
        if output in outputs:
            os.environ[variable] = outputs[output]


def _load_local_info(info_file: str) -> None:
    """Point this process at a running local stack, as its info file describes it (`aws`: the
    emulator's endpoint and region and the functions' settings). Done before any AWS client or
    settings object exists; both are forgotten anyway, in case one does."""
    hint = f"start the local stack with `make dev INFO_FILE={info_file}` and wait for its banner"
    try:
        info = json.loads(Path(info_file).read_text())
    except OSError as exc:
        raise UsageError(f"cannot read the info file {info_file}: {exc.strerror}; {hint}") from exc
    except ValueError as exc:  # not JSON, or not UTF-8
        raise UsageError(f"the info file {info_file} is not JSON ({exc}); {hint}") from exc
    aws = info.get("aws") if isinstance(info, dict) else None
    endpoint = aws.get("endpoint_url") if isinstance(aws, dict) else None
    region = aws.get("region") if isinstance(aws, dict) else None
    settings = aws.get("settings") if isinstance(aws, dict) else None
    if not (
        isinstance(endpoint, str)
        and endpoint.startswith(("http://", "https://"))
        and isinstance(region, str)
        and region
        and isinstance(settings, dict)
        and all(isinstance(value, str) for value in settings.values())
    ):
        raise UsageError(
            f"{info_file} is not a local stack's info file: it needs "
            f'"aws": {{"endpoint_url", "region", "settings"}}; {hint}'
        )
    unknown = sorted(set(settings) - config.VARIABLES)
    if unknown:
        raise UsageError(f"{info_file} names settings the functions do not have: {unknown}")
    for name in [*_LOCAL_OVERRIDDEN, *(n for n in os.environ if n.startswith("AWS_ENDPOINT_URL_"))]:
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": region,
            **_LOCAL_CREDENTIALS,
            **settings,
        }
    )
    config.reset_settings()
    aws_clients.reset_clients()


def _check_settings() -> None:
    """Every command needs the tables: say which variables are missing, not a traceback."""
    try:
        config.get_settings()
    except PydanticValidationError as exc:
        names = sorted({str(e["loc"][0]).upper() for e in exc.errors() if e["loc"]})
        raise UsageError(
            f"settings missing or invalid: {', '.join(names)}; pass --stack NAME or "
            "--local INFO_FILE, or set them as the functions get them"
        ) from exc


def _print(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _read_spec(source: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise UsageError(f"cannot read the use case file {source}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"the use case file {source} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError("the use case file must hold a JSON object")
    return data


def _problems(exc: GatewayError) -> str:
    """A validation error's {field, issue} list, one per line."""
    errors = exc.details.get("errors") or []
    return "".join(f"\n  {e.get('field') or '(body)'}: {e.get('issue')}" for e in errors)


def _sid(kind: Any) -> Callable[[str], str]:
    """An argparse type: a Twilio SID as a use case must name it (AccountSid, MessagingServiceSid),
    so that nothing is bound that no use case could ever name."""
    adapter: TypeAdapter[str] = TypeAdapter(kind)

    def parse(value: str) -> str:
        try:
            return adapter.validate_python(value)
        except PydanticValidationError as exc:
            raise argparse.ArgumentTypeError(exc.errors()[0]["msg"]) from exc

    return parse


_origination_identity = _sid(OriginationIdentity)


def cmd_workspace_create(args: argparse.Namespace) -> Any:
    return api_keys.create_workspace(args.name)


def _known_workspace(workspace_id: str) -> str:
    if not api_keys.workspace_exists(workspace_id):
        raise ValueError(f"no workspace {workspace_id}")
    return workspace_id


def _limits_view(workspace_id: str) -> dict[str, Any]:
    report = usage.usage_report(workspace_id, "live", usage.current_period())
    return {
        "workspace_id": workspace_id,
        **{name: report[name] for name in ("quota", "wallet", "rate_limit")},
    }


def cmd_workspace_set_limits(args: argparse.Namespace) -> Any:
    # The send rate is the pair --sends-per-second R --burst B; `none` for either removes it.
    per_second, burst = args.sends_per_second, args.burst
    rate_given = per_second is not None or burst is not None
    if args.monthly_segments is None and not rate_given:
        raise UsageError("give --monthly-segments, or --sends-per-second and --burst")
    remove_rate = "none" in (per_second, burst)
    rate = None
    if rate_given and not remove_rate:
        if per_second is None or burst is None:
            raise UsageError("give --sends-per-second and --burst together (or 'none')")
        rate = limits_admin.parse_send_rate(per_second, burst)
    monthly: int | None = None
    if args.monthly_segments not in (None, "none"):
        monthly = limits_admin.parse_monthly_segments(args.monthly_segments)
    workspace_id = _known_workspace(args.workspace)
    if rate_given:
        limits_admin.set_send_rate(workspace_id, rate)
    if args.monthly_segments is not None:
        limits_admin.set_monthly_segments(workspace_id, monthly)
    return _limits_view(workspace_id)


def cmd_wallet_top_up(args: argparse.Namespace) -> Any:
    amount, currency = limits_admin.parse_top_up(args.amount, args.currency)
    workspace_id = _known_workspace(args.workspace)
    after = limits_admin.top_up(workspace_id, amount, currency)
    wallet: dict[str, Any] = {
        "workspace_id": workspace_id,
        "balance": money_text(after.quota.balance or Decimal(0)),
        "currency": currency,
    }
    if after.quota.monthly_segments is None:
        wallet["note"] = (
            "no monthly quota is set, so live sends are not limited and the wallet pays none; "
            "`workspace set-limits --monthly-segments 0` makes it pay every live send"
        )
    return wallet


def _period(value: str) -> str:
    if not is_period(value):
        raise argparse.ArgumentTypeError("a calendar month, YYYY-MM, e.g. 2026-11")
    return value


def cmd_usage(args: argparse.Namespace) -> Any:
    workspace_id = _known_workspace(args.workspace)
    period = args.period or usage.current_period()
    return {"workspace_id": workspace_id, **usage.usage_report(workspace_id, args.mode, period)}


def cmd_key_create(args: argparse.Namespace) -> Any:
    issued = api_keys.issue_key(
        args.workspace, tuple(args.scopes or ALL_SCOPES), mode=args.mode, name=args.name
    )
    return {
        "key": issued.secret,
        "key_id": issued.key_id,
        "workspace_id": issued.workspace_id,
        "scopes": list(issued.scopes),
        "mode": issued.mode,
        "note": "store this key now: it is shown once and cannot be recovered",
    }


def cmd_key_list(args: argparse.Namespace) -> Any:
    return api_keys.list_keys(args.workspace)


def cmd_key_revoke(args: argparse.Namespace) -> Any:
    return api_keys.revoke_key(args.workspace, args.key_id)


def cmd_twilio_account_bind(args: argparse.Namespace) -> Any:
    if not api_keys.bind_twilio_account(args.workspace, args.account_sid):
        raise ValueError(f"{args.account_sid} belongs to another workspace")
    return {"workspace_id": args.workspace, "twilio_account_sid": args.account_sid}


def cmd_messaging_service_bind(args: argparse.Namespace) -> Any:
    if not api_keys.bind_messaging_service(args.account_sid, args.service_sid):
        raise ValueError(f"{args.service_sid} belongs to another Twilio account")
    return {"twilio_account_sid": args.account_sid, "messaging_service_sid": args.service_sid}


def cmd_eum_identity_bind(args: argparse.Namespace) -> Any:
    if not api_keys.bind_eum_identity(args.workspace, args.identity):
        raise ValueError(f"{args.identity} belongs to another workspace")
    return {"workspace_id": args.workspace, "origination_identity": args.identity}


def cmd_providers_status(args: argparse.Namespace) -> Any:
    now = utc_now()
    return [
        {**dataclasses.asdict(health), "cooling": health.cooling_at(now)}
        for health in provider_health.status(now)
    ]


def cmd_providers_reset(args: argparse.Namespace) -> Any:
    provider_health.reset(args.provider, utc_now())
    return {"provider": args.provider, "cooling": False}


def cmd_use_case_create(args: argparse.Namespace) -> Any:
    try:
        # As strictly as the management API checks it, and before anything is bound.
        spec = use_case_admin.parse_spec(_read_spec(args.file))
        use_case_admin.check_secret_location(spec)
    except ValidationError as exc:
        raise UsageError(f"invalid use case{_problems(exc)}") from exc
    # The operator creating a use case gives its workspace the account, if no one else has it.
    if not api_keys.bind_twilio_account(args.workspace, spec.twilio_account_sid):
        raise ValueError(f"{spec.twilio_account_sid} belongs to another workspace")
    # And the Messaging Service to that account, if no other account has it.
    if not api_keys.bind_messaging_service(spec.twilio_account_sid, spec.messaging_service_sid):
        raise ValueError(f"{spec.messaging_service_sid} belongs to another Twilio account")
    # And its AWS End User Messaging SMS identities to the workspace, likewise.
    for choice in spec.providers:
        if isinstance(choice, AwsEumChoice) and not api_keys.bind_eum_identity(
            args.workspace, choice.origination_identity
        ):
            raise ValueError(f"{choice.origination_identity} belongs to another workspace")
    return use_case_admin.create_use_case(args.workspace, spec).model_dump(mode="json")


def cmd_use_case_list(args: argparse.Namespace) -> Any:
    return [
        u.model_dump(mode="json")
        for u in use_case_store.list_use_cases(args.workspace, include_deleted=args.all)
    ]


def cmd_use_case_deactivate(args: argparse.Namespace) -> Any:
    return use_case_admin.deactivate_use_case(args.workspace, args.id).model_dump(mode="json")


def _opt_out_scope(args: argparse.Namespace) -> str:
    if args.use_case:
        return opt_out_store.use_case_scope(args.use_case)
    return opt_out_store.service_scope(args.service, test=getattr(args, "test", False))


def cmd_opt_out_add(args: argparse.Namespace) -> Any:
    added = opt_out_store.add_opt_out(_opt_out_scope(args), args.number, args.reason)
    return {"added": added}


def cmd_opt_out_remove(args: argparse.Namespace) -> Any:
    return {"removed": opt_out_store.remove_opt_out(_opt_out_scope(args), args.number)}


def cmd_opt_out_changes(args: argparse.Namespace) -> Any:
    """Every recorded change of a list (of one number, with --number), oldest first: who opted
    out or back in, when, and how (keyword, twilio_21610, operator)."""
    return opt_out_store.list_changes(_opt_out_scope(args), args.number)


def cmd_message_requeue_stuck(args: argparse.Namespace) -> Any:
    if args.older_than_minutes < 1:
        raise ValueError("--older-than-minutes must be at least 1")
    requeued = stuck_messages.requeue_stuck(timedelta(minutes=args.older_than_minutes))
    return {"requeued": len(requeued), "message_ids": requeued}


def cmd_message_dispatch(args: argparse.Namespace) -> Any:
    if not is_uuid(args.id):
        raise ValueError("--id must be a message id (a UUID)")
    return {"message_id": args.id, "dispatched": scheduling.dispatch_scheduled(args.id)}


def _country(value: str) -> str:
    """An argparse type: an ISO 3166-1 alpha-2 code, as a send's `country` must be."""
    if not is_country_code(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return value


def _unit_price(value: str) -> str:
    if not pricing.is_unit_price(value):
        raise argparse.ArgumentTypeError(
            "a decimal with up to 6 digits before and 6 after the point, e.g. 0.0400"
        )
    return value


def _currency(value: str) -> str:
    if not pricing.is_currency(value):
        raise argparse.ArgumentTypeError("an ISO 4217 code in capitals, e.g. USD")
    return value


def cmd_price_set(args: argparse.Namespace) -> Any:
    price_store.set_price(args.country, args.unit_price, args.currency, now_iso())
    price = pricing.Price(args.country, args.unit_price, args.currency, "operator")
    return dataclasses.asdict(price)


def cmd_price_unset(args: argparse.Namespace) -> Any:
    price_store.unset_price(args.country)
    bundled = pricing.bundled_price(args.country)
    return {"country": args.country, "now": dataclasses.asdict(bundled) if bundled else None}


def cmd_price_list(args: argparse.Namespace) -> Any:
    """Every price a send would use: the operator's, then the bundled ones it does not cover."""
    operator = {p.country: p for p in price_store.operator_prices()}
    bundled = [pricing.bundled_price(c) for c in pricing.BUNDLED_PRICES if c not in operator]
    prices = [*operator.values(), *(p for p in bundled if p is not None)]
    return [dataclasses.asdict(p) for p in sorted(prices, key=lambda p: p.country)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sms-gateway-admin", description=__doc__)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--stack", help="read table names from this CloudFormation stack")
    target.add_argument(
        "--local",
        metavar="INFO_FILE",
        help="act on the running local stack that wrote this info file (make dev INFO_FILE=...)",
    )
    groups = parser.add_subparsers(dest="group", required=True)

    workspace = groups.add_parser("workspace").add_subparsers(dest="action", required=True)
    create = workspace.add_parser("create", help="create a workspace")
    create.add_argument("--name", required=True)
    create.set_defaults(func=cmd_workspace_create)
    set_limits = workspace.add_parser(
        "set-limits", help="set a workspace's monthly quota and send rate ('none' removes one)"
    )
    set_limits.add_argument("--workspace", required=True)
    set_limits.add_argument(
        "--monthly-segments", metavar="N|none", help="segments a month (UTC) before the wallet"
    )
    set_limits.add_argument(
        "--sends-per-second", metavar="R|none", help="the send rate, per workspace and mode"
    )
    set_limits.add_argument(
        "--burst", metavar="B|none", help="sends the bucket holds at once (with the rate)"
    )
    set_limits.set_defaults(func=cmd_workspace_set_limits)

    wallet = groups.add_parser("wallet").add_subparsers(dest="action", required=True)
    top_up = wallet.add_parser("top-up", help="add money to a workspace's prepaid wallet")
    top_up.add_argument("--workspace", required=True)
    top_up.add_argument("--amount", required=True, help="a decimal, e.g. 12.50")
    top_up.add_argument("--currency", required=True, type=_currency)
    top_up.set_defaults(func=cmd_wallet_top_up)

    usage_parser = groups.add_parser("usage", help="a workspace's usage of a month")
    usage_parser.add_argument("--workspace", required=True)
    usage_parser.add_argument(
        "--period", type=_period, help="YYYY-MM; the current month by default"
    )
    usage_parser.add_argument("--mode", choices=("live", "test"), default="live")
    usage_parser.set_defaults(func=cmd_usage)

    key = groups.add_parser("key").add_subparsers(dest="action", required=True)
    create = key.add_parser("create", help="issue an API key (shown once)")
    create.add_argument("--workspace", required=True)
    create.add_argument("--scope", dest="scopes", action="append", choices=ALL_SCOPES)
    create.add_argument("--mode", choices=("live", "test"), default="live")
    create.add_argument("--name", default="")
    create.set_defaults(func=cmd_key_create)
    listing = key.add_parser("list", help="list keys (never the secret)")
    listing.add_argument("--workspace", required=True)
    listing.set_defaults(func=cmd_key_list)
    revoke = key.add_parser("revoke", help="revoke a key")
    revoke.add_argument("--workspace", required=True)
    revoke.add_argument("--key-id", required=True)
    revoke.set_defaults(func=cmd_key_revoke)

    account = groups.add_parser("twilio-account").add_subparsers(dest="action", required=True)
    bind = account.add_parser("bind", help="assign a Twilio subaccount to a workspace")
    bind.add_argument("--workspace", required=True)
    bind.add_argument("--account-sid", required=True, type=_sid(AccountSid))
    bind.set_defaults(func=cmd_twilio_account_bind)

    service = groups.add_parser("messaging-service").add_subparsers(dest="action", required=True)
    bind = service.add_parser(
        "bind", help="assign a Messaging Service to a Twilio subaccount (its use cases may name it)"
    )
    bind.add_argument("--account-sid", required=True, type=_sid(AccountSid))
    bind.add_argument("--service-sid", required=True, type=_sid(MessagingServiceSid))
    bind.set_defaults(func=cmd_messaging_service_bind)

    identity = groups.add_parser("eum-identity").add_subparsers(dest="action", required=True)
    bind = identity.add_parser(
        "bind",
        help="assign an AWS End User Messaging SMS origination identity (pool, phone number or "
        "sender ID, as use cases name it) to a workspace",
    )
    bind.add_argument("--workspace", required=True)
    bind.add_argument("--identity", required=True, type=_origination_identity)
    bind.set_defaults(func=cmd_eum_identity_bind)

    provider = groups.add_parser("providers").add_subparsers(dest="action", required=True)
    status = provider.add_parser(
        "status", help="each provider's recent failures and cool-down (health-based routing)"
    )
    status.set_defaults(func=cmd_providers_status)
    reset = provider.add_parser("reset", help="end a provider's cool-down now")
    reset.add_argument("--provider", required=True, choices=[p.value for p in ProviderName])
    reset.set_defaults(func=cmd_providers_reset)

    use_case = groups.add_parser("use-case").add_subparsers(dest="action", required=True)
    create = use_case.add_parser("create", help="create a use case from a JSON file ('-': stdin)")
    create.add_argument("--workspace", required=True)
    create.add_argument("--file", required=True)
    create.set_defaults(func=cmd_use_case_create)
    listing = use_case.add_parser("list")
    listing.add_argument("--workspace", required=True)
    listing.add_argument("--all", action="store_true", help="include deleted use cases")
    listing.set_defaults(func=cmd_use_case_list)
    deactivate = use_case.add_parser("deactivate")
    deactivate.add_argument("--workspace", required=True)
    deactivate.add_argument("--id", required=True)
    deactivate.set_defaults(func=cmd_use_case_deactivate)

    opt_out = groups.add_parser("opt-out").add_subparsers(dest="action", required=True)
    for action, func in (
        ("add", cmd_opt_out_add),
        ("remove", cmd_opt_out_remove),
        ("changes", cmd_opt_out_changes),
    ):
        sub = opt_out.add_parser(action)
        scope = sub.add_mutually_exclusive_group(required=True)
        scope.add_argument("--use-case", help="use case id")
        scope.add_argument("--service", help="Messaging Service SID")
        sub.add_argument(
            "--test",
            action="store_true",
            help="with --service: the service's test list (STOP from test inbound messages)",
        )
        sub.add_argument("--number", required=action != "changes", help="E.164 number")
        if action == "add":
            sub.add_argument("--reason", default="operator")
        sub.set_defaults(func=func)

    message = groups.add_parser("message").add_subparsers(dest="action", required=True)
    requeue = message.add_parser(
        "requeue-stuck",
        help="queue the handoff of pending messages nothing picked up (HandoffPipe's DLQ alarm)",
    )
    requeue.add_argument("--older-than-minutes", type=int, default=15)
    requeue.set_defaults(func=cmd_message_requeue_stuck)
    dispatch = message.add_parser(
        "dispatch",
        help="move a scheduled message to pending now (ScheduleDeadLetterQueue's alarm)",
    )
    dispatch.add_argument("--id", required=True)
    dispatch.set_defaults(func=cmd_message_dispatch)

    price = groups.add_parser("price").add_subparsers(dest="action", required=True)
    set_price = price.add_parser(
        "set", help="set the price of one segment to a destination country (over the bundled one)"
    )
    set_price.add_argument("--country", required=True, type=_country)
    set_price.add_argument("--unit-price", required=True, type=_unit_price)
    set_price.add_argument("--currency", default=pricing.DEFAULT_CURRENCY, type=_currency)
    set_price.set_defaults(func=cmd_price_set)
    unset_price = price.add_parser("unset", help="drop the operator's price of a country")
    unset_price.add_argument("--country", required=True, type=_country)
    unset_price.set_defaults(func=cmd_price_unset)
    listing = price.add_parser("list", help="every price sends use, with its source")
    listing.set_defaults(func=cmd_price_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.local:
            _load_local_info(args.local)
        elif args.stack:
            _load_stack_outputs(args.stack)
        _check_settings()
        _print(args.func(args))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"{exc.code}: {exc.message}{_problems(exc)}", file=sys.stderr)
        return 1
    except (api_keys.UnknownWorkspaceError, api_keys.UnknownKeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        # No credentials, an endpoint that does not answer (a local stack that stopped), a
        # table that is not there: the operator's environment, not a bug to show a traceback for.
        print(f"error: AWS: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
