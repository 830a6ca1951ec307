"""The emulator's dispatcher finds the same moto backend for a Host header as moto's own."""

from __future__ import annotations

import pytest

from sms_local.aws_emulator import AtomicDynamoDBDispatcher

HOSTS = [
    None,
    "moto_api",
    "dynamodb",
    "sqs",
    "dynamodb.us-east-1.amazonaws.com",
    "streams.dynamodb.us-east-1.amazonaws.com",
    "sqs.us-east-1.amazonaws.com",
    "scheduler.us-east-1.amazonaws.com",
    "secretsmanager.us-east-1.amazonaws.com",
    "127.0.0.1:5000",
    "not-a-service.example.org",
]


@pytest.mark.parametrize("host", HOSTS)
def test_a_host_maps_to_the_backend_moto_itself_picks(host: str | None) -> None:
    dispatcher = AtomicDynamoDBDispatcher()
    # moto's own method, on the class the emulator's dispatcher extends
    expected = super(AtomicDynamoDBDispatcher, dispatcher).get_backend_for_host(host)
    assert dispatcher.get_backend_for_host(host) == expected
