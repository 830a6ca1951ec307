"""Settings shared by every test: AWS credentials that can never reach a real account."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before any boto3 client exists; moto's fake credentials, a fixed region, no metrics flush.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "sms-gateway",  # as template.yaml: one logger tree
        "POWERTOOLS_METRICS_NAMESPACE": "SmsGateway",
        "POWERTOOLS_DEV": "false",
    }
)
os.environ.pop("AWS_PROFILE", None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep each folder's and each module's tests together, in the order they first appear.
    pytest already does when it collects by itself; a run handed test ids one by one (mutmut
    hands them fastest first) would otherwise switch between folders and modules, starting the
    local AWS of tests/integration again at each switch, and could run an integration test while
    a unit module's in-process moto is still active."""
    folders: dict[Path, int] = {}
    modules: dict[Path, int] = {}
    for item in items:
        folders.setdefault(item.path.parent, len(folders))
        modules.setdefault(item.path, len(modules))
    items.sort(key=lambda item: (folders[item.path.parent], modules[item.path]))
