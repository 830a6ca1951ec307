"""A workspace's webhook secret: made on first need (the first GET, or the first webhook), and
rotated with an overlap during which the old and the new one both sign."""

from __future__ import annotations

import time

from sms_gateway.domain.caller_webhooks import new_secret
from sms_gateway.store import webhook_secrets
from sms_gateway.store.webhook_secrets import WebhookSecrets

# How long a replaced secret keeps signing: receivers have a day to switch.
ROTATION_OVERLAP_SECONDS = 24 * 3600


def secrets_of(workspace_id: str) -> WebhookSecrets:
    return webhook_secrets.read(workspace_id) or webhook_secrets.create(workspace_id, new_secret())


def current_secret(workspace_id: str) -> str:
    return secrets_of(workspace_id).secret


def rotate(workspace_id: str) -> str:
    until = int(time.time()) + ROTATION_OVERLAP_SECONDS
    return webhook_secrets.rotate(workspace_id, new_secret(), until).secret


def signing_secrets(workspace_id: str) -> list[str]:
    return secrets_of(workspace_id).signing(int(time.time()))
