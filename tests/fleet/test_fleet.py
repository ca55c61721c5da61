"""Processes that share one ``RateLimit`` through Redis, as a fleet does:
worker processes (``call_worker.py``; sync, asyncio and trio) call one
built-in server of the test's own, which logs when each request arrived and
answers 429, as the provider would, to a request over the limit. The window
is a second, so a test runs a few windows in seconds."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mal.testing import MockServer, RecordedRequest, Reply

from ..support.redis_server import RedisServer

WORKER = Path(__file__).with_name("call_worker.py")

#: The limit's window in these tests, in seconds.
WINDOW = 2.0

#: A request's turn is granted before it is sent: a connection, and on a
#: busy machine the scheduling of its process, come between the grant and
#: the arrival (the workers warm up first, so no cold start does). The server
#: counts over a window this much shorter, as a provider's own slack would.
TRANSIT = 0.25


class LimitedServer(MockServer):
    """A built-in server that logs when each request arrived (and from which
    worker), and answers 429 with Retry-After to a request that would make
    more than ``limit`` in a window."""

    def __init__(self, limit: int, window: float = WINDOW) -> None:
        super().__init__()
        self.limit, self.window = limit, window
        self.arrivals: list[tuple[float, str]] = []
        self.refused = 0
        self._arrival_lock = threading.Lock()

    def _record(self, request: RecordedRequest) -> None:
        with self._arrival_lock:
            self.arrivals.append((time.monotonic(), request.headers.get("x-worker", "")))
        super()._record(request)

    def _take(self) -> Reply:
        now = time.monotonic()
        with self._arrival_lock:
            recent = [t for t, _ in self.arrivals if t > now - (self.window - TRANSIT)]
            over = len(recent) > self.limit
            if over:
                self.refused += 1
        if over:
            return Reply(status=429, headers={"retry-after": "1"})
        return super()._take()


def most_in_a_window(times: list[float], window: float) -> int:
    """The most of ``times`` in any span [t, t + window)."""
    times = sorted(times)
    most, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        most = max(most, i - j + 1)
    return most


def start_workers(
    server: MockServer, redis_url: str, limit: int, calls: int, flavours: list[str]
) -> list[subprocess.Popen[str]]:
    workers = []
    for i, flavour in enumerate(flavours):
        spec = {
            "openai_url": server.url("openai"),
            "redis_url": redis_url,
            "limit": limit,
            "window": WINDOW,
            "calls": calls,
            "flavour": flavour,
            "concurrency": 3,
            "worker": f"w{i}",
        }
        workers.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for worker in workers:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        assert line == "ready\n", worker.communicate()[1]
    assert all(w.stdin is not None for w in workers)
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    return workers


def finish(workers: list[subprocess.Popen[str]]) -> list[tuple[dict[str, Any], str]]:
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        results.append((json.loads(out.strip().splitlines()[-1]), err))
    return results


FLAVOURS = ["sync", "sync", "asyncio", "trio"]


def test_a_fleet_keeps_one_limit_and_every_call_is_done(redis_server: RedisServer) -> None:
    limit, calls = 6, 6
    with LimitedServer(limit) as server:
        workers = start_workers(server, redis_server.url, limit, calls, FLAVOURS)
        results = finish(workers)
    for result, err in results:
        assert result == {"ok": calls, "errors": []}, err
    times = [t for t, _ in server.arrivals]
    # Every call, and no 429 sent: the fleet waited its turns instead.
    assert len(times) == calls * len(FLAVOURS) and server.refused == 0
    assert most_in_a_window(times, WINDOW - TRANSIT) <= limit
    # One limit for all: 24 requests at 6 a window span at least three windows
    # (per-process limits would have let them all through in the first).
    assert max(times) - min(times) >= 3 * WINDOW - TRANSIT


def test_redis_killed_in_a_run_the_calls_finish_limited_per_process(
    own_redis_server: RedisServer,
) -> None:
    limit, calls = 4, 10
    # Per process, once Redis is gone: the server takes the whole fleet's.
    with LimitedServer(limit * len(FLAVOURS)) as server:
        workers = start_workers(server, own_redis_server.url, limit, calls, FLAVOURS)
        # Once the first window's turns are taken, Redis goes.
        deadline = time.monotonic() + 30
        while len(server.arrivals) < limit and time.monotonic() < deadline:
            time.sleep(0.01)
        own_redis_server.kill()
        results = finish(workers)
    for result, err in results:
        assert result == {"ok": calls, "errors": []}, err
    assert server.refused == 0
    # Each process kept the limit on its own (the fallback's per-process state).
    for i in range(len(FLAVOURS)):
        mine = [t for t, who in server.arrivals if who == f"w{i}"]
        assert len(mine) == calls
        assert most_in_a_window(mine, WINDOW - TRANSIT) <= limit
    # And each said once that Redis failed.
    warned = [err.count("failed") for _, err in results]
    assert all(n >= 1 for n in warned), [err for _, err in results]
