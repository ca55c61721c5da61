"""`mal serve`: the built-in server in its own process, and the `export` lines that point
every provider at it, used by real calls in this process."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import mal
import mal._api
from mal.testing import DEFAULT_TEXT, MockServer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

PROVIDER_VARIABLES = {
    "OLLAMA_HOST",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "GEMINI_API_KEY",
}


@dataclass
class Served:
    process: subprocess.Popen[str]
    exports: dict[str, str]

    @property
    def port(self) -> int:
        return int(self.exports["OPENAI_BASE_URL"].rsplit(":", 1)[1].split("/")[0])

    def stop(self, signum: int) -> tuple[int, str]:
        self.process.send_signal(signum)
        _, err = self.process.communicate(timeout=30)
        return self.process.returncode, err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_exports(stdout: str) -> dict[str, str]:
    exports: dict[str, str] = {}
    for line in stdout.splitlines():
        words = shlex.split(line)
        assert words[0] == "export" and len(words) == 2, line
        name, _, value = words[1].partition("=")
        exports[name] = value
    return exports


def start_serve(*args: str) -> Served:
    """Start `mal serve ARGS` and read its standard output to the end: serve closes it
    once the server listens, as `eval "$(mal serve &)"` needs, and keeps serving."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MAL_",))}
    process = subprocess.Popen(
        [sys.executable, "-m", "mal", "serve", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environ,
        text=True,
        encoding="utf-8",
    )
    watchdog = threading.Timer(30, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        stdout = process.stdout.read()
    finally:
        watchdog.cancel()
    assert process.poll() is None, process.communicate()[1]
    return Served(process, parse_exports(stdout))


@pytest.fixture
def served() -> Iterator[Served]:
    s = start_serve()
    try:
        yield s
    finally:
        if s.process.poll() is None:
            s.process.kill()
            s.process.communicate()


@pytest.fixture
def environment(served: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """The printed variables set in this process, and a fresh default client reading them."""
    for name in list(os.environ):
        if name.startswith(("OLLAMA_", "OPENAI_", "ANTHROPIC_", "AZURE_OPENAI_")):
            monkeypatch.delenv(name)
    for name, value in served.exports.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(mal._api, "_client", None)
    yield served
    client = mal._api._client
    if client is not None:
        client.close()


def test_serve_prints_export_lines_for_every_provider(served: Served) -> None:
    url = f"http://127.0.0.1:{served.port}"
    assert served.exports == {
        "OLLAMA_HOST": url,
        "OPENAI_BASE_URL": url + "/v1",
        "OPENAI_API_KEY": served.exports["OPENAI_API_KEY"],
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": served.exports["ANTHROPIC_API_KEY"],
        "AZURE_OPENAI_ENDPOINT": url,
        "AZURE_OPENAI_API_KEY": served.exports["AZURE_OPENAI_API_KEY"],
        "GOOGLE_GEMINI_BASE_URL": url,
        "GEMINI_API_KEY": served.exports["GEMINI_API_KEY"],
        "MAL_SERVE_PID": str(served.process.pid),
    }
    assert set(served.exports) == {*PROVIDER_VARIABLES, "MAL_SERVE_PID"}
    keys = [served.exports[n] for n in PROVIDER_VARIABLES if n.endswith("_KEY")]
    assert all(keys)


@pytest.mark.parametrize(
    "model",
    [
        "openai/gpt-4o-mini",
        "anthropic/claude-sonnet-4-5",
        "ollama/qwen3:8b",
        "azure/d",
        "gemini/gemini-2.5-flash",
    ],
)
def test_the_printed_variables_point_mal_generate_at_the_server(
    environment: Served, model: str
) -> None:
    assert mal.generate("Why is the sky blue?", model=model) == DEFAULT_TEXT
    with mal.stream([{"role": "user", "content": "And at sunset?"}], model=model) as stream:
        assert "".join(chunk.text for chunk in stream) == DEFAULT_TEXT
    code, err = environment.stop(signal.SIGTERM)
    assert code == 0, err
    assert err.splitlines()[-1] == "mal serve: stopped after 2 requests"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_it_cleanly_and_releases_the_port(served: Served, signum: int) -> None:
    port = served.port
    code, err = served.stop(signum)
    assert code == 0, err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == "mal serve: stopped after 0 requests"
    with socket.socket() as sock:  # nothing listens any more
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    with MockServer(port=port) as again:  # and the port can be listened on again
        assert again.port == port


def test_port_and_text_options() -> None:
    port = free_port()
    served = start_serve("--port", str(port), "--host", "127.0.0.1", "--text", "Blue, mostly.")
    try:
        assert served.exports["OLLAMA_HOST"] == f"http://127.0.0.1:{port}"
        base_url = served.exports["ANTHROPIC_BASE_URL"]
        config = mal.MALConfig(base_urls={"anthropic": base_url}, api_keys={"anthropic": "k"})
        with mal.Client(config) as client:
            assert client.generate("Why?", model="anthropic/c") == "Blue, mostly."
    finally:
        code, err = served.stop(signal.SIGINT)
    assert code == 0, err
    assert err.splitlines()[-1] == "mal serve: stopped after 1 request"


def test_a_port_in_use_is_a_one_line_error() -> None:
    with MockServer() as taken:
        port = taken.port
        done = subprocess.run(
            [sys.executable, "-m", "mal", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"mal serve: error: cannot listen on 127.0.0.1:{port}: ")


def test_eval_in_a_shell_then_run_then_kill() -> None:
    """The README's way: `eval "$(mal serve &)"` returns once it listens."""
    script = """
        eval "$("$PYTHON" -m mal serve --text 'From the shell.' 2>/dev/null &)"
        "$PYTHON" -m mal run -m openai/gpt-4o-mini "Why is the sky blue?"
        kill "$MAL_SERVE_PID"
    """
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "MAL_"))}
    done = subprocess.run(
        ["sh", "-c", script],
        env={**environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "From the shell.\n"
