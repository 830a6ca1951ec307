"""Twilio subaccount auth tokens: one Secrets Manager secret per subaccount, whose SecretString
is the auth token itself, named by a convention that lets a callback find its subaccount's."""

from __future__ import annotations

from sms_gateway.config import get_settings
from sms_gateway.providers.interface import CredentialsUnavailableError
from sms_gateway.store import secrets

__all__ = ["CredentialsUnavailableError", "auth_token", "secret_name_for_account"]


def auth_token(secret_name: str, *, fresh: bool = False) -> str | None:
    """The token, or None when no such secret exists; CredentialsUnavailableError when Secrets
    Manager cannot tell now. `fresh` reads it again past the cache (the token was refused)."""
    try:
        return secrets.read_secret(secret_name, fresh=fresh)
    except secrets.SecretUnavailableError as exc:
        raise CredentialsUnavailableError(secret_name) from exc


def secret_name_for_account(account_sid: str) -> str:
    """The naming convention that lets a callback find its subaccount's token."""
    return f"{get_settings().twilio_secret_prefix}{account_sid}"
