"""A worker process of the fleet tests: makes calls through mal under a
rate limit shared through Redis, then prints what they did.

    python call_worker.py SPEC_JSON

SPEC: ``openai_url``, ``redis_url``, ``limit`` (requests per window),
``window`` (seconds), ``calls``, ``flavour`` ("sync": threads; "asyncio",
"trio": tasks), ``concurrency``, ``worker`` (sent as the header x-worker).
It prints "ready", waits for a line on its stdin (so that the workers begin
together), makes its calls, and prints a JSON line: ``ok`` (calls that
returned their text) and ``errors`` (what the others raised).
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import anyio

import mal


def set_window(seconds: float) -> None:
    """Count requests over ``seconds`` instead of a minute, in this process."""
    import mal._limits

    mal._limits.WINDOW = seconds


def warm_up(flavour: str) -> None:
    """One call of the worker's kind, unlimited, to a server of its own: what
    a process loads on its first call (mal's clients and decoders, httpx's
    and h11's code paths) is loaded before the fleet starts. Otherwise a cold
    process on a busy machine can take a good part of a one-second window
    between a request's turn and its arrival, which a minute-long window
    would not notice."""
    from mal.testing import MockServer

    with MockServer() as server:
        config = mal.MALConfig(base_urls={"openai": server.url("openai")}, api_keys={"openai": "k"})
        if flavour == "sync":
            with mal.Client(config) as client:
                client.generate("Hi", model="openai/gpt-4o-mini")
        else:

            async def call() -> None:
                async with mal.AsyncClient(config) as client:
                    await client.generate("Hi", model="openai/gpt-4o-mini")

            anyio.run(call, backend=flavour)


def main() -> None:
    spec: dict[str, Any] = json.loads(sys.argv[1])
    set_window(spec["window"])
    warm_up(spec["flavour"])
    config = mal.MALConfig(
        base_urls={"openai": spec["openai_url"]},
        api_keys={"openai": "sk-test"},
        rate_limits={"openai": mal.RateLimit(requests_per_minute=spec["limit"])},
        shared_state=spec["redis_url"],
    )
    who = {"x-worker": spec["worker"]}  # the server tells the workers' requests apart
    ok, errors = 0, []
    lock = threading.Lock()
    left = spec["calls"]

    def take() -> bool:
        nonlocal left
        with lock:
            left -= 1
            return left >= 0

    def done(error: BaseException | None) -> None:
        nonlocal ok
        with lock:
            if error is None:
                ok += 1
            else:
                errors.append(f"{type(error).__name__}: {error}")

    print("ready", flush=True)
    sys.stdin.readline()
    if spec["flavour"] == "sync":
        with mal.Client(config) as client:

            def work() -> None:
                while take():
                    try:
                        assert client.generate("Hi", model="openai/gpt-4o-mini", extra_headers=who)
                    except Exception as exc:
                        done(exc)
                    else:
                        done(None)

            threads = [threading.Thread(target=work) for _ in range(spec["concurrency"])]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    else:

        async def run() -> None:
            async with mal.AsyncClient(config) as client:

                async def work() -> None:
                    while take():
                        try:
                            assert await client.generate(
                                "Hi", model="openai/gpt-4o-mini", extra_headers=who
                            )
                        except Exception as exc:
                            done(exc)
                        else:
                            done(None)

                async with anyio.create_task_group() as tg:
                    for _ in range(spec["concurrency"]):
                        tg.start_soon(work)

        anyio.run(run, backend=spec["flavour"])
    print(json.dumps({"ok": ok, "errors": errors}))


if __name__ == "__main__":
    main()
