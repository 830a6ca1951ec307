"""Runs each function of template.yaml in worker processes, as Lambda runs it in sandboxes: a
sandbox is one process (sms_local.sandbox_worker) that loads its handler once and handles one
event at a time; a function has up to its concurrency of them (sms_local.concurrency), started
when every one it has is busy (a cold start) and reused afterwards (warm), newest-idle first.
Events beyond the concurrency wait for a free sandbox (Lambda would throttle them instead: the
local stack queues rather than answer 429s on a laptop).

Processes, not threads, because the handlers keep per-event state in module globals (Powertools'
resolvers, the handoff's batch processor), as code written for one event per sandbox may, and
because in one process every handler would share one GIL with moto and the front.

Failures, as Lambda reports them to the caller (the front, a poller): a handler that raises is a
FunctionError and its sandbox goes on; a sandbox that dies mid-event (killed, out of memory,
os._exit) is a SandboxCrashed, and one that runs past the function's Timeout is killed and is a
FunctionTimedOut; either way a fresh sandbox takes its place on the next event. What the caller
does then is the event source's business: the front answers 500, an SQS poller leaves the
batch to come back after its visibility timeout, a stream poller retries the batch.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from sms_local.concurrency import Concurrency
from sms_local.sandbox_worker import WorkerSetup
from sms_local.template import FunctionSpec

log = logging.getLogger("sms_local.sandboxes")

# How long a sandbox may take to start (import the handler) before it counts as failed.
INIT_SECONDS = 120.0
# How long a stopping sandbox gets to exit before it is killed.
STOP_SECONDS = 5.0


class InvocationError(Exception):
    """The function did not return a result (base of the three failures below)."""


class FunctionError(InvocationError):
    """The handler raised; its text is the exception's type and message."""


class SandboxCrashed(InvocationError):
    """The sandbox's process died before it answered (or while it started)."""


class FunctionTimedOut(InvocationError):
    """The handler ran past the function's Timeout; its sandbox was killed, as Lambda does."""


class Sandbox:
    """One worker process of one function: `python -m sms_local.sandbox_worker`, a fresh
    interpreter (not multiprocessing's spawn, which would import the caller's __main__ again in
    every worker), talking over a socket pair in multiprocessing's framing."""

    def __init__(self, setup: WorkerSetup) -> None:
        self.function = setup.function.name
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sms_local.sandbox_worker", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()  # the worker's end: ours must see EOF when the worker dies
        self._connection = Connection(ours.detach())
        self.pid = self.process.pid
        try:
            self._connection.send(setup)
        except BaseException:
            # No Sandbox comes of it, so nobody else would ever reap this process.
            self.kill()
            raise

    def wait_ready(self, timeout: float = INIT_SECONDS) -> None:
        kind, value = self._answer(timeout, "start")
        if kind != "ready":
            self.kill()
            raise SandboxCrashed(f"a sandbox of {self.function} failed to start:\n{value}")

    def call(self, event: dict[str, Any], timeout: float) -> Any:
        try:
            self._connection.send(event)
        except (BrokenPipeError, ConnectionResetError, EOFError):
            self.kill()
            raise SandboxCrashed(f"a sandbox of {self.function} was gone") from None
        kind, value = self._answer(timeout, "run")
        if kind == "error":
            raise FunctionError(str(value))
        return value

    def _answer(self, timeout: float, doing: str) -> tuple[str, Any]:
        # poll() returns at once when the worker died: its end of the pipe is closed.
        if not self._connection.poll(timeout):
            self.kill()
            raise FunctionTimedOut(
                f"{self.function} did not {doing} within {timeout:g} s; its sandbox was killed"
            )
        try:
            answer: tuple[str, Any] = self._connection.recv()
        except (EOFError, OSError):
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_SECONDS)
            code = self.process.returncode
            self.kill()
            raise SandboxCrashed(
                f"a sandbox of {self.function} (pid {self.pid}) exited with {code} before answering"
            ) from None
        return answer

    def stop(self) -> None:
        """Let the worker exit by itself (it returns when the pipe says so), else kill it."""
        with contextlib.suppress(OSError):
            self._connection.send(None)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_SECONDS)
        self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._connection.close()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


class FunctionPool:
    """Up to `concurrency` sandboxes of one function."""

    def __init__(self, setup: WorkerSetup, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("a function needs at least one sandbox")
        self.setup = setup
        self.concurrency = concurrency
        self._changed = threading.Condition()
        self._idle: list[Sandbox] = []  # the most recently used last: it is taken first
        self._sandboxes: set[Sandbox] = set()
        self._starting = 0
        self._closed = False
        # Invocations waiting for a free sandbox right now (tests read it).
        self.waiting = 0

    @property
    def name(self) -> str:
        return self.setup.function.name

    @property
    def size(self) -> int:
        """Sandboxes alive or starting."""
        with self._changed:
            return len(self._sandboxes) + self._starting

    def pids(self) -> list[int]:
        with self._changed:
            return sorted(s.pid for s in self._sandboxes if s.pid is not None)

    def warm(self) -> None:
        """Start one sandbox now, if there is none, so the first event finds it warm."""
        with self._changed:
            if self._sandboxes or self._starting:
                return
            self._starting += 1
        sandbox = self._start()
        self._release(sandbox, healthy=True)

    def invoke(self, event: dict[str, Any]) -> Any:
        sandbox = self._acquire()
        healthy = False
        try:
            result = sandbox.call(event, float(self.setup.function.timeout))
            healthy = True
            return result
        except FunctionError:
            healthy = True
            raise
        finally:
            self._release(sandbox, healthy)

    def _acquire(self) -> Sandbox:
        with self._changed:
            while True:
                if self._closed:
                    raise SandboxCrashed(f"the sandboxes of {self.name} are stopped")
                while self._idle:
                    sandbox = self._idle.pop()
                    if sandbox.alive:
                        return sandbox
                    # It died while idle (killed, out of memory): Lambda would start a fresh
                    # environment for the event, never hand it a dead one.
                    self._sandboxes.discard(sandbox)
                    sandbox.kill()
                if len(self._sandboxes) + self._starting < self.concurrency:
                    self._starting += 1
                    break
                self.waiting += 1
                try:
                    self._changed.wait()
                finally:
                    self.waiting -= 1
        return self._start()  # outside the lock: a cold start must not hold up warm sandboxes

    def _start(self) -> Sandbox:
        """A new sandbox, ready; the caller reserved its place (`_starting`)."""
        sandbox: Sandbox | None = None
        try:
            sandbox = Sandbox(self.setup)
            sandbox.wait_ready()
        except BaseException:
            with self._changed:
                self._starting -= 1
                self._changed.notify()
            if sandbox is not None:
                sandbox.kill()
            raise
        with self._changed:
            self._starting -= 1
            self._sandboxes.add(sandbox)
        return sandbox

    def _release(self, sandbox: Sandbox, healthy: bool) -> None:
        with self._changed:
            keep = healthy and not self._closed and sandbox.alive
            if keep:
                self._idle.append(sandbox)
            else:
                self._sandboxes.discard(sandbox)
            self._changed.notify()
        if not keep:
            sandbox.kill()

    def stop(self) -> None:
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            for sandbox in idle:
                self._sandboxes.discard(sandbox)
            self._changed.notify_all()
        for sandbox in idle:
            sandbox.stop()
        # Busy ones are killed: the invocation fails as a crash, as when Lambda shuts down.
        with self._changed:
            busy = list(self._sandboxes)
        for sandbox in busy:
            sandbox.kill()


class Sandboxes:
    """The sandboxes of every function of the stack; `invoke` is what the front and the event
    sources call (the same signature as sms_local.lambda_runtime.invoke)."""

    def __init__(self, setups: Mapping[str, WorkerSetup], concurrency: Concurrency) -> None:
        # A fresh interpreter per worker: fork would copy the front's threads' locks (moto's,
        # logging's) in whatever state they are at that instant.
        self.pools = {
            name: FunctionPool(setup, concurrency.of(name)) for name, setup in setups.items()
        }

    def concurrency_of(self, function: str) -> int:
        return self.pools[function].concurrency

    def warm(self) -> None:
        """One sandbox per function, started side by side (each start is mostly imports)."""
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(self.pools) or 1) as starting:
            for _ in starting.map(FunctionPool.warm, self.pools.values()):
                pass
        log.info(
            "%d functions warm, one sandbox each, in %.1f s",
            len(self.pools),
            time.monotonic() - started,
        )

    def invoke(self, spec: FunctionSpec, event: dict[str, Any]) -> Any:
        return self.pools[spec.name].invoke(event)

    def stop(self) -> None:
        for pool in self.pools.values():
            pool.stop()


__all__ = [
    "FunctionError",
    "FunctionPool",
    "FunctionTimedOut",
    "InvocationError",
    "Sandbox",
    "SandboxCrashed",
    "Sandboxes",
    "WorkerSetup",
]
