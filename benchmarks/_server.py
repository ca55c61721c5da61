"""The benchmark server: a minimal, fast HTTP/1.1 server in its own process.

``mal.testing.MockServer`` is a threaded server in the benchmark's own process:
it renders every event as it goes (ids, timestamps), shares the GIL with the
client it serves, and listens with ``socketserver``'s default backlog of 5,
which 1,000 concurrent connections overflow. This server is meant to measure
clients, not itself:

* it runs in a subprocess on 127.0.0.1 (asyncio, non-blocking sockets), so
  its CPU time is not the client's;
* it pre-renders each provider's body (``_bodies.py``) once, as HTTP chunks,
  and answers every request of a provider with exactly those bytes, so every
  client gets the same bytes;
* it is still a real HTTP server: it reads each request (``Content-Length`` or
  chunked), answers with chunked transfer encoding, one HTTP chunk per event,
  each written with its own ``send`` (TCP_NODELAY), and keeps connections alive;
* it listens with a backlog of 4096 and raises its open-file limit, for
  1,000 concurrent streams; with ``--yield-every 1`` it yields to its event
  loop after each chunk, so that concurrent streams interleave token by token
  as a model server's do, instead of each being written in one burst;
* a request for the model ``"short"`` gets a short body (``--short-chunks``),
  for time-to-first-chunk samples on a connection that is not busy;
* a request for the model ``"agent"`` is a step of a tool loop: the first
  step (no tool result in the request) gets the body ``<kind>-agent``
  (``_bodies.AGENT_BODIES``: text, then one call), the next the text body;
* a request that declares ``tools`` gets the tool-call body of its kind
  (``_bodies.TOOL_BODIES``), and one for the model ``shape-X`` the body
  ``<kind>-X`` of ``_bodies.SHAPES`` (another server's shape of the same body);
* ``GET /_stats`` answers its CPU seconds and counters, so a benchmark can tell
  whether the server, rather than the client, was the bottleneck; ``GET
  /_arrivals`` the time (``time.monotonic()``) at which the head of each
  model request arrived, so a benchmark of rate limits can count the requests
  in any window as the provider would.

Routes: ``POST /api/generate``, ``/api/chat`` (Ollama), ``/v1/chat/completions``
(OpenAI, also ``/chat/completions``), ``/v1/messages`` (Anthropic) and
``/v1beta/models/{model}:streamGenerateContent`` (Gemini: the model ``short``
is in the path). Run on
its own it prints its port and serves until killed::

    python benchmarks/_server.py --chunks 20000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

import _bodies
import _common

__all__ = ["BenchServer"]

_ROUTES = {path: kind for kind, path in _bodies.PATHS.items() if kind in _bodies.BODIES}
_ROUTES["/chat/completions"] = "openai"
#: The model name that asks for the short body (for time-to-first-chunk samples).
SHORT_MODEL = "short"
#: Gemini's streaming path, around its model, and the short body's.
_GEMINI = ("/v1beta/models/", ":streamGenerateContent")
_GEMINI_SHORT = _GEMINI[0] + SHORT_MODEL + _GEMINI[1]
#: The model names ``shape-crlf``, ``shape-nospace``... ask for the bodies of
#: ``_bodies.SHAPES`` (``openai-crlf``, ``openai-nospace``...).
SHAPE_MODEL = b"shape-"
#: The model name of a tool loop's steps, and what marks a request that sends
#: a tool's result back (the loop's next step): a ``tool`` message (OpenAI,
#: Ollama), a ``tool_result`` block (Anthropic), a ``functionResponse`` part
#: (Gemini).
AGENT_MODEL = "agent"
_AGENT_MODEL = re.compile(rb'"model":\s*"agent"')
_GEMINI_AGENT = _GEMINI[0] + AGENT_MODEL + _GEMINI[1]
_TOOL_RESULT = re.compile(rb'"role":\s*"tool"|"tool_result"|"functionResponse"')


class _Server:
    def __init__(self, chunks: int, short_chunks: int, yield_every: int) -> None:
        self.yield_every = yield_every
        self.responses: dict[tuple[str, bool], tuple[bytes, list[bytes]]] = {}
        kinds = (
            _bodies.BODIES
            + _bodies.END_TO_END_BODIES
            + _bodies.TOOL_BODIES
            + _bodies.AGENT_BODIES
            + tuple(_bodies.SHAPES)
        )
        for kind, short in itertools.product(kinds, (False, True)):
            body = _bodies.build(kind, short_chunks if short else chunks)
            head = (
                "HTTP/1.1 200 OK\r\n"
                f"content-type: {body.content_type}\r\n"
                "cache-control: no-cache\r\n"
                "transfer-encoding: chunked\r\n"
                "\r\n"
            ).encode()
            frames = [b"%X\r\n%b\r\n" % (len(e), e) for e in body.events]
            frames.append(b"0\r\n\r\n")
            self.responses[kind, short] = (head, frames)
        self.requests = 0
        self.arrivals: list[float] = []
        self.connections = 0
        self.open = 0
        self.max_open = 0
        self.errors = 0

    def stats(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "cpu": usage.ru_utime + usage.ru_stime,
            "requests": self.requests,
            "connections": self.connections,
            "open": self.open,
            "max_open": self.max_open,
            "errors": self.errors,
            "maxrss_kib": usage.ru_maxrss,
        }

    async def serve(self, port: int, backlog: int) -> None:
        loop = asyncio.get_running_loop()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(backlog)
        listener.setblocking(False)
        print(listener.getsockname()[1], flush=True)
        tasks: set[asyncio.Task[None]] = set()
        while True:
            conn, _ = await loop.sock_accept(listener)
            task = asyncio.create_task(self.handle(conn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def handle(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = await loop.sock_recv(conn, 65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                arrived = time.monotonic()
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    body, buf = await self._read_chunked(conn, buf)
                else:
                    length = int(headers.get("content-length") or 0)
                    while len(buf) < length:
                        data = await loop.sock_recv(conn, 65536)
                        if not data:
                            return
                        buf += data
                    body, buf = buf[:length], buf[length:]
                self.requests += 1
                path = target.partition("?")[0]
                close = headers.get("connection", "").lower() == "close"
                if path in ("/_stats", "/_arrivals"):
                    found = self.stats() if path == "/_stats" else self.arrivals
                    payload = json.dumps(found).encode()
                    await loop.sock_sendall(
                        conn,
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\nconnection: close\r\n\r\n%b"
                        % (len(payload), payload),
                    )
                    return
                kind = _ROUTES.get(path)
                short = False
                if kind is None and path.startswith(_GEMINI[0]) and path.endswith(_GEMINI[1]):
                    kind = "gemini"
                    short = path == _GEMINI_SHORT
                if kind is None or method != "POST":
                    await loop.sock_sendall(
                        conn,
                        b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
                        b'content-length: 22\r\n\r\n{"error": "not found"}',
                    )
                    continue
                self.arrivals.append(arrived)
                if path == _GEMINI_AGENT or _AGENT_MODEL.search(body):
                    # A step of a tool loop: the first gets text and a call,
                    # the next (it sends the call's result back) text alone.
                    if not _TOOL_RESULT.search(body):
                        kind = f"{kind}-agent"
                elif b'"tools"' in body:  # a request with tools gets the tool-call body
                    kind = f"{kind}-tools"
                elif SHAPE_MODEL in body:  # the model "shape-X" gets the body of kind-X
                    kind = _shape(kind, body)
                await self._respond(conn, kind, short or _is_short(body))
                if close:
                    return
        except (ConnectionError, OSError, ValueError):
            self.errors += 1
        finally:
            self.open -= 1
            conn.close()

    async def _read_chunked(self, conn: socket.socket, buf: bytes) -> tuple[bytes, bytes]:
        """The body of a chunked request, and the bytes after it."""
        loop = asyncio.get_running_loop()
        parts = []
        while True:
            while b"\r\n" not in buf:
                buf += await self._recv(loop, conn)
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(buf) < size + 2:
                buf += await self._recv(loop, conn)
            parts.append(buf[:size])
            buf = buf[size + 2 :]
            if size == 0:  # no trailers expected
                return b"".join(parts), buf

    @staticmethod
    async def _recv(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> bytes:
        data = await loop.sock_recv(conn, 65536)
        if not data:
            raise ConnectionError("client went away")
        return data

    async def _respond(self, conn: socket.socket, kind: str, short: bool) -> None:
        loop = asyncio.get_running_loop()
        head, frames = self.responses[kind, short]
        send = loop.sock_sendall
        await send(conn, head)
        every = self.yield_every
        if every <= 0:
            for frame in frames:
                await send(conn, frame)  # one send() per chunk while the socket takes it
        else:
            for i, frame in enumerate(frames, 1):
                await send(conn, frame)
                if i % every == 0:
                    await asyncio.sleep(0)


def _shape(kind: str, body: bytes) -> str:
    try:
        model = json.loads(body).get("model", "")
    except ValueError:
        return kind
    shaped = f"{kind}-{model.removeprefix(SHAPE_MODEL.decode())}"
    return shaped if shaped in _bodies.SHAPES else kind


def _is_short(body: bytes) -> bool:
    if SHORT_MODEL.encode() not in body:
        return False
    try:
        return json.loads(body).get("model") == SHORT_MODEL  # type: ignore[no-any-return]
    except ValueError:
        return False


class BenchServer:
    """Runs the benchmark server in a subprocess, for a ``with`` block."""

    def __init__(
        self, chunks: int, *, short_chunks: int = 16, yield_every: int = 0, backlog: int = 4096
    ) -> None:
        self.chunks = chunks
        self.short_chunks = short_chunks
        self.yield_every = yield_every
        self.backlog = backlog
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> BenchServer:
        self._proc = subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--chunks",
                str(self.chunks),
                "--short-chunks",
                str(self.short_chunks),
                "--yield-every",
                str(self.yield_every),
                "--backlog",
                str(self.backlog),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.strip():
            self._proc.kill()
            raise RuntimeError("the benchmark server did not start")
        self.port = int(line)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, provider: str) -> str:
        """The base URL a client of ``provider`` should use."""
        return self.base_url + "/v1" if provider == "openai" else self.base_url

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.base_url + "/_stats", timeout=10) as r:
            return json.loads(r.read())

    def arrivals(self) -> list[float]:
        """When each model request arrived (the server's ``time.monotonic()``)."""
        with urllib.request.urlopen(self.base_url + "/_arrivals", timeout=10) as r:
            return json.loads(r.read())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=20_000, help="text chunks per response")
    ap.add_argument(
        "--short-chunks",
        type=int,
        default=16,
        help=f"text chunks per response for the model {SHORT_MODEL!r} (16)",
    )
    ap.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    ap.add_argument("--backlog", type=int, default=4096, help="listen backlog (4096)")
    ap.add_argument(
        "--yield-every",
        type=int,
        default=0,
        help="yield to the event loop after this many chunks (0: only when the socket is full)",
    )
    args = ap.parse_args()
    _common.raise_nofile()
    server = _Server(args.chunks, args.short_chunks, args.yield_every)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve(args.port, args.backlog))


if __name__ == "__main__":
    main()
