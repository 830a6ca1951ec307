"""Secrets Manager, read through Powertools parameters (cached per warm container)."""

from __future__ import annotations

import time
from functools import lru_cache

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError

from sms_gateway.config import get_settings
from sms_gateway.store import aws_clients


@lru_cache(maxsize=1)
def _provider() -> SecretsProvider:
    return SecretsProvider(boto3_client=aws_clients.secretsmanager())


def reset() -> None:
    _provider.cache_clear()
    _missing.clear()


class SecretUnavailableError(Exception):
    """Secrets Manager could not answer now (throttling, network, permissions): try later."""


# Secret names known not to exist, until when: a flood of callbacks naming made-up accounts must
# not become a flood of Secrets Manager calls (Powertools caches only values).
_missing: dict[str, float] = {}
MISSING_CACHE_SECONDS = 60.0


def read_secret(secret_name: str, *, fresh: bool = False) -> str | None:
    """The SecretString, or None when no such secret exists; SecretUnavailableError when Secrets
    Manager cannot tell now. `fresh` reads Secrets Manager again, past the cache: for a caller
    that has just seen the cached value refused (it was rotated)."""
    if fresh:
        _missing.pop(secret_name, None)
    elif _missing.get(secret_name, 0.0) > time.monotonic():
        return None
    try:
        value = _provider().get(
            secret_name, max_age=get_settings().secret_cache_seconds, force_fetch=fresh
        )
    except GetParameterError as exc:
        if _is_not_found(exc):
            _missing[secret_name] = time.monotonic() + MISSING_CACHE_SECONDS
            return None
        raise SecretUnavailableError(secret_name) from exc
    return value if isinstance(value, str) and value else None


def _is_not_found(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ClientError):
            return cause.response["Error"]["Code"] == "ResourceNotFoundException"
        cause = cause.__cause__ or cause.__context__
    return False
