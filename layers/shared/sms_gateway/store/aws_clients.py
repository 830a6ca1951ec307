"""AWS clients from a cached factory: created on first use, never at import (cold start).

The clients are botocore's, made from one botocore session: boto3 would add its resource layer
and s3transfer to every cold start, for clients that are the very same botocore clients. A boto3
session over that botocore session is still at hand (`session()`), made only when asked for.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import botocore.session
from botocore.config import Config

if TYPE_CHECKING:
    import boto3.session
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_scheduler.client import EventBridgeSchedulerClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_sesv2.client import SESV2Client
    from mypy_boto3_sqs.client import SQSClient

# Short timeouts: an API call that hangs would hold a caller's HTTP request for the whole
# Lambda timeout. Standard retry mode backs off on throttling.
_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"max_attempts": 3, "mode": "standard"},
)


# Service models parsed by a session that reset_clients(keep_models=True) dropped.
_kept_loader: object | None = None


@lru_cache(maxsize=1)
def botocore_session() -> botocore.session.Session:
    """The one botocore session every client of this package is made from."""
    session = botocore.session.Session()
    if _kept_loader is not None:
        session.register_component("data_loader", _kept_loader)
    return session


@lru_cache(maxsize=1)
def _session() -> boto3.session.Session:
    import boto3.session  # only for the few callers that want boto3's API

    return boto3.session.Session(botocore_session=botocore_session())


def session() -> boto3.session.Session:
    """A boto3 session over the package's botocore session (same credentials and region)."""
    return _session()


def _client(service: str) -> object:
    return botocore_session().create_client(service, config=_CONFIG)


@lru_cache(maxsize=1)
def dynamodb() -> DynamoDBClient:
    return _client("dynamodb")  # type: ignore[return-value]


@lru_cache(maxsize=1)
def sqs() -> SQSClient:
    return _client("sqs")  # type: ignore[return-value]


@lru_cache(maxsize=1)
def secretsmanager() -> SecretsManagerClient:
    return _client("secretsmanager")  # type: ignore[return-value]


@lru_cache(maxsize=1)
def scheduler() -> EventBridgeSchedulerClient:
    return _client("scheduler")  # type: ignore[return-value]


@lru_cache(maxsize=1)
def sesv2() -> SESV2Client:
    return _client("sesv2")  # type: ignore[return-value]


def reset_clients(*, keep_models: bool = False) -> None:
    """Drop cached clients, their connections and the session they came from, credentials
    included (tests switch endpoints and credentials; a SnapStart restore must not reuse the
    snapshot's). keep_models: the next session reuses this one's parsed service models and
    endpoint rules (files of botocore's, the same for every session)."""
    global _kept_loader
    _kept_loader = (
        botocore_session().get_component("data_loader")
        if keep_models and botocore_session.cache_info().currsize
        else None
    )
    for factory in (botocore_session, _session, dynamodb, sqs, secretsmanager, scheduler, sesv2):
        factory.cache_clear()
