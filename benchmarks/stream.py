"""End to end over loopback: mal against the bare-httpx floor and the official SDKs.

One benchmark server (``_server.py``: a separate process, the same pre-rendered
bytes for every client, one HTTP chunk per token) serves every client; each
client runs in a FRESH subprocess, and the contenders run in alternation
(A B C ... A B C ...) ``--repeat`` times. Per provider and per mode (sync,
async on asyncio) the contenders are:

* ``httpx floor``: ``httpx.Client.stream("POST", ...)`` + ``iter_raw()`` (or
  ``AsyncClient`` + ``aiter_raw()``), no decoding at all;
* ``mal``: ``mal.Client`` / ``mal.AsyncClient``, ``client.stream(prompt, model=...)``;
* the official SDK: ``ollama.Client.generate(stream=True)``, openai's
  ``chat.completions.create(stream=True)``, anthropic's
  ``messages.create(stream=True)`` and ``messages.stream()`` (sync and async).

Each child creates its client and reads a short stream (16 chunks: the cold
time to first chunk, from before the client is created), ``--ttft-samples``
more short streams on the same connection (the warm time to first chunk, their
median), then one stream of ``--chunks`` chunks on the same connection: the
throughput (chunks per second) and the CPU time per chunk
(``resource.getrusage``). Peak RSS is the child's high-water mark (``VmHWM``
on Linux, see ``_common.peak_rss_mib``). Import time is measured apart, by
timing ``import <library>`` in a fresh interpreter, also in alternation. Every
child checks every text it got against the expected text.

Ratios are taken per round against the floor of the same round, provider and
mode, then summarised as median (min-max).

Then the shapes section: the floor and mal over the bodies of servers that
write the same stream in another shape (``_bodies.SHAPES``: CRLF line ends as
sse-starlette writes them, ``data:`` without a space, Anthropic's events
without their ``event:`` lines) beside the providers' own (OpenAI's ends with a
usage-only chunk), in alternation, as ratios to the floor per round.

Then the tool-call section: mal over a tool-call stream (one call's arguments,
a piece per chunk; Ollama: a whole call per line) against mal over a text
stream of the same number of chunks, in alternation, as ratios per round.

    python benchmarks/stream.py [--chunks 20000] [--repeat 5] [--shape-rounds N] [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
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

PROVIDERS = ("ollama", "openai", "anthropic", "gemini")
MODES = ("sync", "async")
FLOOR = "httpx floor"
#: The body each provider's clients ask for (mal sends a string prompt to
#: Ollama's /api/generate, as ollama.Client.generate does).
KIND = {"ollama": "ollama", "openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}
#: The targets: mal's time per chunk against the floor's, warm time to first
#: chunk against the floor's, import time.
TARGET_RATIO = 1.15
TARGET_TTFT_MS = 0.3
TARGET_IMPORT_MS = 150.0

PROMPT = "Write a long story."
MESSAGES = [{"role": "user", "content": PROMPT}]


# --------------------------------------------------------------------------- the contenders
#
# Each contender is (make_client, texts, close): ``texts(client, model)`` is a
# generator (async generator in async mode) of the texts of one stream (the
# sizes of the raw body pieces for the floor), started when first iterated.


#: A tool in each provider's own form, for the floor's tool-call requests.
FLOOR_TOOL = {
    "ollama": {"type": "function", "function": {"name": "search", "parameters": {}}},
    "openai": {"type": "function", "function": {"name": "search", "parameters": {}}},
    "anthropic": {"name": "search", "input_schema": {"type": "object"}},
}


def _floor_request(
    provider: str, url: str, model: str, tools: bool = False
) -> tuple[str, bytes, dict[str, str]]:
    """The request of the floor; with ``tools``, one that declares a tool (and
    so gets the tool-call body)."""
    body: dict[str, Any]
    if provider == "ollama":
        headers = {"content-type": "application/json"}
        if tools:
            body = {"model": model, "messages": MESSAGES, "stream": True}
            body["tools"] = [FLOOR_TOOL[provider]]
            return url + "/api/chat", json.dumps(body).encode(), headers
        body = {"model": model, "prompt": PROMPT, "stream": True}
        return url + "/api/generate", json.dumps(body).encode(), headers
    if provider == "openai":
        body = {
            "model": model,
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            body["tools"] = [FLOOR_TOOL[provider]]
        headers = {"content-type": "application/json", "authorization": "Bearer x"}
        return url + "/chat/completions", json.dumps(body).encode(), headers
    if provider == "gemini":
        # The model is in the path; the key in x-goog-api-key (no tool-call body).
        body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
        headers = {"content-type": "application/json", "x-goog-api-key": "x"}
        target = f"{url}/v1beta/models/{model}:streamGenerateContent?alt=sse"
        return target, json.dumps(body).encode(), headers
    body = {"model": model, "max_tokens": 4096, "messages": MESSAGES, "stream": True}
    if tools:
        body["tools"] = [FLOOR_TOOL[provider]]
    headers = {
        "content-type": "application/json",
        "x-api-key": "x",
        "anthropic-version": "2023-06-01",
    }
    return url + "/v1/messages", json.dumps(body).encode(), headers


def floor_sync(provider: str, url: str, tools: bool = False) -> tuple[Callable, Callable, Callable]:
    import httpx

    def texts(client: httpx.Client, model: str):  # type: ignore[no-untyped-def]
        target, content, headers = _floor_request(provider, url, model, tools)
        with client.stream("POST", target, content=content, headers=headers) as r:
            for piece in r.iter_raw():
                yield len(piece)  # keeping the bytes would cost memory no client spends

    return httpx.Client, texts, lambda c: c.close()


def floor_async(
    provider: str, url: str, tools: bool = False
) -> tuple[Callable, Callable, Callable]:
    import httpx

    async def texts(client: httpx.AsyncClient, model: str):  # type: ignore[no-untyped-def]
        target, content, headers = _floor_request(provider, url, model, tools)
        async with client.stream("POST", target, content=content, headers=headers) as r:
            async for piece in r.aiter_raw():
                yield len(piece)

    async def close(c: httpx.AsyncClient) -> None:
        await c.aclose()

    return httpx.AsyncClient, texts, close


def _mal_config(provider: str, url: str) -> Any:
    import mal

    return mal.MALConfig(
        max_retries=0,
        base_urls={provider: url},
        api_keys={provider: "x"},
        default_provider=provider,
    )


def mal_sync(provider: str, url: str, prompt: Any = PROMPT) -> tuple[Callable, Callable, Callable]:
    import mal

    def texts(client: mal.Client, model: str):  # type: ignore[no-untyped-def]
        with client.stream(prompt, model=f"{provider}/{model}") as s:
            for chunk in s:
                yield chunk.text

    return lambda: mal.Client(_mal_config(provider, url)), texts, lambda c: c.close()


def mal_async(provider: str, url: str, prompt: Any = PROMPT) -> tuple[Callable, Callable, Callable]:
    import mal

    async def texts(client: mal.AsyncClient, model: str):  # type: ignore[no-untyped-def]
        async with client.stream(prompt, model=f"{provider}/{model}") as s:
            async for chunk in s:
                yield chunk.text

    async def close(c: mal.AsyncClient) -> None:
        await c.aclose()

    return lambda: mal.AsyncClient(_mal_config(provider, url)), texts, close


def ollama_sync(provider: str, url: str) -> tuple[Callable, Callable, Callable]:
    import ollama

    def texts(client: ollama.Client, model: str):  # type: ignore[no-untyped-def]
        for part in client.generate(model=model, prompt=PROMPT, stream=True):
            yield part.response

    return lambda: ollama.Client(host=url), texts, lambda c: c.close()


def ollama_async(provider: str, url: str) -> tuple[Callable, Callable, Callable]:
    import ollama

    async def texts(client: ollama.AsyncClient, model: str):  # type: ignore[no-untyped-def]
        async for part in await client.generate(model=model, prompt=PROMPT, stream=True):
            yield part.response

    async def close(c: ollama.AsyncClient) -> None:
        await c.close()

    return lambda: ollama.AsyncClient(host=url), texts, close


def openai_sync(provider: str, url: str) -> tuple[Callable, Callable, Callable]:
    import openai

    def texts(client: openai.OpenAI, model: str):  # type: ignore[no-untyped-def]
        stream = client.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        with stream:
            for chunk in stream:
                yield chunk.choices[0].delta.content or "" if chunk.choices else ""

    def make() -> openai.OpenAI:
        return openai.OpenAI(api_key="x", base_url=url, max_retries=0)

    return make, texts, lambda c: c.close()


def openai_async(provider: str, url: str) -> tuple[Callable, Callable, Callable]:
    import openai

    async def texts(client: openai.AsyncOpenAI, model: str):  # type: ignore[no-untyped-def]
        stream = await client.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        async with stream:
            async for chunk in stream:
                yield chunk.choices[0].delta.content or "" if chunk.choices else ""

    async def close(c: openai.AsyncOpenAI) -> None:
        await c.close()

    def make() -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key="x", base_url=url, max_retries=0)

    return make, texts, close


def _anthropic_text(event: Any) -> str:
    if event.type == "content_block_delta" and event.delta.type == "text_delta":
        return event.delta.text  # type: ignore[no-any-return]
    return ""


def anthropic_sync(provider: str, url: str) -> tuple[Callable, Callable, Callable]:
    import anthropic

    def texts(client: anthropic.Anthropic, model: str):  # type: ignore[no-untyped-def]
        stream = client.messages.create(
            model=model,
            max_tokens=4096,
            messages=MESSAGES,
            stream=True,  # type: ignore[arg-type]
        )
        with stream:
            for event in stream:
                yield _anthropic_text(event)

    def make() -> anthropic.Anthropic:
        return anthropic.Anthropic(api_key="x", base_url=url, max_retries=0)

    return make, texts, lambda c: c.close()


def anthropic_async(provider: str, url: str) -> tuple[Callable, Callable, Callable]:
    import anthropic

    async def texts(client: anthropic.AsyncAnthropic, model: str):  # type: ignore[no-untyped-def]
        stream = await client.messages.create(
            model=model,
            max_tokens=4096,
            messages=MESSAGES,
            stream=True,  # type: ignore[arg-type]
        )
        async with stream:
            async for event in stream:
                yield _anthropic_text(event)

    async def close(c: anthropic.AsyncAnthropic) -> None:
        await c.close()

    def make() -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(api_key="x", base_url=url, max_retries=0)

    return make, texts, close


def anthropic_ms_sync(provider: str, url: str) -> tuple[Callable, Callable, Callable]:
    import anthropic

    def texts(client: anthropic.Anthropic, model: str):  # type: ignore[no-untyped-def]
        with client.messages.stream(
            model=model,
            max_tokens=4096,
            messages=MESSAGES,  # type: ignore[arg-type]
        ) as stream:
            yield from stream.text_stream

    def make() -> anthropic.Anthropic:
        return anthropic.Anthropic(api_key="x", base_url=url, max_retries=0)

    return make, texts, lambda c: c.close()


def anthropic_ms_async(provider: str, url: str) -> tuple[Callable, Callable, Callable]:
    import anthropic

    async def texts(client: anthropic.AsyncAnthropic, model: str):  # type: ignore[no-untyped-def]
        async with client.messages.stream(
            model=model,
            max_tokens=4096,
            messages=MESSAGES,  # type: ignore[arg-type]
        ) as stream:
            async for text in stream.text_stream:
                yield text

    async def close(c: anthropic.AsyncAnthropic) -> None:
        await c.close()

    def make() -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(api_key="x", base_url=url, max_retries=0)

    return make, texts, close


#: name -> (library imported, providers, sync factory, async factory)
def mal_aiohttp_async(provider: str, url: str) -> tuple[Callable, Callable, Callable]:
    import mal

    _, texts, close = mal_async(provider, url)
    return (
        lambda: mal.AsyncClient(_mal_config(provider, url), transport="aiohttp"),
        texts,
        close,
    )


# The tool-call section: mal over the tool-call body and over the text body of
# the same number of chunks, both asked with a messages prompt (so that Ollama
# serves both from /api/chat).

# The shapes section: the providers' own bodies and other servers' shapes of
# them, each asked for by its model name (see _server.SHAPE_MODEL).

SHAPE_ROWS = {
    "openai": "OpenAI's own (LF, `data: `, a usage-only final chunk)",
    **{
        kind: label
        for kind, (_, _, label) in _bodies.SHAPES.items()
        if kind not in _bodies.REASONING
    },
    "anthropic": "Anthropic's own (`event:` and `data:` lines)",
    **{f"{kind}": f"reasoning: {label}" for kind, (_, _, label) in _bodies.REASONING.items()},
}
SHAPE_PROVIDER = {"openai": "openai", "anthropic": "anthropic"} | {
    kind: base for kind, (base, _, _) in _bodies.SHAPES.items()
}
#: mal over a reasoning body yields the chunks' reasoning text.
MAL_REASONING = "mal, reasoning"
SHAPE_MODELS = {kind: "shape-" + kind.partition("-")[2] for kind in _bodies.SHAPES}

TOOL_TEXT = "mal, text body"
TOOL_CALLS = "mal, tool-call body"
TOOL_FLOOR = "httpx floor, tool-call body"
#: The issue's target: a tool-call chunk costs at most this many text chunks.
TOOL_TARGET = 1.2
#: What the tool-call body's kind is, per provider, and its text twin.
TOOL_KIND = {
    "ollama": "ollama-chat-tools",
    "openai": "openai-tools",
    "anthropic": "anthropic-tools",
}
TEXT_TWIN = {"ollama": "ollama-chat", "openai": "openai", "anthropic": "anthropic"}


def _search_tool() -> Any:
    import mal

    return mal.Tool("search", "Search.", {"properties": {"q": {"type": "string"}}})


def mal_tools_sync(provider: str, url: str) -> tuple[Callable, Callable, Callable]:
    import mal

    tools = [_search_tool()]

    def texts(client: mal.Client, model: str):  # type: ignore[no-untyped-def]
        with client.stream(MESSAGES, model=f"{provider}/{model}", tools=tools) as s:
            for chunk in s:
                yield "".join([d.arguments for d in chunk.tool_calls])

    return lambda: mal.Client(_mal_config(provider, url)), texts, lambda c: c.close()


def mal_tools_async(provider: str, url: str) -> tuple[Callable, Callable, Callable]:
    import mal

    tools = [_search_tool()]

    async def texts(client: mal.AsyncClient, model: str):  # type: ignore[no-untyped-def]
        async with client.stream(MESSAGES, model=f"{provider}/{model}", tools=tools) as s:
            async for chunk in s:
                yield "".join([d.arguments for d in chunk.tool_calls])

    async def close(c: mal.AsyncClient) -> None:
        await c.aclose()

    return lambda: mal.AsyncClient(_mal_config(provider, url)), texts, close


def mal_reasoning_sync(provider: str, url: str) -> tuple[Callable, Callable, Callable]:
    import mal

    def texts(client: mal.Client, model: str):  # type: ignore[no-untyped-def]
        with client.stream(PROMPT, model=f"{provider}/{model}") as s:
            for chunk in s:
                yield chunk.reasoning or chunk.text

    return lambda: mal.Client(_mal_config(provider, url)), texts, lambda c: c.close()


def mal_reasoning_async(provider: str, url: str) -> tuple[Callable, Callable, Callable]:
    import mal

    async def texts(client: mal.AsyncClient, model: str):  # type: ignore[no-untyped-def]
        async with client.stream(PROMPT, model=f"{provider}/{model}") as s:
            async for chunk in s:
                yield chunk.reasoning or chunk.text

    async def close(c: mal.AsyncClient) -> None:
        await c.aclose()

    return lambda: mal.AsyncClient(_mal_config(provider, url)), texts, close


TOOL_CONTENDERS: dict[str, tuple[Callable, Callable]] = {
    MAL_REASONING: (mal_reasoning_sync, mal_reasoning_async),
    TOOL_TEXT: (
        functools.partial(mal_sync, prompt=MESSAGES),
        functools.partial(mal_async, prompt=MESSAGES),
    ),
    TOOL_CALLS: (mal_tools_sync, mal_tools_async),
    TOOL_FLOOR: (
        functools.partial(floor_sync, tools=True),
        functools.partial(floor_async, tools=True),
    ),
}


CONTENDERS: dict[str, tuple[str, tuple[str, ...], Callable | None, Callable]] = {
    FLOOR: ("httpx", PROVIDERS, floor_sync, floor_async),
    "mal": ("mal", PROVIDERS, mal_sync, mal_async),
    # The opt-in aiohttp transport: async (asyncio) only.
    "mal (aiohttp)": ("httpx_aiohttp", PROVIDERS, None, mal_aiohttp_async),
    "ollama SDK": ("ollama", ("ollama",), ollama_sync, ollama_async),
    "openai SDK": ("openai", ("openai",), openai_sync, openai_async),
    "anthropic SDK create": ("anthropic", ("anthropic",), anthropic_sync, anthropic_async),
    "anthropic SDK stream()": ("anthropic", ("anthropic",), anthropic_ms_sync, anthropic_ms_async),
}


# --------------------------------------------------------------------------- the child


def _check(parts: list[Any], expected: dict[str, Any]) -> str | None:
    if parts and isinstance(parts[0], int):  # the floor's piece sizes
        size = sum(parts)
        if size != expected["bytes"]:
            return f"got {size} body bytes, expected {expected['bytes']}"
        return None
    text = "".join(parts)
    if hashlib.sha256(text.encode()).hexdigest() != expected["sha256"]:
        return f"wrong text: {len(text)} characters, expected {expected['chars']}"
    return None


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One client in a fresh process: a cold short stream, warm short streams
    for the time to first chunk, then the long stream that is measured."""
    name, mode, provider, url = spec["name"], spec["mode"], spec["provider"], spec["url"]
    if name in TOOL_CONTENDERS:
        make_sync, make_async = TOOL_CONTENDERS[name]
    else:
        _, _, make_sync, make_async = CONTENDERS[name]
    factory = make_sync if mode == "sync" else make_async
    assert factory is not None
    make, texts, close = factory(provider, url)
    n, samples = spec["chunks"], spec["ttft_samples"]
    short, full = spec["short_model"], spec.get("model", "m")
    errors: list[str | None] = []
    ttft: list[float] = []
    out: dict[str, Any] = {}

    if mode == "sync":

        def one(client: Any, model: str, t0: float) -> tuple[list[Any], float]:
            it = texts(client, model)
            parts = [next(it)]
            first = time.perf_counter() - t0
            parts += it
            return parts, first

        t0 = time.perf_counter()
        client = make()
        parts, out["ttft_cold_s"] = one(client, short, t0)
        errors.append(_check(parts, spec["expected_short"]))
        for _ in range(samples):
            parts, first = one(client, short, time.perf_counter())
            ttft.append(first)
            errors.append(_check(parts, spec["expected_short"]))
        cpu0 = _common.cpu_seconds()
        t1 = time.perf_counter()
        parts, _ = one(client, full, t1)
        seconds = time.perf_counter() - t1
        cpu = _common.cpu_seconds() - cpu0
        errors.append(_check(parts, spec["expected"]))
        close(client)
    else:
        import asyncio

        async def one_async(client: Any, model: str, t0: float) -> tuple[list[Any], float]:
            it = texts(client, model)
            parts = [await it.__anext__()]
            first = time.perf_counter() - t0
            async for x in it:
                parts.append(x)
            return parts, first

        async def run() -> tuple[float, float]:
            t0 = time.perf_counter()
            client = make()
            parts, out["ttft_cold_s"] = await one_async(client, short, t0)
            errors.append(_check(parts, spec["expected_short"]))
            for _ in range(samples):
                parts, first = await one_async(client, short, time.perf_counter())
                ttft.append(first)
                errors.append(_check(parts, spec["expected_short"]))
            cpu0 = _common.cpu_seconds()
            t1 = time.perf_counter()
            parts, _ = await one_async(client, full, t1)
            seconds = time.perf_counter() - t1
            cpu = _common.cpu_seconds() - cpu0
            errors.append(_check(parts, spec["expected"]))
            await close(client)
            return seconds, cpu

        seconds, cpu = asyncio.run(run())
    bad = [e for e in errors if e]
    out.update(
        ttft_warm_s=sorted(ttft)[len(ttft) // 2] if ttft else float("nan"),
        ttft_warm_samples_s=ttft,
        seconds=seconds,
        chunks_per_s=n / seconds,
        cpu_us_per_chunk=cpu / n * 1e6,
        peak_rss_mib=_common.peak_rss_mib(),
        error=bad[0] if bad else None,
    )
    return out


# --------------------------------------------------------------------------- the parent

#: ``import <library>``, then the client classes: mal loads its clients (and
#: httpx) on first use, so "ready" is what a program pays before its first call.
IMPORT_SNIPPET = (
    "import time; t0 = time.perf_counter(); import {lib}; t1 = time.perf_counter(); "
    "{ready}; t2 = time.perf_counter(); print(t1 - t0, t2 - t0)"
)
READY = {
    "httpx": "httpx.Client; httpx.AsyncClient",
    "mal": "mal.Client; mal.AsyncClient",
    "ollama": "ollama.Client; ollama.AsyncClient",
    "openai": "openai.OpenAI; openai.AsyncOpenAI",
    "anthropic": "anthropic.Anthropic; anthropic.AsyncAnthropic",
}


def import_time(library: str) -> tuple[float, float]:
    """Seconds for ``import <library>`` and for it plus its client classes."""
    code = IMPORT_SNIPPET.format(lib=library, ready=READY.get(library, "pass"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    bare, ready = out.stdout.split()
    return float(bare), float(ready)


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


def installed(library: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(library) is not None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=20_000, help="chunks per stream (20000)")
    ap.add_argument("--repeat", type=int, default=5, help="alternating rounds (5)")
    ap.add_argument("--providers", default=",".join(PROVIDERS), help="comma-separated")
    ap.add_argument("--modes", default=",".join(MODES), help="sync,async")
    ap.add_argument(
        "--ttft-samples",
        type=int,
        default=7,
        help="warm short streams per child for the time to first chunk (7)",
    )
    ap.add_argument(
        "--tool-rounds",
        type=int,
        default=None,
        help="alternating rounds of the tool-call section (default: --repeat; 0 skips it)",
    )
    ap.add_argument(
        "--shape-rounds",
        type=int,
        default=None,
        help="alternating rounds of the shapes section (default: --repeat; 0 skips it)",
    )
    ap.add_argument(
        "--clients",
        default="",
        help="comma-separated contenders to run (default: all installed; the floor always runs)",
    )
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    ap.add_argument("--png", metavar="PATH", help="draw a bar chart (needs matplotlib)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    from _server import SHORT_MODEL, BenchServer

    providers = [p for p in args.providers.split(",") if p]
    modes = [m for m in args.modes.split(",") if m]
    started = time.perf_counter()
    missing = sorted({lib for lib, *_ in CONTENDERS.values() if not installed(lib)})
    names = [n for n, (lib, *_) in CONTENDERS.items() if lib not in missing]
    if args.clients:
        wanted = {c.strip() for c in args.clients.split(",")}
        unknown = wanted - set(CONTENDERS)
        if unknown:
            known = ", ".join(CONTENDERS)
            ap.error(f"unknown clients: {', '.join(sorted(unknown))}; known: {known}")
        names = [n for n in names if n in wanted or n == FLOOR]
    libraries = list(dict.fromkeys(CONTENDERS[n][0] for n in names))
    short_chunks = 16

    @functools.cache
    def expect(provider: str, n: int, kind: str | None = None) -> dict[str, Any]:
        # Built once per body: the sections ask for the same ones every round.
        body = _bodies.build(kind or KIND[provider], n)
        return {
            "bytes": len(body.data),
            "chars": len(body.text),
            "sha256": hashlib.sha256(body.text.encode()).hexdigest(),
        }

    def spec_for(
        name: str,
        mode: str,
        provider: str,
        kind: str | None = None,
        *,
        short_kind: str | None = None,
        model: str = "m",
        ttft_samples: int = 1,
    ) -> dict[str, Any]:
        """What a child runs: ``name`` in ``mode`` over the body of ``kind``
        (the provider's own by default), asked for with ``model``."""
        return {
            "name": name,
            "mode": mode,
            "provider": provider,
            "url": server.url(provider),
            "chunks": args.chunks,
            "model": model,
            "expected": expect(provider, args.chunks, kind),
            "expected_short": expect(provider, short_chunks, short_kind),
            "short_model": SHORT_MODEL,
            "ttft_samples": ttft_samples,
        }

    print(
        f"# End to end over loopback: {args.chunks} chunks per stream, {args.repeat} "
        f"alternating rounds, each client in a fresh subprocess\n"
    )
    if missing:
        print(f"(not installed, skipped: {', '.join(missing)})\n")

    # results[provider][mode][name] -> list of child results, one per round
    results: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {
        p: {m: {} for m in modes} for p in providers
    }
    imports: dict[str, list[tuple[float, float]]] = {lib: [] for lib in libraries}
    server_cpu: dict[str, dict[str, dict[str, list[float]]]] = {
        p: {m: {} for m in modes} for p in providers
    }
    with BenchServer(args.chunks, short_chunks=short_chunks) as server:
        for r in range(args.repeat):
            for lib in libraries:
                imports[lib].append(import_time(lib))
            for provider in providers:
                for mode in modes:
                    for name in names:
                        lib, served, make_sync, _ = CONTENDERS[name]
                        if provider not in served or (mode == "sync" and make_sync is None):
                            continue
                        spec = spec_for(name, mode, provider, ttft_samples=args.ttft_samples)
                        before = server.stats()["cpu"]
                        res = run_child(spec)
                        after = server.stats()["cpu"]
                        results[provider][mode].setdefault(name, []).append(res)
                        server_cpu[provider][mode].setdefault(name, []).append(after - before)
                        if res.get("error"):
                            print(f"round {r + 1}: {provider} {mode} {name}: {res['error']}")
            print(
                f"round {r + 1}/{args.repeat} done ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
        tool_rounds = args.repeat if args.tool_rounds is None else args.tool_rounds
        tool_results: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {
            p: {m: {} for m in modes} for p in providers
        }
        for r in range(tool_rounds):
            for provider in providers:
                if provider not in TOOL_KIND:  # no tool-call body (Gemini's yet)
                    continue
                for mode in modes:
                    for name, kind in (
                        (TOOL_FLOOR, TOOL_KIND[provider]),
                        (TOOL_TEXT, TEXT_TWIN[provider]),
                        (TOOL_CALLS, TOOL_KIND[provider]),
                    ):
                        spec = spec_for(name, mode, provider, kind, short_kind=kind)
                        res = run_child(spec)
                        tool_results[provider][mode].setdefault(name, []).append(res)
                        if res.get("error"):
                            print(f"tool round {r + 1}: {provider} {mode} {name}: {res['error']}")

        shape_rounds = args.repeat if args.shape_rounds is None else args.shape_rounds
        shape_results: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
        shape_kinds = [k for k in SHAPE_ROWS if SHAPE_PROVIDER[k] in providers]
        for r in range(shape_rounds):
            for kind in shape_kinds:
                provider = SHAPE_PROVIDER[kind]
                ours = MAL_REASONING if kind in _bodies.REASONING else "mal"
                model = SHAPE_MODELS.get(kind, "m")
                for mode in modes:
                    for name in (FLOOR, ours):
                        spec = spec_for(name, mode, provider, kind, model=model)
                        res = run_child(spec)
                        shape_results.setdefault(kind, {}).setdefault(mode, {}).setdefault(
                            name, []
                        ).append(res)
                        if res.get("error"):
                            print(f"shape round {r + 1}: {kind} {mode} {name}: {res['error']}")

    summary = summarise(results, imports, server_cpu, args.chunks)
    report(summary, providers, modes, imports)
    shape_summary = summarise_shapes(shape_results, args.chunks)
    if shape_summary:
        report_shapes(shape_summary)
    tool_summary = summarise_tools(tool_results, args.chunks) if tool_rounds else {}
    if tool_summary:
        report_tools(tool_summary)
    elapsed = time.perf_counter() - started
    print(f"\n(ran in {elapsed:.0f} s)")
    if args.json:
        _common.write_json(
            args.json,
            {
                "benchmark": "stream",
                "chunks": args.chunks,
                "repeat": args.repeat,
                "targets": {
                    "ratio": TARGET_RATIO,
                    "ttft_warm_ms": TARGET_TTFT_MS,
                    "import_ms": TARGET_IMPORT_MS,
                },
                "seconds": elapsed,
                "summary": summary,
                "shape_summary": shape_summary,
                "shape_raw": shape_results,
                "tool_target": TOOL_TARGET,
                "tool_summary": tool_summary,
                "tool_raw": tool_results,
                "raw": results,
                "import_s": imports,
                "server_cpu_s": server_cpu,
            },
        )
    if args.png:
        plot(args.png, summary, providers, modes)


def _values(runs: list[dict[str, Any]], key: str, scale: float = 1.0) -> list[float]:
    return [r[key] * scale if not r.get("error") and key in r else float("nan") for r in runs]


def summarise(
    results: dict[str, Any],
    imports: dict[str, list[tuple[float, float]]],
    server_cpu: dict[str, Any],
    n: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for provider, by_mode in results.items():
        out[provider] = {}
        for mode, by_name in by_mode.items():
            floor = by_name.get(FLOOR, [])
            f_sec = _values(floor, "seconds")
            f_cpu = _values(floor, "cpu_us_per_chunk")
            f_ttft = _values(floor, "ttft_warm_s", 1e3)
            out[provider][mode] = {}
            for name, runs in by_name.items():
                sec = _values(runs, "seconds")
                cpu = _values(runs, "cpu_us_per_chunk")
                ttft = _values(runs, "ttft_warm_s", 1e3)
                out[provider][mode][name] = {
                    "chunks_per_s": _common.summarize(_values(runs, "chunks_per_s")),
                    "us_per_chunk": _common.summarize([s / n * 1e6 for s in sec]),
                    "time_ratio": _common.paired_ratios(sec, f_sec),
                    "cpu_us_per_chunk": _common.summarize(cpu),
                    "cpu_ratio": _common.paired_ratios(cpu, f_cpu),
                    "ttft_warm_ms": _common.summarize(ttft),
                    "ttft_warm_delta_ms": _common.summarize(
                        [a - b for a, b in zip(ttft, f_ttft, strict=False)]
                    ),
                    "ttft_cold_ms": _common.summarize(_values(runs, "ttft_cold_s", 1e3)),
                    "peak_rss_mib": _common.summarize(_values(runs, "peak_rss_mib")),
                    "server_cpu_us_per_chunk": _common.summarize(
                        [s / n * 1e6 for s in server_cpu[provider][mode][name]]
                    ),
                    "import_ms": _common.summarize(
                        [bare * 1e3 for bare, _ in imports[CONTENDERS[name][0]]]
                    ),
                    "import_ready_ms": _common.summarize(
                        [ready * 1e3 for _, ready in imports[CONTENDERS[name][0]]]
                    ),
                    "errors": sum(1 for r in runs if r.get("error")),
                }
    return out


def report(
    summary: dict[str, Any], providers: list[str], modes: list[str], imports: dict[str, Any]
) -> None:
    fmt = _common.fmt
    print(
        "Median (min-max) over the rounds. × floor: per-round ratio to the httpx floor of the "
        "same provider and mode (wall time per chunk; CPU time per chunk). TTFT warm: time to "
        "first chunk of a short stream on a warm connection (median of the child's samples); "
        "Δ floor: minus the floor's, same round. TTFT cold: from after the import, through "
        "client creation and connection, to the first chunk."
    )
    header = [
        "mode",
        "client",
        "chunks/s",
        "× floor (time)",
        "CPU µs/chunk",
        "× floor (CPU)",
        "TTFT warm ms",
        "Δ floor ms",
        "TTFT cold ms",
        "peak RSS MiB",
        "errors",
    ]
    for provider in providers:
        rows = []
        notes = []
        for mode in modes:
            for name, s in summary[provider][mode].items():
                label = f"**{name}**" if name == "mal" else name
                rows.append(
                    [
                        mode,
                        label,
                        fmt(s["chunks_per_s"], 0),
                        fmt(s["time_ratio"], 2),
                        fmt(s["cpu_us_per_chunk"], 2),
                        fmt(s["cpu_ratio"], 2),
                        fmt(s["ttft_warm_ms"], 3),
                        fmt(s["ttft_warm_delta_ms"], 3, spread=False),
                        fmt(s["ttft_cold_ms"], 1),
                        fmt(s["peak_rss_mib"], 1),
                        str(s["errors"]),
                    ]
                )
            floor = summary[provider][mode].get(FLOOR)
            if floor:
                notes.append(
                    f"{mode}: {fmt(floor['server_cpu_us_per_chunk'], 2)} µs "
                    f"(the floor's wall time: {fmt(floor['us_per_chunk'], 2)} µs)"
                )
        print(f"\n### {provider}\n")
        print(_common.md_table(header, rows))
        if notes:
            print("\nserver CPU per chunk while serving the floor: " + "; ".join(notes))

    print(
        "\n### import time (fresh interpreter; `+ clients`: also loading the client classes, "
        "which mal defers to first use)\n"
    )
    rows = []
    for lib, values in imports.items():
        rows.append(
            [
                f"**{lib}**" if lib == "mal" else lib,
                fmt(_common.summarize([bare * 1e3 for bare, _ in values]), 0),
                fmt(_common.summarize([ready * 1e3 for _, ready in values]), 0),
            ]
        )
    print(_common.md_table(["library", "import ms", "import + clients ms"], rows))

    print(
        f"\n## mal against the targets (time ≤ {TARGET_RATIO}x the floor, warm TTFT within "
        f"{TARGET_TTFT_MS} ms of the floor, import ≤ {TARGET_IMPORT_MS:.0f} ms)\n"
    )
    rows = []
    for provider in providers:
        for mode in modes:
            s = summary[provider][mode].get("mal")
            if not s or not s["time_ratio"]["n"]:
                continue
            ratio = s["time_ratio"]
            delta = s["ttft_warm_delta_ms"]
            rows.append(
                [
                    provider,
                    mode,
                    f"**{ratio['median']:.2f}x** ({ratio['min']:.2f}-{ratio['max']:.2f}) "
                    + ("meets" if ratio["median"] <= TARGET_RATIO else "MISSES"),
                    f"{fmt(s['cpu_ratio'], 2, suffix='x')} "
                    + ("meets" if s["cpu_ratio"]["median"] <= TARGET_RATIO else "MISSES"),
                    f"{delta['median']:+.3f} ms ({delta['min']:+.3f} to {delta['max']:+.3f}) "
                    + ("meets" if delta["median"] <= TARGET_TTFT_MS else "MISSES"),
                ]
            )
    print(
        _common.md_table(
            ["provider", "mode", "time / floor", "CPU / floor (same target)", "warm TTFT − floor"],
            rows,
        )
    )
    print(
        "\nOn a busy machine the CPU ratio is the steadier of the two: it does not count the "
        "time the client waited while another process had the CPU."
    )
    if imports.get("mal"):
        s = _common.summarize([bare * 1e3 for bare, _ in imports["mal"]])
        verdict = "meets" if s["median"] <= TARGET_IMPORT_MS else "MISSES"
        ready = _common.summarize([r * 1e3 for _, r in imports["mal"]])
        print(
            f"\n`import mal`: **{fmt(s, 0)} ms** {verdict} "
            f"(with its client classes loaded: {fmt(ready, 0)} ms)"
        )


def _verdict(ratio: dict[str, Any], target: float) -> str:
    """A ratio in bold and whether its median meets ``target``."""
    ok = ratio["n"] and ratio["median"] <= target
    return f"**{_common.fmt(ratio, 2, suffix='x')}** " + ("meets" if ok else "MISSES")


def summarise_shapes(results: dict[str, Any], n: int) -> dict[str, Any]:
    """Per body shape and mode: the floor's and mal's time per chunk, and
    mal's ratio to the floor, paired per round."""
    out: dict[str, Any] = {}
    for kind, by_mode in results.items():
        for mode, by_name in by_mode.items():
            floor = by_name.get(FLOOR, [])
            ours = by_name.get("mal") or by_name.get(MAL_REASONING, [])
            if not floor or not ours:
                continue
            out.setdefault(kind, {})[mode] = {
                "floor_us_per_chunk": _common.summarize(
                    [v / n * 1e6 for v in _values(floor, "seconds")]
                ),
                "mal_us_per_chunk": _common.summarize(
                    [v / n * 1e6 for v in _values(ours, "seconds")]
                ),
                "time_ratio": _common.paired_ratios(
                    _values(ours, "seconds"), _values(floor, "seconds")
                ),
                "cpu_ratio": _common.paired_ratios(
                    _values(ours, "cpu_us_per_chunk"), _values(floor, "cpu_us_per_chunk")
                ),
                "errors": sum(1 for r in floor + ours if r.get("error")),
            }
    return out


def report_shapes(summary: dict[str, Any]) -> None:
    fmt = _common.fmt
    print(
        f"\n## Other shapes of the same stream (other servers', reasoning): mal against "
        f"the floor (target: ≤ {TARGET_RATIO}x)\n"
    )
    rows = []
    for kind, by_mode in summary.items():
        for mode, s in by_mode.items():
            rows.append(
                [
                    SHAPE_ROWS[kind],
                    mode,
                    fmt(s["floor_us_per_chunk"], 2),
                    fmt(s["mal_us_per_chunk"], 2),
                    _verdict(s["time_ratio"], TARGET_RATIO),
                    fmt(s["cpu_ratio"], 2, suffix="x"),
                    str(s["errors"]),
                ]
            )
    header = [
        "body",
        "mode",
        "floor µs/chunk",
        "mal µs/chunk",
        "mal / floor (time)",
        "mal / floor (CPU)",
        "errors",
    ]
    print(_common.md_table(header, rows))


def summarise_tools(results: dict[str, Any], n: int) -> dict[str, Any]:
    """Per provider and mode: each contender's wall and CPU time per chunk, and
    the tool-call body's ratio to the text body's, paired per round."""
    out: dict[str, Any] = {}
    for provider, by_mode in results.items():
        for mode, by_name in by_mode.items():
            text, tools = by_name.get(TOOL_TEXT, []), by_name.get(TOOL_CALLS, [])
            if not text or not tools:
                continue
            row: dict[str, Any] = {}
            for name, runs in ((TOOL_TEXT, text), (TOOL_CALLS, tools)):
                row[name] = {
                    "us_per_chunk": _common.summarize(
                        [
                            1e6 / v if v == v and v else float("nan")
                            for v in _values(runs, "chunks_per_s")
                        ]
                    ),
                    "cpu_us_per_chunk": _common.summarize(_values(runs, "cpu_us_per_chunk")),
                    "errors": sum(1 for r in runs if r.get("error")),
                }
            row["time_ratio"] = _common.paired_ratios(
                _values(tools, "seconds"), _values(text, "seconds")
            )
            row["cpu_ratio"] = _common.paired_ratios(
                _values(tools, "cpu_us_per_chunk"), _values(text, "cpu_us_per_chunk")
            )
            floor = by_name.get(TOOL_FLOOR, [])
            row["floor_us_per_chunk"] = _common.summarize(
                [v / n * 1e6 for v in _values(floor, "seconds")]
            )
            row["floor_ratio"] = _common.paired_ratios(
                _values(tools, "seconds"), _values(floor, "seconds")
            )
            out.setdefault(provider, {})[mode] = row
    return out


def report_tools(summary: dict[str, Any]) -> None:
    fmt = _common.fmt
    print(
        f"\n## Tool calls end to end: a tool-call stream against the floor over the same "
        f"body (target: ≤ {TARGET_RATIO}x) and against a text stream of the same number of "
        f"chunks (target: ≤ {TOOL_TARGET}x)\n"
    )
    rows = []
    for provider, by_mode in summary.items():
        for mode, s in by_mode.items():
            verdicts = [_verdict(s["floor_ratio"], TARGET_RATIO)]
            verdicts += [_verdict(s[key], TOOL_TARGET) for key in ("time_ratio", "cpu_ratio")]
            rows.append(
                [
                    provider,
                    mode,
                    fmt(s["floor_us_per_chunk"], 2),
                    fmt(s[TOOL_TEXT]["us_per_chunk"], 2),
                    fmt(s[TOOL_CALLS]["us_per_chunk"], 2),
                    *verdicts,
                    fmt(s[TOOL_TEXT]["cpu_us_per_chunk"], 2),
                    fmt(s[TOOL_CALLS]["cpu_us_per_chunk"], 2),
                    str(s[TOOL_TEXT]["errors"] + s[TOOL_CALLS]["errors"]),
                ]
            )
    header = [
        "provider",
        "mode",
        "floor µs/chunk",
        "text µs/chunk",
        "tool calls µs/chunk",
        "tool calls / floor (time)",
        "tool calls / text (time)",
        "tool calls / text (CPU)",
        "text CPU µs/chunk",
        "tool calls CPU µs/chunk",
        "errors",
    ]
    print(_common.md_table(header, rows))
    print(
        "\nBoth through mal.Client / mal.AsyncClient with a messages prompt; OpenAI and "
        "Anthropic stream one call's arguments, a piece per chunk; Ollama sends one whole "
        "call per line."
    )


def plot(path: str, summary: dict[str, Any], providers: list[str], modes: list[str]) -> None:
    groups = [f"{p} {m}" for p in providers for m in modes]
    names: list[str] = []
    for p in providers:
        for m in modes:
            for name in summary[p][m]:
                if name not in names:
                    names.append(name)
    series = {
        name: [summary[p][m].get(name, {}).get("us_per_chunk") for p in providers for m in modes]
        for name in names
    }
    _common.bar_chart(
        path,
        "End to end over loopback (median, min-max)",
        groups,
        series,
        "wall µs per chunk (log)",
        log=True,
    )


if __name__ == "__main__":
    main()
