"""The functions' settings for a unit test, in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sms_gateway import config

TABLE_SETTINGS = (
    "MESSAGES_TABLE",
    "USE_CASES_TABLE",
    "OPT_OUTS_TABLE",
    "API_KEYS_TABLE",
    "IDEMPOTENCY_TABLE",
    "CATALOG_TABLE",
)


@contextmanager
def gateway_settings(**settings: str) -> Iterator[pytest.MonkeyPatch]:
    """Every table setting named "unused" (a unit test reaches no table through it), then
    `settings`; the settings are read afresh on the way in and out. Yields the environment, for
    a test that changes more of it."""
    with pytest.MonkeyPatch.context() as env:
        for name in TABLE_SETTINGS:
            env.setenv(name, "unused")
        for name, value in settings.items():
            env.setenv(name, value)
        config.reset_settings()
        try:
            yield env
        finally:
            config.reset_settings()
