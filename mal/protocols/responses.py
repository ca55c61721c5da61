"""The OpenAI Responses API (``POST {base}/responses``): requests and decoders.
This module contains no networking code at all.

A streamed response is SSE with typed events: ``response.output_text.delta``
(text), ``response.reasoning_summary_text.delta`` and
``response.reasoning_text.delta`` (reasoning), ``response.refusal.delta``,
``response.output_item.added`` (a ``function_call`` item opens a call:
its ``call_id`` and ``name``), ``response.function_call_arguments.delta``
(argument pieces, keyed by ``item_id`` and ``output_index``: they carry no
call id), ``response.output_item.done`` (the finished item: reasoning items
are kept verbatim, ``encrypted_content`` and all, to be sent back), and one of
``response.completed``, ``response.incomplete`` or ``response.failed`` (the
end, with ``usage``), or an ``error`` event. There is no finish reason: a
completed response is ``"stop"``, or ``"tool_calls"`` when it made calls.
"""

from __future__ import annotations

from typing import Any, cast

import msgspec

from ..errors import ConfigError
from ..framing import DEFAULT_MAX_EVENT_SIZE, ServerSentEvent, SSEParser
from ..images import Image
from ..types import Chunk, Message, ToolCallDelta
from ._base import (
    BodyDecoder,
    GenerateParams,
    HTTPRequest,
    Protocol,
    ResponseDecoder,
    chat_messages,
    content_parts,
    join_url,
    message_tool_calls,
    stream_error,
    text_only,
    tool_result_id,
)
from .openai import bearer_headers, schema_spec

__all__ = ["ResponsesBodyDecoder", "ResponsesProtocol", "ResponsesStreamDecoder"]

#: Error codes worth retrying.
RETRYABLE_ERRORS = frozenset({"server_error", "rate_limit_exceeded", "server_is_overloaded"})
#: ``incomplete_details.reason`` in mal's vocabulary.
INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


class _InputDetails(msgspec.Struct, gc=False):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class _OutputDetails(msgspec.Struct, gc=False):
    reasoning_tokens: int | None = None


class _Usage(msgspec.Struct, gc=False):
    """``usage``: the OpenAPI ``ResponseUsage`` (openai/openai-openapi).
    ``input_tokens_details`` is "a detailed breakdown of the input tokens"
    (the cached ones are counted in ``input_tokens``), and
    ``output_tokens_details`` of the output tokens (the reasoning ones are
    counted in ``output_tokens``): mal's fields, as they are. The spec
    requires the details; compatible servers leave them out."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    input_tokens_details: _InputDetails | None = None
    output_tokens_details: _OutputDetails | None = None


class _ErrorBody(msgspec.Struct, gc=False):
    code: str | None = None
    message: str = ""


class _Incomplete(msgspec.Struct, gc=False):
    reason: str | None = None


class _Response(msgspec.Struct, gc=False):
    status: str | None = None
    usage: _Usage | None = None
    incomplete_details: _Incomplete | None = None
    error: _ErrorBody | None = None
    output: list[dict[str, Any]] = []


class _Event(msgspec.Struct, gc=False):
    """Every event type in one flat struct: an unknown type is skipped."""

    type: str = ""
    delta: str = ""
    output_index: int = 0
    item_id: str = ""
    item: dict[str, Any] | None = None
    response: _Response | None = None
    code: str | None = None
    message: str = ""


_event_decoder = msgspec.json.Decoder(_Event)
_body_decoder = msgspec.json.Decoder(_Response)
_END_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_REASONING_DELTAS = frozenset(
    {"response.reasoning_summary_text.delta", "response.reasoning_text.delta"}
)


_COMPLETED = {"completed": "stop"}


def _ended(decoder: ResponseDecoder, response: _Response) -> Chunk:
    """The chunk of a response's end (streamed or not): its finish and usage,
    or the error of a failed response."""
    if response.status == "failed" or response.error is not None:
        error = response.error or _ErrorBody()
        raise stream_error(
            "openai-responses",
            error.message or "the response failed",
            error.code,
            error.code in RETRYABLE_ERRORS,
        )
    raw, table = response.status or "completed", _COMPLETED
    if raw == "incomplete":
        reason = response.incomplete_details.reason if response.incomplete_details else None
        raw, table = reason or "incomplete", INCOMPLETE_REASONS
    finish = decoder._finish(raw, table)
    usage = None
    reported = response.usage
    if reported is not None:
        read = written = reasoning = None
        if reported.input_tokens_details is not None:
            read = reported.input_tokens_details.cached_tokens
            written = reported.input_tokens_details.cache_write_tokens
        if reported.output_tokens_details is not None:
            reasoning = reported.output_tokens_details.reasoning_tokens
        usage = decoder._report_usage(
            reported.input_tokens, reported.output_tokens, read, written, reasoning
        )
    decoder.done = True
    return Chunk("", "", finish, usage)


class ResponsesStreamDecoder(ResponseDecoder):
    """Decodes a streamed Responses body."""

    provider = "openai-responses"
    framing = SSEParser

    def __init__(self, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        super().__init__(max_size)
        # The output items in the order they were added, each None until it is
        # done; sent back when one is a reasoning item. An item is found by its
        # id, else by its output_index: the latest item added at that index,
        # as servers reuse indexes (Ollama's /v1/responses gives the
        # function_calls of a turn that come in separate chunks one index, the
        # one of its message item: ollama/ollama openai/responses.go,
        # ResponsesStreamConverter.processToolCalls, which did not advance
        # outputIndex before commit b6b1b258c32d). A call is keyed by its place.
        self._items: list[dict[str, Any] | None] = []
        self._item_ids: dict[str, int] = {}
        self._item_indexes: dict[int, int] = {}
        self._replay = False

    def _chunks(self, events: list[ServerSentEvent], chunks: list[Chunk]) -> list[Chunk]:
        if self.done:
            return chunks
        for sse in events:
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

    def _chunk(self, event: _Event) -> Chunk | None:
        kind = event.type
        if kind == "response.output_text.delta":
            if event.delta:
                self._parts.append(event.delta)
                return Chunk(event.delta)
            return None
        if kind == "response.function_call_arguments.delta":
            place = self._item_ids.get(event.item_id) if event.item_id else None
            if place is None:
                place = self._item_indexes.get(event.output_index)
            delta = self._tools.more(place, event.delta)
            return Chunk("", "", None, None, (delta,)) if delta is not None else None
        if kind in _REASONING_DELTAS:
            if event.delta:
                self._reasoning.append(event.delta)
                return Chunk("", event.delta)
            return None
        if kind == "response.refusal.delta":
            if event.delta:
                self._refusal.append(event.delta)
                return Chunk(refusal=event.delta)
            return None
        if kind == "response.output_item.added":
            item = event.item or {}
            place = self._added(item, event.output_index)
            if item.get("type") == "function_call":
                call = self._tools.piece(
                    place,
                    _str(item.get("call_id")),
                    _str(item.get("name")),
                    _str(item.get("arguments")),
                )
                return Chunk("", "", None, None, (call,)) if call is not None else None
            self._tools.other_output()
            return None
        if kind == "response.output_item.done":
            item = event.item or {}
            self._done(item, event.output_index)
            if item.get("type") == "reasoning":
                self._replay = True
            return None
        if kind in _END_EVENTS:
            return _ended(self, event.response or _Response(status="failed"))
        if kind == "error":
            code = event.code
            raise stream_error("openai-responses", event.message, code, code in RETRYABLE_ERRORS)
        return None

    def _added(self, item: dict[str, Any], output_index: int) -> int:
        """The place of an item just added."""
        place = len(self._items)
        self._items.append(None)
        item_id = item.get("id")
        if isinstance(item_id, str) and item_id:
            self._item_ids[item_id] = place
        self._item_indexes[output_index] = place
        return place

    def _done(self, item: dict[str, Any], output_index: int) -> None:
        """Keep a finished item in the place of its ``added`` event (a new
        place when none is known, or that place holds another finished item)."""
        item_id = item.get("id")
        place = self._item_ids.get(item_id) if isinstance(item_id, str) else None
        if place is None:
            place = self._item_indexes.get(output_index)
            if place is not None and self._items[place] is not None:
                place = None
        if place is None:
            place = self._added(item, output_index)
        self._items[place] = item

    def message(self) -> Message:
        message = super().message()
        if self._replay:
            message.blocks = [item for item in self._items if item is not None]
        return message


class ResponsesBodyDecoder(BodyDecoder):
    """Decodes a non-streamed Responses body into one chunk."""

    provider = "openai-responses"
    body_decoder = _body_decoder

    def __init__(self, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        super().__init__(max_size)
        self._blocks: list[dict[str, Any]] | None = None

    def _body_chunk(self, response: _Response, body: bytes) -> Chunk:
        texts: list[str] = []
        reasoning: list[str] = []
        refusal: list[str] = []
        calls: list[ToolCallDelta] = []
        for item in response.output:
            kind = item.get("type")
            if kind == "message":
                for part in item.get("content") or ():
                    if part.get("type") == "output_text":
                        texts.append(str(part.get("text", "")))
                    elif part.get("type") == "refusal":
                        refusal.append(str(part.get("refusal", "")))
            elif kind == "reasoning":
                for part in (item.get("summary") or []) + (item.get("content") or []):
                    reasoning.append(str(part.get("text", "")))
                self._blocks = response.output
            elif kind == "function_call":
                calls.append(
                    self._tools.whole(
                        _str(item.get("call_id")),
                        str(item.get("name") or ""),
                        _str(item.get("arguments")) or "{}",
                    )
                )
        end = _ended(self, response)
        text, thinking, refused = "".join(texts), "".join(reasoning), "".join(refusal)
        if thinking:
            self._reasoning.append(thinking)
        if refused:
            self._refusal.append(refused)
        return Chunk(text, thinking, end.finish_reason, end.usage, tuple(calls), refused)

    def message(self) -> Message:
        message = super().message()
        message.blocks = self._blocks
        return message


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# Requests ------------------------------------------------------------------------------


def _input_image(image: Image) -> dict[str, Any]:
    return {
        "type": "input_image",
        "image_url": image.url if image.url is not None else image.data_url,
        "detail": image.detail or "auto",
    }


def _parts(content: Any, role: str) -> Any:
    """A message's content as Responses parts. Text parts are ``input_text``,
    but an assistant turn's are ``output_text``: the API takes only output
    parts there ("Invalid value: 'input_text'. Supported values are:
    'output_text' and 'refusal'.", param ``input[i].content[j]``; the
    openapi's OutputMessage content is OutputMessageContent), so an image is
    not one an assistant turn can carry."""
    if role == "assistant":
        if isinstance(content, (list, tuple)) and any(isinstance(p, Image) for p in content):
            raise ConfigError(
                "an assistant turn cannot carry an image on the OpenAI Responses API "
                "(it takes text parts there)"
            )
        text = "output_text"
    else:
        text = "input_text"
    parts = content_parts(content, "openai-responses", _input_image)
    if not isinstance(parts, list):
        return parts
    for part in parts:
        if part.get("type") == "text":
            part["type"] = text
    return parts


def _input_items(params: GenerateParams) -> list[dict[str, Any]]:
    """The conversation as Responses input items: messages, earlier calls as
    ``function_call`` items, results as ``function_call_output`` items, and
    an earlier turn's items sent back as they came when it had reasoning."""
    items: list[dict[str, Any]] = []
    for message in chat_messages(params.prompt):
        if isinstance(message, Message):
            role, content, blocks = message.role, message.content, message.blocks
        else:
            role, content = message["role"], message.get("content", "")
            blocks = message.get("blocks")
        if role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": tool_result_id(message),
                    "output": text_only(content, "openai-responses", "tool results"),
                }
            )
            continue
        if role == "assistant" and blocks:
            items.extend(dict(block) for block in blocks)
            continue
        calls = message_tool_calls(message)
        if content or not calls:
            items.append({"role": role, "content": _parts(content, role)})
        for call in calls or ():
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.id,
                    "name": call.name,
                    "arguments": call.arguments_json,
                }
            )
    return items


class ResponsesProtocol(Protocol):
    """``POST {base}/responses`` with ``Authorization: Bearer`` (the OpenAI
    base URL and key: ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``)."""

    name = "openai-responses"
    default_base_url = "https://api.openai.com/v1"
    base_url_env = "OPENAI_BASE_URL"
    api_key_env = "OPENAI_API_KEY"

    def build_request(
        self, params: GenerateParams, *, base_url: str | None = None, api_key: str | None = None
    ) -> HTTPRequest:
        for name in ("stop", "seed"):
            if getattr(params, name) is not None:
                raise ConfigError(
                    f"{name} is not supported by the OpenAI Responses API; leave it out"
                )
        body: dict[str, Any] = {"model": params.model, "input": _input_items(params)}
        if params.system is not None:
            body["instructions"] = params.system
        if params.stream:
            body["stream"] = True
        if params.max_tokens is not None:
            # openai/openai-openapi, CreateResponse.max_output_tokens: "An upper bound
            # for the number of tokens that can be generated for a response, including
            # visible output tokens and reasoning tokens" (integer, minimum 16).
            body["max_output_tokens"] = params.max_tokens
        for key in ("temperature", "top_p"):
            value = getattr(params, key)
            if value is not None:
                body[key] = value
        if params.tools:
            body["tools"] = [_flat_tool(tool.to_openai()) for tool in params.tools]
            choice = params.tool_choice
            if choice is not None:
                body["tool_choice"] = (
                    choice
                    if choice in ("auto", "none", "required")
                    else {"type": "function", "name": choice}
                )
            if params.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = params.parallel_tool_calls
        if params.schema is not None:
            body["text"] = {"format": {"type": "json_schema", **schema_spec(params.schema)}}
        headers = bearer_headers(params.stream, api_key)
        url = join_url(base_url or self.default_base_url, "/responses")
        return self._finish_request(url, body, headers, params)

    def decoder(self, stream: bool, *, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> ResponseDecoder:
        if stream:
            return ResponsesStreamDecoder(max_size)
        return ResponsesBodyDecoder(max_size)


def _flat_tool(declaration: dict[str, Any]) -> dict[str, Any]:
    """A chat-completions tool declaration in the Responses' flat form, with
    ``strict`` always said. Unlike Chat Completions, the Responses API makes
    a tool that leaves ``strict`` out strict when its schema can be made so
    (every optional parameter then required): "If you omit strict, the default
    depends on the API: Responses requests will attempt to normalize your
    schema into strict mode when possible [...] To opt out of strict mode in
    Responses [...] explicitly set strict: false." (developers.openai.com/api/
    docs/guides/function-calling, "Strict mode"); the openapi's FunctionTool
    lists ``strict`` among its required fields."""
    function = cast(dict[str, Any], declaration["function"])
    tool = {"type": "function", **function}
    tool.setdefault("strict", False)
    return tool
