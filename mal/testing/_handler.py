"""The HTTP side of `MockServer`: one handler per connection reads a request,
records it, routes it and writes the chosen wire format's response, token
event by token event, with the pacing and misbehaviour the `Reply` asks for."""

from __future__ import annotations

import contextlib
import http.server
import select
import socket
import time
from typing import TYPE_CHECKING, Any, Final, cast

import msgspec

from mal.testing import _rules
from mal.testing._embeddings import (
    _embedding_inputs,
    _embeddings_body,
    _gemini_embeddings_body,
    _gemini_inputs,
)
from mal.testing._gemini import _Gemini
from mal.testing._ollama import _Ollama
from mal.testing._openai import _OpenAI
from mal.testing._routes import (
    _CHECKED,
    _EMBEDDINGS,
    _ROUTES,
    _WIRES,
    _azure_route,
    _gemini_route,
    _guess_provider,
    _Route,
)
from mal.testing._rules import Violation
from mal.testing._script import DEFAULT_MODEL, RecordedRequest, Reply
from mal.testing._wire import _enc, _Job, _now_iso, _Wire

if TYPE_CHECKING:
    from mal.testing._httpd import _HTTPServer

# How often a paused handler looks at the stop flag and at its socket (seconds).
_POLL: Final = 0.05


class _ClientGone(Exception):
    """The client went away in the middle of a response."""


class _Closed(Exception):
    """The connection was closed on purpose (drop, server stopping)."""


_REASONS: Final[dict[int, str]] = {529: "Overloaded"}


def _merge(base: dict[str, str], extra: dict[str, str]) -> list[tuple[str, str]]:
    merged = {name.lower(): (name, value) for name, value in base.items()}
    for name, value in extra.items():
        merged[name.lower()] = (name, value)
    return list(merged.values())


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mal-mock/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # one segment per token event, as real servers do

    # Per-response state.
    _limit: int | None = None
    _sent: int = 0
    _chunked: bool = True
    _ping_interval: float | None = None

    @property
    def _srv(self) -> _HTTPServer:
        return cast("_HTTPServer", self.server)

    def setup(self) -> None:
        super().setup()
        self._srv.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self._srv.untrack(self.connection)

    def handle(self) -> None:
        try:
            super().handle()
        except (_ClientGone, _Closed, OSError):
            self.close_connection = True

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    # ------------------------------------------------------------------ request

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise _Closed
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                data = self.rfile.read(size + 2)
                if len(data) < size + 2:
                    raise _Closed
                parts.append(data[:size])
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise _Closed
        return body

    def _dispatch(self) -> None:
        t0 = time.monotonic()
        self._limit = None
        self._sent = 0
        self._ping_interval = None
        self._chunked = self.request_version not in ("HTTP/0.9", "HTTP/1.0")
        srv = self._srv
        try:
            try:
                body = self._read_body()
            except ValueError:
                self.close_connection = True
                self._send_full(400, "application/json", _enc({"error": "bad request body"}))
                return
            path, _, query = self.path.partition("?")
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                key = name.lower()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            data: Any = None
            if body:
                with contextlib.suppress(msgspec.DecodeError):
                    data = msgspec.json.decode(body)
            route = _ROUTES.get(path) or _azure_route(path) or _gemini_route(path)
            provider = route.provider if route else _guess_provider(path, headers)
            violation = None
            if (
                srv.mock.strict
                and route is not None
                and route.method == self.command
                and route.kind in _CHECKED
                and isinstance(data, dict)
            ):
                azure = path.startswith("/openai/")
                request = _rules.Request(route.kind, path, query, headers, data, azure)
                violation = _rules.check(request)
            srv.mock._record(
                RecordedRequest(
                    self.command, path, headers, body, data, provider, query, violation, t0
                )
            )
            if route is None:
                self._not_found(provider, path)
            elif route.method != self.command:
                msg = f"method {self.command} not allowed on {path}"
                self._send_full(405, "application/json", _enc({"error": msg}))
            elif violation is not None:
                self._reject(route, data, violation, t0)
            elif route.kind in _WIRES:
                self._generate(route, data, t0)
            elif route.kind in _EMBEDDINGS:
                self._embed(route, data, t0)
            else:
                self._info(route, headers)
        except _ClientGone:
            self.close_connection = True
            if not srv.stopping.is_set():
                srv.mock._disconnected()
        except _Closed:
            self.close_connection = True

    def _not_found(self, provider: str, path: str) -> None:
        if provider == "openai":
            error = {
                "message": f"Unknown request URL: {self.command} {path}.",
                "type": "invalid_request_error",
                "param": None,
                "code": "unknown_url",
            }
            body = _enc({"error": error})
        elif provider == "anthropic":
            error = {"type": "not_found_error", "message": "Not Found"}
            body = _enc({"type": "error", "error": error})
        else:
            body = _enc({"error": "404 page not found"})
        self._send_full(404, "application/json", body)

    def _reject(self, route: _Route, data: dict[str, Any], violation: Violation, t0: float) -> None:
        """Answer a request the provider's rules reject as that provider does: its
        error body at `violation.status`, with the wire's usual headers.  No
        `Reply` is taken: the queue stays as it was for the next request."""
        model = route.model or data.get("model")
        model = model if isinstance(model, str) and model else DEFAULT_MODEL
        wire = _CHECKED[route.kind](_Job(model, data, Reply(), t0, [], []))
        body = _enc(violation.body) if violation.body is not None else wire.rejection(violation)
        self._send_full(violation.status, wire.json_type, body, wire.headers())

    def _info(self, route: _Route, headers: dict[str, str]) -> None:
        models = self._srv.mock.models
        if route.kind == "root":
            self._send_full(200, "text/plain; charset=utf-8", b"Ollama is running")
            return
        obj: dict[str, Any]
        if route.kind == "version":
            obj = {"version": "0.0.0-mock"}
        elif route.kind == "tags":
            stamp = _now_iso()
            obj = {
                "models": [
                    {
                        "name": f"{m}:latest",
                        "model": f"{m}:latest",
                        "modified_at": stamp,
                        "size": 1_000_000,
                        "digest": "0" * 64,
                        "details": {
                            "format": "gguf",
                            "family": "mock",
                            "parameter_size": "1M",
                            "quantization_level": "Q4_0",
                        },
                    }
                    for m in models
                ]
            }
        elif "anthropic-version" in headers:
            data = [
                {"type": "model", "id": m, "display_name": m, "created_at": _now_iso()}
                for m in models
            ]
            obj = {
                "data": data,
                "has_more": False,
                "first_id": models[0] if models else None,
                "last_id": models[-1] if models else None,
            }
        else:
            created = int(time.time())
            obj = {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": created, "owned_by": "mal"}
                    for m in models
                ],
            }
        self._send_full(200, "application/json", _enc(obj))

    # ------------------------------------------------------------------ responses

    def _generate(self, route: _Route, data: Any, t0: float) -> None:
        if not isinstance(data, dict):
            job = _Job(DEFAULT_MODEL, {}, Reply(), t0, [], [])
            body = _WIRES[route.kind](job).error_body(400, None, "invalid JSON body")
            self._send_full(400, "application/json", body)
            return
        reply = self._srv.mock._take()
        model = route.model or data.get("model")
        model = model if isinstance(model, str) and model else DEFAULT_MODEL
        flag = data.get("stream") if route.stream is None else route.stream
        stream = route.provider == "ollama" if flag is None else bool(flag)
        job = _Job.make(model, data, reply, t0)
        wire = _WIRES[route.kind](job)
        self._limit = reply.drop_after
        self._ping_interval = reply.ping_interval

        if route.kind == "generate" and job.calls and reply.status < 400:
            # /api/generate has no tools; Ollama answers a bad request with its error JSON.
            self._pause(reply.headers_delay)
            message = "tool calls are only supported on /api/chat"
            body = wire.error_body(400, None, reply.error_message or message)
            self._send_full(400, "application/json; charset=utf-8", body, wire.headers())
        elif reply.status >= 400:
            self._pause(reply.headers_delay)
            if reply.error_body is not None:
                body = reply.error_body
            elif reply.raw is not None or reply.raw_chunks is not None:
                body = reply.raw if reply.raw is not None else b"".join(reply.raw_chunks or [])
            else:
                body = wire.error_body(reply.status, reply.error_type, reply.error_message)
            ctype = reply.content_type or "application/json"
            self._send_full(reply.status, ctype, body, wire.headers(), reply.headers)
        elif reply.raw is not None or reply.raw_chunks is not None:
            self._send_raw(wire, reply, stream)
        elif stream:
            self._stream(wire, job)
        else:
            self._complete(wire, job)

    def _embed(self, route: _Route, data: Any, t0: float) -> None:
        """OpenAI ``/v1/embeddings``, Ollama ``/api/embed`` and Gemini's
        ``:embedContent`` and ``:batchEmbedContents``: one vector per input.

        Each request takes the next queued `Reply`, like a generation: its
        status, error body, delays, headers, `raw` body and `drop_after` apply;
        `embedding_dim` sets the length unless the request asks for ``dimensions``
        (Gemini: ``outputDimensionality``).
        """
        request = data if isinstance(data, dict) else {}
        reply = self._srv.mock._take() if isinstance(data, dict) else Reply()
        model = route.model or request.get("model")
        model = model if isinstance(model, str) and model else DEFAULT_MODEL
        job = _Job.make(model, request, reply, t0)
        gemini = route.provider == "gemini"
        wire: _Wire
        if gemini:
            wire = _Gemini(job)
        elif route.kind == "embeddings":
            wire = _OpenAI(job)
        else:
            wire = _Ollama(job, chat=False)
        json_type = "application/json" if route.kind == "embeddings" else wire.json_type
        self._limit = reply.drop_after
        inputs = _gemini_inputs(route.kind, request) if gemini else None
        if gemini:
            texts = None if inputs is None else [text for text, _ in inputs]
        else:
            texts = _embedding_inputs(request.get("input"))
        if route.kind == "embed" and request.get("input") == []:
            texts = []  # Ollama answers an empty list with no vectors
        self._pause(reply.headers_delay + reply.first_delay)
        if not isinstance(data, dict) or texts is None:
            where = "invalid JSON body" if not isinstance(data, dict) else None
            if route.kind == "embeddings":
                message = where or "'$.input' is invalid. Please check the API reference."
            elif gemini:
                message = where or "Request contains an invalid argument."
            else:
                message = where or "invalid input type"
            body = wire.error_body(400, None, message)
            self._send_full(400, json_type, body, wire.headers())
            return
        if reply.status >= 400:
            if reply.error_body is not None:
                body = reply.error_body
            else:
                body = wire.error_body(reply.status, reply.error_type, reply.error_message)
            ctype = reply.content_type or "application/json"
            self._send_full(reply.status, ctype, body, wire.headers(), reply.headers)
            return
        if reply.raw is not None or reply.raw_chunks is not None:
            body = reply.raw if reply.raw is not None else b"".join(reply.raw_chunks or [])
            ctype = reply.content_type or json_type
            self._send_full(reply.status, ctype, body, wire.headers(), reply.headers)
            return
        dims = request.get("dimensions")
        dim = reply.embedding_dim
        if isinstance(dims, int) and not isinstance(dims, bool) and dims > 0:
            dim = dims
        if inputs is not None:
            body = _gemini_embeddings_body(route.kind, inputs, dim)
        else:
            body = _embeddings_body(route.kind, request, model, texts, dim, t0)
        self._send_full(reply.status, json_type, body, wire.headers(), reply.headers)

    def _stream(self, wire: _Wire, job: _Job) -> None:
        reply = job.reply
        self._pause(reply.headers_delay)
        self._start_stream(reply.status, wire.stream_type, wire.headers(), reply.headers)
        ping = wire.ping
        for frame in wire.prelude():
            self._chunk(frame)
        self._pause(reply.first_delay, ping)
        events = wire.events()
        for i, (kind, token, index) in enumerate(events):
            if i:
                self._pause(reply.chunk_delay, ping)
            if reply.stall_after == i:
                self._pause(reply.stall, ping)
            if reply.error_after == i:
                self._chunk(wire.inband_error(reply.error_type, reply.error_message))
                self._end()
                return
            if job.t_first is None:
                job.t_first = time.monotonic()
            for frame in wire.token(kind, token, index):
                self._chunk(frame)
        n = len(events)
        if reply.stall_after is not None and reply.stall_after >= n:
            self._pause(reply.stall, ping)
        if reply.error_after is not None and reply.error_after >= n:
            self._chunk(wire.inband_error(reply.error_type, reply.error_message))
            self._end()
            return
        for frame in wire.finale():
            self._chunk(frame)
        if not reply.omit_end:
            for frame in wire.end():
                self._chunk(frame)
        self._end()

    def _complete(self, wire: _Wire, job: _Job) -> None:
        reply = job.reply
        n = len(wire.events())
        wait = reply.headers_delay + reply.first_delay + reply.chunk_delay * max(n - 1, 0)
        if reply.stall_after is not None:
            wait += reply.stall
        self._pause(wait)
        job.t_first = job.t0 + (time.monotonic() - job.t0) / 4
        if reply.error_after is not None:
            status = wire.inband_status(reply.error_type)
            body = wire.error_body(status, reply.error_type, reply.error_message)
            self._send_full(status, "application/json", body, wire.headers(), reply.headers)
            return
        body = wire.complete()
        self._send_full(reply.status, wire.json_type, body, wire.headers(), reply.headers)

    def _send_raw(self, wire: _Wire, reply: Reply, stream: bool) -> None:
        if reply.raw_chunks is None and not stream:
            self._pause(reply.headers_delay + reply.first_delay)
            ctype = reply.content_type or wire.json_type
            self._send_full(reply.status, ctype, reply.raw or b"", wire.headers(), reply.headers)
            return
        chunks = reply.raw_chunks if reply.raw_chunks is not None else [reply.raw or b""]
        self._pause(reply.headers_delay)
        ctype = reply.content_type or (wire.stream_type if stream else wire.json_type)
        self._start_stream(reply.status, ctype, wire.headers(), reply.headers)
        ping = wire.ping
        self._pause(reply.first_delay, ping)
        for i, chunk in enumerate(chunks):
            if i:
                self._pause(reply.chunk_delay, ping)
            if reply.stall_after == i:
                self._pause(reply.stall, ping)
            self._chunk(chunk)
        if reply.stall_after is not None and reply.stall_after >= len(chunks):
            self._pause(reply.stall, ping)
        self._end()

    # ------------------------------------------------------------------ low level

    def _send(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except OSError as exc:
            if self._srv.stopping.is_set():
                raise _Closed from exc
            raise _ClientGone from exc

    def _drop(self) -> None:
        _shutdown(self.connection)
        raise _Closed

    def _start(self, status: int, base: dict[str, str], extra: dict[str, str]) -> None:
        self.send_response(status, _REASONS.get(status))
        merged = _merge(base, extra)
        for name, value in merged:
            self.send_header(name, value)
        if self.close_connection and all(n.lower() != "connection" for n, _ in merged):
            self.send_header("Connection", "close")
        try:
            self.end_headers()
        except OSError as exc:
            if self._srv.stopping.is_set():
                raise _Closed from exc
            raise _ClientGone from exc
        if self._limit is not None and self._limit <= 0:
            self._drop()

    def _start_stream(
        self, status: int, ctype: str, base: dict[str, str], extra: dict[str, str]
    ) -> None:
        headers = {"Content-Type": ctype, "Cache-Control": "no-cache", **base}
        if self._chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            self.close_connection = True
        self._start(status, headers, extra)

    def _send_full(
        self,
        status: int,
        ctype: str,
        body: bytes,
        base: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        self._chunked = False
        if status in (204, 304):
            self._start(status, dict(base or {}), extra or {})
            return
        headers = {"Content-Type": ctype, **(base or {}), "Content-Length": str(len(body))}
        self._start(status, headers, extra or {})
        self._chunk(body)

    def _chunk(self, data: bytes) -> None:
        """Write one HTTP chunk (or plain bytes), honouring `drop_after`."""
        if not data:
            return
        limit = self._limit
        if limit is not None and len(data) >= limit - self._sent:
            part = data[: limit - self._sent]
            if self._chunked:
                tail = b"\r\n" if len(part) == len(data) else b""
                self._send(b"%X\r\n%b%b" % (len(data), part, tail))
            else:
                self._send(part)
            self._sent += len(part)
            self._drop()
        self._send(b"%X\r\n%b\r\n" % (len(data), data) if self._chunked else data)
        self._sent += len(data)

    def _end(self) -> None:
        if self._chunked:
            self._send(b"0\r\n\r\n")

    def _pause(self, seconds: float, ping: bytes | None = None) -> None:
        """Wait, sending pings if asked and watching for the client going away."""
        if seconds <= 0:
            return
        stopping = self._srv.stopping
        sock = self.connection
        interval = self._ping_interval if ping else None
        now = time.monotonic()
        deadline = now + seconds
        next_ping = now + interval if interval else float("inf")
        watch = True
        while True:
            if stopping.is_set():
                raise _Closed
            now = time.monotonic()
            if now >= deadline:
                return
            if ping and interval and now >= next_ping:
                self._chunk(ping)
                next_ping = now + interval
                continue
            wait = min(deadline, next_ping, now + _POLL) - now
            if not watch:
                stopping.wait(wait)
                continue
            try:
                readable = select.select([sock], [], [], wait)[0]
            except (OSError, ValueError) as exc:
                raise (_Closed if stopping.is_set() else _ClientGone) from exc
            if not readable:
                continue
            try:
                peek = sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise (_Closed if stopping.is_set() else _ClientGone) from exc
            if not peek:
                raise _Closed if stopping.is_set() else _ClientGone
            watch = False  # the client sent more data: stop watching, just wait
