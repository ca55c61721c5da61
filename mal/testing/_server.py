"""A scriptable local model server that speaks the Ollama, OpenAI and Anthropic wire formats.

`MockServer` is a real HTTP/1.1 server on the loopback interface, running in a
background thread.  It answers the generation endpoints of the three providers,
streaming (ndjson or server-sent events, one HTTP chunk per token event) or not
(one JSON body with a Content-Length), with realistic ids, timestamps, usage
figures and pacing.  Each request takes the next queued `Reply`, which decides
the text, the timing and any misbehaviour: status errors, in-band errors, a
connection dropped after N body bytes, a stall, keep-alive pings, garbage bodies
or a stream that ends without its end marker.

It only uses the standard library and `msgspec`, so it can run anywhere the
package runs: the library's own tests, ``python -m mal demo`` and users' tests.
"""

from __future__ import annotations

import contextlib
import http.server
import random
import re
import select
import selectors
import socket
import socketserver
import string
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final, cast

import msgspec

__all__ = ["DEFAULT_TEXT", "MockServer", "RecordedRequest", "Reply", "split_tokens"]

DEFAULT_TEXT: Final = (
    "Hello! I'm a mock model running on your own machine. How can I help you today?"
)
DEFAULT_MODEL: Final = "mock-model"

# How often a paused handler looks at the stop flag and at its socket (seconds).
_POLL: Final = 0.05


class _ClientGone(Exception):
    """The client went away in the middle of a response."""


class _Closed(Exception):
    """The connection was closed on purpose (drop, server stopping)."""


# --------------------------------------------------------------------------- replies


@dataclass(kw_only=True)
class Reply:
    """What the server answers to one request.

    Token events are the reasoning tokens followed by the text tokens; the
    counters ``error_after``, ``stall_after`` count them.  Structural events
    (the OpenAI role chunk, Anthropic ``message_start``...) are not token events.
    """

    text: str = DEFAULT_TEXT
    """The generated text (ignored when `tokens` is given)."""
    reasoning: str = ""
    """Thinking text, sent before the text."""
    tokens: list[str] | None = None
    """Explicit token events for the text; ``"".join(tokens)`` is the text."""
    reasoning_tokens: list[str] | None = None
    """Explicit token events for the reasoning."""
    chunk_delay: float = 0.0
    """Seconds between two token events."""
    first_delay: float = 0.0
    """Seconds before the first token event (after the headers)."""
    headers_delay: float = 0.0
    """Seconds before the status line."""
    finish_reason: str | None = None
    """Provider-native stop reason (default: "stop", "stop", "end_turn")."""
    input_tokens: int = 11
    output_tokens: int | None = None
    """Reported output tokens (default: the number of token events)."""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers (they override the server's own)."""
    error_body: bytes | None = None
    """Body sent when ``status >= 400`` (default: the provider's error JSON)."""
    error_after: int | None = None
    """Send the provider's in-band error after that many token events."""
    error_type: str | None = None
    error_message: str = ""
    """Message of the error (default: a provider-like message)."""
    drop_after: int | None = None
    """Close the TCP connection after that many bytes of response body."""
    stall_after: int | None = None
    """Stop sending for `stall` seconds after that many token events."""
    stall: float = 3600.0
    ping_interval: float | None = None
    """Keep-alive interval while stalled or waiting (OpenAI and Anthropic)."""
    raw: bytes | None = None
    """Send exactly these bytes as the body."""
    raw_chunks: list[bytes] | None = None
    """Send exactly these bytes as the body, one HTTP chunk each."""
    content_type: str | None = None
    """Content-Type for `raw`, `raw_chunks` or `error_body`."""
    omit_end: bool = False
    """Leave out the end marker (done line, ``[DONE]``, ``message_stop``)."""

    def __post_init__(self) -> None:
        for name in ("chunk_delay", "first_delay", "headers_delay", "stall"):
            if getattr(self, name) < 0:
                raise ValueError(f"Reply.{name} must be >= 0")
        for name in ("error_after", "drop_after", "stall_after", "output_tokens"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"Reply.{name} must be >= 0")
        if self.ping_interval is not None and self.ping_interval <= 0:
            raise ValueError("Reply.ping_interval must be > 0")
        if not 200 <= self.status <= 999:
            raise ValueError("Reply.status must be between 200 and 999")

    def text_tokens(self) -> list[str]:
        """The token events of the text."""
        return list(self.tokens) if self.tokens is not None else split_tokens(self.text)

    def thinking_tokens(self) -> list[str]:
        """The token events of the reasoning."""
        if self.reasoning_tokens is not None:
            return list(self.reasoning_tokens)
        return split_tokens(self.reasoning)


_TOKEN_RE: Final = re.compile(r"\n+|[^\S\n]*\w+|[^\S\n]*[^\w\s]+|[^\S\n]+")


def split_tokens(text: str) -> list[str]:
    """Split `text` into small, realistic tokens; ``"".join`` gives `text` back.

    Words keep their leading space, punctuation and runs of newlines are tokens
    of their own, and words longer than six characters are cut into pieces of
    four.
    """
    out: list[str] = []
    for match in _TOKEN_RE.finditer(text):
        piece = match.group()
        word = piece.lstrip()
        if len(word) <= 6:
            out.append(piece)
            continue
        lead = piece[: len(piece) - len(word)]
        out.append(lead + word[:4])
        out.extend(word[i : i + 4] for i in range(4, len(word), 4))
    return out


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    """The path, without the query string."""
    headers: dict[str, str]
    """Request headers, with lower-case names."""
    body: bytes
    json: Any
    """The parsed JSON body, or None."""
    provider: str
    """"ollama", "openai", "anthropic", or "" for an unknown path."""
    query: str = ""


# --------------------------------------------------------------------------- wire formats


def _enc(obj: Any) -> bytes:
    return msgspec.json.encode(obj)


_ALNUM: Final = string.ascii_letters + string.digits


def _rand(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(random.choices(alphabet, k=n))


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_FINGERPRINT: Final = "fp_" + _rand(10, "0123456789abcdef")


@dataclass
class _Job:
    """Everything a wire format needs to render one reply."""

    model: str
    request: dict[str, Any]
    reply: Reply
    t0: float
    text_tokens: list[str]
    thinking_tokens: list[str]
    t_first: float | None = None

    @property
    def text(self) -> str:
        return "".join(self.text_tokens)

    @property
    def thinking(self) -> str:
        return "".join(self.thinking_tokens)

    @property
    def output_tokens(self) -> int:
        if self.reply.output_tokens is not None:
            return self.reply.output_tokens
        return len(self.text_tokens) + len(self.thinking_tokens)


class _Wire:
    """One provider's wire format, for one response."""

    provider = ""
    default_finish = "stop"
    stream_type = "text/event-stream; charset=utf-8"
    json_type = "application/json"
    ping: bytes | None = None

    def __init__(self, job: _Job) -> None:
        self.job = job

    @property
    def finish(self) -> str:
        reason = self.job.reply.finish_reason
        return self.default_finish if reason is None else reason

    def headers(self) -> dict[str, str]:
        return {}

    def prelude(self) -> list[bytes]:
        return []

    def token(self, kind: str, text: str) -> list[bytes]:
        raise NotImplementedError

    def finale(self) -> list[bytes]:
        return []

    def end(self) -> list[bytes]:
        raise NotImplementedError

    def inband_error(self, etype: str | None, message: str) -> bytes:
        raise NotImplementedError

    def inband_status(self, etype: str | None) -> int:
        return 500

    def complete(self) -> bytes:
        raise NotImplementedError

    def error_body(self, status: int, etype: str | None, message: str) -> bytes:
        raise NotImplementedError


class _Ollama(_Wire):
    provider = "ollama"
    stream_type = "application/x-ndjson"
    json_type = "application/json; charset=utf-8"

    def __init__(self, job: _Job, *, chat: bool) -> None:
        super().__init__(job)
        self.chat = chat

    def _head(self) -> dict[str, Any]:
        return {"model": self.job.model, "created_at": _now_iso()}

    def _content(self, obj: dict[str, Any], text: str, thinking: str | None) -> None:
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking is not None:
                message["thinking"] = thinking
            obj["message"] = message
        else:
            obj["response"] = text
            if thinking is not None:
                obj["thinking"] = thinking

    def token(self, kind: str, text: str) -> list[bytes]:
        obj = self._head()
        if kind == "thinking":
            self._content(obj, "", text)
        else:
            self._content(obj, text, None)
        obj["done"] = False
        return [_enc(obj) + b"\n"]

    def _final(self, text: str, thinking: str | None) -> dict[str, Any]:
        job = self.job
        obj = self._head()
        self._content(obj, text, thinking)
        now = time.monotonic()
        first = job.t_first if job.t_first is not None else job.t0 + (now - job.t0) / 4
        total = int((now - job.t0) * 1e9)
        if self.chat:
            obj["done_reason"] = self.finish
            obj["done"] = True
        else:
            obj["done"] = True
            obj["done_reason"] = self.finish
            size = min(job.reply.input_tokens + job.output_tokens, 4096)
            obj["context"] = [(i * 7919) % 32000 + 1 for i in range(size)]
        obj["total_duration"] = total
        obj["load_duration"] = min(total // 10, 1_234_567)
        obj["prompt_eval_count"] = job.reply.input_tokens
        obj["prompt_eval_duration"] = max(int((first - job.t0) * 1e9), 0)
        obj["eval_count"] = job.output_tokens
        obj["eval_duration"] = max(int((now - first) * 1e9), 0)
        return obj

    def end(self) -> list[bytes]:
        return [_enc(self._final("", None)) + b"\n"]

    def inband_error(self, etype: str | None, message: str) -> bytes:
        message = message or "an error was encountered while running the model"
        return _enc({"error": message}) + b"\n"

    def complete(self) -> bytes:
        thinking = self.job.thinking or None
        return _enc(self._final(self.job.text, thinking))

    def error_body(self, status: int, etype: str | None, message: str) -> bytes:
        if not message:
            if status == 404:
                message = f'model "{self.job.model}" not found, try pulling it first'
            elif status == 400:
                message = "invalid request"
            elif status in (401, 403):
                message = "unauthorized"
            elif status == 429:
                message = "server busy, please try again.  maximum pending requests exceeded"
            else:
                message = "an error was encountered while running the model"
        return _enc({"error": message})


_OPENAI_ERRORS: Final[dict[int, tuple[str, str | None, str]]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported.",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model `{model}` does not exist or you do not have access to it.",
    ),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again in 1s.",
    ),
}
_OPENAI_SERVER_ERROR: Final = (
    "server_error",
    None,
    "The server had an error while processing your request. Sorry about that!",
)


class _OpenAI(_Wire):
    provider = "openai"
    ping = b": ping\n\n"

    def __init__(self, job: _Job) -> None:
        super().__init__(job)
        self.id = "chatcmpl-" + _rand(29)
        self.created = int(time.time())
        options = job.request.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True

    def headers(self) -> dict[str, str]:
        return {"x-request-id": "req_" + _rand(32, "0123456789abcdef")}

    def _obj(self, choices: list[Any]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.job.model,
            "system_fingerprint": _FINGERPRINT,
            "choices": choices,
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        obj = self._obj([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])
        if self.include_usage:
            obj["usage"] = None
        return b"data: " + _enc(obj) + b"\n\n"

    def _usage(self) -> dict[str, Any]:
        job = self.job
        return {
            "prompt_tokens": job.reply.input_tokens,
            "completion_tokens": job.output_tokens,
            "total_tokens": job.reply.input_tokens + job.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": len(job.thinking_tokens)},
        }

    def prelude(self) -> list[bytes]:
        return [self._chunk({"role": "assistant", "content": "", "refusal": None})]

    def token(self, kind: str, text: str) -> list[bytes]:
        if kind == "thinking":
            return [self._chunk({"reasoning_content": text})]
        return [self._chunk({"content": text})]

    def finale(self) -> list[bytes]:
        frames = [self._chunk({}, self.finish)]
        if self.include_usage:
            obj = self._obj([])
            obj["usage"] = self._usage()
            frames.append(b"data: " + _enc(obj) + b"\n\n")
        return frames

    def end(self) -> list[bytes]:
        return [b"data: [DONE]\n\n"]

    def inband_error(self, etype: str | None, message: str) -> bytes:
        error = {
            "message": message or _OPENAI_SERVER_ERROR[2],
            "type": etype or _OPENAI_SERVER_ERROR[0],
            "param": None,
            "code": None,
        }
        return b"data: " + _enc({"error": error}) + b"\n\n"

    def complete(self) -> bytes:
        job = self.job
        message: dict[str, Any] = {"role": "assistant", "content": job.text, "refusal": None}
        if job.thinking_tokens:
            message["reasoning_content"] = job.thinking
        obj = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": job.model,
            "system_fingerprint": _FINGERPRINT,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish}
            ],
            "usage": self._usage(),
        }
        return _enc(obj)

    def error_body(self, status: int, etype: str | None, message: str) -> bytes:
        default_type, code, default_message = _OPENAI_ERRORS.get(status, _OPENAI_SERVER_ERROR)
        if status < 500 and status not in _OPENAI_ERRORS:
            default_type, code, default_message = _OPENAI_ERRORS[400]
        error = {
            "message": message or default_message.format(model=self.job.model),
            "type": etype or default_type,
            "param": None,
            "code": code,
        }
        return _enc({"error": error})


_ANTHROPIC_TYPES: Final[dict[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ANTHROPIC_STATUS: Final[dict[str, int]] = {v: k for k, v in _ANTHROPIC_TYPES.items()}
_ANTHROPIC_MESSAGES: Final[dict[str, str]] = {
    "invalid_request_error": "Invalid request.",
    "authentication_error": "invalid x-api-key",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "model: {model}",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit.",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out.",
    "overloaded_error": "Overloaded",
}


class _Anthropic(_Wire):
    provider = "anthropic"
    default_finish = "end_turn"
    ping = b'event: ping\ndata: {"type": "ping"}\n\n'

    def __init__(self, job: _Job) -> None:
        super().__init__(job)
        self.id = "msg_01" + _rand(22)
        self.has_thinking = bool(job.thinking_tokens)
        self.text_open = not self.has_thinking
        self.signature = _rand(120, _ALNUM + "+/")

    def headers(self) -> dict[str, str]:
        return {"request-id": "req_011C" + _rand(20)}

    @staticmethod
    def _event(name: str, obj: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + _enc(obj) + b"\n\n"

    def _usage(self, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": self.job.reply.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
        }

    def _message(self, content: list[Any], stop: str | None, output_tokens: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.job.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": self._usage(output_tokens),
        }

    def _block_start(self, index: int, block: dict[str, Any]) -> bytes:
        obj = {"type": "content_block_start", "index": index, "content_block": block}
        return self._event("content_block_start", obj)

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        obj = {"type": "content_block_delta", "index": index, "delta": delta}
        return self._event("content_block_delta", obj)

    def _block_stop(self, index: int) -> bytes:
        return self._event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _open_text(self) -> list[bytes]:
        if self.text_open:
            return []
        self.text_open = True
        return [
            self._delta(0, {"type": "signature_delta", "signature": self.signature}),
            self._block_stop(0),
            self._block_start(1, {"type": "text", "text": ""}),
        ]

    @property
    def _text_index(self) -> int:
        return 1 if self.has_thinking else 0

    def prelude(self) -> list[bytes]:
        start = {"type": "message_start", "message": self._message([], None, 1)}
        if self.has_thinking:
            block: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            block = {"type": "text", "text": ""}
        return [
            self._event("message_start", start),
            self._block_start(0, block),
            self.ping or b"",
        ]

    def token(self, kind: str, text: str) -> list[bytes]:
        if kind == "thinking":
            return [self._delta(0, {"type": "thinking_delta", "thinking": text})]
        frames = self._open_text()
        frames.append(self._delta(self._text_index, {"type": "text_delta", "text": text}))
        return frames

    def finale(self) -> list[bytes]:
        frames = self._open_text()
        frames.append(self._block_stop(self._text_index))
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self.finish, "stop_sequence": None},
            "usage": {"output_tokens": self.job.output_tokens},
        }
        frames.append(self._event("message_delta", delta))
        return frames

    def end(self) -> list[bytes]:
        return [self._event("message_stop", {"type": "message_stop"})]

    def _error(self, etype: str, message: str) -> dict[str, Any]:
        message = message or _ANTHROPIC_MESSAGES.get(etype, "Error").format(model=self.job.model)
        return {"type": "error", "error": {"type": etype, "message": message}}

    def inband_error(self, etype: str | None, message: str) -> bytes:
        return self._event("error", self._error(etype or "overloaded_error", message))

    def inband_status(self, etype: str | None) -> int:
        return _ANTHROPIC_STATUS.get(etype or "overloaded_error", 500)

    def complete(self) -> bytes:
        job = self.job
        content: list[Any] = []
        if self.has_thinking:
            block = {"type": "thinking", "thinking": job.thinking, "signature": self.signature}
            content.append(block)
        content.append({"type": "text", "text": job.text})
        return _enc(self._message(content, self.finish, job.output_tokens))

    def error_body(self, status: int, etype: str | None, message: str) -> bytes:
        default = _ANTHROPIC_TYPES.get(status)
        if default is None:
            default = "api_error" if status >= 500 else "invalid_request_error"
        obj = self._error(etype or default, message)
        obj["request_id"] = "req_011C" + _rand(20)
        return _enc(obj)


# --------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class _Route:
    provider: str
    method: str
    kind: str


_ROUTES: Final[dict[str, _Route]] = {
    "/api/generate": _Route("ollama", "POST", "generate"),
    "/api/chat": _Route("ollama", "POST", "chat"),
    "/v1/chat/completions": _Route("openai", "POST", "openai"),
    "/chat/completions": _Route("openai", "POST", "openai"),
    "/v1/messages": _Route("anthropic", "POST", "anthropic"),
    "/": _Route("ollama", "GET", "root"),
    "/api/version": _Route("ollama", "GET", "version"),
    "/api/tags": _Route("ollama", "GET", "tags"),
    "/v1/models": _Route("openai", "GET", "models"),
}

_WIRES: Final[dict[str, Callable[[_Job], _Wire]]] = {
    "generate": lambda job: _Ollama(job, chat=False),
    "chat": lambda job: _Ollama(job, chat=True),
    "openai": _OpenAI,
    "anthropic": _Anthropic,
}

_REASONS: Final[dict[int, str]] = {529: "Overloaded"}


def _guess_provider(path: str, headers: dict[str, str]) -> str:
    if path.startswith("/api/"):
        return "ollama"
    if "anthropic-version" in headers or path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1/"):
        return "openai"
    return ""


def _merge(base: dict[str, str], extra: dict[str, str]) -> list[tuple[str, str]]:
    merged = {name.lower(): (name, value) for name, value in base.items()}
    for name, value in extra.items():
        merged[name.lower()] = (name, value)
    return list(merged.values())


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


# --------------------------------------------------------------------------- HTTP


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
        return cast(_HTTPServer, self.server)

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
            route = _ROUTES.get(path)
            provider = route.provider if route else _guess_provider(path, headers)
            srv.mock._record(
                RecordedRequest(self.command, path, headers, body, data, provider, query)
            )
            if route is None:
                self._not_found(provider, path)
            elif route.method != self.command:
                msg = f"method {self.command} not allowed on {path}"
                self._send_full(405, "application/json", _enc({"error": msg}))
            elif route.kind in _WIRES:
                self._generate(route, data, t0)
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
        model = data.get("model")
        model = model if isinstance(model, str) and model else DEFAULT_MODEL
        flag = data.get("stream")
        stream = route.provider == "ollama" if flag is None else bool(flag)
        job = _Job(model, data, reply, t0, reply.text_tokens(), reply.thinking_tokens())
        wire = _WIRES[route.kind](job)
        self._limit = reply.drop_after
        self._ping_interval = reply.ping_interval

        if reply.status >= 400:
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

    def _stream(self, wire: _Wire, job: _Job) -> None:
        reply = job.reply
        self._pause(reply.headers_delay)
        self._start_stream(reply.status, wire.stream_type, wire.headers(), reply.headers)
        ping = wire.ping
        for frame in wire.prelude():
            self._chunk(frame)
        self._pause(reply.first_delay, ping)
        events = [("thinking", t) for t in job.thinking_tokens]
        events += [("text", t) for t in job.text_tokens]
        for i, (kind, token) in enumerate(events):
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
            for frame in wire.token(kind, token):
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
        n = len(job.text_tokens) + len(job.thinking_tokens)
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


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], mock: MockServer) -> None:
        self.mock = mock
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: dict[socket.socket, threading.Thread] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        try:
            super().__init__(address, _Handler)
        except BaseException:
            self._wake_r.close()
            self._wake_w.close()
            raise

    def serve(self) -> None:
        """Accept connections until `wake` is called after `stopping` is set.

        Unlike `serve_forever`, this does not poll, so stopping is immediate.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self.stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self.stopping.is_set():
                        self._accept()

    def _accept(self) -> None:
        try:
            request, address = self.get_request()
        except OSError:
            return
        try:
            self.process_request(request, address)
        except Exception:
            self.handle_error(request, address)
            self.shutdown_request(request)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), which can be slow; skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            if self.stopping.is_set():
                _shutdown(sock)
            self._open[sock] = threading.current_thread()
        self.mock._connected()

    def untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.pop(sock, None)

    def close_connections(self) -> list[threading.Thread]:
        with self._lock:
            self.stopping.set()
            items = list(self._open.items())
        for sock, _ in items:
            _shutdown(sock)
        return [thread for _, thread in items]


# --------------------------------------------------------------------------- public server


class MockServer:
    """A local model server for tests and demos; see the module docstring.

    Use it as a context manager, or call `start` and `stop`.  Replies queued
    with `add` are used first-in first-out, one per generation request; when
    the queue is empty `default` answers.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default: Reply | None = None,
        models: list[str] | None = None,
    ) -> None:
        self.default: Reply = default if default is not None else Reply()
        self.models: list[str] = list(models) if models is not None else [DEFAULT_MODEL]
        self._host = host
        self._port = port
        self._cond = threading.Condition()
        self._queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._connections = 0
        self._disconnects = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> MockServer:
        """Start serving (no-op when already started); returns self."""
        if self._httpd is not None:
            return self
        httpd = _HTTPServer((self._host, self._port), self)
        thread = threading.Thread(
            target=httpd.serve,
            name=f"mal-mock-server-{httpd.server_port}",
            daemon=True,
        )
        thread.start()
        self._httpd, self._thread = httpd, thread
        return self

    def stop(self, timeout: float = 1.0) -> None:
        """Stop serving and close every connection, waiting up to `timeout`."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        deadline = time.monotonic() + timeout
        httpd.stopping.set()
        httpd.wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(deadline - time.monotonic(), 0))
        httpd.server_close()
        workers = httpd.close_connections()
        for worker in workers:
            if worker is not threading.current_thread():
                worker.join(max(deadline - time.monotonic(), 0))

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._httpd is not None else "stopped"
        return f"<MockServer {where}>"

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the MockServer is not running")
        return self._httpd.server_port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self._host}:{self.port}"

    def url(self, provider: str) -> str:
        """The base URL a client of `provider` should use."""
        if provider in ("ollama", "anthropic"):
            return self.base_url
        if provider == "openai":
            return self.base_url + "/v1"
        raise ValueError(f"unknown provider {provider!r}")

    # ------------------------------------------------------------------ script

    def add(self, *replies: Reply | str) -> None:
        """Queue replies (a string is short for ``Reply(text=...)``)."""
        with self._cond:
            for reply in replies:
                self._queue.append(Reply(text=reply) if isinstance(reply, str) else reply)

    @property
    def pending(self) -> int:
        """Number of queued replies not used yet."""
        with self._cond:
            return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far."""
        with self._cond:
            return list(self._requests)

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        with self._cond:
            return self._connections

    @property
    def disconnects(self) -> int:
        """Responses cut short because the client went away."""
        with self._cond:
            return self._disconnects

    def wait_for_disconnect(self, timeout: float = 2.0, count: int = 1) -> bool:
        """Wait until `disconnects` reaches `count` (since the last reset)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._disconnects >= count, timeout)

    def wait_for_requests(self, count: int = 1, timeout: float = 2.0) -> bool:
        """Wait until `count` requests were received (since the last reset)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._requests) >= count, timeout)

    def reset(self) -> None:
        """Forget requests, queued replies and counters (`default` is kept)."""
        with self._cond:
            self._queue.clear()
            self._requests.clear()
            self._connections = 0
            self._disconnects = 0

    # ------------------------------------------------------------------ handler hooks

    def _take(self) -> Reply:
        with self._cond:
            return self._queue.popleft() if self._queue else self.default

    def _record(self, request: RecordedRequest) -> None:
        with self._cond:
            self._requests.append(request)
            self._cond.notify_all()

    def _connected(self) -> None:
        with self._cond:
            self._connections += 1

    def _disconnected(self) -> None:
        with self._cond:
            self._disconnects += 1
            self._cond.notify_all()
