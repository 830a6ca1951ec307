"""Fires EventBridge Scheduler schedules when due (moto stores them but never fires them): the
target function gets the schedule's Input, a schedule marked `ActionAfterCompletion: DELETE` is
deleted after it ran, and one that keeps failing goes to its dead-letter queue."""

from __future__ import annotations

import json
import logging
import re
import threading
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sms_local.aws_resources import LocalStack
from sms_local.lambda_runtime import Invoke, invoke
from sms_local.template import FunctionSpec

log = logging.getLogger("sms_local.scheduler")

_AT = re.compile(r"^at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)$")


def due_time(schedule: dict[str, Any]) -> datetime | None:
    match = _AT.match(schedule.get("ScheduleExpression", ""))
    if not match:
        return None  # rate() and cron() schedules are not used by this service
    zone = ZoneInfo(schedule.get("ScheduleExpressionTimezone") or "UTC")
    return datetime.fromisoformat(match.group(1)).replace(tzinfo=zone)


class ScheduleRunner:
    def __init__(
        self,
        stack: LocalStack,
        functions: dict[str, FunctionSpec],
        group_names: list[str],
        interval_seconds: float = 0.25,
        *,
        invoke: Invoke | None = None,
    ) -> None:
        """`invoke` runs the target function (the stack's sandboxes); without it, in this
        process."""
        self._stack = stack
        self._scheduler = stack.client("scheduler")
        self._sqs = stack.client("sqs")
        self._functions = functions
        self._groups = group_names
        self._interval = interval_seconds
        self._invoke = invoke
        self._failures: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def fire_due(self, now: datetime | None = None) -> int:
        """Run every due schedule once; return how many ran."""
        now = now or datetime.now(UTC)
        fired = 0
        for group in self._groups:
            paginator = self._scheduler.get_paginator("list_schedules")
            for page in paginator.paginate(GroupName=group):
                for summary in page.get("Schedules", []):
                    schedule = self._scheduler.get_schedule(Name=summary["Name"], GroupName=group)
                    moment = due_time(schedule)
                    if moment is not None and moment <= now:
                        self._fire(schedule, group)
                        fired += 1
        return fired

    def _fire(self, schedule: dict[str, Any], group: str) -> None:
        target = schedule["Target"]
        name = schedule["Name"]
        function = self._functions[target["Arn"].rsplit(":", 1)[-1]]
        try:
            (self._invoke or invoke)(function, json.loads(target.get("Input") or "{}"))
        except Exception:
            self._failures[name] = self._failures.get(name, 0) + 1
            attempts = target.get("RetryPolicy", {}).get("MaximumRetryAttempts", 185)
            log.exception("schedule %s failed (%d)", name, self._failures[name])
            if self._failures[name] <= attempts:
                return
            self._dead_letter(target, schedule)
        log.info("schedule %s fired", name)
        self._failures.pop(name, None)
        if schedule.get("ActionAfterCompletion") == "DELETE":
            self._scheduler.delete_schedule(Name=name, GroupName=group)

    def _dead_letter(self, target: dict[str, Any], schedule: dict[str, Any]) -> None:
        arn = target.get("DeadLetterConfig", {}).get("Arn")
        urls = {a["Arn"]: a.get("QueueUrl") for a in self._stack.attributes.values()}
        if arn and urls.get(arn):
            self._sqs.send_message(
                QueueUrl=str(urls[arn]),
                MessageBody=json.dumps(
                    {"schedule": schedule["Name"], "input": target.get("Input")}
                ),
            )

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.fire_due()
            except Exception:
                log.exception("the schedule runner failed; retrying")
