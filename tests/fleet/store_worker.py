"""A worker process of the fleet tests: asks a Redis store for turns under
one limit for a while, then prints how many it was granted.

    python store_worker.py URL NAME LIMIT WINDOW SECONDS FLAVOUR

It prints "ready" and waits for a line on its stdin, so that the workers
begin together, then asks for ``SECONDS`` through ``execute`` ("sync", four
threads) or ``aexecute`` under "asyncio" or "trio" (four tasks), sleeping the
wait it is given after each refusal. A fallback that is used fails it.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from typing import Any

import anyio

from mal._redis import RedisStore
from mal.limits import Acquire, Command, RateLimit

WORKERS = 4


class _NoFallback:
    def execute(self, command: Command) -> Any:
        if isinstance(command, Acquire):
            raise SystemExit(f"the fallback was used for {command!r}")

    async def aexecute(self, command: Command) -> Any:
        return self.execute(command)


def main() -> None:
    url, name, limit, window, seconds, flavour = sys.argv[1:7]
    store = RedisStore(url, fallback=_NoFallback())
    limits = ((name, RateLimit(requests_per_minute=int(limit))),)
    granted = 0
    lock = threading.Lock()

    def command() -> Acquire:
        return Acquire(limits, cost=1, lease=uuid.uuid4().hex, lease_ttl=30, window=float(window))

    print("ready", flush=True)
    sys.stdin.readline()
    end = time.time() + float(seconds)
    if flavour == "sync":

        def work() -> None:
            nonlocal granted
            while time.time() < end:
                wait, _ = store.execute(command())
                if wait == 0:
                    with lock:
                        granted += 1
                else:
                    time.sleep(min(wait, max(0.0, end - time.time())))

        threads = [threading.Thread(target=work) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:

        async def task() -> None:
            nonlocal granted
            while time.time() < end:
                wait, _ = await store.aexecute(command())
                if wait == 0:
                    granted += 1
                else:
                    await anyio.sleep(min(wait, max(0.0, end - time.time())))

        async def run() -> None:
            async with anyio.create_task_group() as tg:
                for _ in range(WORKERS):
                    tg.start_soon(task)
            await store.aclose()

        anyio.run(run, backend=flavour)
    store.close()
    print(granted)


if __name__ == "__main__":
    main()
