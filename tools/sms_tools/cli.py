"""Operator CLI: workspaces, API keys, use cases and opt-outs in the configured tables.

Tables come from the same environment variables the functions read (MESSAGES_TABLE, ...), or
from a deployed stack's outputs with --stack NAME.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from sms_gateway.api.caller import ALL_SCOPES
from sms_gateway.domain.errors import GatewayError
from sms_gateway.domain.ids import is_uuid
from sms_gateway.domain.use_cases import UseCaseSpec
from sms_gateway.logic import scheduling, stuck_messages, use_case_admin
from sms_gateway.store import api_keys, opt_out_store, use_case_store

# Stack output -> environment variable the settings read.
_STACK_OUTPUTS = {
    "MessagesTableName": "MESSAGES_TABLE",
    "UseCasesTableName": "USE_CASES_TABLE",
    "OptOutsTableName": "OPT_OUTS_TABLE",
    "ApiKeysTableName": "API_KEYS_TABLE",
    "IdempotencyTableName": "IDEMPOTENCY_TABLE",
    "HandoffQueueUrl": "HANDOFF_QUEUE_URL",
}


def _load_stack_outputs(stack_name: str) -> None:
    import boto3  # only this path needs CloudFormation

    stacks = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    for output, variable in _STACK_OUTPUTS.items():
        if output in outputs:
            os.environ[variable] = outputs[output]


def _print(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _read_spec(source: str) -> dict[str, Any]:
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    data = json.loads(text)
    if not isinstance(data, dict):
        raise SystemExit("the use case file must hold a JSON object")
    return data


def cmd_workspace_create(args: argparse.Namespace) -> Any:
    return api_keys.create_workspace(args.name)


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


def cmd_use_case_create(args: argparse.Namespace) -> Any:
    spec = UseCaseSpec.model_validate(_read_spec(args.file))
    # The operator creating a use case gives its workspace the account, if no one else has it.
    if not api_keys.bind_twilio_account(args.workspace, spec.twilio_account_sid):
        raise ValueError(f"{spec.twilio_account_sid} belongs to another workspace")
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
    return opt_out_store.service_scope(args.service)


def cmd_opt_out_add(args: argparse.Namespace) -> Any:
    added = opt_out_store.add_opt_out(_opt_out_scope(args), args.number, args.reason)
    return {"added": added}


def cmd_opt_out_remove(args: argparse.Namespace) -> Any:
    return {"removed": opt_out_store.remove_opt_out(_opt_out_scope(args), args.number)}


def cmd_message_requeue_stuck(args: argparse.Namespace) -> Any:
    if args.older_than_minutes < 1:
        raise ValueError("--older-than-minutes must be at least 1")
    requeued = stuck_messages.requeue_stuck(timedelta(minutes=args.older_than_minutes))
    return {"requeued": len(requeued), "message_ids": requeued}


def cmd_message_dispatch(args: argparse.Namespace) -> Any:
    if not is_uuid(args.id):
        raise ValueError("--id must be a message id (a UUID)")
    return {"message_id": args.id, "dispatched": scheduling.dispatch_scheduled(args.id)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sms-gateway-admin", description=__doc__)
    parser.add_argument("--stack", help="read table names from this CloudFormation stack")
    groups = parser.add_subparsers(dest="group", required=True)

    workspace = groups.add_parser("workspace").add_subparsers(dest="action", required=True)
    create = workspace.add_parser("create", help="create a workspace")
    create.add_argument("--name", required=True)
    create.set_defaults(func=cmd_workspace_create)

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
    bind.add_argument("--account-sid", required=True)
    bind.set_defaults(func=cmd_twilio_account_bind)

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
    for action, func in (("add", cmd_opt_out_add), ("remove", cmd_opt_out_remove)):
        sub = opt_out.add_parser(action)
        scope = sub.add_mutually_exclusive_group(required=True)
        scope.add_argument("--use-case", help="use case id")
        scope.add_argument("--service", help="Messaging Service SID")
        sub.add_argument("--number", required=True, help="E.164 number")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.stack:
        _load_stack_outputs(args.stack)
    try:
        _print(args.func(args))
    except PydanticValidationError as exc:
        print(f"invalid use case:\n{exc}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except (api_keys.UnknownWorkspaceError, api_keys.UnknownKeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
