"""Demo data for the local stack: a workspace, live/test/admin keys, a Twilio subaccount with its
auth token in Secrets Manager, and a ready use case whose pool shows area-code geomatch, sending
through Twilio first and AWS End User Messaging SMS (a pool of its own) when Twilio cannot."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sms_gateway.api.caller import ALL_SCOPES, SCOPE_READ, SCOPE_SEND
from sms_gateway.domain.use_cases import UseCase, UseCaseSpec
from sms_gateway.logic.use_case_admin import create_use_case
from sms_gateway.providers.twilio import credentials as provider_credentials
from sms_gateway.store import api_keys, aws_clients

# San Francisco, New York, Chicago, Boston and Toronto long codes: a recipient in one of these
# area codes gets the sender from the same area code.
DEMO_POOL = ("+14155550100", "+12125550100", "+13125550100", "+16175550100", "+14165550100")
# The number the demo's AWS End User Messaging SMS pool sends from (a Seattle long code).
DEMO_EUM_NUMBER = "+12065550100"


def new_eum_pool_id() -> str:
    """An AWS End User Messaging SMS pool id, in AWS's shape."""
    return "pool-" + secrets.token_hex(16)


@dataclass(frozen=True)
class DemoData:
    workspace_id: str
    keys: dict[str, str]
    use_case: UseCase
    account_sid: str
    auth_token: str


def create_demo_data(eum_pool_id: str) -> DemoData:
    account_sid = "AC" + secrets.token_hex(16)
    auth_token = secrets.token_hex(16)
    aws_clients.secretsmanager().create_secret(
        Name=provider_credentials.secret_name_for_account(account_sid), SecretString=auth_token
    )
    workspace = api_keys.create_workspace("Demo workspace")
    workspace_id = str(workspace["workspace_id"])
    keys = {
        "live": api_keys.issue_key(workspace_id, (SCOPE_SEND, SCOPE_READ), "live", "demo live"),
        "test": api_keys.issue_key(workspace_id, (SCOPE_SEND, SCOPE_READ), "test", "demo test"),
        "admin": api_keys.issue_key(workspace_id, ALL_SCOPES, "live", "demo admin"),
    }
    spec = UseCaseSpec.model_validate(
        {
            "name": "Demo one-time codes",
            "twilio_account_sid": account_sid,
            "twilio_auth_token_secret": provider_credentials.secret_name_for_account(account_sid),
            "messaging_service_sid": "MG" + secrets.token_hex(16),
            "sender_pool": [{"sender": n, "kind": "long_code"} for n in DEMO_POOL],
            "sticky_sender": True,
            "area_code_geomatch": True,
            "a2p_campaign_status": "verified",
            "brand_status": "active",
            "allowed_countries": ["US", "CA", "GB"],
            "providers": [
                {"name": "twilio"},
                {"name": "aws_eum", "origination_identity": eum_pool_id},
            ],
        }
    )
    api_keys.bind_twilio_account(workspace_id, account_sid)
    api_keys.bind_eum_identity(workspace_id, eum_pool_id)
    api_keys.bind_messaging_service(account_sid, spec.messaging_service_sid)
    use_case = create_use_case(workspace_id, spec)
    return DemoData(
        workspace_id=workspace_id,
        keys={name: issued.secret for name, issued in keys.items()},
        use_case=use_case,
        account_sid=account_sid,
        auth_token=auth_token,
    )
