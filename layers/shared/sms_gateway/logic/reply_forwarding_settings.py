"""The checks of a send's `reply_forwarding` that depend on the deployment: email forwarding
needs a sender address the operator configured, and the webhook URL is checked against SSRF (as
a status callback URL is, and again, resolved, at each attempt)."""

from __future__ import annotations

from sms_gateway.config import get_settings
from sms_gateway.domain.errors import ValidationError
from sms_gateway.domain.reply_forwarding import ReplyForwarding
from sms_gateway.logic.caller_webhook_settings import require_callable_url


def check_configured(forwarding: ReplyForwarding | None) -> None:
    """Part of the body's validation: a channel this gateway cannot carry out is refused."""
    if forwarding is not None and forwarding.to_email and not get_settings().reply_email_from:
        raise ValidationError(
            "email forwarding is not configured on this gateway",
            errors=[
                {
                    "field": "reply_forwarding.to_email",
                    "code": "email_forwarding_unavailable",
                    "issue": "no sender address is configured (ReplyEmailFrom)",
                }
            ],
        )


def check_urls(forwarding: ReplyForwarding | None) -> None:
    """callback_url_invalid for a webhook URL we will not call."""
    if forwarding is not None and forwarding.webhook_url is not None:
        require_callable_url(forwarding.webhook_url, field="reply_forwarding.webhook_url")
