"""AWS in this process for unit tests (moto's mock_aws: no socket), with the functions'
settings pointed at it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

from moto import mock_aws

from sms_gateway.store import aws_clients
from tests.unit.settings import gateway_settings

SCHEDULER_SETTINGS = {
    "SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/scheduler",
    "SCHEDULED_DISPATCH_FUNCTION_ARN": "arn:aws:lambda:us-east-1:123456789012:function:dispatch",
    "SCHEDULE_DEAD_LETTER_QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:dlq",
}


@contextmanager
def in_process_aws(**settings: str) -> Iterator[None]:
    """Every table setting "unused" unless given; fresh settings and clients in and out."""
    with gateway_settings(AWS_DEFAULT_REGION="us-east-1", **settings) as env, mock_aws():
        # An endpoint of the local stack (set by an integration run in this process) would
        # bypass moto's in-process interception and reach for a socket.
        for name in list(os.environ):
            if name.startswith("AWS_ENDPOINT_URL") or name == "AWS_PROFILE":
                env.delenv(name)
        aws_clients.reset_clients()
        try:
            yield
        finally:
            aws_clients.reset_clients()


def create_table(
    name: str, keys: Sequence[tuple[str, Literal["HASH", "RANGE"]]] = (("id", "HASH"),)
) -> None:
    aws_clients.dynamodb().create_table(
        TableName=name,
        KeySchema=[{"AttributeName": a, "KeyType": k} for a, k in keys],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a, _ in keys],
        BillingMode="PAY_PER_REQUEST",
    )
