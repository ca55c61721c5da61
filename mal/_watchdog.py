"""One background thread that interrupts blocked sync reads at their deadline.

A sync read from a socket cannot be given a deadline once it has begun, and
httpx's read timeout restarts with every byte, so a server that trickles
keep-alive pings would hold a sync caller forever. The sync driver registers
each stream that has a clock running (its ``Waiter``, in
:mod:`mal._helpers_sync`); at the deadline the watchdog calls it back, and it
shuts the stream's socket down, which wakes the blocked read. Moving a
deadline later costs an attribute write: the watchdog finds the new deadline
when the old one comes and sleeps again.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Protocol

__all__ = ["Watched", "watch"]


class Watched(Protocol):
    def _check_deadline(self, now: float) -> float | None:
        """Called on the watchdog thread at the time it asked for: act if the
        deadline has passed, and return the next time to be called, or None."""


class _Watchdog:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watched]] = []
        self._count = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, item: Watched, when: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._count), item))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mal-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is item:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                when, _, item = self._heap[0]
                now = time.monotonic()
                if when > now:
                    self._cond.wait(when - now)
                    continue
                heapq.heappop(self._heap)
            later = item._check_deadline(time.monotonic())
            if later is not None:
                self.watch(item, later)  # the deadline moved on


_watchdog = _Watchdog()


def watch(item: Watched, when: float) -> None:
    """Call ``item._check_deadline(now)`` at ``when`` (``time.monotonic()``), and again
    whenever it returns a later time."""
    _watchdog.watch(item, when)
