"""Many concurrent async streams: mal against the bare-httpx floor and the SDKs.

``--streams`` (1,000) streams of ``--chunks`` (200) chunks each, all started at
once on one client, under asyncio and under trio (anyio task groups):

* ``httpx floor``: ``httpx.AsyncClient`` (limits large enough for every stream)
  + ``client.stream("POST", ...)`` + ``aiter_raw()``, no decoding;
* ``mal``: ``mal.AsyncClient`` with its default limits (1,000 connections);
* ``openai.AsyncOpenAI`` (its default limits, 1,000 connections) and
  ``ollama.AsyncClient`` (given the floor's limits: its httpx default of 100
  connections would queue the streams), under both backends (they run on
  httpx, which runs on anyio); ``--providers anthropic`` adds
  ``anthropic.AsyncAnthropic``.

The benchmark server (``_server.py``) runs in its own process with a listen
backlog of 4096 and a raised open-file limit, and yields to its event loop
after every chunk so that the streams interleave token by token. Every
contender runs in a fresh subprocess (which raises its own open-file limit),
in alternation, ``--repeat`` times. A child reports its wall time (from the
start of the streams to the end of the last), chunks per second, CPU time,
peak RSS, time to first chunk over the streams (p50, p99) and errors (a stream
that raised, or whose text was wrong). "server busy" is the server's CPU time
over the child's wall time: near 100 % the server, not the client, set the pace.

    python benchmarks/concurrency.py [--streams 1000] [--chunks 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import _common
import stream as _stream

BACKENDS = ("asyncio", "trio")
PROVIDERS = ("openai", "ollama")
FLOOR = _stream.FLOOR
#: The issue's targets.
TARGET_RATIO = 1.5
TARGET_RSS_MIB = 50.0

#: name -> (library, providers, async factory)
CONTENDERS: dict[str, tuple[str, tuple[str, ...], Callable]] = {
    FLOOR: ("httpx", ("ollama", "openai", "anthropic"), _stream.floor_async),
    "mal": ("mal", ("ollama", "openai", "anthropic"), _stream.mal_async),
    "openai SDK": ("openai", ("openai",), _stream.openai_async),
    "ollama SDK": ("ollama", ("ollama",), _stream.ollama_async),
    "anthropic SDK": ("anthropic", ("anthropic",), _stream.anthropic_async),
}


def _limits(streams: int) -> Any:
    import httpx

    return httpx.Limits(max_connections=max(1000, streams), max_keepalive_connections=100)


def child(spec: dict[str, Any]) -> dict[str, Any]:
    _common.raise_nofile()
    import anyio

    name, provider, url = spec["name"], spec["provider"], spec["url"]
    streams = spec["streams"]
    _, _, factory = CONTENDERS[name]
    make, texts, close = factory(provider, url)
    if name == FLOOR:
        import httpx

        def make() -> Any:
            return httpx.AsyncClient(
                limits=_limits(streams), timeout=httpx.Timeout(600.0, connect=10.0, pool=10.0)
            )
    elif name == "ollama SDK":
        import ollama

        def make() -> Any:
            return ollama.AsyncClient(host=url, limits=_limits(streams))

    expected = spec["expected"]
    errors: list[str] = []
    firsts: list[float] = []

    async def main() -> tuple[float, float]:
        client = make()
        t0 = time.perf_counter()
        cpu0 = _common.cpu_seconds()

        async def one() -> None:
            try:
                it = texts(client, "m")
                parts = [await it.__anext__()]
                firsts.append(time.perf_counter() - t0)
                async for x in it:
                    parts.append(x)
                error = _stream._check(parts, expected)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            if error:
                errors.append(error)

        async with anyio.create_task_group() as tg:
            for _ in range(streams):
                tg.start_soon(one)
        wall = time.perf_counter() - t0
        cpu = _common.cpu_seconds() - cpu0
        await close(client)
        return wall, cpu

    wall, cpu = anyio.run(main, backend=spec["backend"])
    firsts.sort()

    def pct(p: float) -> float:
        return firsts[min(len(firsts) - 1, int(p * len(firsts)))] if firsts else float("nan")

    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "chunks_per_s": streams * spec["chunks"] / wall,
        "peak_rss_mib": _common.peak_rss_mib(),
        "ttft_p50_s": pct(0.5),
        "ttft_p99_s": pct(0.99),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {
            "errors": spec["streams"],
            "first_error": f"exit {proc.returncode}: {tail}",
            "crashed": True,
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=int, default=1000, help="concurrent streams (1000)")
    ap.add_argument("--chunks", type=int, default=200, help="chunks per stream (200)")
    ap.add_argument("--repeat", type=int, default=3, help="alternating rounds (3)")
    ap.add_argument(
        "--providers",
        default=",".join(PROVIDERS),
        help="comma-separated: openai,ollama (default), anthropic",
    )
    ap.add_argument("--backends", default=",".join(BACKENDS), help="asyncio,trio")
    ap.add_argument(
        "--yield-every",
        type=int,
        default=1,
        help="the server yields to its loop after this many chunks (1)",
    )
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    ap.add_argument("--png", metavar="PATH", help="draw a bar chart (needs matplotlib)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    import importlib.util

    import _bodies
    from _server import BenchServer

    providers = [p for p in args.providers.split(",") if p]
    backends = [b for b in args.backends.split(",") if b]
    missing = sorted(
        {lib for lib, *_ in CONTENDERS.values() if importlib.util.find_spec(lib) is None}
    )
    if "trio" in backends and importlib.util.find_spec("trio") is None:
        backends.remove("trio")
        missing.append("trio")
    started = time.perf_counter()
    expected = {}
    for provider in providers:
        body = _bodies.build(provider, args.chunks)
        expected[provider] = {
            "bytes": len(body.data),
            "chars": len(body.text),
            "sha256": hashlib.sha256(body.text.encode()).hexdigest(),
        }
    print(
        f"# {args.streams} concurrent streams of {args.chunks} chunks, {args.repeat} "
        "alternating rounds, each client in a fresh subprocess\n"
    )
    if missing:
        print(f"(not installed, skipped: {', '.join(missing)})\n")
    results: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {
        p: {b: {} for b in backends} for p in providers
    }
    with BenchServer(args.chunks, yield_every=args.yield_every) as server:
        for r in range(args.repeat):
            for provider in providers:
                for backend in backends:
                    for name, (lib, provs, _) in CONTENDERS.items():
                        if lib in missing or provider not in provs:
                            continue
                        spec = {
                            "name": name,
                            "provider": provider,
                            "backend": backend,
                            "url": server.url(provider),
                            "streams": args.streams,
                            "chunks": args.chunks,
                            "expected": expected[provider],
                        }
                        before = server.stats()["cpu"]
                        res = run_child(spec)
                        res["server_cpu_s"] = server.stats()["cpu"] - before
                        results[provider][backend].setdefault(name, []).append(res)
                        if res.get("errors"):
                            print(
                                f"round {r + 1}: {provider} {backend} {name}: "
                                f"{res['errors']} errors, first: {res['first_error']}"
                            )
            print(
                f"round {r + 1}/{args.repeat} done ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
    summary = summarise(results)
    report(summary, args)
    elapsed = time.perf_counter() - started
    print(f"\n(ran in {elapsed:.0f} s)")
    if args.json:
        _common.write_json(
            args.json,
            {
                "benchmark": "concurrency",
                "streams": args.streams,
                "chunks": args.chunks,
                "repeat": args.repeat,
                "server_yield_every": args.yield_every,
                "targets": {"wall_ratio": TARGET_RATIO, "rss_delta_mib": TARGET_RSS_MIB},
                "seconds": elapsed,
                "summary": summary,
                "raw": results,
            },
        )
    if args.png:
        plot(args.png, summary)


def _values(runs: list[dict[str, Any]], key: str, scale: float = 1.0) -> list[float]:
    return [r[key] * scale if not r.get("crashed") else float("nan") for r in runs]


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for provider, by_backend in results.items():
        out[provider] = {}
        for backend, by_name in by_backend.items():
            floor = by_name.get(FLOOR, [])
            f_wall = _values(floor, "wall_s")
            f_rss = _values(floor, "peak_rss_mib")
            f_cpu = _values(floor, "cpu_s")
            out[provider][backend] = {}
            for name, runs in by_name.items():
                wall = _values(runs, "wall_s")
                rss = _values(runs, "peak_rss_mib")
                busy = [
                    r["server_cpu_s"] / r["wall_s"] * 100 if not r.get("crashed") else float("nan")
                    for r in runs
                ]
                out[provider][backend][name] = {
                    "wall_s": _common.summarize(wall),
                    "wall_ratio": _common.paired_ratios(wall, f_wall),
                    "chunks_per_s": _common.summarize(_values(runs, "chunks_per_s")),
                    "cpu_s": _common.summarize(_values(runs, "cpu_s")),
                    "cpu_ratio": _common.paired_ratios(_values(runs, "cpu_s"), f_cpu),
                    "peak_rss_mib": _common.summarize(rss),
                    "rss_delta_mib": _common.summarize(
                        [a - b for a, b in zip(rss, f_rss, strict=False)]
                    ),
                    "ttft_p50_ms": _common.summarize(_values(runs, "ttft_p50_s", 1e3)),
                    "ttft_p99_ms": _common.summarize(_values(runs, "ttft_p99_s", 1e3)),
                    "server_busy_pct": _common.summarize(busy),
                    "errors": sum(r.get("errors", 0) for r in runs),
                }
    return out


def report(summary: dict[str, Any], args: argparse.Namespace) -> None:
    fmt = _common.fmt
    print(
        "Median (min-max) over the rounds. × floor: per-round ratio of wall time (or CPU "
        "time) to the httpx floor's, same provider and backend; Δ RSS: peak RSS minus the "
        "floor's, same round; TTFT: time from the start to each stream's first chunk, p50 and "
        "p99 over the streams; errors: failed or wrong streams, summed over the rounds."
    )
    header = [
        "backend",
        "client",
        "wall s",
        "× floor",
        "chunks/s",
        "CPU s",
        "× floor (CPU)",
        "peak RSS MiB",
        "Δ RSS MiB",
        "TTFT p50 ms",
        "TTFT p99 ms",
        "errors",
        "server busy %",
    ]
    for provider, by_backend in summary.items():
        rows = []
        for backend, by_name in by_backend.items():
            for name, s in by_name.items():
                rows.append(
                    [
                        backend,
                        f"**{name}**" if name == "mal" else name,
                        fmt(s["wall_s"], 2),
                        fmt(s["wall_ratio"], 2),
                        fmt(s["chunks_per_s"], 0),
                        fmt(s["cpu_s"], 2),
                        fmt(s["cpu_ratio"], 2),
                        fmt(s["peak_rss_mib"], 1),
                        fmt(s["rss_delta_mib"], 1, spread=False),
                        fmt(s["ttft_p50_ms"], 0),
                        fmt(s["ttft_p99_ms"], 0),
                        str(s["errors"]),
                        fmt(s["server_busy_pct"], 0),
                    ]
                )
        print(f"\n### {provider}\n")
        print(_common.md_table(header, rows))

    print(
        f"\n## mal against the targets (wall ≤ {TARGET_RATIO}x the floor, no errors, peak RSS "
        f"within {TARGET_RSS_MIB:.0f} MB of the floor's)\n"
    )
    rows = []
    for provider, by_backend in summary.items():
        for backend, by_name in by_backend.items():
            s = by_name.get("mal")
            if not s or not s["wall_ratio"]["n"]:
                continue
            ratio, rss = s["wall_ratio"], s["rss_delta_mib"]
            rows.append(
                [
                    provider,
                    backend,
                    f"**{ratio['median']:.2f}x** ({ratio['min']:.2f}-{ratio['max']:.2f}) "
                    + ("meets" if ratio["median"] <= TARGET_RATIO else "MISSES"),
                    f"{s['errors']} " + ("meets" if s["errors"] == 0 else "MISSES"),
                    f"{rss['median']:+.1f} MiB "
                    + ("meets" if rss["median"] <= TARGET_RSS_MIB else "MISSES"),
                ]
            )
    print(_common.md_table(["provider", "backend", "wall / floor", "errors", "Δ peak RSS"], rows))


def plot(path: str, summary: dict[str, Any]) -> None:
    groups, names = [], []
    for provider, by_backend in summary.items():
        for backend, by_name in by_backend.items():
            groups.append(f"{provider} {backend}")
            for name in by_name:
                if name not in names:
                    names.append(name)
    series = {
        name: [summary[g.split()[0]][g.split()[1]].get(name, {}).get("wall_s") for g in groups]
        for name in names
    }
    _common.bar_chart(
        path, "Concurrent streams: wall time (median, min-max)", groups, series, "wall seconds"
    )


if __name__ == "__main__":
    main()
