"""moto's server in a process of its own (sms_local.aws_process), as the local stack runs it: it
serves with everything sms_local.aws_emulator installs into moto, and it never outlives its
parent, whether the parent stops it or dies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError

from sms_local.aws_process import start_local_aws_process

# Only a hang guard: a process that exits does so within a second or two.
GONE_WITHIN_SECONDS = 30.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is gone for every purpose here.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + GONE_WITHIN_SECONDS
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"moto's server (pid {pid}) outlived its parent")
        time.sleep(0.05)


def _serves(endpoint_url: str) -> bool:
    address = urlsplit(endpoint_url)
    with socket.socket() as probe:
        return probe.connect_ex((address.hostname or "", address.port or 0)) == 0


def test_it_serves_with_the_emulators_changes_and_stopping_ends_it() -> None:
    server = start_local_aws_process()
    assert server.process is not None
    pid = server.process.pid
    try:
        assert urlsplit(server.endpoint_url).hostname == "127.0.0.1"
        sqs = boto3.client(
            "sqs",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        queue = sqs.create_queue(QueueName="bodies")["QueueUrl"]
        # moto alone takes this body; SQS, and the emulator's check, refuse it: the check is
        # installed in the server's process, where moto runs.
        with pytest.raises(ClientError) as refused:
            sqs.send_message(QueueUrl=queue, MessageBody="a\x00b")
        assert refused.value.response["Error"]["Code"] == "InvalidMessageContents"
    finally:
        server.stop()
    assert server.process.returncode is not None
    assert not _alive(pid)
    assert not _serves(server.endpoint_url)


@pytest.mark.parametrize("death", [signal.SIGKILL, signal.SIGTERM])
def test_it_exits_when_its_parent_dies(death: signal.Signals) -> None:
    """A parent killed without stopping anything (SIGKILL) leaves no orphan either."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from sms_local.aws_process import start_local_aws_process\n"
            "server = start_local_aws_process()\n"
            "print(server.pid, flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert _alive(pid)
    finally:
        parent.send_signal(death)
        parent.wait()
    _wait_gone(pid)
