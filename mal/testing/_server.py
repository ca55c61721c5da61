"""A scriptable local model server that speaks the Ollama, OpenAI and Anthropic wire formats.

`MockServer` is a real HTTP/1.1 server on the loopback interface, running in a
background thread.  It answers the generation endpoints of the three providers
(with OpenAI's Responses API, Azure OpenAI's deployment URLs, and the OpenAI
and Ollama embedding endpoints), streaming (ndjson or
server-sent events, one HTTP chunk per token event) or not (one JSON body with
a Content-Length), with realistic ids, timestamps, usage figures and pacing.
Each request takes the next queued `Reply`, which decides the text, reasoning,
tool calls, JSON output or refusal, the timing and any misbehaviour: status
errors, in-band errors, a connection dropped after N body bytes, a stall,
keep-alive pings, garbage bodies or a stream that ends without its end marker.

It only uses the standard library and `msgspec`, so it can run anywhere the
package runs: the library's own tests, ``python -m mal demo`` and users' tests.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import random
import re
import select
import selectors
import socket
import socketserver
import string
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final, cast

import msgspec

__all__ = [
    "DEFAULT_TEXT",
    "MockServer",
    "RecordedRequest",
    "Reply",
    "ScriptedToolCall",
    "split_tokens",
]

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


@dataclass(frozen=True)
class ScriptedToolCall:
    """One tool call a `Reply` makes.

    `arguments` is a dict, sent as compact JSON text (OpenAI, Anthropic
    streams) or as an object (Ollama, Anthropic ``input``), or a string sent
    exactly as the arguments' JSON text, so a test can script broken
    arguments.  `id` replaces the provider-like id the server makes up.
    """

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("ScriptedToolCall.name must be a non-empty string")
        if not isinstance(self.arguments, (dict, str)):
            raise ValueError("ScriptedToolCall.arguments must be a dict or a JSON string")
        if self.id is not None and (not isinstance(self.id, str) or not self.id):
            raise ValueError("ScriptedToolCall.id must be a non-empty string or None")


def _scripted(call: ScriptedToolCall | dict[str, Any]) -> ScriptedToolCall:
    if isinstance(call, ScriptedToolCall):
        return call
    if not isinstance(call, dict):
        raise ValueError(f"Reply.tool_calls entries are dicts or ScriptedToolCall, not {call!r}")
    unknown = set(call) - {"name", "arguments", "id"}
    if unknown:
        raise ValueError(f"unknown tool call keys {sorted(unknown)}; use name, arguments, id")
    if "name" not in call:
        raise ValueError("a scripted tool call needs a name")
    return ScriptedToolCall(call["name"], call.get("arguments", {}), call.get("id"))


@dataclass(kw_only=True)
class Reply:
    """What the server answers to one request.

    Token events are the reasoning tokens, then the text (or refusal) tokens,
    then the tool calls: on OpenAI and Anthropic one event opening each call
    and one per piece of its arguments, on Ollama one per chunk of whole
    calls.  The counters ``error_after``, ``stall_after`` count them.
    Structural events (the OpenAI role chunk, Anthropic ``message_start``...)
    are not token events.
    """

    text: str = DEFAULT_TEXT
    """The generated text (ignored when `tokens` is given).  With `tool_calls`
    or `refusal` it defaults to no text."""
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
    tool_calls: list[ScriptedToolCall | dict[str, Any]] | None = None
    """Tool calls sent after the text (dicts with ``name``, ``arguments`` and an
    optional ``id`` are turned into `ScriptedToolCall`).  The stop reason becomes
    the provider's tool stop reason ("tool_calls", "tool_use"; Ollama keeps
    "stop") unless `finish_reason` is given."""
    tool_calls_per_chunk: int = 1
    """Ollama sends whole calls; this many share one streamed chunk."""
    json: Any = None
    """Answer with the compact JSON text of this object (instead of `text`)."""
    refusal: str | None = None
    """A refusal instead of text: OpenAI ``refusal``, Anthropic text with
    ``stop_reason: "refusal"``, Ollama plain text."""
    signature: str | None = None
    """Signature of the Anthropic thinking block (default: a made-up one)."""
    embedding_dim: int = 8
    """Length of the vectors the embedding endpoints return (a request's own
    ``dimensions`` wins)."""

    def __post_init__(self) -> None:
        explicit_text = self.tokens is not None or self.text != DEFAULT_TEXT
        if self.json is not None:
            try:
                encoded = msgspec.json.encode(self.json).decode()
            except (TypeError, msgspec.EncodeError) as exc:
                raise ValueError(f"Reply.json cannot be encoded as JSON: {exc}") from None
            # The text may already be that JSON: `dataclasses.replace` passes it back.
            if self.tokens is not None or self.text not in (DEFAULT_TEXT, encoded):
                raise ValueError("Reply.json cannot be combined with text or tokens")
            self.text = encoded
        if self.refusal is not None:
            if not isinstance(self.refusal, str):
                raise ValueError("Reply.refusal must be a string")
            explicit_text = self.tokens is not None or self.text not in (DEFAULT_TEXT, "")
            if explicit_text or self.json is not None or self.tool_calls:
                raise ValueError(
                    "Reply.refusal cannot be combined with text, tokens, json or tool_calls"
                )
            self.text = ""
        if self.tool_calls is not None:
            if not isinstance(self.tool_calls, list):
                raise ValueError("Reply.tool_calls must be a list")
            self.tool_calls = [_scripted(call) for call in self.tool_calls]
            if self.tool_calls and not explicit_text and self.json is None:
                self.text = ""
        if self.tool_calls_per_chunk < 1:
            raise ValueError("Reply.tool_calls_per_chunk must be >= 1")
        if self.embedding_dim < 1:
            raise ValueError("Reply.embedding_dim must be >= 1")
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

    def refusal_tokens(self) -> list[str]:
        """The token events of the refusal."""
        return split_tokens(self.refusal) if self.refusal else []

    def scripted_calls(self) -> list[ScriptedToolCall]:
        """The tool calls, as `ScriptedToolCall`."""
        return [_scripted(call) for call in self.tool_calls or ()]


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
_LOWER_ALNUM: Final = string.ascii_lowercase + string.digits


def _signature() -> str:
    """A made-up thinking signature: base64 of an opaque blob, like Anthropic's ("Ev...")."""
    blob = b"\x12" + random.randbytes(255)
    return base64.b64encode(blob).decode()


def _pieces(text: str) -> tuple[str, ...]:
    """Cut `text` into pieces of 3 to 8 characters, as the providers stream arguments.

    The cuts are seeded by the text, so the same arguments always stream the same way.
    """
    rng = random.Random(text)
    out: list[str] = []
    i = 0
    while i < len(text):
        n = rng.randint(3, 8)
        out.append(text[i : i + n])
        i += n
    return tuple(out)


@dataclass(frozen=True)
class _Call:
    """A scripted tool call, ready for the wire formats."""

    name: str
    id: str | None
    arguments_json: str
    """The arguments' JSON text: compact JSON of a dict, or the scripted string as is."""
    arguments: Any
    """The arguments as an object, for the formats that send objects (a string
    that is not JSON stays a string)."""
    pieces: tuple[str, ...]

    @classmethod
    def make(cls, call: ScriptedToolCall) -> _Call:
        args = call.arguments
        if isinstance(args, str):
            text = args
            try:
                obj: Any = msgspec.json.decode(args) if args else {}
            except msgspec.DecodeError:
                obj = args
        else:
            text = _enc(args).decode()
            obj = args
        return cls(call.name, call.id, text, obj, _pieces(text))


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
    refusal_tokens: list[str] = field(default_factory=list)
    calls: list[_Call] = field(default_factory=list)

    @classmethod
    def make(cls, model: str, request: dict[str, Any], reply: Reply, t0: float) -> _Job:
        return cls(
            model,
            request,
            reply,
            t0,
            reply.text_tokens(),
            reply.thinking_tokens(),
            refusal_tokens=reply.refusal_tokens(),
            calls=[_Call.make(call) for call in reply.scripted_calls()],
        )

    @property
    def refusal(self) -> str:
        return "".join(self.refusal_tokens)

    @property
    def refused(self) -> bool:
        """The reply is a refusal (maybe an empty one)."""
        return self.reply.refusal is not None

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
        tools = sum(len(call.pieces) + 1 for call in self.calls)
        return len(self.text_tokens) + len(self.thinking_tokens) + len(self.refusal_tokens) + tools


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
        return self.natural_finish() if reason is None else reason

    def natural_finish(self) -> str:
        """The stop reason when the reply does not set one."""
        return self.default_finish

    def headers(self) -> dict[str, str]:
        return {}

    def prelude(self) -> list[bytes]:
        return []

    def events(self) -> list[tuple[str, str, int]]:
        """The token events ``(kind, text, call index)``: reasoning, text, refusal, tools."""
        job = self.job
        out = [("thinking", t, 0) for t in job.thinking_tokens]
        out += [("text", t, 0) for t in job.text_tokens]
        out += [("refusal", t, 0) for t in job.refusal_tokens]
        out += self.tool_events()
        return out

    def tool_events(self) -> list[tuple[str, str, int]]:
        """A ``tool`` event opening each call, then one ``args`` event per piece."""
        out: list[tuple[str, str, int]] = []
        for i, call in enumerate(self.job.calls):
            out.append(("tool", "", i))
            out += [("args", piece, i) for piece in call.pieces]
        return out

    def token(self, kind: str, text: str, index: int) -> list[bytes]:
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
        # server/routes.go toolCallId: "call_" and 8 characters of [a-z0-9].
        self.call_ids = [c.id or "call_" + _rand(8, _LOWER_ALNUM) for c in job.calls]

    def _head(self) -> dict[str, Any]:
        return {"model": self.job.model, "created_at": _now_iso()}

    def _content(
        self,
        obj: dict[str, Any],
        text: str,
        thinking: str | None,
        calls: range | None = None,
    ) -> None:
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking is not None:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = [self._tool_call(i) for i in calls]
            obj["message"] = message
        else:
            obj["response"] = text
            if thinking is not None:
                obj["thinking"] = thinking

    def _tool_call(self, i: int) -> dict[str, Any]:
        # api/types.go ToolCall: the index has no omitempty, arguments is an object.
        call = self.job.calls[i]
        function = {"index": i, "name": call.name, "arguments": call.arguments}
        return {"id": self.call_ids[i], "function": function}

    def tool_events(self) -> list[tuple[str, str, int]]:
        # Each call comes whole; `tool_calls_per_chunk` of them share a chunk.
        step = self.job.reply.tool_calls_per_chunk
        return [("tools", "", i) for i in range(0, len(self.job.calls), step)]

    def token(self, kind: str, text: str, index: int) -> list[bytes]:
        obj = self._head()
        if kind == "thinking":
            self._content(obj, "", text)
        elif kind == "tools":
            stop = min(index + self.job.reply.tool_calls_per_chunk, len(self.job.calls))
            self._content(obj, "", None, range(index, stop))
        else:
            self._content(obj, text, None)
        obj["done"] = False
        return [_enc(obj) + b"\n"]

    def _final(self, text: str, thinking: str | None, calls: range | None = None) -> dict[str, Any]:
        job = self.job
        obj = self._head()
        self._content(obj, text, thinking, calls)
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
        job = self.job
        thinking = job.thinking or None
        return _enc(self._final(job.text + job.refusal, thinking, range(len(job.calls))))

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
        self.call_ids = [c.id or "call_" + _rand(24) for c in job.calls]
        # Only tool calls: the first call's delta carries the role (openai-python's
        # inline snapshot 2018feb6...bin of tests/lib/chat/test_completions_streaming.py).
        self.calls_only = bool(job.calls) and not job.text_tokens and not job.thinking_tokens

    def natural_finish(self) -> str:
        return "tool_calls" if self.job.calls else "stop"

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
        if self.job.refused:
            return [self._chunk({"role": "assistant", "content": None, "refusal": ""})]
        if self.calls_only:
            return []
        return [self._chunk({"role": "assistant", "content": "", "refusal": None})]

    def token(self, kind: str, text: str, index: int) -> list[bytes]:
        if kind == "thinking":
            return [self._chunk({"reasoning_content": text})]
        if kind == "refusal":
            return [self._chunk({"refusal": text})]
        if kind == "tool":
            function = {"name": self.job.calls[index].name, "arguments": ""}
            entry = {"index": index, "id": self.call_ids[index], "type": "function"}
            entry["function"] = function
            if index == 0 and self.calls_only:
                delta = {"role": "assistant", "content": None, "tool_calls": [entry]}
                delta["refusal"] = None
                return [self._chunk(delta)]
            return [self._chunk({"tool_calls": [entry]})]
        if kind == "args":
            piece = {"index": index, "function": {"arguments": text}}
            return [self._chunk({"tool_calls": [piece]})]
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
        content = None if job.refused or (job.calls and not job.text) else job.text
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if job.calls:
            # The order of the API's answers: role, content, tool_calls, refusal.
            message["tool_calls"] = [
                {
                    "id": self.call_ids[i],
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
                for i, call in enumerate(job.calls)
            ]
        message["refusal"] = job.refusal if job.refused else None
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


class _Responses(_OpenAI):
    """The OpenAI Responses API (``/v1/responses``): typed SSE events, one
    output item after another (a reasoning item, a message, function calls),
    and ``response.completed`` (or ``response.incomplete`` when the reply's
    `finish_reason` is "length" or "content_filter") at the end."""

    def __init__(self, job: _Job) -> None:
        super().__init__(job)
        self.id = "resp_" + _rand(48, "0123456789abcdef")
        self.call_ids = [c.id or "call_" + _rand(24) for c in job.calls]
        self.items: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None
        self.seq = 0
        self.text = ""
        self.summary = ""

    def natural_finish(self) -> str:
        return "completed"

    def _event(self, obj: dict[str, Any]) -> bytes:
        obj["sequence_number"] = self.seq
        self.seq += 1
        name = str(obj["type"]).encode()
        return b"event: " + name + b"\ndata: " + _enc(obj) + b"\n\n"

    def _response(self, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "model": self.job.model,
            "output": output,
            "usage": None,
        }
        if status in ("completed", "incomplete"):
            obj["usage"] = {
                "input_tokens": self.job.reply.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": self.job.output_tokens,
                "output_tokens_details": {"reasoning_tokens": len(self.job.thinking_tokens)},
                "total_tokens": self.job.reply.input_tokens + self.job.output_tokens,
            }
        if status == "incomplete":
            reason = "content_filter" if self.finish == "content_filter" else "max_output_tokens"
            obj["incomplete_details"] = {"reason": reason}
        return obj

    def _status(self) -> str:
        return (
            "incomplete"
            if self.finish in ("length", "max_output_tokens", "content_filter")
            else "completed"
        )

    def _close(self) -> list[bytes]:
        """The ``output_item.done`` of the open item."""
        item = self.open
        if item is None:
            return []
        self.open = None
        if item["type"] == "message":
            part = {"type": "output_text", "text": self.text, "annotations": []}
            if self.job.refused:
                part = {"type": "refusal", "refusal": self.text}
            item = {**item, "status": "completed", "content": [part]}
        elif item["type"] == "reasoning":
            item = {**item, "summary": [{"type": "summary_text", "text": self.summary}]}
        elif item["type"] == "function_call":
            call = self.job.calls[item["_index"]]
            item = {k: v for k, v in item.items() if k != "_index"}
            item.update(arguments=call.arguments_json, status="completed")
        self.items.append(item)
        index = len(self.items) - 1
        return [
            self._event({"type": "response.output_item.done", "output_index": index, "item": item})
        ]

    def _open(self, item: dict[str, Any]) -> list[bytes]:
        frames = self._close()
        self.open = item
        shown = {k: v for k, v in item.items() if k != "_index"}
        index = len(self.items)
        frames.append(
            self._event(
                {"type": "response.output_item.added", "output_index": index, "item": shown}
            )
        )
        return frames

    def prelude(self) -> list[bytes]:
        created = self._response("in_progress", [])
        return [
            self._event({"type": "response.created", "response": created}),
            self._event({"type": "response.in_progress", "response": created}),
        ]

    def token(self, kind: str, text: str, index: int) -> list[bytes]:
        frames: list[bytes] = []
        if kind == "tool":
            call = self.job.calls[index]
            opened: dict[str, Any] = {
                "id": "fc_" + _rand(48, "0123456789abcdef"),
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": self.call_ids[index],
                "name": call.name,
                "_index": index,
            }
            return self._open(opened)
        if kind == "thinking" and (self.open is None or self.open["type"] != "reasoning"):
            reasoning = {
                "id": "rs_" + _rand(48, "0123456789abcdef"),
                "type": "reasoning",
                "summary": [],
                "encrypted_content": "gAAAAB" + _rand(64),
            }
            frames += self._open(reasoning)
        elif kind in ("text", "refusal") and (self.open is None or self.open["type"] != "message"):
            message = {
                "id": "msg_" + _rand(48, "0123456789abcdef"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            frames += self._open(message)
        item = self.open
        assert item is not None
        event: dict[str, Any] = {"item_id": item["id"], "output_index": len(self.items)}
        if kind == "thinking":
            self.summary += text
            event.update(type="response.reasoning_summary_text.delta", summary_index=0)
        elif kind == "args":
            event.update(type="response.function_call_arguments.delta")
        else:
            self.text += text
            name = "response.refusal.delta" if kind == "refusal" else "response.output_text.delta"
            event.update(type=name, content_index=0)
        event["delta"] = text
        frames.append(self._event(event))
        return frames

    def finale(self) -> list[bytes]:
        frames = self._close()
        status = self._status()
        name = "response.incomplete" if status == "incomplete" else "response.completed"
        frames.append(self._event({"type": name, "response": self._response(status, self.items)}))
        return frames

    def end(self) -> list[bytes]:
        return []

    def inband_error(self, etype: str | None, message: str) -> bytes:
        return self._event(
            {
                "type": "error",
                "code": etype or "server_error",
                "message": message or _OPENAI_SERVER_ERROR[2],
                "param": None,
            }
        )

    def complete(self) -> bytes:
        for kind, text, index in self.events():
            self.token(kind, text, index)
        self._close()
        return _enc(self._response(self._status(), self.items))


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
        # A text block comes unless the reply is only tool calls.
        self.has_text = bool(job.text_tokens or job.refusal_tokens or not job.calls)
        self.signature = job.reply.signature or _signature()
        self.call_ids = [c.id or "toolu_01" + _rand(22) for c in job.calls]
        self.block: str | None = None
        """The kind of the open content block ("thinking", "text", "tool")."""
        self.index = -1
        self.text_opened = False

    def natural_finish(self) -> str:
        if self.job.calls:
            return "tool_use"
        return "refusal" if self.job.refused else "end_turn"

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

    def _close(self) -> list[bytes]:
        """Close the open block; a thinking block gets its signature just before its stop."""
        frames: list[bytes] = []
        if self.block == "thinking":
            delta = {"type": "signature_delta", "signature": self.signature}
            frames.append(self._delta(self.index, delta))
        if self.block is not None:
            frames.append(self._block_stop(self.index))
        self.block = None
        return frames

    def _open(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        frames = self._close()
        self.index += 1
        self.block = kind
        frames.append(self._block_start(self.index, block))
        return frames

    def _ensure(self, kind: str) -> list[bytes]:
        if self.block == kind:
            return []
        if kind == "thinking":
            return self._open(kind, {"type": "thinking", "thinking": "", "signature": ""})
        self.text_opened = True
        return self._open(kind, {"type": "text", "text": ""})

    def prelude(self) -> list[bytes]:
        start = {"type": "message_start", "message": self._message([], None, 1)}
        frames = [self._event("message_start", start)]
        if self.has_thinking:
            frames += self._ensure("thinking")
        elif self.has_text:
            frames += self._ensure("text")
        frames.append(self.ping or b"")
        return frames

    def token(self, kind: str, text: str, index: int) -> list[bytes]:
        if kind == "thinking":
            frames = self._ensure("thinking")
            frames.append(self._delta(self.index, {"type": "thinking_delta", "thinking": text}))
            return frames
        if kind == "tool":
            # anthropic-sdk-python tests/lib/streaming/fixtures/tool_use_response.txt:
            # `input` is an empty placeholder, then an empty piece, then the pieces.
            block = {
                "type": "tool_use",
                "id": self.call_ids[index],
                "name": self.job.calls[index].name,
                "input": {},
            }
            frames = self._open("tool", block)
            frames.append(self._delta(self.index, {"type": "input_json_delta", "partial_json": ""}))
            return frames
        if kind == "args":
            return [self._delta(self.index, {"type": "input_json_delta", "partial_json": text})]
        frames = self._ensure("text")
        frames.append(self._delta(self.index, {"type": "text_delta", "text": text}))
        return frames

    def finale(self) -> list[bytes]:
        frames = self._ensure("text") if self.has_text and not self.text_opened else []
        frames += self._close()
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
        if self.has_text:
            content.append({"type": "text", "text": job.text + job.refusal})
        for i, call in enumerate(job.calls):
            block = {"type": "tool_use", "id": self.call_ids[i], "name": call.name}
            block["input"] = call.arguments
            content.append(block)
        return _enc(self._message(content, self.finish, job.output_tokens))

    def error_body(self, status: int, etype: str | None, message: str) -> bytes:
        default = _ANTHROPIC_TYPES.get(status)
        if default is None:
            default = "api_error" if status >= 500 else "invalid_request_error"
        obj = self._error(etype or default, message)
        obj["request_id"] = "req_011C" + _rand(20)
        return _enc(obj)


# --------------------------------------------------------------------------- embeddings


def _embedding(text: str, dim: int) -> list[float]:
    """A deterministic unit vector for `text`, in float32 as the providers compute them.

    The same text always gives the same vector, different texts (nearly always)
    different ones, so tests can check that the right input got the right vector.
    """
    rng = random.Random(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    packed = struct.pack(f"<{dim}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{dim}f", packed))


def _embedding_inputs(value: Any) -> list[str] | None:
    """The texts of an ``input`` field: a string or a list of strings.

    OpenAI also takes token arrays (a list of ints, or of lists of ints); each
    array stands for one input, embedded from its JSON text.  None when the
    field has none of these shapes.
    """
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [_enc(value).decode()]
    out: list[str] = []
    for item in value:
        if isinstance(item, str):
            out.append(item)
        elif (
            isinstance(item, list)
            and item
            and all(isinstance(v, int) and not isinstance(v, bool) for v in item)
        ):
            out.append(_enc(item).decode())
        else:
            return None
    return out


# --------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class _Route:
    provider: str
    method: str
    kind: str


#: Azure OpenAI's URLs: a deployment's (with ``?api-version=``) and the v1 API's.
_AZURE_DEPLOYMENT: Final = re.compile(r"\A/openai/deployments/[^/]+/")
_AZURE: Final = re.compile(r"\A/openai/(?:deployments/[^/]+|v1)/(chat/completions|embeddings)\Z")


def _azure_route(path: str) -> _Route | None:
    match = _AZURE.match(path)
    if match is None:
        return None
    kind = "openai" if match.group(1) == "chat/completions" else "embeddings"
    return _Route("openai", "POST", kind)


_ROUTES: Final[dict[str, _Route]] = {
    "/api/generate": _Route("ollama", "POST", "generate"),
    "/api/chat": _Route("ollama", "POST", "chat"),
    "/v1/chat/completions": _Route("openai", "POST", "openai"),
    "/chat/completions": _Route("openai", "POST", "openai"),
    "/v1/messages": _Route("anthropic", "POST", "anthropic"),
    "/v1/responses": _Route("openai", "POST", "responses"),
    "/responses": _Route("openai", "POST", "responses"),
    "/v1/embeddings": _Route("openai", "POST", "embeddings"),
    "/embeddings": _Route("openai", "POST", "embeddings"),
    "/api/embed": _Route("ollama", "POST", "embed"),
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
    "responses": _Responses,
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
            route = _ROUTES.get(path) or _azure_route(path)
            provider = route.provider if route else _guess_provider(path, headers)
            srv.mock._record(
                RecordedRequest(self.command, path, headers, body, data, provider, query)
            )
            if route is None:
                self._not_found(provider, path)
            elif route.method != self.command:
                msg = f"method {self.command} not allowed on {path}"
                self._send_full(405, "application/json", _enc({"error": msg}))
            elif (
                route.kind in _WIRES
                and _AZURE_DEPLOYMENT.match(path)
                and "api-version=" not in query
            ):
                # Azure answers a deployment URL without its api-version so.
                body = _enc({"error": {"code": "404", "message": "Resource not found"}})
                self._send_full(404, "application/json", body)
            elif route.kind in _WIRES:
                self._generate(route, data, t0)
            elif route.kind in ("embeddings", "embed"):
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
        """OpenAI ``/v1/embeddings`` and Ollama ``/api/embed``: one vector per input.

        Each request takes the next queued `Reply`, like a generation: its
        status, error body, delays, headers, `raw` body and `drop_after` apply;
        `embedding_dim` sets the length unless the request asks for ``dimensions``.
        """
        request = data if isinstance(data, dict) else {}
        reply = self._srv.mock._take() if isinstance(data, dict) else Reply()
        model = request.get("model")
        model = model if isinstance(model, str) and model else DEFAULT_MODEL
        job = _Job.make(model, request, reply, t0)
        wire: _Wire = _OpenAI(job) if route.kind == "embeddings" else _Ollama(job, chat=False)
        json_type = "application/json" if route.kind == "embeddings" else wire.json_type
        self._limit = reply.drop_after
        texts = _embedding_inputs(request.get("input"))
        if route.kind == "embed" and request.get("input") == []:
            texts = []  # Ollama answers an empty list with no vectors
        self._pause(reply.headers_delay + reply.first_delay)
        if not isinstance(data, dict) or texts is None:
            where = "invalid JSON body" if not isinstance(data, dict) else None
            if route.kind == "embeddings":
                message = where or "'$.input' is invalid. Please check the API reference."
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
        vectors = [_embedding(text, dim) for text in texts]
        tokens = sum(max(len(split_tokens(text)), 1) for text in texts)
        obj: dict[str, Any]
        if route.kind == "embeddings":
            # openai-python asks for "base64" by default: little-endian float32.
            b64 = request.get("encoding_format") == "base64"
            data_items = [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": (
                        base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
                        if b64
                        else vector
                    ),
                }
                for i, vector in enumerate(vectors)
            ]
            obj = {
                "object": "list",
                "data": data_items,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        else:
            total = max(int((time.monotonic() - t0) * 1e9), 1)
            obj = {
                "model": model,
                "embeddings": vectors,
                "total_duration": total,
                "load_duration": min(total // 10, 1_234_567),
                "prompt_eval_count": tokens,
            }
        self._send_full(reply.status, json_type, _enc(obj), wire.headers(), reply.headers)

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
    with `add` are used first-in first-out, one per generation or embedding
    request; when the queue is empty `default` answers.
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
        if provider == "azure":  # the resource endpoint, as AZURE_OPENAI_ENDPOINT
            return self.base_url
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
