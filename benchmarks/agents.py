"""A tool loop streamed: its cost per chunk against the same steps streamed one by one.

The loop has two steps: step 0 streams ``--chunks`` text chunks, then one
call of the tool ``search``; step 1 streams ``--chunks`` text chunks. Per
provider and per mode (sync, async on asyncio), two contenders read it from the
benchmark server (``_server.py``, the model ``agent``), each in a FRESH
subprocess, in alternation, ``--repeat`` times:

* ``loop``: ``client.stream(messages, model=m, tools=[search], tool_rounds=1)``,
  read to its end: mal runs the tool between the steps and yields its
  ``tool_results`` chunk;
* ``by hand``: the same two steps as two plain ``client.stream(...)`` calls, as
  a user writes the loop: the first with ``tools=[search]``, then the tool
  called with the call's arguments, then the second with the assistant turn
  (``s.response().message``) and a ``tool`` message with the result appended.

Each child runs the whole loop once to warm up (client, connection, lazy
imports), then ``--loops`` times, measured: the wall time and the CPU time
(``resource.getrusage``) per text chunk (two steps of ``--chunks`` each), and
checks every text and the tool's result. The ratio loop / by hand is taken per
round, then summarised as median (min-max). The issue's target: 1.1x.

    python benchmarks/agents.py [--chunks 5000] [--loops 3] [--repeat 5] [--json out.json]
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

import _bodies
import _common
from stream import MESSAGES, _mal_config, _values, _verdict

PROVIDERS = ("ollama", "openai", "anthropic", "gemini")
MODES = ("sync", "async")
LOOP = "loop (tool_rounds=1)"
BY_HAND = "by hand (two streams)"
CONTENDERS = (LOOP, BY_HAND)
#: The issue's target: a streamed loop's cost per chunk against its steps streamed one by one.
TARGET = 1.1
RESULT = "found"


def search(q: str) -> str:
    """Search the web."""
    return RESULT


# --------------------------------------------------------------------------- the contenders
#
# Each is ``run(client, model) -> (texts, results)``: the texts of every chunk
# of both steps, and the content of every tool result sent back.


def loop_sync(client: Any, model: str) -> tuple[list[str], list[Any]]:
    texts: list[str] = []
    results: list[Any] = []
    with client.stream(MESSAGES, model=model, tools=[search], tool_rounds=1) as s:
        for chunk in s:
            if chunk.tool_results:
                results += [r.content for r in chunk.tool_results]
            texts.append(chunk.text)
        steps = s.response().steps
    _check_steps([step.tool_calls for step in steps])
    return texts, results


async def loop_async(client: Any, model: str) -> tuple[list[str], list[Any]]:
    texts: list[str] = []
    results: list[Any] = []
    async with client.stream(MESSAGES, model=model, tools=[search], tool_rounds=1) as s:
        async for chunk in s:
            if chunk.tool_results:
                results += [r.content for r in chunk.tool_results]
            texts.append(chunk.text)
        steps = s.response().steps
    _check_steps([step.tool_calls for step in steps])
    return texts, results


def _check_steps(calls: list[Any]) -> None:
    """Two steps: the first ended on one call, the second (the server saw the
    tool's result) on text alone."""
    if [len(c) for c in calls] != [1, 0]:
        raise AssertionError(f"tool calls per step: {[len(c) for c in calls]}, expected [1, 0]")


def _next_messages(response: Any) -> tuple[list[Any], Any]:
    """What a user appends after the first step: the assistant turn and the
    tool's result (the tool called as they would call it)."""
    import mal

    (call,) = response.tool_calls
    content = search(**call.arguments)
    result = mal.Message("tool", content, tool_call_id=call.id, name=call.name)
    return [*MESSAGES, response.message, result], content


def by_hand_sync(client: Any, model: str) -> tuple[list[str], list[Any]]:
    texts: list[str] = []
    with client.stream(MESSAGES, model=model, tools=[search]) as s:
        for chunk in s:
            texts.append(chunk.text)
        first = s.response()
    messages, content = _next_messages(first)
    with client.stream(messages, model=model, tools=[search]) as s:
        for chunk in s:
            texts.append(chunk.text)
        second = s.response()
    _check_steps([first.tool_calls, second.tool_calls])
    return texts, [content]


async def by_hand_async(client: Any, model: str) -> tuple[list[str], list[Any]]:
    texts: list[str] = []
    async with client.stream(MESSAGES, model=model, tools=[search]) as s:
        async for chunk in s:
            texts.append(chunk.text)
        first = s.response()
    messages, content = _next_messages(first)
    async with client.stream(messages, model=model, tools=[search]) as s:
        async for chunk in s:
            texts.append(chunk.text)
        second = s.response()
    _check_steps([first.tool_calls, second.tool_calls])
    return texts, [content]


RUNS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    LOOP: (loop_sync, loop_async),
    BY_HAND: (by_hand_sync, by_hand_async),
}


# --------------------------------------------------------------------------- the child


def _check(texts: list[str], results: list[Any], expected: dict[str, Any]) -> str | None:
    text = "".join(texts)
    if hashlib.sha256(text.encode()).hexdigest() != expected["sha256"]:
        return f"wrong text: {len(text)} characters, expected {expected['chars']} (both steps)"
    if results != [RESULT]:
        return f"tool results {results!r}, expected [{RESULT!r}]"
    return None


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One contender in a fresh process: a loop to warm up, then ``loops``
    loops measured."""
    import mal

    name, mode, provider = spec["name"], spec["mode"], spec["provider"]
    run_sync, run_async = RUNS[name]
    model = f"{provider}/agent"
    config = _mal_config(provider, spec["url"])
    errors: list[str | None] = []

    if mode == "sync":
        client = mal.Client(config)
        errors.append(_check(*run_sync(client, model), spec["expected"]))
        cpu0 = _common.cpu_seconds()
        t0 = time.perf_counter()
        outs = [run_sync(client, model) for _ in range(spec["loops"])]
        seconds = time.perf_counter() - t0
        cpu = _common.cpu_seconds() - cpu0
        client.close()
    else:
        import asyncio

        async def main() -> tuple[float, float, list[Any]]:
            client = mal.AsyncClient(config)
            errors.append(_check(*await run_async(client, model), spec["expected"]))
            cpu0 = _common.cpu_seconds()
            t0 = time.perf_counter()
            outs = [await run_async(client, model) for _ in range(spec["loops"])]
            seconds = time.perf_counter() - t0
            cpu = _common.cpu_seconds() - cpu0
            await client.aclose()
            return seconds, cpu, outs

        seconds, cpu, outs = asyncio.run(main())
    errors += [_check(texts, results, spec["expected"]) for texts, results in outs]
    chunks = 2 * spec["chunks"] * spec["loops"]
    bad = [e for e in errors if e]
    return {
        "seconds": seconds,
        "us_per_chunk": seconds / chunks * 1e6,
        "cpu_us_per_chunk": cpu / chunks * 1e6,
        "error": bad[0] if bad else None,
    }


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- the parent


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Per provider and mode: each contender's wall and CPU time per chunk,
    and the loop's ratios to by hand, paired per round."""
    out: dict[str, Any] = {}
    for provider, by_mode in results.items():
        for mode, by_name in by_mode.items():
            loop, hand = by_name.get(LOOP, []), by_name.get(BY_HAND, [])
            row: dict[str, Any] = {
                name: {
                    "us_per_chunk": _common.summarize(_values(runs, "us_per_chunk")),
                    "cpu_us_per_chunk": _common.summarize(_values(runs, "cpu_us_per_chunk")),
                    "errors": sum(1 for r in runs if r.get("error")),
                }
                for name, runs in ((LOOP, loop), (BY_HAND, hand))
            }
            row["time_ratio"] = _common.paired_ratios(
                _values(loop, "us_per_chunk"), _values(hand, "us_per_chunk")
            )
            row["cpu_ratio"] = _common.paired_ratios(
                _values(loop, "cpu_us_per_chunk"), _values(hand, "cpu_us_per_chunk")
            )
            out.setdefault(provider, {})[mode] = row
    return out


def report(summary: dict[str, Any]) -> None:
    fmt = _common.fmt
    print(
        "Median (min-max) over the rounds, per text chunk (both steps). loop / by hand: "
        "the per-round ratio of the two, measured side by side.\n"
    )
    header = [
        "provider",
        "mode",
        "by hand µs/chunk",
        "loop µs/chunk",
        "by hand CPU µs/chunk",
        "loop CPU µs/chunk",
        f"loop / by hand (time, target ≤ {TARGET}x)",
        f"loop / by hand (CPU, target ≤ {TARGET}x)",
        "errors",
    ]
    rows = []
    for provider, by_mode in summary.items():
        for mode, s in by_mode.items():
            rows.append(
                [
                    provider,
                    mode,
                    fmt(s[BY_HAND]["us_per_chunk"], 2),
                    fmt(s[LOOP]["us_per_chunk"], 2),
                    fmt(s[BY_HAND]["cpu_us_per_chunk"], 2),
                    fmt(s[LOOP]["cpu_us_per_chunk"], 2),
                    _verdict(s["time_ratio"], TARGET),
                    _verdict(s["cpu_ratio"], TARGET),
                    str(s[LOOP]["errors"] + s[BY_HAND]["errors"]),
                ]
            )
    print(_common.md_table(header, rows))
    print(
        "\nOn a busy machine the CPU ratio is the steadier of the two: it does not count the "
        "time the client waited while another process had the CPU."
    )


def plot(path: str, summary: dict[str, Any]) -> None:
    groups = [f"{p} {m}" for p, by_mode in summary.items() for m in by_mode]
    rows = [s for by_mode in summary.values() for s in by_mode.values()]
    series = {name: [s[name]["cpu_us_per_chunk"] for s in rows] for name in CONTENDERS}
    _common.bar_chart(
        path, "A two-step tool loop streamed (median, min-max)", groups, series, "CPU µs per chunk"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=5000, help="text chunks per step (5000)")
    ap.add_argument("--loops", type=int, default=3, help="measured loops per child (3)")
    ap.add_argument("--repeat", type=int, default=5, help="alternating rounds (5)")
    ap.add_argument("--providers", default=",".join(PROVIDERS), help="comma-separated")
    ap.add_argument("--modes", default=",".join(MODES), help="sync,async")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    ap.add_argument("--png", metavar="PATH", help="draw a bar chart (needs matplotlib)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    from _server import BenchServer

    providers = [p for p in args.providers.split(",") if p]
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(providers) - set(PROVIDERS)
    if unknown:
        ap.error(f"unknown providers: {', '.join(sorted(unknown))}; known: {', '.join(PROVIDERS)}")
    started = time.perf_counter()
    body = _bodies.build("openai", args.chunks)  # every provider's body has the same text
    text = body.text * 2
    expected = {"chars": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}
    print(
        f"# A two-step tool loop streamed: {args.chunks} text chunks per step, {args.loops} "
        f"loops per child, {args.repeat} alternating rounds, each contender in a fresh "
        "subprocess\n"
    )
    # results[provider][mode][name] -> list of child results, one per round
    results: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {
        p: {m: {} for m in modes} for p in providers
    }
    with BenchServer(args.chunks) as server:
        for r in range(args.repeat):
            for provider in providers:
                for mode in modes:
                    for name in CONTENDERS:
                        spec = {
                            "name": name,
                            "mode": mode,
                            "provider": provider,
                            "url": server.url(provider),
                            "chunks": args.chunks,
                            "loops": args.loops,
                            "expected": expected,
                        }
                        res = run_child(spec)
                        results[provider][mode].setdefault(name, []).append(res)
                        if res.get("error"):
                            print(f"round {r + 1}: {provider} {mode} {name}: {res['error']}")
            print(
                f"round {r + 1}/{args.repeat} done ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
    summary = summarise(results)
    report(summary)
    elapsed = time.perf_counter() - started
    print(f"\n(ran in {elapsed:.0f} s)")
    if args.json:
        _common.write_json(
            args.json,
            {
                "benchmark": "agents",
                "chunks": args.chunks,
                "loops": args.loops,
                "repeat": args.repeat,
                "target": TARGET,
                "seconds": elapsed,
                "summary": summary,
                "raw": results,
            },
        )
    if args.png:
        plot(args.png, summary)


if __name__ == "__main__":
    main()
