"""Twilio subaccount auth tokens, read from Secrets Manager through Powertools parameters (cached
per warm container). A secret's SecretString is the auth token itself."""

from __future__ import annotations

from functools import lru_cache

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from sms_gateway import aws_clients
from sms_gateway.config import get_settings


@lru_cache(maxsize=1)
def _provider() -> SecretsProvider:
    return SecretsProvider(boto3_client=aws_clients.secretsmanager())


def reset() -> None:
    _provider.cache_clear()


def auth_token(secret_name: str) -> str | None:
    """The token, or None when the secret does not exist or cannot be read."""
    try:
        value = _provider().get(secret_name, max_age=get_settings().secret_cache_seconds)
    except GetParameterError:
        return None
    return value if isinstance(value, str) and value else None


def secret_name_for_account(account_sid: str) -> str:
    """The naming convention that lets a callback find its subaccount's token."""
    return f"{get_settings().twilio_secret_prefix}{account_sid}"
