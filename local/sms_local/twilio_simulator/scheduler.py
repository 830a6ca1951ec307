"""Background work: timed jobs (status changes, callback retries) run on one worker thread."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    action: Callable[[], None] = field(compare=False)


class _Scheduler:
    """Runs timed jobs in due order on one worker thread, so no thread is spawned per message."""

    def __init__(self, name: str) -> None:
        self._cond = threading.Condition()
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._pending = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def schedule(self, delay: float, action: Callable[[], None]) -> None:
        with self._cond:
            if self._stopped:
                return
            job = _Job(time.monotonic() + delay, next(self._seq), action)
            heapq.heappush(self._heap, job)
            self._pending += 1
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._pending = 0
            self._cond.notify_all()
        if self._thread.ident is not None:
            self._thread.join()

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            try:
                job.action()
            except Exception:
                logger.exception("simulator background job failed")
            finally:
                self._finish_job()

    def _next_job(self) -> _Job | None:
        with self._cond:
            while not self._stopped:
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0].due - time.monotonic()
                if delay <= 0:
                    return heapq.heappop(self._heap)
                self._cond.wait(delay)
            return None

    def _finish_job(self) -> None:
        with self._cond:
            # stop() already zeroed the count for everything it dropped, this job included.
            if not self._stopped:
                self._pending -= 1
            self._cond.notify_all()
