"""Settings read once from the environment that template.yaml gives every function."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    stage: str = "dev"
    messages_table: str
    use_cases_table: str
    opt_outs_table: str
    api_keys_table: str
    idempotency_table: str
    # Templates, sender IDs and the operator's prices.
    catalog_table: str
    handoff_queue_url: str = ""
    schedule_group_name: str = ""
    scheduler_role_arn: str = ""
    scheduled_dispatch_function_arn: str = ""
    schedule_dead_letter_queue_arn: str = ""
    twilio_api_base_url: str = "https://api.twilio.com"
    # Callbacks are signed against this URL, so it must be what Twilio is given, not a Host header.
    public_base_url: str = ""
    twilio_secret_prefix: str = "sms/twilio/"  # noqa: S105 - a name prefix, not a secret
    # A claim older than this with no provider answer recorded means the worker died mid-call.
    # Longer than the handoff function's timeout (a live worker's claim is never taken for a
    # dead one) and shorter than the queue's visibility timeout (a redelivery resolves it).
    handoff_claim_timeout_seconds: float = Field(default=60.0, ge=0)
    handoff_retry_base_seconds: int = Field(default=10, ge=0)
    # The handoff queue's maxReceiveCount (template.yaml sets both; a test keeps them equal).
    handoff_max_receives: int = Field(default=15, ge=1)
    provider_connect_timeout_seconds: float = Field(default=3.05, gt=0)
    provider_read_timeout_seconds: float = Field(default=10.0, gt=0)
    secret_cache_seconds: int = Field(default=300, ge=0)
    use_case_cache_ttl_seconds: float = Field(default=30.0, ge=0)
    idempotency_ttl_seconds: int = Field(default=86_400, gt=0)
    # Status webhooks to callers: the queue of their jobs, where a job goes after its last
    # attempt, the attempts' table, and the retry schedule (seconds before each retry).
    caller_webhook_queue_url: str = ""
    caller_webhook_dead_letter_queue_url: str = ""
    webhook_attempts_table: str = ""
    caller_webhook_retry_delays: str = "5,300,1800,7200,18000,36000,36000"
    # The whole of one attempt: connection, TLS, request and the answer's status.
    caller_webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Only the local stack sets it: http:// and loopback addresses become callable, so that a
    # receiver on the laptop gets its webhooks. Every other private address stays refused.
    caller_webhook_allow_loopback_http: bool = False
    # Inbound messages, and the forwarding of replies: the address replies are emailed from
    # (an SES identity verified for sending; empty: email forwarding is refused at send time).
    inbound_table: str = ""
    reply_email_from: str = ""
    # A second provider, AWS End User Messaging SMS: the stack's configuration set (whose event
    # destination feeds EumEventsQueue), used by a use case that names none.
    eum_configuration_set: str = ""
    # Health-based routing: a provider that was unavailable (no connection, 503, no answer)
    # this many times within one window is tried last by new messages for the
    # cool-down, a state kept in this table and shared by every handoff instance.
    provider_health_table: str = ""
    provider_failure_threshold: int = Field(default=5, ge=1)
    provider_failure_window_seconds: int = Field(default=60, ge=1)
    provider_cooldown_seconds: int = Field(default=120, ge=1)


_FIELDS = tuple(Settings.model_fields)
# The environment variables the settings are read from (MESSAGES_TABLE, ...).
VARIABLES = frozenset(name.upper() for name in _FIELDS)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Validated settings; a missing variable fails loudly on first use, not at import."""
    values = {name: os.environ[name.upper()] for name in _FIELDS if name.upper() in os.environ}
    return Settings.model_validate(values)


def reset_settings() -> None:
    """Forget cached settings (tests and the local stack change the environment)."""
    get_settings.cache_clear()
