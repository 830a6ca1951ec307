"""AWS clients from a cached factory: created on first use, never at import (cold start)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
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


@lru_cache(maxsize=1)
def _session() -> boto3.session.Session:
    return boto3.session.Session()


def session() -> boto3.session.Session:
    """The one session every client of this package is made from."""
    return _session()


@lru_cache(maxsize=1)
def dynamodb() -> DynamoDBClient:
    return _session().client("dynamodb", config=_CONFIG)


@lru_cache(maxsize=1)
def sqs() -> SQSClient:
    return _session().client("sqs", config=_CONFIG)


@lru_cache(maxsize=1)
def secretsmanager() -> SecretsManagerClient:
    return _session().client("secretsmanager", config=_CONFIG)


@lru_cache(maxsize=1)
def scheduler() -> EventBridgeSchedulerClient:
    return _session().client("scheduler", config=_CONFIG)


@lru_cache(maxsize=1)
def sesv2() -> SESV2Client:
    return _session().client("sesv2", config=_CONFIG)


def reset_clients() -> None:
    """Drop cached clients (tests switch endpoints and credentials)."""
    for factory in (_session, dynamodb, sqs, secretsmanager, scheduler, sesv2):
        factory.cache_clear()
