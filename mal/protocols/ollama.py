"""The Ollama protocol.

``POST /api/generate`` for a string prompt and ``POST /api/chat`` for
messages; a streamed response is newline-delimited JSON whose last object has
``"done": true``, and a non-streamed one is that single object. Errors come as
``{"error": "..."}``, as a status body or as a line in the stream. This module
contains no networking code at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import msgspec

from ..errors import ConfigError
from ..framing import DEFAULT_MAX_EVENT_SIZE, NDJSONSplitter
from ..images import Image
from ..types import Chunk, Message, ToolCall, ToolCallDelta
from ._base import (
    GenerateParams,
    HTTPRequest,
    Protocol,
    ResponseDecoder,
    chat_messages,
    join_url,
    message_tool_calls,
    stop_list,
    stream_error,
    text_only,
)

__all__ = ["OllamaProtocol", "OllamaDecoder", "normalize_host"]

DEFAULT_PORT = 11434

#: Ollama's ``done_reason`` is already "stop" or "length"; others ("load",
#: "unload") are kept as they are.
FINISH_REASONS: dict[str, str] = {}

#: The common options and their names in Ollama's ``options``.
_OPTIONS = (
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("seed", "seed"),
    ("max_tokens", "num_predict"),
)


class _Function(msgspec.Struct, gc=False):
    name: str = ""
    # An object on the wire, kept raw: its JSON text is the call's
    # arguments_json, exactly as the server wrote it.
    arguments: msgspec.Raw = msgspec.Raw()


class _ToolCall(msgspec.Struct, gc=False):
    function: _Function
    id: str | None = None  # newer servers; older ones and the docs send none


class _Message(msgspec.Struct, gc=False):
    content: str = ""
    thinking: str = ""
    tool_calls: list[_ToolCall] | None = None


class _Line(msgspec.Struct, gc=False):
    response: str = ""  # /api/generate
    thinking: str = ""  # /api/generate with "think"
    message: _Message | None = None  # /api/chat
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    # The prompt tokens read from the KV cache: newer servers, and only when
    # the runner reports it (ollama api/types.go, Metrics,
    # ``prompt_eval_cached_count``, a pointer with omitempty; ollama/ollama#17943).
    # prompt_eval_count counts them too: it stays the whole prompt's count.
    prompt_eval_cached_count: int | None = None
    error: str | None = None


_decoder = msgspec.json.Decoder(_Line)


class OllamaDecoder(ResponseDecoder):
    """Decodes an Ollama body, streamed (ndjson) or not (one object).

    Both are the same objects, one per line, so one decoder serves both.
    """

    provider = "ollama"

    framing = NDJSONSplitter

    def __init__(self, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        super().__init__(max_size)
        self._whole_line = cast(NDJSONSplitter, self._framer).whole_line

    def feed(self, data: bytes) -> list[Chunk]:
        line = self._whole_line(data)
        if line is None:
            return super().feed(data)
        # One whole line, the common case of a paced stream: a text or thinking
        # delta goes straight to its chunk. The rest (the last line, errors,
        # empty lines) takes the general path, which decodes it again.
        if not self.done:
            try:
                obj = _decoder.decode(line)
            except (msgspec.DecodeError, UnicodeDecodeError):
                pass
            else:
                message = obj.message
                if not obj.done and obj.error is None:
                    if message is not None and message.tool_calls:
                        calls = self._whole_calls(message.tool_calls)
                        text, reasoning = message.content, message.thinking
                        if reasoning:
                            self._reasoning.append(reasoning)
                        if text:
                            self._parts.append(text)
                        return [Chunk(text, reasoning, tool_calls=calls)]
                    if message is not None:
                        text, reasoning = message.content, message.thinking
                    else:
                        text, reasoning = obj.response, obj.thinking
                    if reasoning:
                        self._reasoning.append(reasoning)
                    if text:
                        self._parts.append(text)
                        return [Chunk(text, reasoning)]
                    if reasoning:
                        return [Chunk("", reasoning)]
        return self._taken([line.rstrip()])

    def _chunks(self, lines: list[bytes], chunks: list[Chunk]) -> list[Chunk]:
        if self.done:
            return chunks  # nothing counts after "done": true
        decode, parts = _decoder.decode, self._parts
        for line in lines:
            try:
                obj = decode(line)
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                raise self._decode_error(exc, line) from None
            if obj.error is not None:
                raise stream_error("ollama", obj.error, None, False)
            message = obj.message
            calls: tuple[ToolCallDelta, ...] = ()
            if message is not None:
                text, reasoning = message.content, message.thinking
                if message.tool_calls:
                    calls = self._whole_calls(message.tool_calls)
            else:
                text, reasoning = obj.response, obj.thinking
            if reasoning:
                self._reasoning.append(reasoning)
            if obj.done:
                self.done = True
                finish = self._finish(obj.done_reason, FINISH_REASONS)
                usage = None
                if obj.prompt_eval_count is not None or obj.eval_count is not None:
                    usage = self._report_usage(
                        obj.prompt_eval_count, obj.eval_count, obj.prompt_eval_cached_count
                    )
                if text:
                    parts.append(text)
                chunks.append(Chunk(text, reasoning, finish, usage, calls))
                break  # nothing counts after "done": true
            if text:
                parts.append(text)
                chunks.append(Chunk(text, reasoning, tool_calls=calls))
            elif reasoning or calls:
                chunks.append(Chunk("", reasoning, tool_calls=calls))
        return chunks

    def _whole_calls(self, calls: list[_ToolCall]) -> tuple[ToolCallDelta, ...]:
        # Each entry is a whole call: identical calls are two calls.
        whole = self._tools.whole
        if len(calls) == 1:
            function = calls[0].function
            return (whole(calls[0].id, function.name, _arguments_json(function.arguments)),)
        return tuple(
            whole(call.id, call.function.name, _arguments_json(call.function.arguments))
            for call in calls
        )


def _arguments_json(raw: msgspec.Raw) -> str:
    """The JSON text of a call's arguments: the object as the server wrote it;
    ``null`` or nothing is ``{}``, and a string (some servers) is read as the
    JSON text it holds."""
    text = bytes(raw).decode()
    if not text or text == "null":
        return "{}"
    if text[0] == '"':
        inner = msgspec.json.decode(raw)
        return inner if isinstance(inner, str) and inner.strip() else "{}"
    return text


def _ollama_tools(params: GenerateParams) -> list[dict[str, Any]] | None:
    """The ``tools`` of the request. Ollama has no ``tool_choice`` and no way
    to turn parallel calls off: asking for either is a ConfigError, not a
    silent difference."""
    if not params.tools:
        return None
    choice = params.tool_choice
    if choice == "none":
        return None  # no tools to call: none are sent
    if choice not in (None, "auto"):
        raise ConfigError(
            f"tool_choice={choice!r}: Ollama cannot force a tool call (it has no "
            "tool_choice); use 'auto' or 'none'"
        )
    if params.parallel_tool_calls is False:
        raise ConfigError("parallel_tool_calls=False: Ollama cannot turn parallel tool calls off")
    return [tool.to_ollama() for tool in params.tools]


def _ollama_messages(messages: list[Message | dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages in the /api/chat form: an assistant turn's calls with their
    arguments as objects and its thinking beside them; a tool result with the
    tool's name (looked up from the call it answers when it has none)."""
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, dict):
            calls = message_tool_calls(message)
            if calls is not None:
                message["tool_calls"] = [_call_out(call) for call in calls]
            for call in calls or message.get("tool_calls") or ():
                _remember_name(names, call)
            if message["role"] == "tool":
                out.append(_tool_message(message, message.get("content", ""), names))
            else:
                out.append(_ollama_message(message))
            continue
        if message.role == "tool":
            out.append(_tool_message(message, message.content, names))
            continue
        converted: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.role == "assistant" and message.reasoning:
            converted["thinking"] = message.reasoning
        if message.tool_calls:
            converted["tool_calls"] = [_call_out(call) for call in message.tool_calls]
            for call in message.tool_calls:
                names[call.id] = call.name
        out.append(_ollama_message(converted))
    return out


def _call_out(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "function": {"name": call.name, "arguments": call.arguments}}


def _remember_name(names: dict[str, str], call: Any) -> None:
    if isinstance(call, ToolCall):
        names[call.id] = call.name
    elif isinstance(call, Mapping):
        function = call.get("function")
        if isinstance(call.get("id"), str) and isinstance(function, Mapping):
            names[call["id"]] = str(function.get("name", ""))


def _tool_message(
    message: Message | dict[str, Any], content: Any, names: Mapping[str, str]
) -> dict[str, Any]:
    if isinstance(message, Message):
        id, name = message.tool_call_id, message.name
    else:
        id, name = message.get("tool_call_id"), message.get("tool_name") or message.get("name")
    if not name:
        name = names.get(id) if isinstance(id, str) else None
        if not name:
            if not isinstance(id, str) or not id:
                raise ConfigError(
                    "a tool result (role 'tool') needs the tool_call_id of the call it "
                    "answers, or for Ollama the tool's name"
                )
            raise ConfigError(
                f"the tool result for call {id!r} has no tool name, and no earlier assistant "
                "turn made that call: Ollama needs the tool's name (set Message.name)"
            )
    out: dict[str, Any] = {
        "role": "tool",
        "content": text_only(content, "ollama", "tool results"),
        "tool_name": name,
    }
    if isinstance(id, str) and id:
        out["tool_call_id"] = id
    return out


def _ollama_message(message: dict[str, Any]) -> dict[str, Any]:
    """Ollama takes a message's text as one string and its images as a list of
    base64 strings beside it (no URLs)."""
    content = message.get("content", "")
    if not isinstance(content, (list, tuple)):
        return message
    texts: list[str] = []
    images: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Image):
            part.check("ollama")
            images.append(part.ollama_base64())
        elif isinstance(part, Mapping) and part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        else:
            raise ConfigError(
                "an Ollama message's content parts must be str, mal.Image or text parts, "
                f"not {part!r:.60}"
            )
    out = dict(message)
    out["content"] = "\n".join(texts)
    if images:
        out["images"] = [*message.get("images", ()), *images]
    return out


def normalize_host(host: str) -> str:
    """Turn an ``OLLAMA_HOST`` value into a base URL, as Ollama itself reads it:
    ``host``, ``host:port``, ``:port`` or a URL. Without a scheme the scheme is
    http and the port 11434; ``http://`` and ``https://`` default to 80 and
    443; no host means 127.0.0.1."""
    host = host.strip()
    scheme, sep, hostport = host.partition("://")
    default_port = DEFAULT_PORT
    if not sep:
        scheme, hostport = "http", host
    elif scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    hostport, slash, path = hostport.partition("/")
    path = "/" + path.rstrip("/") if slash and path.rstrip("/") else ""
    name, port = _split_host_port(hostport)
    if port is None:
        port = str(default_port)
    if not name:
        name = "127.0.0.1"
    if ":" in name:  # an IPv6 literal
        name = f"[{name}]"
    return f"{scheme}://{name}:{port}{path}"


def _split_host_port(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):  # [v6] or [v6]:port
        name, _, rest = hostport[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") and rest[1:] else None
    if hostport.count(":") == 1:
        name, _, port = hostport.partition(":")
        return name, port or None
    return hostport, None  # a bare name, or a bare IPv6 address


class OllamaProtocol(Protocol):
    """``POST /api/generate`` (string prompt) or ``POST /api/chat`` (messages)."""

    name = "ollama"
    default_base_url = f"http://localhost:{DEFAULT_PORT}"
    base_url_env = "OLLAMA_HOST"
    api_key_env = None

    def build_request(
        self, params: GenerateParams, *, base_url: str | None = None, api_key: str | None = None
    ) -> HTTPRequest:
        body: dict[str, Any] = {"model": params.model}
        tools = _ollama_tools(params)
        if isinstance(params.prompt, str) and tools is None:
            path = "/api/generate"
            body["prompt"] = params.prompt
            if params.system is not None:
                body["system"] = params.system
        else:
            # /api/generate takes no tools: a string prompt with tools is one
            # user message.
            path = "/api/chat"
            messages = _ollama_messages(chat_messages(params.prompt))
            if params.system is not None:
                messages.insert(0, {"role": "system", "content": params.system})
            body["messages"] = messages
            if tools is not None:
                body["tools"] = tools
        body["stream"] = params.stream
        options: dict[str, Any] = {}
        for ours, theirs in _OPTIONS:
            value = getattr(params, ours)
            if value is not None:
                options[theirs] = value
        stop = stop_list(params.stop)
        if stop is not None:
            options["stop"] = stop
        if options:
            body["options"] = options
        if params.schema is not None:
            body["format"] = params.schema.json_schema
        headers = {"content-type": "application/json", "accept": "application/x-ndjson"}
        if api_key:  # for an Ollama behind an authenticating proxy
            headers["authorization"] = f"Bearer {api_key}"
        url = join_url(base_url or self.default_base_url, path)
        return self._finish_request(url, body, headers, params)

    #: Ollama sends application/x-ndjson; proxies relabel it.
    stream_media_types = frozenset(
        {
            "application/x-ndjson",
            "application/ndjson",
            "application/jsonl",
            "application/x-jsonlines",
        }
    )

    def decoder(self, stream: bool, *, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> ResponseDecoder:
        return OllamaDecoder(max_size)
