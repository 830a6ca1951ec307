"""Handlers the sandbox tests run in worker processes (sms_local.sandboxes). They meet through
files in PROBE_DIR, never through time: each waits for a file another one writes, with a long
deadline that only stops a broken run from hanging."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import boto3

# Only a hang guard: a correct run never comes near it.
DEADLINE_SECONDS = 60.0


def _dir() -> Path:
    return Path(os.environ["PROBE_DIR"])


def _wait_for(path: Path) -> bool:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def rendezvous(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """GET /meet/{me}/{other}: says it started, then waits until `other` has started too. Two of
    them finish only if they run at the same time."""
    me, other = event["pathParameters"]["me"], event["pathParameters"]["other"]
    (_dir() / f"{me}.started").write_text(str(os.getpid()))
    met = _wait_for(_dir() / f"{other}.started")
    return {"statusCode": 200, "body": json.dumps({"pid": os.getpid(), "met": met})}


def hold(event: dict[str, Any], context: Any) -> int:
    """Says it started, then holds its sandbox until the test writes `release`."""
    (_dir() / f"{event['name']}.started").write_text(str(os.getpid()))
    _wait_for(_dir() / "release")
    return os.getpid()


def crash_once(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An SQS handler whose first invocation kills its own process mid-event (as the OOM killer
    or a segfault would); later ones record the bodies they got and succeed."""
    marker = _dir() / "crashed"
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(137)
    with (_dir() / "done").open("a") as done:
        for record in event["Records"]:
            done.write(record["body"] + "\n")
    return {"batchItemFailures": []}


def raises(event: dict[str, Any], context: Any) -> Any:
    raise RuntimeError("the handler failed")


def describe_time_to_live(event: dict[str, Any], context: Any) -> str:
    """An AWS call the function's role does not grant: the sandbox must refuse it as AWS would."""
    client = boto3.client("dynamodb")
    try:
        client.describe_time_to_live(TableName=os.environ["MESSAGES_TABLE"])
    except client.exceptions.ClientError as error:
        return str(error.response["Error"]["Code"])
    return "allowed"
