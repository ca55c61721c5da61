"""The command line: `python -m mal demo`, `run` and `--version`, in fresh processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import mal
from mal.testing import MockServer, Reply

TEXT = "Rayleigh scattering, mostly. 🌅"


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as srv:
        srv.default = Reply(text=TEXT)
        yield srv


def mal_cli(
    *args: str, server: MockServer | None = None, stdin: str | int | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mal ARGS``; `stdin` is the text piped to it, or a file
    descriptor (``subprocess.DEVNULL``...)."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OLLAMA_", "OPENAI_", "ANTHROPIC_", "MAL_"))
    }
    if server is not None:
        environ.update(
            OLLAMA_HOST=server.url("ollama"),
            OPENAI_BASE_URL=server.url("openai"),
            ANTHROPIC_BASE_URL=server.url("anthropic"),
        )
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "mal", *args],
        input=stdin if isinstance(stdin, str) else None,
        stdin=stdin if isinstance(stdin, int) else None,
        env=environ,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


def test_demo_streams_from_the_built_in_server_sync_then_async() -> None:
    done = mal_cli("demo", "--delay", "0")
    assert done.returncode == 0, done.stderr
    assert "built-in server" in done.stdout
    assert done.stdout.count("Rayleigh scattering") == 2
    summaries = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in summaries] == ["[sync", "[async", "[tools"]
    assert all("first chunk after" in line and "chunks" in line for line in summaries[:2])
    # Then a tool round: the model calls the Python tool, mal runs it and sends the result.
    assert "the model called word_count(text='the quick brown fox jumps') -> 5" in done.stdout
    assert "It has 5 words." in done.stdout
    # Streamed: the tool's result is printed between the steps, before the answer.
    called = done.stdout.index("the model called word_count")
    assert called < done.stdout.index("It has 5 words.")
    assert summaries[2].startswith("[tools] 2 model calls, 1 tool round in")


def test_demo_uses_a_configured_model(server: MockServer) -> None:
    done = mal_cli("demo", server=server, MAL_DEMO_MODEL="anthropic/claude-test")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(TEXT) >= 2
    assert [r.provider for r in server.requests] == ["anthropic"] * 3
    assert [t["name"] for t in server.requests[2].json["tools"]] == ["word_count"]
    assert all(r.json is not None and r.json["model"] == "claude-test" for r in server.requests)


@pytest.mark.parametrize("provider", ["ollama", "openai", "anthropic"])
def test_run_streams_the_text(server: MockServer, provider: str) -> None:
    done = mal_cli("run", "-m", f"{provider}/m", "-t", "0.2", "Why?", server=server)
    assert done.returncode == 0, done.stderr
    assert done.stdout == TEXT + "\n"
    (request,) = server.requests
    assert request.provider == provider
    assert "Why?" in request.body.decode()


def test_run_reads_the_prompt_from_stdin(server: MockServer) -> None:
    done = mal_cli("run", "-m", "openai/m", "-", server=server, stdin="From standard input")
    assert done.returncode == 0, done.stderr
    (request,) = server.requests
    assert request.json is not None
    assert request.json["messages"][-1]["content"] == "From standard input"


def test_run_reads_piped_stdin_without_a_prompt_argument(server: MockServer) -> None:
    done = mal_cli("run", "-m", "anthropic/m", server=server, stdin="Piped, no dash\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == TEXT + "\n"
    (request,) = server.requests
    assert request.json is not None
    assert request.json["messages"][-1]["content"] == "Piped, no dash\n"


def test_a_prompt_argument_wins_over_piped_stdin(server: MockServer) -> None:
    done = mal_cli("run", "-m", "openai/m", "The argument", server=server, stdin="ignored")
    assert done.returncode == 0, done.stderr
    (request,) = server.requests
    assert request.json is not None
    assert request.json["messages"][-1]["content"] == "The argument"


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        ((), ""),  # empty piped stdin, no argument
        ((), " \n\t\n"),  # whitespace only
        (("-",), ""),  # empty stdin, asked for with -
        ((), subprocess.DEVNULL),  # stdin is /dev/null: not a terminal, empty
        (("",), None),  # an empty argument
        (("   ",), "stdin is not read when the argument is given"),
    ],
    ids=["empty-stdin", "blank-stdin", "dash-empty-stdin", "devnull", "empty-arg", "blank-arg"],
)
def test_an_empty_prompt_is_a_usage_error_and_sends_nothing(
    server: MockServer, args: tuple[str, ...], stdin: str | int | None
) -> None:
    for provider in ("ollama", "openai", "anthropic"):
        done = mal_cli("run", "-m", f"{provider}/m", *args, server=server, stdin=stdin)
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        (line,) = done.stderr.splitlines()
        assert line.startswith("mal run: error: the prompt is empty")
    assert server.requests == []
    assert server.connections == 0


def test_no_prompt_and_a_terminal_on_stdin_is_a_usage_error(server: MockServer) -> None:
    # A terminal on standard input would wait for typing: mal says what it needs instead.
    pty = pytest.importorskip("pty")
    controller, terminal = pty.openpty()
    try:
        done = mal_cli("run", "-m", "openai/m", server=server, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line == (
        "mal run: error: no prompt: give it as an argument, or pipe it to standard input"
    )
    assert server.requests == []


def test_version_prints_the_version_and_exits_0() -> None:
    done = mal_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"mal {mal.__version__}\n"
    assert done.stderr == ""


def test_run_fails_with_one_line_on_a_status_error(server: MockServer) -> None:
    server.add(Reply(status=404))
    done = mal_cli("run", "-m", "ollama/nope", "Hi", server=server)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("mal: NotFoundError:")


def test_run_fails_with_one_line_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = mal_cli("run", "-m", "ollama/m", "Hi", OLLAMA_HOST=f"127.0.0.1:{port}")
    assert done.returncode == 1
    assert done.stderr.strip().startswith("mal: APIConnectionError:")
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / ("mal.exe" if os.name == "nt" else "mal")
    assert script.exists()


def test_mal_log_prints_the_log_to_stderr(server: MockServer) -> None:
    done = mal_cli("run", "-m", "openai/m", "Why?", server=server, MAL_LOG="debug")
    assert done.returncode == 0, done.stderr
    assert done.stdout == TEXT + "\n"
    (line,) = [line for line in done.stderr.splitlines() if " mal DEBUG " in line]
    assert "POST " in line and "-> 200 in" in line and "Why?" not in line
    done = mal_cli("run", "-m", "openai/m", "Why?", server=server, MAL_LOG="loud")
    assert done.returncode == 0 and "MAL_LOG='loud' is not a level" in done.stderr
