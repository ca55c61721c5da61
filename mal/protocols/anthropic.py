"""The Anthropic Messages protocol.

``POST {base}/v1/messages`` with ``x-api-key`` and ``anthropic-version``; a
streamed response is server-sent events: ``message_start``, then for each
content block ``content_block_start``, ``content_block_delta``...,
``content_block_stop``, then ``message_delta`` (stop reason and usage) and
``message_stop``; ``ping`` events may come at any point, and ``error`` events
report failures. This module contains no networking code at all.
"""

from __future__ import annotations

from typing import Any, cast

import msgspec

from ..errors import ConfigError
from ..framing import DEFAULT_MAX_EVENT_SIZE, ServerSentEvent, SSEParser
from ..images import Image
from ..types import Chunk
from ._base import (
    BodyDecoder,
    GenerateParams,
    HTTPRequest,
    Protocol,
    ResponseDecoder,
    content_parts,
    join_url,
    normalize_messages,
    stop_list,
    stream_error,
)

__all__ = ["AnthropicProtocol", "AnthropicStreamDecoder", "AnthropicBodyDecoder"]

API_VERSION = "2023-06-01"
#: Anthropic requires ``max_tokens``; this is used when the caller gives none.
DEFAULT_MAX_TOKENS = 4096

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

#: In-stream error types that Anthropic documents as transient.
RETRYABLE_ERRORS = frozenset({"overloaded_error", "api_error"})


# The events, as a union tagged on "type"; only the fields mal reads.


class _Usage(msgspec.Struct, gc=False):
    input_tokens: int | None = None
    output_tokens: int | None = None


class _Message(msgspec.Struct, gc=False):
    usage: _Usage | None = None


class MessageStart(msgspec.Struct, tag="message_start", gc=False):
    message: _Message


class _Block(msgspec.Struct, gc=False):
    type: str
    text: str = ""
    thinking: str = ""


class ContentBlockStart(msgspec.Struct, tag="content_block_start", gc=False):
    content_block: _Block | None = None


class _BlockDelta(msgspec.Struct, gc=False):
    # text_delta, thinking_delta, signature_delta, input_json_delta, citations_delta...:
    # one flat struct, so that a new delta type is skipped, not an error.
    type: str
    text: str = ""
    thinking: str = ""


class ContentBlockDelta(msgspec.Struct, tag="content_block_delta", gc=False):
    delta: _BlockDelta


class ContentBlockStop(msgspec.Struct, tag="content_block_stop", gc=False):
    pass


class _MessageDeltaBody(msgspec.Struct, gc=False):
    stop_reason: str | None = None


class MessageDelta(msgspec.Struct, tag="message_delta", gc=False):
    delta: _MessageDeltaBody | None = None
    usage: _Usage | None = None


class MessageStop(msgspec.Struct, tag="message_stop", gc=False):
    pass


class Ping(msgspec.Struct, tag="ping", gc=False):
    pass


class _ErrorBody(msgspec.Struct, gc=False):
    type: str | None = None
    message: str = ""


class Error(msgspec.Struct, tag="error", gc=False):
    error: _ErrorBody


Event = (
    ContentBlockDelta
    | MessageStart
    | ContentBlockStart
    | ContentBlockStop
    | MessageDelta
    | MessageStop
    | Ping
    | Error
)
_event_decoder = msgspec.json.Decoder(Event)
_delta_decoder = msgspec.json.Decoder(ContentBlockDelta)
#: What comes before the data of a content_block_delta event, as Anthropic writes it.
_DELTA_HEAD = b"event: content_block_delta\ndata: "
#: Event names this decoder reads; a stream may add others, which are skipped
#: (Anthropic's versioning policy allows new event types at any time).
_KNOWN_EVENTS = frozenset(
    {
        "message",  # no ``event:`` line: decode by the payload's "type"
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    }
)


class AnthropicStreamDecoder(ResponseDecoder):
    """Decodes a streamed ``/v1/messages`` body."""

    provider = "anthropic"
    framing = SSEParser

    def __init__(self, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        super().__init__(max_size)
        self._whole_event = cast(SSEParser, self._framer).whole_event

    def feed(self, data: bytes) -> list[Chunk]:
        payload = self._whole_event(data, _DELTA_HEAD)
        if payload is None:
            return super().feed(data)
        # One whole content_block_delta event, the common case of a paced
        # stream: its delta goes straight to its chunk. A payload that does
        # not decode takes the general path, which raises the error.
        if not self.done:
            try:
                delta = _delta_decoder.decode(payload).delta
            except (msgspec.DecodeError, UnicodeDecodeError):
                pass
            else:
                if delta.text:
                    self._parts.append(delta.text)
                    return [Chunk(delta.text)]
                chunk = self._other_delta(delta)
                return [chunk] if chunk is not None else []
        return self._taken([ServerSentEvent("content_block_delta", payload)])

    def _chunks(self, events: list[ServerSentEvent], chunks: list[Chunk]) -> list[Chunk]:
        if self.done:
            return chunks  # nothing counts after message_stop
        parts = self._parts
        for sse in events:
            name = sse.event
            if name == "content_block_delta":
                # The hot path: the event says what it is, so its own decoder
                # skips the union's dispatch on "type".
                try:
                    delta = _delta_decoder.decode(sse.data).delta
                except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                    raise self._decode_error(exc, sse.data) from None
                if delta.text:
                    parts.append(delta.text)
                    chunks.append(Chunk(delta.text))
                else:
                    chunk = self._other_delta(delta)
                    if chunk is not None:
                        chunks.append(chunk)
                continue
            if name not in _KNOWN_EVENTS:
                continue
            try:
                event = _event_decoder.decode(sse.data)
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                raise self._decode_error(exc, sse.data) from None
            chunk = self._chunk(event)
            if chunk is not None:
                chunks.append(chunk)
            if self.done:
                break
        return chunks

    def _other_delta(self, delta: _BlockDelta) -> Chunk | None:
        """The chunk of a delta with no text: thinking, or None for the deltas
        that are not text (signature_delta, input_json_delta, ...)."""
        if delta.thinking:
            self._reasoning.append(delta.thinking)
            return Chunk("", delta.thinking)
        return None

    def _chunk(self, event: Any) -> Chunk | None:
        cls = type(event)
        if cls is ContentBlockDelta:
            delta = event.delta
            if delta.text:
                self._parts.append(delta.text)
                return Chunk(delta.text)
            return self._other_delta(delta)
        if cls is MessageStart:
            usage = event.message.usage
            if usage is not None:
                return Chunk(usage=self._report_usage(usage.input_tokens, usage.output_tokens))
            return None
        if cls is MessageDelta:
            finish = None
            if event.delta is not None:
                finish = self._finish(event.delta.stop_reason, FINISH_REASONS)
            usage = None
            if event.usage is not None:
                usage = self._report_usage(event.usage.input_tokens, event.usage.output_tokens)
            if finish is None and usage is None:
                return None
            return Chunk("", "", finish, usage)
        if cls is MessageStop:
            self.done = True
            return None
        if cls is ContentBlockStart:
            block = event.content_block
            # A block may start with text already in it.
            if block is not None and (block.text or block.thinking):
                if block.text:
                    self._parts.append(block.text)
                if block.thinking:
                    self._reasoning.append(block.thinking)
                return Chunk(block.text, block.thinking)
            return None
        if cls is Error:
            etype = event.error.type
            raise stream_error("anthropic", event.error.message, etype, etype in RETRYABLE_ERRORS)
        return None  # ping, content_block_stop




class _ResponseBlock(msgspec.Struct, gc=False):
    type: str
    text: str = ""
    thinking: str = ""


class _Response(msgspec.Struct, gc=False):
    type: str = "message"
    content: list[_ResponseBlock] = []
    stop_reason: str | None = None
    usage: _Usage | None = None
    error: _ErrorBody | None = None


class AnthropicBodyDecoder(BodyDecoder):
    """Decodes a non-streamed ``message`` body into one chunk."""

    provider = "anthropic"
    body_decoder = msgspec.json.Decoder(_Response)

    def _body_chunk(self, message: _Response, body: bytes) -> Chunk:
        if message.type == "error" or message.error is not None:
            error = message.error or _ErrorBody()
            raise stream_error(
                "anthropic", error.message, error.type, error.type in RETRYABLE_ERRORS
            )
        text = "".join(block.text for block in message.content if block.type == "text")
        reasoning = "".join(block.thinking for block in message.content if block.type == "thinking")
        if reasoning:
            self._reasoning.append(reasoning)
        finish = self._finish(message.stop_reason, FINISH_REASONS)
        usage = None
        if message.usage is not None:
            usage = self._report_usage(message.usage.input_tokens, message.usage.output_tokens)
        return Chunk(text, reasoning, finish, usage)


class AnthropicProtocol(Protocol):
    """``POST {base}/v1/messages`` with ``x-api-key`` and ``anthropic-version``."""

    name = "anthropic"
    default_base_url = "https://api.anthropic.com"
    base_url_env = "ANTHROPIC_BASE_URL"
    api_key_env = "ANTHROPIC_API_KEY"

    def build_request(
        self, params: GenerateParams, *, base_url: str | None = None, api_key: str | None = None
    ) -> HTTPRequest:
        if params.seed is not None:
            raise ConfigError("seed is not supported by anthropic; leave it out for this model")
        # Anthropic takes the system prompt as a field, not as a message.
        system = [params.system] if params.system is not None else []
        messages = []
        for message in normalize_messages(params.prompt):
            if message["role"] == "system" and isinstance(message["content"], str):
                system.append(message["content"])
            else:
                message["content"] = content_parts(
                    message["content"], self.name, Image.to_anthropic
                )
                messages.append(message)
        body: dict[str, Any] = {
            "model": params.model,
            "max_tokens": params.max_tokens
            if params.max_tokens is not None
            else DEFAULT_MAX_TOKENS,
            "messages": messages,
        }
        if system:
            body["system"] = "\n\n".join(system)
        if params.stream:
            body["stream"] = True
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        stop = stop_list(params.stop)
        if stop is not None:
            body["stop_sequences"] = stop
        if params.schema is not None:
            # Anthropic's structured outputs (generally available: no beta header).
            body["output_config"] = {
                "format": {"type": "json_schema", "schema": params.schema.json_schema}
            }
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if params.stream else "application/json",
            "anthropic-version": API_VERSION,
        }
        if api_key:
            headers["x-api-key"] = api_key
        url = join_url(base_url or self.default_base_url, "/v1/messages")
        return self._finish_request(url, body, headers, params)

    def decoder(self, stream: bool, *, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> ResponseDecoder:
        return AnthropicStreamDecoder(max_size) if stream else AnthropicBodyDecoder(max_size)
