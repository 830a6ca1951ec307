"""What a warm function keeps between requests, forgotten in one place: a SnapStart restore
(runtime.snapstart) and the local stack's fresh sandboxes (sms_local.lambda_runtime) must both
drop all of it, and a cache added later is added here once."""

from __future__ import annotations


def forget(*, settings: bool, client_models: bool) -> None:
    """Drop the AWS clients (their connections and credentials), cached secrets and tokens,
    the providers' clients, and the caches of use cases, prices and provider health.
    `settings`: also the settings read from the environment; `client_models`: also botocore's
    parsed service models (kept, they only depend on the installed botocore)."""
    from sms_gateway import config
    from sms_gateway.providers.twilio import callbacks as twilio_callbacks
    from sms_gateway.providers.twilio import client as twilio_client
    from sms_gateway.store import (
        aws_clients,
        idempotency,
        price_store,
        provider_health,
        secrets,
        sms_voice,
        use_case_store,
    )

    if settings:
        config.reset_settings()
    aws_clients.reset_clients(keep_models=not client_models)
    idempotency.reset()
    secrets.reset()
    twilio_callbacks.reset()
    twilio_client.reset()
    sms_voice.reset()
    use_case_store.clear_cache()
    price_store.clear_cache()
    provider_health.forget()
