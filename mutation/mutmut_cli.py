"""Run mutmut's command line with its timeouts aimed at the right process.

mutmut 3.8's timeout thread (mutmut/workers/timeout.py) remembers each mutant
worker by PID and sends it SIGXCPU when the wall timeout passes, whether or not
the worker has already finished. On a machine whose PIDs wrap (pid_max 32768
here) the number may by then belong to any other process of the same user: it
once killed the local stack of a test run beside `make mutants`, and it can just
as well kill a later mutant worker and record a false "timeout".

Here each registered worker is held by a pidfd, opened while it is still our
unreaped child, and the signal goes through that pidfd: a worker that has
exited and been reaped cannot be confused with a process that reused its PID.

Run as a script (mutation.run does): python mutation/mutmut_cli.py run ...
"""

from __future__ import annotations

import heapq
import os
import signal
import threading
import time

import mutmut.workers.isolation as isolation
import mutmut.workers.timeout as timeout
from mutmut.__main__ import cli

_deadlines: list[tuple[float, int]] = []  # (deadline, pidfd)
_condition = threading.Condition()
_checker: threading.Thread | None = None


def register_timeout(pid: int, timeout_s: float) -> None:
    """Same contract as mutmut's: SIGXCPU to `pid` after `timeout_s`, if it still runs."""
    global _checker
    try:
        # The caller registers right after fork and reaps later on this same
        # thread, so the PID is still its child here, alive or a zombie.
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    with _condition:
        if _checker is None:
            _checker = threading.Thread(
                target=_signal_when_due, name="mutmut-timeouts", daemon=True
            )
            _checker.start()
        heapq.heappush(_deadlines, (time.monotonic() + timeout_s, pidfd))
        _condition.notify()


def _signal_when_due() -> None:
    with _condition:
        while True:
            while not _deadlines:
                _condition.wait()
            now = time.monotonic()
            while _deadlines and _deadlines[0][0] <= now:
                _, pidfd = heapq.heappop(_deadlines)
                try:
                    signal.pidfd_send_signal(pidfd, signal.SIGXCPU)
                except ProcessLookupError:
                    pass  # finished and reaped: nothing to stop
                finally:
                    os.close(pidfd)
            if _deadlines:
                _condition.wait(timeout=max(0.0, _deadlines[0][0] - now))


# isolation imported the function by name, so both references are replaced.
timeout.register_timeout = register_timeout
isolation.register_timeout = register_timeout  # type: ignore[attr-defined]

if __name__ == "__main__":
    cli()
