"""Fleets: what a rate limit shared through Redis costs a call, and how close a
fleet of processes sharing it runs to the limit.

The script starts its own ``redis-server`` on a free port of 127.0.0.1
(nothing saved to disk) and the benchmark server (``_server.py``), which
answers every request with the same short stream and logs when each request
arrived.

**Latency.** One process makes ``--calls`` calls (``generate`` of a 16-chunk
stream) per contender per round, the contenders in alternation, ``--repeat``
rounds, sync and async (asyncio):

* ``no limit``: a client without ``rate_limits``;
* ``shared limit (Redis)``: ``rate_limits={"openai": RateLimit(...)}`` with
  requests, tokens and concurrency limits far above what the run uses, and
  ``shared_state`` the Redis URL: each call takes its turn on Redis and gives
  it back (its Lua scripts, over loopback);
* ``per-process limit``: the same limits without ``shared_state``.

Reported: the median time per call of each, and the **added latency** per
call, the contender's median minus the no-limit median of the same round,
summarised as median (min-max) over the rounds. Target: under 1 ms for the
shared limit over loopback Redis. Beside them, the store alone: one
``Acquire`` and its ``Release`` on Redis, per call of ``execute``.

**A fleet.** ``--processes`` processes (sync with ``--concurrency`` threads
and asyncio with as many tasks, in turn) share
``RateLimit(requests_per_minute=--limit)`` through Redis and call as fast as
they are let for ``--seconds``; each call's ``total_timeout`` ends with the
run, so a call still waiting for its turn then gives up with a
``RateLimitError`` (counted apart, not an error). From the server's log of
arrivals: the **achieved rate**, the requests that arrived in the run's
first ``--seconds`` as a % of what the limit allows in that time
(``limit * seconds / window``; target >= 90 %), and the **most requests in
any window** of ``--window`` seconds (must not exceed the limit). By default
a full minute under the real 60 s window; ``--window 5 --seconds 30`` runs
six windows in half a minute (the window of each process set to match).

``--store-only`` leaves mal's calls out: the store's own latency, and a
fleet whose threads take turns with ``Acquire`` directly, the time of each
grant counted instead of the server's arrivals.

    python benchmarks/fleet.py [--calls 200] [--repeat 5] [--processes 4] [--limit 600]
                               [--seconds 60] [--window 60] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import _common
from _server import BenchServer

import mal
from mal._redis import RedisStore
from mal.limits import Acquire, RateLimit, Release

PROMPT = "Why is the sky blue?"
MODEL = "openai/short"  # the benchmark server's 16-chunk body
#: Limits far above what a latency run uses: every call takes its turn at once.
UNREACHED = RateLimit(requests_per_minute=10**8, tokens_per_minute=10**12, concurrent=10**5)
CONTENDERS = ("no limit", "shared limit (Redis)", "per-process limit")


# ------------------------------------------------------------------ redis


class RedisServer:
    """``redis-server`` on a free port of 127.0.0.1, stopped by its pid."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit("redis-server is not installed (Debian: apt-get install redis-server)")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.TemporaryDirectory(prefix="mal-bench-redis-")
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--daemonize", "no", "--dir", self._dir.name]
        self._proc = subprocess.Popen(
            [binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not self._pong():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                sys.exit("redis-server did not start")
            time.sleep(0.02)

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def version(self) -> str:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"INFO server\r\n")
            time.sleep(0.05)
            info = sock.recv(65536).decode(errors="replace")
        for line in info.splitlines():
            if line.startswith("redis_version:"):
                return line.split(":", 1)[1].strip()
        return "?"

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._dir.cleanup()


# ---------------------------------------------------------------- configs


def config(url: str, contender: str, redis_url: str, **extra: Any) -> mal.MALConfig:
    limits: dict[str, Any] = {}
    shared: dict[str, Any] = {}
    if contender != "no limit":
        limits = {"rate_limits": {"openai": extra.pop("limit", UNREACHED)}}
    if contender == "shared limit (Redis)":
        shared = {"shared_state": redis_url}
    return mal.MALConfig(
        max_retries=0,
        base_urls={"openai": url},
        api_keys={"openai": "x"},
        **limits,
        **shared,
        **extra,
    )


def forget(redis_url: str) -> None:
    """Empty the store: the latency rounds' requests, counted under the same
    limit name, must not take the fleet's turns."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()


def set_window(seconds: float) -> None:
    """Make the limits of this process count requests over ``seconds`` instead
    of a minute (a quick run of several windows)."""
    import mal._limits

    mal._limits.WINDOW = seconds


# ---------------------------------------------------------------- latency


def per_call_sync(client: mal.Client, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        text = client.generate(PROMPT, model=MODEL)
        times.append(time.perf_counter() - t0)
        assert text, "empty text"
    return times


def per_call_async(cfg: mal.MALConfig, calls: int, warmup: int) -> list[float]:
    import asyncio

    async def run() -> list[float]:
        async with mal.AsyncClient(cfg) as client:
            for _ in range(warmup):
                await client.generate(PROMPT, model=MODEL)
            times = []
            for _ in range(calls):
                t0 = time.perf_counter()
                text = await client.generate(PROMPT, model=MODEL)
                times.append(time.perf_counter() - t0)
                assert text, "empty text"
            return times

    return asyncio.run(run())


def latency(args: argparse.Namespace, url: str, redis_url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in ("sync", "async"):
        medians: dict[str, list[float]] = {c: [] for c in CONTENDERS}
        for round_ in range(args.repeat):
            for contender in CONTENDERS:
                cfg = config(url, contender, redis_url)
                if mode == "sync":
                    with mal.Client(cfg) as client:
                        per_call_sync(client, args.warmup)
                        times = per_call_sync(client, args.calls)
                else:
                    times = per_call_async(cfg, args.calls, args.warmup)
                medians[contender].append(statistics.median(times))
            print(f"round {round_ + 1}/{args.repeat}: latency, {mode}", file=sys.stderr)
        base = medians["no limit"]
        out[mode] = {
            c: {
                "per_call_us": _common.summarize([m * 1e6 for m in medians[c]]),
                "added_us": _common.summarize(
                    [(m - b) * 1e6 for m, b in zip(medians[c], base, strict=True)]
                ),
            }
            for c in CONTENDERS
        }
    out["store"] = store_alone(args, redis_url)
    return out


def store_alone(args: argparse.Namespace, redis_url: str) -> dict[str, Any]:
    """One Acquire and its Release on Redis, per call of ``execute``."""

    class Refuse:
        def execute(self, command: Any) -> Any:
            if isinstance(command, Acquire):
                raise SystemExit("Redis failed during the benchmark")

        async def aexecute(self, command: Any) -> Any:
            self.execute(command)

    store = RedisStore(redis_url, fallback=Refuse())
    limits = (("openai", UNREACHED),)
    rounds = []
    for r in range(args.repeat):
        times = []
        for i in range(args.calls + args.warmup):
            lease = f"bench-{r}-{i}"
            t0 = time.perf_counter()
            store.execute(Acquire(limits, cost=10, lease=lease, lease_ttl=60))
            t1 = time.perf_counter()
            store.execute(Release(("openai",), lease))
            t2 = time.perf_counter()
            if i >= args.warmup:
                times.append((t1 - t0, t2 - t1))
        rounds.append(
            (statistics.median(a for a, _ in times), statistics.median(b for _, b in times))
        )
    store.close()
    return {
        "acquire_us": _common.summarize([a * 1e6 for a, _ in rounds]),
        "release_us": _common.summarize([b * 1e6 for _, b in rounds]),
    }


# ------------------------------------------------------------------ fleet


def store_child(spec: dict[str, Any]) -> dict[str, Any]:
    """A process of a fleet on the store alone: threads take turns with
    ``Acquire`` until the end of the run, sleeping the wait they are given;
    each grant is reported as the times (``time.monotonic()``, one clock for
    every process of the machine) before and after its ``execute``: it was
    granted in between."""

    class Refuse:
        def execute(self, command: Any) -> Any:
            if isinstance(command, Acquire):
                raise SystemExit("Redis failed during the benchmark")

        async def aexecute(self, command: Any) -> Any:
            self.execute(command)

    store = RedisStore(spec["redis_url"], fallback=Refuse())
    limits = (("openai", RateLimit(requests_per_minute=spec["limit"])),)
    grants: list[tuple[float, float]] = []
    lock = threading.Lock()
    print("ready", flush=True)
    sys.stdin.readline()
    end = time.monotonic() + spec["seconds"]

    def work(worker: int) -> None:
        n = 0
        while (left := end - time.monotonic()) > 0:
            n += 1
            lease = f"{os.getpid()}-{worker}-{n}"
            command = Acquire(limits, cost=1, lease=lease, lease_ttl=60, window=spec["window"])
            before = time.monotonic()
            wait, _ = store.execute(command)
            if wait == 0:
                with lock:
                    grants.append((before, time.monotonic()))
            else:
                time.sleep(min(wait, left))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(spec["concurrency"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    return {"grants": grants}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """A process of the fleet: calls until the end of the run, as fast as its
    turns come, then reports what its calls did."""
    if spec["mode"] == "store":
        return store_child(spec)
    if spec["window"] != 60:
        set_window(spec["window"])
    limit = RateLimit(requests_per_minute=spec["limit"])
    # A call waits at most one window for its turn: past that it gives up
    # (RateLimitError), which near the end of the run is what should happen.
    cfg = config(
        spec["url"],
        "shared limit (Redis)",
        spec["redis_url"],
        limit=limit,
        total_timeout=float(spec["window"]),
    )
    counts = {"ok": 0, "gave_up": 0, "errors": 0}
    errors: list[str] = []
    lock = threading.Lock()
    print("ready", flush=True)
    sys.stdin.readline()
    end = time.monotonic() + spec["seconds"]

    def note(outcome: str, exc: BaseException | None = None) -> None:
        with lock:
            counts[outcome] += 1
            if exc is not None and len(errors) < 5:
                errors.append(f"{type(exc).__name__}: {exc}")

    if spec["mode"] == "sync":
        with mal.Client(cfg) as client:

            def work() -> None:
                while time.monotonic() < end:
                    try:
                        client.generate(PROMPT, model=MODEL)
                    except mal.RateLimitError:
                        note("gave_up")
                    except mal.MALError as exc:
                        note("errors", exc)
                    else:
                        note("ok")

            threads = [threading.Thread(target=work) for _ in range(spec["concurrency"])]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    else:
        import asyncio

        async def run() -> None:
            async with mal.AsyncClient(cfg) as client:

                async def work() -> None:
                    while time.monotonic() < end:
                        try:
                            await client.generate(PROMPT, model=MODEL)
                        except mal.RateLimitError:
                            note("gave_up")
                        except mal.MALError as exc:
                            note("errors", exc)
                        else:
                            note("ok")

                await asyncio.gather(*(work() for _ in range(spec["concurrency"])))

        asyncio.run(run())
    return {**counts, "error_samples": errors}


def most_in_a_window(arrivals: list[float], window: float) -> int:
    """The most arrivals in any span [t, t + window)."""
    most, j = 0, 0
    for i, t in enumerate(arrivals):
        while arrivals[j] <= t - window:
            j += 1
        most = max(most, i - j + 1)
    return most


def most_surely_in_a_window(spans: list[tuple[float, float]], window: float) -> int:
    """The most grants surely inside any span [t, t + window): those whose
    whole (before, after) lies in it. (The store's own times are its clock's,
    which the processes cannot read; a grant's span holds it.)"""
    most = 0
    for start, _ in spans:
        most = max(most, sum(1 for b, a in spans if b >= start and a < start + window))
    return most


def fleet(args: argparse.Namespace, server: BenchServer | None, redis_url: str) -> dict[str, Any]:
    """The fleet through mal, or with no server, on the store alone."""
    before = len(server.arrivals()) if server is not None else 0
    procs = []
    for i in range(args.processes):
        spec = {
            "url": server.url("openai") if server is not None else "",
            "redis_url": redis_url,
            "limit": args.limit,
            "window": args.window,
            "seconds": args.seconds,
            "concurrency": args.concurrency,
            "mode": "store" if server is None else "sync" if i % 2 == 0 else "async",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            p.kill()
            sys.exit(f"a fleet process did not start: {p.communicate()[1][-2000:]}")
    print(f"fleet: {args.processes} processes for {args.seconds:g} s", file=sys.stderr)
    for p in procs:  # all at once: communicate() waits for the process to end
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=args.seconds + args.window + 120)
        if p.returncode != 0:
            sys.exit(f"a fleet process failed: {err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    if server is not None:
        arrivals = sorted(server.arrivals()[before:])
        most = most_in_a_window(arrivals, args.window)
    else:
        spans = sorted(tuple(g) for r in results for g in r.pop("grants"))
        for r in results:
            r.update(ok=0, gave_up=0, errors=0)
        arrivals = [a for _, a in spans]
        most = most_surely_in_a_window(spans, args.window)
    t0 = arrivals[0] if arrivals else 0.0
    in_run = [t for t in arrivals if t < t0 + args.seconds]
    allowed = args.limit * args.seconds / args.window
    return {
        "processes": results,
        "calls_ok": sum(r["ok"] for r in results),
        "gave_up": sum(r["gave_up"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "arrived": len(arrivals),
        "arrived_in_run": len(in_run),
        "allowed_in_run": allowed,
        "achieved_pct": 100 * len(in_run) / allowed,
        "most_in_a_window": most,
        "limit": args.limit,
        "window": args.window,
        "seconds": args.seconds,
    }


# ------------------------------------------------------------------- main


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def report(args: argparse.Namespace, lat: dict[str, Any], run: dict[str, Any]) -> None:
    through_mal = "sync" in lat
    if through_mal:
        print("\n## Latency per call, a shared limit not reached (µs)\n")
        rows = []
        for mode in ("sync", "async"):
            for c in CONTENDERS:
                s = lat[mode][c]
                added = "—" if c == "no limit" else _common.fmt(s["added_us"], 0)
                rows.append([mode, c, _common.fmt(s["per_call_us"], 0), added])
        print(_common.md_table(["mode", "contender", "per call", "added"], rows))
    store = lat["store"]
    print(
        f"\nThe store alone: Acquire {_common.fmt(store['acquire_us'], 0)} µs, "
        f"Release {_common.fmt(store['release_us'], 0)} µs per execute() on loopback Redis."
    )
    who = "processes" if through_mal else "processes on the store alone (no HTTP)"
    print(f"\n## A fleet of {args.processes} {who}, one limit\n")
    print(
        _common.md_table(
            ["limit", "window", "run", "granted", "calls ok", "gave up at the end", "errors"],
            [
                [
                    f"{run['limit']} requests",
                    f"{run['window']:g} s",
                    f"{run['seconds']:g} s",
                    run["arrived"],
                    run["calls_ok"],
                    run["gave_up"],
                    run["errors"],
                ]
            ],
        )
    )
    print("\n## Against the targets\n")
    rows = []
    if through_mal:
        added = [lat[m]["shared limit (Redis)"]["added_us"]["median"] for m in ("sync", "async")]
        rows.append(
            [
                "added latency per call, shared limit not reached",
                "< 1 ms",
                f"{max(added) / 1000:.2f} ms (the larger of sync and async)",
                verdict(max(added) < 1000),
            ]
        )
    rows += [
        [
            "achieved rate, % of the allowed rate",
            ">= 90 %",
            f"{run['achieved_pct']:.1f} % ({run['arrived_in_run']} of "
            f"{run['allowed_in_run']:g} in {run['seconds']:g} s)",
            verdict(run["achieved_pct"] >= 90),
        ],
        [
            f"most requests in any {run['window']:g} s",
            f"<= {run['limit']}",
            str(run["most_in_a_window"]),
            verdict(run["most_in_a_window"] <= run["limit"]),
        ],
    ]
    if through_mal:
        rows.append(
            ["errors reaching the caller", "0", str(run["errors"]), verdict(run["errors"] == 0)]
        )
    print(_common.md_table(["what", "target", "measured", ""], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=200, help="timed calls per contender (200)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed calls first (20)")
    ap.add_argument("--repeat", type=int, default=5, help="alternating rounds (5)")
    ap.add_argument("--processes", type=int, default=4, help="processes of the fleet (4)")
    ap.add_argument("--concurrency", type=int, default=4, help="threads or tasks each (4)")
    ap.add_argument("--limit", type=int, default=600, help="requests per window (600)")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the fleet run (60)")
    ap.add_argument("--window", type=float, default=60.0, help="the limit's window (60)")
    ap.add_argument(
        "--store-only",
        action="store_true",
        help="the store alone: its latency, and the fleet taking turns with Acquire, no HTTP",
    )
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    redis_server = RedisServer()
    try:
        if args.store_only:
            lat = {"store": store_alone(args, redis_server.url)}
            forget(redis_server.url)
            run = fleet(args, None, redis_server.url)
        else:
            with BenchServer(16, short_chunks=16) as server:
                lat = latency(args, server.url("openai"), redis_server.url)
                forget(redis_server.url)
                run = fleet(args, server, redis_server.url)
        report(args, lat, run)
        if args.json:
            _common.write_json(
                args.json,
                {
                    "args": vars(args),
                    "redis_server": redis_server.version(),
                    "latency": lat,
                    "fleet": run,
                },
            )
    finally:
        redis_server.close()


if __name__ == "__main__":
    main()
