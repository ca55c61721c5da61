"""The command line: ``python -m mal demo``, ``run`` and ``serve``.

``demo`` starts the built-in local server (:mod:`mal.testing`) and streams a
generation from it through the whole stack, sync then async, then streams a
tool loop: the model calls a Python tool, mal prints its result between the
steps and streams the answer; given
``--model`` (or ``MAL_DEMO_MODEL``), it streams from that real model instead,
configured by the usual environment variables. ``run`` streams one
generation from a real server configured by the environment variables; its
prompt is an argument, or standard input (``-``, or no argument when standard
input is not a terminal). ``serve`` runs the built-in server until interrupted
and prints the environment variables that point every provider at it, as
``export`` lines a shell can ``eval``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import anyio

from . import __version__
from ._api import default_client
from ._async import AsyncClient
from ._sync import Client
from .config import MALConfig
from .errors import MALError
from .types import Chunk

if TYPE_CHECKING:
    from .testing import MockServer

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
    """One call with a tool, streamed: mal runs the tool the model calls,
    prints its result between the steps, and streams the answer."""
    print(f"prompt: {TOOL_PROMPT}")
    start = time.perf_counter()
    with client.stream(TOOL_PROMPT, model=model, tools=[word_count], tool_rounds=2) as stream:
        for chunk in stream:
            if chunk.text:
                _write(chunk.text)
            for result in chunk.tool_results:
                call = result.call
                args = ", ".join(f"{k}={v!r}" for k, v in call.arguments.items())
                print(f"  the model called {call.name}({args}) -> {result.content}")
        r = stream.response()
    _write("\n")
    elapsed = time.perf_counter() - start
    rounds = len(r.steps) - 1
    print(
        f"[tools] {len(r.steps)} model calls, {rounds} tool round{'s' * (rounds != 1)} "
        f"in {elapsed:.2f} s"
    )


class UsageError(Exception):
    """A command line that cannot be run: one line on stderr, exit status 2."""


def _prompt(arg: str | None) -> str:
    """The prompt of ``run``: the argument, or standard input for ``-`` or, when
    standard input is not a terminal, for no argument. An empty prompt is a
    usage error: nothing is sent."""
    if arg is None or arg == "-":
        stdin = sys.stdin
        if stdin is None or (arg is None and stdin.isatty()):
            raise UsageError("no prompt: give it as an argument, or pipe it to standard input")
        prompt = stdin.read()
        where = "standard input"
    else:
        prompt, where = arg, "the prompt argument"
    if not prompt.strip():
        raise UsageError(f"the prompt is empty ({where}); nothing was sent")
    return prompt


def run(args: argparse.Namespace) -> int:
    prompt = _prompt(args.prompt)
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


#: A placeholder for the API keys ``serve`` exports: the built-in server does
#: not check keys, but the clients want one.
SERVE_KEY = "mal-serve-local-key"


def _serve_environment(server: MockServer) -> dict[str, str]:
    """The variables that point each provider the built-in server speaks at
    it: its base URL, and a placeholder API key where the provider takes one."""
    from .protocols import PROTOCOLS

    environment: dict[str, str] = {}
    for provider, protocol in PROTOCOLS.items():
        if not protocol.base_url_env or protocol.base_url_env in environment:
            continue
        try:
            url = server.url(provider)
        except ValueError:  # a provider the built-in server does not speak
            continue
        environment[protocol.base_url_env] = url
        if protocol.api_key_env:
            environment[protocol.api_key_env] = SERVE_KEY
    return environment


class _Stop(BaseException):
    """Raised by the SIGTERM handler to leave ``serve``'s wait."""


def _stop(signum: int, frame: object) -> None:
    raise _Stop


def serve(host: str, port: int, text: str | None, delay: float) -> int:
    """Run the built-in server until Ctrl-C or SIGTERM; print the ``export``
    lines first, then close standard output, so that ``eval "$(mal serve &)"``
    returns once the server listens."""
    from .testing import MockServer, Reply

    default = Reply(chunk_delay=delay) if text is None else Reply(text=text, chunk_delay=delay)
    server = MockServer(host=host, port=port, default=default)
    try:
        server.start()
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        environment = _serve_environment(server)
        environment["MAL_SERVE_PID"] = str(os.getpid())  # for: kill "$MAL_SERVE_PID"
        lines = [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        # Standard output is done with: closing it ends a shell's "$(mal serve &)".
        with contextlib.suppress(OSError, ValueError):
            os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        print(
            f"mal serve: listening on {server.base_url}; Ctrl-C or SIGTERM stops it",
            file=sys.stderr,
            flush=True,
        )
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    count = len(server.requests)
    print(f"mal serve: stopped after {count} request{'s' * (count != 1)}", file=sys.stderr)
    return 0


def port_number(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError(value)
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mal", description="Stream text generations from Ollama, OpenAI and Anthropic."
    )
    parser.add_argument("--version", action="version", version=f"mal {__version__}")
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
    run_cmd.add_argument(
        "prompt",
        nargs="?",
        help="the prompt; - or none (when piped) reads it from standard input",
    )
    run_cmd.add_argument("-s", "--system", help="system prompt")
    run_cmd.add_argument("-t", "--temperature", type=float)
    run_cmd.add_argument("-n", "--max-tokens", dest="max_tokens", type=int)
    run_cmd.add_argument("--top-p", dest="top_p", type=float)
    run_cmd.add_argument("--seed", type=int)
    run_cmd.add_argument("--stop", action="append", help="stop sequence (repeatable)")
    run_cmd.add_argument("--timeout", type=float, help="one timeout for every phase, seconds")
    run_cmd.add_argument("--stats", action="store_true", help="print a summary line to stderr")
    serve_cmd = commands.add_parser(
        "serve",
        help="run the built-in server and print the variables that point every provider at it",
    )
    serve_cmd.add_argument(
        "--port", type=port_number, default=0, help="the port to listen on (default: a free one)"
    )
    serve_cmd.add_argument("--host", default="127.0.0.1", help="the address (default: 127.0.0.1)")
    serve_cmd.add_argument(
        "--text", help="the text of every answer (default: a greeting from the mock model)"
    )
    serve_cmd.add_argument(
        "--delay", type=float, default=0.0, help="seconds between the tokens of an answer"
    )
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
        if args.command == "serve":
            return serve(args.host, args.port, args.text, args.delay)
        return run(args)
    except UsageError as exc:
        print(f"mal {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MALError as exc:
        message = " ".join(str(exc).split())
        print(f"\nmal: {type(exc).__name__}: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nmal: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
