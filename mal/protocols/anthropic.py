"""The Anthropic Messages protocol.

``POST {base}/v1/messages`` with ``x-api-key`` and ``anthropic-version``; a
streamed response is server-sent events: ``message_start``, then for each
content block ``content_block_start``, ``content_block_delta``...,
``content_block_stop``, then ``message_delta`` (stop reason and usage) and
``message_stop``; ``ping`` events may come at any point, and ``error`` events
report failures. This module contains no networking code at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, cast

import msgspec

from ..errors import ConfigError
from ..framing import DEFAULT_MAX_EVENT_SIZE, ServerSentEvent, SSEParser
from ..images import Image
from ..types import Chunk, Message, ToolCall, ToolCallDelta, Usage
from ._base import (
    BodyDecoder,
    GenerateParams,
    HTTPRequest,
    Protocol,
    ResponseDecoder,
    chat_messages,
    content_parts,
    deep_merge,
    forced_tool,
    join_url,
    message_cache,
    message_tool_calls,
    stop_list,
    stream_error,
    tool_result_id,
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


class _OutputDetails(msgspec.Struct, gc=False):
    thinking_tokens: int | None = None


class _Usage(msgspec.Struct, gc=False):
    """``usage`` of a message (``message_start``, a whole body) and of a
    ``message_delta``: anthropic-sdk-python ``types/usage.py`` (``Usage``) and
    ``types/message_delta_usage.py`` (``MessageDeltaUsage``, every field
    cumulative, all but ``output_tokens`` optional)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    output_tokens_details: _OutputDetails | None = None


def _anthropic_usage(decoder: ResponseDecoder, reported: _Usage, latest: _Usage) -> Usage:
    """mal's usage of one report; ``latest`` keeps the latest value reported
    for each of Anthropic's fields, and is updated.

    Anthropic counts the input read from and written to the prompt cache
    apart from ``input_tokens``: the prompt's whole input is
    ``cache_read_input_tokens + cache_creation_input_tokens + input_tokens``
    (https://docs.claude.com/en/docs/build-with-claude/prompt-caching, "Tracking
    cache performance"), which is mal's ``input_tokens``. A ``message_delta``
    repeats the cumulative counts it has or leaves them out (null), and a
    value left out keeps the latest one, as the SDK's stream accumulator does
    (anthropic-sdk-python ``lib/streaming/_messages.py``, ``accumulate_event``).
    ``output_tokens`` includes the thinking tokens, which
    ``output_tokens_details.thinking_tokens`` counts (``types/output_tokens_details.py``).
    """
    fresh = reported.input_tokens
    read = reported.cache_read_input_tokens
    written = reported.cache_creation_input_tokens
    if fresh is not None:
        latest.input_tokens = fresh
    if read is not None:
        latest.cache_read_input_tokens = read
    if written is not None:
        latest.cache_creation_input_tokens = written
    total = None
    if (fresh is not None or read is not None or written is not None) and (
        latest.input_tokens is not None
    ):
        total = (
            latest.input_tokens
            + (latest.cache_read_input_tokens or 0)
            + (latest.cache_creation_input_tokens or 0)
        )
    details = reported.output_tokens_details
    return decoder._report_usage(
        total,
        reported.output_tokens,
        read,
        written,
        details.thinking_tokens if details is not None else None,
    )


class _Message(msgspec.Struct, gc=False):
    usage: _Usage | None = None


class MessageStart(msgspec.Struct, tag="message_start", gc=False):
    message: _Message


class _Block(msgspec.Struct, gc=False):
    type: str
    text: str = ""
    thinking: str = ""
    signature: str = ""
    id: str = ""  # tool_use
    name: str = ""
    input: dict[str, Any] | None = None


class ContentBlockStart(msgspec.Struct, tag="content_block_start", gc=False):
    index: int = 0
    # Kept raw: a block of a type mal does not read (a server tool's, a
    # redacted thinking block) is sent back exactly as it came.
    content_block: msgspec.Raw = msgspec.Raw()


class _BlockDelta(msgspec.Struct, gc=False):
    # text_delta, thinking_delta, signature_delta, input_json_delta, citations_delta...:
    # one flat struct, so that a new delta type is skipped, not an error.
    type: str
    text: str = ""
    thinking: str = ""
    partial_json: str = ""
    signature: str = ""


class ContentBlockDelta(msgspec.Struct, tag="content_block_delta", gc=False):
    delta: _BlockDelta
    index: int = 0


class ContentBlockStop(msgspec.Struct, tag="content_block_stop", gc=False):
    index: int = 0


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
_block_decoder = msgspec.json.Decoder(_Block)
_encode = msgspec.json.Encoder().encode
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
    """Decodes a streamed ``/v1/messages`` body.

    ``answer_tool``: the name of the forced tool that carries a structured
    answer (``anthropic_schema="tool"``); its input streams as the text of the
    response, not as a tool call.
    """

    provider = "anthropic"
    framing = SSEParser

    def __init__(self, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        super().__init__(max_size)
        self._whole_event = cast(SSEParser, self._framer).whole_event
        self._replay = _Replay()
        self.answer_tool: str | None = None
        self._answer_index: int | None = None
        #: The latest value of each of Anthropic's usage fields.
        self._usage_seen = _Usage()

    def feed(self, data: bytes) -> list[Chunk]:
        payload = self._whole_event(data, _DELTA_HEAD)
        if payload is None:
            payload = self._whole_event(data)
            if payload is None:
                return super().feed(data)
            # One whole event without its ``event:`` line (gateways that drop
            # them): its "type" says what it is. A text delta goes straight to
            # its chunk; the rest takes the general path.
            if not self.done:
                try:
                    any_event = _event_decoder.decode(payload)
                except (msgspec.DecodeError, UnicodeDecodeError):
                    pass
                else:
                    if type(any_event) is ContentBlockDelta and any_event.delta.text:
                        text = any_event.delta.text
                        self._parts.append(text)
                        return [Chunk(text)]
            return self._taken([ServerSentEvent("message", payload)])
        # One whole content_block_delta event, the common case of a paced
        # stream: its delta goes straight to its chunk. A payload that does
        # not decode takes the general path, which raises the error.
        if not self.done:
            try:
                event = _delta_decoder.decode(payload)
            except (msgspec.DecodeError, UnicodeDecodeError):
                pass
            else:
                delta = event.delta
                if delta.text:
                    self._parts.append(delta.text)
                    return [Chunk(delta.text)]
                if delta.partial_json:
                    call = self._tools.more(event.index, delta.partial_json)
                    if call is not None:
                        return [Chunk("", "", None, None, (call,))]
                chunk = self._other_delta(event)
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
                    event = _delta_decoder.decode(sse.data)
                except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                    raise self._decode_error(exc, sse.data) from None
                delta = event.delta
                if delta.text:
                    parts.append(delta.text)
                    chunks.append(Chunk(delta.text))
                elif delta.partial_json and (
                    call := self._tools.more(event.index, delta.partial_json)
                ):
                    chunks.append(Chunk("", "", None, None, (call,)))
                else:
                    chunk = self._other_delta(event)
                    if chunk is not None:
                        chunks.append(chunk)
                continue
            if name not in _KNOWN_EVENTS:
                continue
            try:
                any_event = _event_decoder.decode(sse.data)
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                raise self._decode_error(exc, sse.data) from None
            chunk = self._chunk(any_event)
            if chunk is not None:
                chunks.append(chunk)
            if self.done:
                break
        return chunks

    def _other_delta(self, event: ContentBlockDelta) -> Chunk | None:
        """The chunk of a delta with no text: thinking, a piece of a tool's
        input, or None for the rest (a signature, a server tool's input...)."""
        delta = event.delta
        if delta.thinking:
            self._reasoning.append(delta.thinking)
            return Chunk("", delta.thinking)
        if delta.partial_json:
            call = self._tools.more(event.index, delta.partial_json)
            if call is not None:
                return Chunk(tool_calls=(call,))
            if event.index == self._answer_index:
                self._parts.append(delta.partial_json)
                return Chunk(delta.partial_json)
            self._replay.more(event.index, delta.partial_json)
        elif delta.signature:
            self._replay.sign(event.index, delta.signature)
        return None

    def _chunk(self, event: Any) -> Chunk | None:
        cls = type(event)
        if cls is ContentBlockDelta:
            delta = event.delta
            if delta.text:
                self._parts.append(delta.text)
                return Chunk(delta.text)
            return self._other_delta(event)
        if cls is MessageStart:
            usage = event.message.usage
            if usage is not None:
                return Chunk(usage=_anthropic_usage(self, usage, self._usage_seen))
            return None
        if cls is MessageDelta:
            finish = None
            if event.delta is not None:
                finish = self._finish(event.delta.stop_reason, FINISH_REASONS)
            usage = None
            if event.usage is not None:
                usage = _anthropic_usage(self, event.usage, self._usage_seen)
            if finish == "tool_calls" and self._answer_index is not None and not self._tools:
                finish = self.finish_reason = "stop"  # the answer came, through its tool
            if finish is None and usage is None:
                return None
            return Chunk("", "", finish, usage)
        if cls is MessageStop:
            self.done = True
            return None
        if cls is ContentBlockStart:
            return self._block_start(event)
        if cls is ContentBlockStop:
            self._replay.stop(event.index, self)
            call = self._tools.close(event.index)
            return Chunk(tool_calls=(call,)) if call is not None else None
        if cls is Error:
            etype = event.error.type
            raise stream_error("anthropic", event.error.message, etype, etype in RETRYABLE_ERRORS)
        return None  # ping

    def _block_start(self, event: ContentBlockStart) -> Chunk | None:
        raw = event.content_block
        if not raw:
            return None
        try:
            block = _block_decoder.decode(raw)
        except msgspec.DecodeError as exc:
            raise self._decode_error(exc, bytes(raw)) from None
        kind = block.type
        self._replay.start(event.index, block, raw, self)
        if kind == "tool_use" and block.name == self.answer_tool and self._answer_index is None:
            # The structured answer, asked for through a forced tool: its input is the text.
            self._answer_index = event.index
            self._tools.other_output()
            start = _encode(block.input).decode() if block.input else ""
            if start:
                self._parts.append(start)
                return Chunk(start)
            return None
        if kind == "tool_use":
            # The ``input`` of the start is a placeholder ({}); the input
            # streams in input_json_delta pieces. A proxy that sends the input
            # whole at the start sends it here.
            start = _encode(block.input).decode() if block.input else ""
            call = self._tools.piece(event.index, block.id, block.name, start)
            return Chunk(tool_calls=(call,)) if call is not None else None
        # Text, thinking, a server tool's block...: a token limit that ends the
        # response from here on cuts off none of the calls before.
        self._tools.other_output()
        # A block may start with text already in it.
        if block.text or block.thinking:
            if block.text:
                self._parts.append(block.text)
            if block.thinking:
                self._reasoning.append(block.thinking)
            return Chunk(block.text, block.thinking)
        return None

    def message(self) -> Message:
        message = super().message()
        message.blocks = self._replay.blocks(self)
        return message


def _rebuilt_alike(layout: Iterable[tuple[Any, bool]]) -> bool:
    """Whether a turn of text and tool_use blocks, given as (type, whether the
    block has text) pairs, is what its text and calls rebuild (one text block,
    then the calls): at most one block of text, and no text after a call."""
    texts = 0
    calls = False
    for kind, has_text in layout:
        if kind == "tool_use":
            calls = True
        elif has_text:
            if calls or texts:
                return False
            texts += 1
    return True


class _Replay:
    """The content blocks of a streamed turn, to send back as they came when
    its text and tool calls cannot stand for them: the turn holds more than
    text and tool calls (thinking blocks with their signatures, redacted
    thinking, server tools), or its text and calls alternate (text after a
    call, or two blocks of text, which a rebuilt turn would merge and move
    before the calls).

    The text and thinking of the blocks are not copied while they stream: a
    block records where its text starts in the decoder's text (or thinking)
    and where it stops, and is cut out of it at the end."""

    __slots__ = ("_blocks", "_open", "needed")

    def __init__(self) -> None:
        # Each: [block dict, kind, start, end, input pieces]
        self._blocks: list[list[Any]] = []
        self._open: dict[int, list[Any]] = {}
        #: Whether the turn has a block that text and tool calls cannot stand for.
        self.needed = False

    def start(
        self, index: int, block: _Block, raw: msgspec.Raw, decoder: AnthropicStreamDecoder
    ) -> None:
        kind = block.type
        if kind == "text":
            entry = [{"type": "text"}, "text", len(decoder.text), None, None]
        elif kind == "thinking":
            self.needed = True
            out = {"type": "thinking", "signature": block.signature}
            entry = [out, "thinking", len(decoder.reasoning), None, None]
        elif kind == "tool_use":
            entry = [{"type": "tool_use"}, "tool_use", len(decoder._tools), None, None]
        else:  # redacted_thinking, server tools and their results: verbatim
            self.needed = True
            entry = [msgspec.json.decode(raw), kind, 0, None, []]
        self._blocks.append(entry)
        self._open[index] = entry

    def more(self, index: int, piece: str) -> None:
        entry = self._open.get(index)
        if entry is not None and entry[4] is not None:
            entry[4].append(piece)

    def sign(self, index: int, signature: str) -> None:
        # The signature replaces, never appends (one signature_delta, just
        # before the block stops).
        entry = self._open.get(index)
        if entry is not None and entry[1] == "thinking":
            entry[0]["signature"] = signature

    def stop(self, index: int, decoder: AnthropicStreamDecoder) -> None:
        entry = self._open.pop(index, None)
        if entry is None:
            return
        if entry[1] == "text":
            entry[3] = len(decoder.text)
        elif entry[1] == "thinking":
            entry[3] = len(decoder.reasoning)

    def blocks(self, decoder: AnthropicStreamDecoder) -> list[dict[str, Any]] | None:
        text, reasoning = decoder.text, decoder.reasoning
        if not self.needed and (
            # The answer tool's input is in the text: the turn is its text.
            decoder._answer_index is not None
            or _rebuilt_alike(
                (kind, (len(text) if end is None else end) > start)
                for _, kind, start, end, _ in self._blocks
            )
        ):
            return None
        calls = decoder.tool_calls
        out: list[dict[str, Any]] = []
        for block, kind, start, end, pieces in self._blocks:
            block = dict(block)
            if kind == "text":
                block["text"] = text[start:end]
            elif kind == "thinking":
                block = {"type": "thinking", "thinking": reasoning[start:end], **block}
                block["type"] = "thinking"
            elif kind == "tool_use":
                if start >= len(calls):
                    continue
                call = calls[start]
                block.update(id=call.id, name=call.name, input=call.arguments)
            elif pieces:
                joined = "".join(pieces)
                with contextlib.suppress(msgspec.DecodeError):  # cut off: keep the placeholder
                    block["input"] = msgspec.json.decode(joined)
            out.append(block)
        return out


class _Response(msgspec.Struct, gc=False):
    type: str = "message"
    # Dicts: the blocks are sent back as they came when the turn needs it.
    content: list[dict[str, Any]] = []
    stop_reason: str | None = None
    usage: _Usage | None = None
    error: _ErrorBody | None = None


#: The block types a turn can be rebuilt from without its blocks.
_PLAIN_BLOCKS = frozenset({"text", "tool_use"})


class AnthropicBodyDecoder(BodyDecoder):
    """Decodes a non-streamed ``message`` body into one chunk."""

    provider = "anthropic"
    body_decoder = msgspec.json.Decoder(_Response)

    def __init__(self, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        super().__init__(max_size)
        self._blocks: list[dict[str, Any]] | None = None
        #: As on the stream decoder: the forced tool that carries the answer.
        self.answer_tool: str | None = None

    def _body_chunk(self, message: _Response, body: bytes) -> Chunk:
        if message.type == "error" or message.error is not None:
            error = message.error or _ErrorBody()
            raise stream_error(
                "anthropic", error.message, error.type, error.type in RETRYABLE_ERRORS
            )
        texts: list[str] = []
        thinking: list[str] = []
        calls: list[ToolCallDelta] = []
        answered = False
        for block in message.content:
            kind = block.get("type")
            if kind == "text":
                texts.append(str(block.get("text", "")))
            elif kind == "tool_use" and not answered and block.get("name") == self.answer_tool:
                answered = True
                texts.append(_encode(block.get("input")).decode())
            elif kind == "thinking":
                thinking.append(str(block.get("thinking", "")))
            elif kind == "tool_use":
                arguments = block.get("input")
                calls.append(
                    self._tools.whole(
                        str(block.get("id") or ""),
                        str(block.get("name") or ""),
                        _encode(arguments).decode() if arguments else "{}",
                    )
                )
        if any(block.get("type") not in _PLAIN_BLOCKS for block in message.content) or (
            not answered
            and not _rebuilt_alike((b.get("type"), bool(b.get("text"))) for b in message.content)
        ):
            # Sent back as it came: what text and calls cannot stand for, or
            # text and calls that alternate.
            self._blocks = message.content
        reasoning = "".join(thinking)
        if reasoning:
            self._reasoning.append(reasoning)
        finish = self._finish(message.stop_reason, FINISH_REASONS)
        if finish == "tool_calls" and answered and not calls:
            finish = self.finish_reason = "stop"  # the answer came, through its tool
        usage = None
        if message.usage is not None:
            usage = _anthropic_usage(self, message.usage, _Usage())
        return Chunk("".join(texts), reasoning, finish, usage, tuple(calls))

    def message(self) -> Message:
        message = super().message()
        message.blocks = self._blocks
        return message


def _anthropic_message(message: Message | dict[str, Any]) -> dict[str, Any]:
    """A user or assistant message in the Messages form. An assistant turn
    with replay blocks is sent as those blocks, exactly; one with tool calls
    as its text and ``tool_use`` blocks (``input`` an object)."""
    if isinstance(message, dict):
        calls = message_tool_calls(message)
        content = content_parts(message.get("content", ""), "anthropic", Image.to_anthropic)
        if calls is not None:
            message.pop("tool_calls")
            message["content"] = _with_calls(content, calls)
        else:
            message["content"] = content
        return message
    if message.blocks:
        return {"role": message.role, "content": [dict(block) for block in message.blocks]}
    content = content_parts(message.content, "anthropic", Image.to_anthropic)
    if message.tool_calls:
        content = _with_calls(content, message.tool_calls)
    return {"role": message.role, "content": content}


def _with_calls(content: Any, calls: list[ToolCall]) -> list[Any]:
    if isinstance(content, str):
        blocks: list[Any] = [{"type": "text", "text": content}] if content else []
    else:
        blocks = list(content or ())
    for call in calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        )
    return blocks


def _tool_result(message: Message | dict[str, Any]) -> dict[str, Any]:
    """A ``tool_result`` block of a tool's result (a Message, or an OpenAI
    style ``role: "tool"`` dict); images may be part of it."""
    if isinstance(message, Message):
        content, is_error = message.content, message.is_error
    else:
        content, is_error = message.get("content", ""), bool(message.get("is_error"))
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": tool_result_id(message),
        "content": content_parts(content, "anthropic", Image.to_anthropic),
    }
    if is_error:
        block["is_error"] = True
    return block


# Prompt caching: platform.claude.com/docs/en/build-with-claude/prompt-caching.
# A ``cache_control`` marker on a block caches the prompt (tools, system,
# messages, in that order) up to and including that block ("How prompt caching
# works"); "ephemeral" is the only type. mal sends no ``ttl`` (5 minutes by
# default; anthropic-sdk-python ``types/cache_control_ephemeral_param.py`` takes
# "5m" or "1h"): ``Message.cache`` is a bool.

#: Anthropic's limit on markers in one request ("You can define up to 4 cache
#: breakpoints"; the API answers "A maximum of 4 blocks with cache_control may
#: be provided. Found 5.").
MAX_BREAKPOINTS = 4
#: Blocks that may not carry ``cache_control``: "Thinking blocks cannot be cached
#: directly with cache_control" (the page's "What cannot be cached"), and the
#: SDK's ``types/thinking_block_param.py`` and ``redacted_thinking_block_param.py``
#: have no such field, where every other block param has one.
_UNMARKABLE_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def _cache_control() -> dict[str, Any]:
    return {"type": "ephemeral"}


def _mark_last_block(message: dict[str, Any], index: int) -> None:
    """Put a breakpoint after a converted user or assistant message: on its
    last block (string content becomes one text block); an assistant turn
    that ends in thinking blocks gets it on its last block that may carry one."""
    content = message.get("content")
    if isinstance(content, str):
        if not content:
            # "Empty text blocks cannot be cached" (the page's "What cannot be cached").
            raise ConfigError(f"prompt message {index} has cache=True but no content to cache")
        message["content"] = [{"type": "text", "text": content, "cache_control": _cache_control()}]
        return
    if isinstance(content, list):
        for j in range(len(content) - 1, -1, -1):
            block = content[j]
            if isinstance(block, dict) and block.get("type") not in _UNMARKABLE_BLOCKS:
                content[j] = {**block, "cache_control": _cache_control()}
                return
    raise ConfigError(
        f"prompt message {index} has cache=True but no block that Anthropic lets carry a "
        "cache breakpoint (thinking blocks cannot)"
    )


def _system(parts: list[tuple[str, int | None, bool]], cache_last: bool) -> Any:
    """The ``system`` field: the parts joined into one string, or, when a
    breakpoint follows one of them, one text block per part (empty ones left
    out: the API rejects an empty text block) with ``cache_control`` on those."""
    if not cache_last and not any(cache for _, _, cache in parts):
        return "\n\n".join(text for text, _, _ in parts)
    blocks: list[dict[str, Any]] = []
    for text, index, cache in parts:
        if not text:
            if cache:
                where = "the system prompt" if index is None else f"prompt message {index}"
                raise ConfigError(f"{where} has cache=True but no text to cache")
            continue
        block: dict[str, Any] = {"type": "text", "text": text}
        if cache:
            block["cache_control"] = _cache_control()
        blocks.append(block)
    if cache_last:
        if not blocks:
            raise ConfigError("cache_system=True, but the system prompt is empty")
        blocks[-1]["cache_control"] = _cache_control()
    return blocks


def _check_breakpoints(
    body: dict[str, Any],
    system: list[tuple[str, int | None, bool]],
    origins: list[int | list[int]],
) -> None:
    """A ConfigError, before anything is sent, when the request has more
    ``cache_control`` markers than Anthropic takes, naming each one's place."""
    places: list[str] = []
    if body.get("cache_control") is not None:
        places.append("the top-level cache_control (extra_body)")
    tools = body.get("tools")
    if isinstance(tools, list):
        for i, tool in enumerate(tools):
            if isinstance(tool, dict) and tool.get("cache_control"):
                places.append(f"tools[{i}] ({tool.get('name', tool.get('type'))})")
    blocks = body.get("system")
    if isinstance(blocks, list):
        from_messages = [index for text, index, _ in system if text]
        for i, block in enumerate(blocks):
            if isinstance(block, dict) and block.get("cache_control"):
                index = from_messages[i] if i < len(from_messages) else None
                named = "system=" if index is None else f"prompt message {index}"
                places.append(f"system[{i}] ({named})")
    for m, message in enumerate(body.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for b, block in enumerate(content):
            if isinstance(block, dict) and block.get("cache_control"):
                origin = origins[m] if m < len(origins) else None
                at = origin[b] if isinstance(origin, list) and b < len(origin) else origin
                named = f" (prompt message {at})" if isinstance(at, int) else ""
                places.append(f"messages[{m}].content[{b}]{named}")
    if len(places) > MAX_BREAKPOINTS:
        raise ConfigError(
            f"{len(places)} prompt-cache breakpoints, but Anthropic takes at most "
            f"{MAX_BREAKPOINTS} in a request: {', '.join(places)}"
        )


def _tool_choice(params: GenerateParams) -> dict[str, Any] | None:
    choice = params.tool_choice
    out: dict[str, Any] | None
    if choice is None:
        out = None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "none":
        out = {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    else:
        out = {"type": "tool", "name": choice}
    if forced_tool(params) and _thinking_on(params):
        raise ConfigError(
            f"tool_choice={choice!r} forces a tool, which Anthropic does not allow with "
            "thinking on; use tool_choice='auto' or turn thinking off"
        )
    if params.parallel_tool_calls is False:
        if out is None:
            out = {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out


#: The description of the forced tool that carries a structured answer.
ANSWER_TOOL_DESCRIPTION = (
    "Give your answer with this tool: its input is the whole answer, in this schema."
)


def _schema_as_tool(params: GenerateParams, body: dict[str, Any]) -> None:
    """Ask for ``params.schema`` with a forced tool whose input is the answer
    (models and platforms without structured outputs). With tools of the
    caller's, the model must call one of them or the answer tool."""
    schema = params.schema
    assert schema is not None
    if _thinking_on(params):
        if schema.anthropic_schema is None:
            raise ConfigError(
                f"schema {schema.name!r} has no form in Anthropic's structured outputs (free "
                "keys such as dict[str, X], or recursion), so it is asked through a forced "
                "tool, which Anthropic rejects while thinking; turn thinking off or change "
                "the schema"
            )
        raise ConfigError(
            "schema= through a forced tool (anthropic_schema='tool', or a Claude 3 model) "
            "cannot be used with thinking on: Anthropic rejects a forced tool while thinking; "
            "use a model with structured outputs (anthropic_schema='output_config')"
        )
    tool: dict[str, Any] = {
        "name": schema.name,
        "description": ANSWER_TOOL_DESCRIPTION,
        "input_schema": schema.json_schema,
    }
    if not params.tools:
        body["tools"] = [tool]
        body["tool_choice"] = {"type": "tool", "name": schema.name}
        return
    if any(t.name == schema.name for t in params.tools):
        raise ConfigError(
            f"a tool is named {schema.name!r}, the name of the answer tool of schema=; "
            "rename the tool or the schema"
        )
    if params.tool_choice not in (None, "auto"):
        raise ConfigError(
            f"tool_choice={params.tool_choice!r} cannot be combined with schema= answered "
            "through a tool (anthropic_schema='tool'): the model must be free to answer"
        )
    body["tools"].append(tool)
    choice: dict[str, Any] = {"type": "any"}
    if params.parallel_tool_calls is False:
        choice["disable_parallel_tool_use"] = True
    body["tool_choice"] = choice


def _through_tool(params: GenerateParams) -> bool:
    """Whether ``params.schema`` is asked through the forced answer tool: so
    asked (``schema_tool``), or a schema with no form in Anthropic's structured
    outputs (see :func:`mal.schema.anthropic_form`). A tool without ``strict``
    takes any JSON schema: the limitations are those of "JSON outputs and
    strict tool use" (platform.claude.com/docs/en/build-with-claude/
    structured-outputs, "JSON Schema limitations")."""
    schema = params.schema
    return schema is not None and (params.schema_tool or schema.anthropic_schema is None)


def _thinking_on(params: GenerateParams) -> bool:
    thinking = (params.extra_body or {}).get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


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
        # Anthropic takes the system prompt as a field, not as a message: its
        # parts, each with the prompt index it came from (None: ``system=``)
        # and whether a breakpoint follows it.
        system: list[tuple[str, int | None, bool]] = []
        if params.system is not None:
            system.append((params.system, None, False))
        messages: list[dict[str, Any]] = []
        #: The prompt index of each message's blocks (a list for the
        #: results of one turn, one block per tool message).
        origins: list[int | list[int]] = []
        for i, message in enumerate(chat_messages(params.prompt, keep_cache=True)):
            cache = message_cache(message)
            if isinstance(message, dict):
                message.pop("cache", None)  # mal's own key, not a field of the API
            role = message.role if isinstance(message, Message) else message["role"]
            content = message.content if isinstance(message, Message) else message.get("content")
            if role == "system" and isinstance(content, str):
                system.append((content, i, cache))
            elif role == "tool":
                # The results of one assistant turn go in one user message.
                result = _tool_result(message)
                if cache:
                    # tool_result_block_param.py: ``cache_control``.
                    result["cache_control"] = _cache_control()
                last = messages[-1] if messages else None
                if last is not None and last.get("_results"):
                    last["content"].append(result)
                    cast(list[int], origins[-1]).append(i)
                else:
                    messages.append({"role": "user", "content": [result], "_results": True})
                    origins.append([i])
            else:
                converted = _anthropic_message(message)
                if cache:
                    _mark_last_block(converted, i)
                messages.append(converted)
                origins.append(i)
        for message in messages:
            message.pop("_results", None)
        body: dict[str, Any] = {
            "model": params.model,
            "max_tokens": params.max_tokens
            if params.max_tokens is not None
            else DEFAULT_MAX_TOKENS,
            "messages": messages,
        }
        if system:
            body["system"] = _system(system, params.cache_system)
        elif params.cache_system:
            raise ConfigError("cache_system=True, but the call has no system prompt to cache")
        if params.stream:
            body["stream"] = True
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        stop = stop_list(params.stop)
        if stop is not None:
            body["stop_sequences"] = stop
        if params.tools:
            body["tools"] = [tool.to_anthropic() for tool in params.tools]
            choice = _tool_choice(params)
            if choice is not None:
                body["tool_choice"] = choice
        if _through_tool(params):
            _schema_as_tool(params, body)
        elif params.schema is not None:
            # Anthropic's structured outputs (generally available: no beta header), in
            # the subset of JSON Schema they take: every object closed, the bounds they
            # reject left out (mal.schema.anthropic_form); the output is still checked
            # against the whole schema when it is decoded.
            body["output_config"] = {
                "format": {"type": "json_schema", "schema": params.schema.anthropic_schema}
            }
        if params.cache_tools:
            tools = body.get("tools")
            if not tools:
                raise ConfigError("cache_tools=True, but the call has no tools to cache")
            # [DOCS] agents-and-tools/tool-use/tool-use-with-prompt-caching: the
            # breakpoint on the last tool caches every tool definition.
            tools[-1] = {**tools[-1], "cache_control": _cache_control()}
        _check_breakpoints(
            deep_merge(body, params.extra_body) if params.extra_body else body, system, origins
        )
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

    def decoder_for(
        self, params: GenerateParams, stream: bool, *, max_size: int = DEFAULT_MAX_EVENT_SIZE
    ) -> ResponseDecoder:
        decoder = self.decoder(stream, max_size=max_size)
        if params.schema is not None and _through_tool(params):
            cast(
                AnthropicStreamDecoder | AnthropicBodyDecoder, decoder
            ).answer_tool = params.schema.name
        return decoder
