"""moto's server in a process of its own: the local stack's AWS (`make dev`, the end-to-end
benchmark), so that moto and the stack's front (HTTP API, pollers, simulators) each have a core
and a GIL of their own instead of sharing one.

The process runs `sms_local.aws_emulator.start_local_aws`, the same server the integration tests
run in their own process: moto bound to a free port of 127.0.0.1, DynamoDB's requests run one at
a time (its per-item atomicity), and everything else that module installs into moto
(TransactWriteItems' item snapshots, SQS's body check) installed in that process, where moto runs.
The tests that look into moto's backends directly keep `start_local_aws` in their own process.

The protocol: the parent starts `python -m sms_local.aws_process [--unserialized-dynamodb]` with
a pipe on its stdin and one on its stdout; the server writes its endpoint URL as one line on
stdout once it serves, then serves until its stdin reaches end of file, which is when the parent
closes it (`LocalAwsProcess.stop`) or dies, however it dies: no orphan outlives its stack. It
ignores Ctrl-C, which a terminal sends to the whole process group: the stack stops its pollers
first and moto last, itself.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import selectors
import signal
import subprocess
import sys
import time

log = logging.getLogger("sms_local.aws")

# How long the server may take to start (import moto, bind) before the start counts as failed.
START_SECONDS = 60.0
# How long a stopping server gets to exit by itself before it is killed.
STOP_SECONDS = 10.0


class LocalAwsProcess:
    """`sms_local.aws_emulator.LocalAws` in a child process; `endpoint_url` once started."""

    def __init__(self, *, serialize_dynamodb: bool = True) -> None:
        self.serialize_dynamodb = serialize_dynamodb
        self.endpoint_url = ""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> LocalAwsProcess:
        command = [sys.executable, "-m", "sms_local.aws_process"]
        if not self.serialize_dynamodb:
            command.append("--unserialized-dynamodb")
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            self.endpoint_url = self._read_endpoint(time.monotonic() + START_SECONDS)
        except BaseException:
            self.stop()
            raise
        return self

    def _read_endpoint(self, deadline: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        line = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise RuntimeError(f"moto's server did not start within {START_SECONDS:g} s")
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    code = self.process.wait()
                    raise RuntimeError(f"moto's server exited with {code} before it served")
                line += chunk
        return line.decode().strip()

    def stop(self) -> None:
        """Close its stdin (the server stops and exits), wait for it, else kill it."""
        process = self.process
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("moto's server (pid %d) did not stop; killing it", process.pid)
            process.kill()
            process.wait()


def start_local_aws_process(*, serialize_dynamodb: bool = True) -> LocalAwsProcess:
    """moto's server as `start_local_aws` starts it, in a process of its own; see the module."""
    return LocalAwsProcess(serialize_dynamodb=serialize_dynamodb).start()


def main(argv: list[str] | None = None) -> int:
    """The child: serve until stdin ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="python -m sms_local.aws_process")
    parser.add_argument("--unserialized-dynamodb", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # werkzeug logs every request at INFO unless told not to: a line per call, on moto's core.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from sms_local.aws_emulator import start_local_aws

    server = start_local_aws(serialize_dynamodb=not args.unserialized_dynamodb)
    try:
        os.write(1, (server.endpoint_url + "\n").encode())
        # Nothing else goes to the parent's pipe (which nobody reads any more): stderr's way.
        os.dup2(2, 1)
        while os.read(0, 4096):  # the parent writes nothing: this returns at end of file
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
