"""Creating and changing use cases: the logic the operator CLI and the management API share."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from sms_gateway.config import get_settings
from sms_gateway.domain.clock import now_iso
from sms_gateway.domain.errors import UseCaseNotFoundError, ValidationError
from sms_gateway.domain.ids import is_uuid, new_id
from sms_gateway.domain.provider_choices import AwsEumChoice
from sms_gateway.domain.use_cases import UseCase, UseCaseSpec
from sms_gateway.logic import caller_webhook_settings
from sms_gateway.store import api_keys, use_case_store


def parse_spec(data: dict[str, Any]) -> UseCaseSpec:
    """A use case as JSON gives it, checked as strictly as the send body: `"active": "false"` or
    `"name": 5` is a validation_error, not coerced (pydantic's strict JSON mode, in which an
    enum is still its string)."""
    try:
        return UseCaseSpec.model_validate_json(json.dumps(data), strict=True)
    except PydanticValidationError as exc:
        raise ValidationError.from_pydantic("use case is invalid", exc) from exc


def check_secret_location(spec: UseCaseSpec) -> None:
    """The token must live where the convention puts it, <prefix><AccountSid>: the functions may
    read only secrets under the prefix, and a status callback finds its token by AccountSid, so
    any other name would send messages whose statuses could never be verified."""
    expected = get_settings().twilio_secret_prefix + spec.twilio_account_sid
    if spec.twilio_auth_token_secret != expected:
        raise ValidationError(
            "use case is invalid",
            errors=[
                {
                    "field": "twilio_auth_token_secret",
                    "code": "secret_outside_prefix",
                    "issue": f"the auth token must be in the secret named '{expected}'",
                }
            ],
        )


def check_account_owner(workspace_id: str, spec: UseCaseSpec) -> None:
    """Callers may only use Twilio subaccounts an operator gave their workspace."""
    if api_keys.twilio_account_owner(spec.twilio_account_sid) != workspace_id:
        raise ValidationError(
            "use case is invalid",
            errors=[
                {
                    "field": "twilio_account_sid",
                    "code": "twilio_account_not_in_workspace",
                    "issue": "this Twilio account is not assigned to your workspace; "
                    "an operator assigns it (sms-gateway-admin twilio-account bind)",
                }
            ],
        )


def check_service_account(spec: UseCaseSpec) -> None:
    """A use case may name only a Messaging Service bound to its own subaccount."""
    if api_keys.messaging_service_account(spec.messaging_service_sid) != spec.twilio_account_sid:
        raise ValidationError(
            "use case is invalid",
            errors=[
                {
                    "field": "messaging_service_sid",
                    "code": "messaging_service_not_in_account",
                    "issue": "this Messaging Service is not assigned to the use case's Twilio "
                    "account; an operator assigns it (sms-gateway-admin messaging-service bind)",
                }
            ],
        )


def check_eum_identities(workspace_id: str, spec: UseCaseSpec) -> None:
    """Callers may only send from AWS End User Messaging SMS identities an operator gave their
    workspace."""
    for index, choice in enumerate(spec.providers):
        if not isinstance(choice, AwsEumChoice):
            continue
        if api_keys.eum_identity_owner(choice.origination_identity) != workspace_id:
            raise ValidationError(
                "use case is invalid",
                errors=[
                    {
                        "field": f"providers.{index}.origination_identity",
                        "code": "origination_identity_not_in_workspace",
                        "issue": "this origination identity is not assigned to your workspace; "
                        "an operator assigns it (sms-gateway-admin eum-identity bind)",
                    }
                ],
            )


def check_caller_may_use(workspace_id: str, spec: UseCaseSpec) -> None:
    """What a caller (not an operator) may name: its workspace's account, a service of it, and
    its workspace's origination identities."""
    check_account_owner(workspace_id, spec)
    check_service_account(spec)
    check_eum_identities(workspace_id, spec)


def check_callback(spec: UseCaseSpec) -> None:
    if spec.status_callback_url is not None:
        caller_webhook_settings.require_callable_url(spec.status_callback_url)


def create_use_case(workspace_id: str, spec: UseCaseSpec) -> UseCase:
    check_secret_location(spec)
    check_callback(spec)
    now = now_iso()
    use_case = UseCase(
        **spec.model_dump(), id=new_id(), workspace_id=workspace_id, created_at=now, updated_at=now
    )
    use_case_store.put_new_use_case(use_case)
    return use_case


def list_use_cases_for(workspace_id: str) -> list[UseCase]:
    """Every live use case of the workspace."""
    return use_case_store.list_use_cases(workspace_id)


def get_use_case_for(workspace_id: str, use_case_id: str, *, cached: bool = False) -> UseCase:
    """Another workspace's or a deleted use case is answered exactly as a missing one. `cached`:
    a read that may be a few seconds old will do (the send path's)."""
    if not is_uuid(use_case_id):
        raise UseCaseNotFoundError("use case not found", use_case_id=use_case_id)
    getter = use_case_store.get_use_case_cached if cached else use_case_store.get_use_case
    use_case = getter(use_case_id)
    if use_case is None or use_case.deleted or use_case.workspace_id != workspace_id:
        raise UseCaseNotFoundError("use case not found", use_case_id=use_case_id)
    return use_case


def update_use_case(
    workspace_id: str,
    use_case_id: str,
    changes: dict[str, Any],
    *,
    check_owner: bool = False,
) -> UseCase:
    """Validate the merged record, then write only the changed fields, conditionally."""
    current = get_use_case_for(workspace_id, use_case_id)
    merged = {**current.model_dump(mode="json", include=set(UseCaseSpec.model_fields)), **changes}
    spec = parse_spec(merged)
    check_secret_location(spec)
    if "status_callback_url" in changes:
        check_callback(spec)
    if check_owner and {"twilio_account_sid", "messaging_service_sid", "providers"} & set(changes):
        check_caller_may_use(workspace_id, spec)
    normalized = spec.model_dump(mode="json", include=set(changes))
    try:
        return use_case_store.update_use_case(use_case_id, normalized, now_iso())
    except use_case_store.UseCaseConflictError as exc:
        raise UseCaseNotFoundError("use case not found", use_case_id=use_case_id) from exc


def deactivate_use_case(workspace_id: str, use_case_id: str) -> UseCase:
    return update_use_case(workspace_id, use_case_id, {"active": False})


def delete_use_case(workspace_id: str, use_case_id: str) -> UseCase:
    """Soft delete: the record stays for the messages that refer to it."""
    get_use_case_for(workspace_id, use_case_id)
    try:
        return use_case_store.update_use_case(use_case_id, {"deleted": True}, now_iso())
    except use_case_store.UseCaseConflictError as exc:
        raise UseCaseNotFoundError("use case not found", use_case_id=use_case_id) from exc
