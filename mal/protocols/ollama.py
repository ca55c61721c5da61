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
from ..types import Chunk
from ._base import (
    GenerateParams,
    HTTPRequest,
    Protocol,
    ResponseDecoder,
    join_url,
    normalize_messages,
    stop_list,
    stream_error,
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


class _Message(msgspec.Struct, gc=False):
    content: str = ""
    thinking: str = ""


class _Line(msgspec.Struct, gc=False):
    response: str = ""  # /api/generate
    thinking: str = ""  # /api/generate with "think"
    message: _Message | None = None  # /api/chat
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
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
                if not obj.done and obj.error is None:
                    message = obj.message
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
            if message is not None:
                text, reasoning = message.content, message.thinking
            else:
                text, reasoning = obj.response, obj.thinking
            if reasoning:
                self._reasoning.append(reasoning)
            if obj.done:
                self.done = True
                finish = self._finish(obj.done_reason, FINISH_REASONS)
                usage = None
                if obj.prompt_eval_count is not None or obj.eval_count is not None:
                    usage = self._report_usage(obj.prompt_eval_count, obj.eval_count)
                if text:
                    parts.append(text)
                chunks.append(Chunk(text, reasoning, finish, usage))
                break  # nothing counts after "done": true
            if text:
                parts.append(text)
                chunks.append(Chunk(text, reasoning))
            elif reasoning:
                chunks.append(Chunk("", reasoning))
        return chunks


def _ollama_message(message: dict[str, Any]) -> dict[str, Any]:
    """Ollama takes a message's text as one string and its images as a list of
    base64 strings beside it (no URLs)."""
    content = message["content"]
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
        if isinstance(params.prompt, str):
            path = "/api/generate"
            body["prompt"] = params.prompt
            if params.system is not None:
                body["system"] = params.system
        else:
            path = "/api/chat"
            messages = [_ollama_message(message) for message in normalize_messages(params.prompt)]
            if params.system is not None:
                messages.insert(0, {"role": "system", "content": params.system})
            body["messages"] = messages
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
