"""Idempotency-Key handling with Powertools idempotency: the same key and body within the TTL get
the first response back; the same key with another body is refused."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)

from sms_gateway.config import get_settings
from sms_gateway.domain.errors import (
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    ServiceUnavailableError,
)
from sms_gateway.domain.ids import MAX_IDEMPOTENCY_KEY_LENGTH
from sms_gateway.store import aws_clients

MAX_KEY_LENGTH = MAX_IDEMPOTENCY_KEY_LENGTH

logger = Logger(child=True)


@lru_cache(maxsize=1)
def _persistence() -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(
        table_name=get_settings().idempotency_table, boto3_client=aws_clients.dynamodb()
    )


def reset() -> None:
    _persistence.cache_clear()


def run_once(
    *,
    scope: str,
    key: str,
    payload: Any,
    action: Callable[[], dict[str, Any]],
    lambda_context: Any = None,
) -> dict[str, Any]:
    """Run `action` once per (scope, key); replay its stored result for the same payload.

    Only results are stored: an action that raises leaves no record, so a request that failed
    with a 4xx or 5xx can be retried with the same key.
    """
    config = IdempotencyConfig(
        event_key_jmespath="[scope, key]",
        payload_validation_jmespath="payload",
        expires_after_seconds=get_settings().idempotency_ttl_seconds,
    )
    if lambda_context is not None:
        # Lets an in-progress record expire with the invocation if the function times out.
        config.register_lambda_context(lambda_context)

    completed: list[dict[str, Any]] = []

    @idempotent_function(
        data_keyword_argument="request", config=config, persistence_store=_persistence()
    )
    def send_with_idempotency_key(request: dict[str, Any]) -> dict[str, Any]:
        result = action()
        completed.append(result)
        return result

    try:
        result: dict[str, Any] = send_with_idempotency_key(
            request={"scope": scope, "key": key, "payload": payload}
        )
    except IdempotencyValidationError as exc:
        raise IdempotencyKeyReusedError(
            "this Idempotency-Key was used with a different request body"
        ) from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise IdempotencyKeyInUseError(
            "a request with this Idempotency-Key is still in progress; retry shortly"
        ) from exc
    except IdempotencyPersistenceLayerError as exc:
        if completed:
            # The action ran (the message is stored and will be sent) and only its answer could
            # not be saved: a 503 would tell the caller nothing was stored. The key's record stays
            # in progress until it expires (a retry meanwhile gets 409), and then the message
            # id the key derives replays the same message.
            logger.warning("idempotent answer not saved", extra={"scope": scope})
            return completed[0]
        raise ServiceUnavailableError("idempotency store unavailable; retry later") from exc
    return result
