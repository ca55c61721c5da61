"""The script of a `MockServer`: the replies a test queues and the requests it records.

A `Reply` decides everything about one answer (text, reasoning, tool calls,
timing, misbehaviour); `split_tokens` cuts text into the token events the
wire formats send; a `RecordedRequest` is what the server saw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from mal.testing._rules import Violation

DEFAULT_TEXT: Final = (
    "Hello! I'm a mock model running on your own machine. How can I help you today?"
)
DEFAULT_MODEL: Final = "mock-model"


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
    """Reported input tokens: all of them, cached ones included (each wire
    reports them in its own fields)."""
    cache_read_tokens: int = 0
    """How many of the `input_tokens` were read from the prompt cache (OpenAI
    ``cached_tokens``, Anthropic ``cache_read_input_tokens``)."""
    cache_write_tokens: int = 0
    """How many of the `input_tokens` were written to the prompt cache
    (Anthropic ``cache_creation_input_tokens``; OpenAI does not report them)."""
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
        for name in (
            "error_after",
            "drop_after",
            "stall_after",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
        ):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"Reply.{name} must be >= 0")
        if self.cache_read_tokens + self.cache_write_tokens > self.input_tokens:
            raise ValueError(
                "Reply.cache_read_tokens + cache_write_tokens cannot exceed input_tokens,"
                " which counts every input token"
            )
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
    violation: Violation | None = None
    """The provider's rule the request broke, which the strict server answered
    with the provider's error instead of a `Reply`; None when it was accepted
    (and always with ``strict=False``)."""
    received_at: float = 0.0
    """When the request came (its head read, before its body), on the clock
    of ``time.monotonic()``: how a test sees the pace of requests."""
