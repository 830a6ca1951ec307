"""The handlers' Powertools logs as one short line per event, for a terminal."""

from __future__ import annotations

import logging
import os
from typing import Any

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.types import LogRecord

# Keys of our handlers' structured logs worth one compact line each.
_LOG_KEYS = ("message_id", "status", "provider_status", "applied", "result", "error_code", "code")


class CompactFormatter(LambdaPowertoolsFormatter):
    """One short line per event instead of Powertools' JSON. `source` names who logged it: the
    function in a sandbox of its own; the shared package when functions share one process (and
    one Powertools logger)."""

    def __init__(self, source: str = "sms_gateway", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source

    def serialize(self, log: LogRecord) -> str:
        fields: dict[str, Any] = dict(log)
        extras = " ".join(f"{key}={fields[key]}" for key in _LOG_KEYS if key in fields)
        moment = str(log.get("timestamp", ""))[11:19]
        return f"{moment} {self.source:<16} {log.get('message')} {extras}".rstrip()


def compact_handler_logs(source: str = "sms_gateway") -> None:
    """Give the handlers' Powertools logger (already created: load the handlers first) the
    compact format."""
    service = os.environ.get("POWERTOOLS_SERVICE_NAME", "sms-gateway")
    for handler in logging.getLogger(service).handlers:
        handler.setFormatter(CompactFormatter(source))
