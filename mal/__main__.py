"""The command line: ``python -m mal demo`` and ``python -m mal run``.

``demo`` starts the built-in local server (:mod:`mal.testing`) and streams a
generation from it through the whole stack, sync then async, then lets the
model call a Python tool and answer with its result; given
``--model`` (or ``MAL_DEMO_MODEL``), it streams from that real model instead,
configured by the usual environment variables. ``run`` streams one
generation from a real server configured by the environment variables.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import anyio

from ._api import default_client
from ._async import AsyncClient
from ._sync import Client
from .config import MALConfig
from .errors import MALError
from .types import Chunk

DEMO_PROMPT = "In two sentences: why is the sky blue?"
DEMO_TEXT = (
    "Sunlight is scattered by the molecules of the air, and blue light, with its "
    "shorter wavelength, is scattered far more than red (Rayleigh scattering). "
    "So wherever you look away from the Sun, the sky sends you mostly blue light — "
    "except at sunset, when the long path through the air leaves the reds. 🌅"
)


TOOL_PROMPT = "How many words are in 'the quick brown fox jumps'? Use the tool."


def word_count(text: str) -> int:
    """Count the words of a text.

    Args:
        text: The text whose words to count.
    """
    return len(text.split())


class _Meter:
    """Times a stream as it is printed, for the demo's summary line."""

    def __init__(self, write: Callable[[str], object]) -> None:
        self._write = write
        self.start = time.perf_counter()
        self.first: float | None = None
        self.chunks = 0
        self.chars = 0

    def add(self, chunk: Chunk) -> None:
        if chunk.text:
            if self.first is None:
                self.first = time.perf_counter() - self.start
            self.chunks += 1
            self.chars += len(chunk.text)
            self._write(chunk.text)

    def summary(self, label: str) -> str:
        elapsed = time.perf_counter() - self.start
        first = f"{self.first * 1000:.1f} ms" if self.first is not None else "-"
        rate = self.chars / elapsed if elapsed > 0 else 0.0
        return (
            f"[{label}] first chunk after {first}, {self.chunks} chunks, "
            f"{self.chars} characters in {elapsed:.2f} s ({rate:,.0f} characters/s)"
        )


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _stream_sync(client: Client, prompt: str, model: str, options: dict[str, Any]) -> _Meter:
    meter = _Meter(_write)
    with client.stream(prompt, model=model, **options) as stream:
        for chunk in stream:
            meter.add(chunk)
    _write("\n")
    return meter


async def _stream_async(config: MALConfig, prompt: str, model: str) -> _Meter:
    meter = _Meter(_write)
    async with AsyncClient(config) as client, client.stream(prompt, model=model) as stream:
        async for chunk in stream:
            meter.add(chunk)
    _write("\n")
    return meter


def demo(model: str | None, delay: float) -> int:
    server: AbstractContextManager[Any]
    if model is None:
        from .testing import MockServer, Reply

        server = MockServer()
        model = "openai/mal-demo"
    else:
        server = nullcontext()
    with server as srv:
        config = MALConfig()
        if srv is not None:
            srv.default = Reply(text=DEMO_TEXT, chunk_delay=delay, first_delay=0.05)
            config = MALConfig(base_urls={"openai": srv.url("openai")})
            print(f"mal demo: streaming from the built-in server at {srv.base_url}")
        print(f"model {model}, prompt: {DEMO_PROMPT}\n")
        with Client(config) as client:
            sync = _stream_sync(client, DEMO_PROMPT, model, {})
        print(sync.summary("sync"), "\n")
        asynchronous = anyio.run(_stream_async, config, DEMO_PROMPT, model)
        print(asynchronous.summary("async"), "\n")
        if srv is not None:
            srv.add(
                Reply(
                    tool_calls=[
                        {"name": "word_count", "arguments": {"text": "the quick brown fox jumps"}}
                    ]
                ),
                Reply(text="It has 5 words.", chunk_delay=delay),
            )
        with Client(config) as client:
            _tool_round(client, model)
    return 0


def _tool_round(client: Client, model: str) -> None:
    """One call with a tool: mal runs the tool the model calls and sends the
    result back for the answer."""
    print(f"prompt: {TOOL_PROMPT}")
    start = time.perf_counter()
    r = client.complete(TOOL_PROMPT, model=model, tools=[word_count], tool_rounds=2)
    results = {m.tool_call_id: m.content for m in r.messages if m.role == "tool"}
    for step in r.steps:
        for call in step.tool_calls:
            args = ", ".join(f"{k}={v!r}" for k, v in call.arguments.items())
            print(f"  the model called {call.name}({args}) -> {results.get(call.id, '(not run)')}")
    elapsed = time.perf_counter() - start
    print(r.text)
    rounds = len(r.steps) - 1
    print(
        f"[tools] {len(r.steps)} model calls, {rounds} tool round{'s' * (rounds != 1)} "
        f"in {elapsed:.2f} s"
    )


def run(args: argparse.Namespace) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    options: dict[str, Any] = {}
    for name in ("system", "temperature", "max_tokens", "top_p", "seed", "timeout"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.stop:
        options["stop"] = args.stop
    meter = _stream_sync(default_client(), prompt, args.model, options)
    if args.stats:
        print(meter.summary("run"), file=sys.stderr)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mal", description="Stream text generations from Ollama, OpenAI and Anthropic."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo_cmd = commands.add_parser(
        "demo", help="stream from the built-in local server (or --model), sync then async"
    )
    demo_cmd.add_argument(
        "-m",
        "--model",
        default=os.environ.get("MAL_DEMO_MODEL") or None,
        help="stream from this real model instead (default: $MAL_DEMO_MODEL if set)",
    )
    demo_cmd.add_argument(
        "--delay", type=float, default=0.02, help="seconds between tokens of the local server"
    )
    run_cmd = commands.add_parser(
        "run", help="stream one generation from a real server (configured by the environment)"
    )
    run_cmd.add_argument("-m", "--model", required=True, help='"provider/name", e.g. ollama/qwen3')
    run_cmd.add_argument("prompt", help="the prompt, or - to read it from standard input")
    run_cmd.add_argument("-s", "--system", help="system prompt")
    run_cmd.add_argument("-t", "--temperature", type=float)
    run_cmd.add_argument("-n", "--max-tokens", dest="max_tokens", type=int)
    run_cmd.add_argument("--top-p", dest="top_p", type=float)
    run_cmd.add_argument("--seed", type=int)
    run_cmd.add_argument("--stop", action="append", help="stop sequence (repeatable)")
    run_cmd.add_argument("--timeout", type=float, help="one timeout for every phase, seconds")
    run_cmd.add_argument("--stats", action="store_true", help="print a summary line to stderr")
    return parser


#: ``MAL_LOG``'s values: the level of the ``mal`` logger, printed to stderr.
LOG_LEVELS = {"debug": "DEBUG", "info": "INFO", "warning": "WARNING", "error": "ERROR"}


def _configure_logging() -> None:
    """``MAL_LOG=debug`` (or info...) prints mal's log to stderr."""
    value = os.environ.get("MAL_LOG", "").strip().lower()
    if not value:
        return
    import logging

    level = LOG_LEVELS.get(value)
    if level is None:
        known = ", ".join(LOG_LEVELS)
        print(f"mal: MAL_LOG={value!r} is not a level; use one of {known}", file=sys.stderr)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("mal")
    logger.addHandler(handler)
    logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging()
    try:
        if args.command == "demo":
            return demo(args.model, args.delay)
        return run(args)
    except MALError as exc:
        message = " ".join(str(exc).split())
        print(f"\nmal: {type(exc).__name__}: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nmal: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
