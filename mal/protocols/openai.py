"""The OpenAI chat completions protocol, spoken by OpenAI and by every
OpenAI-compatible server (vLLM, llama.cpp, LM Studio, DeepSeek, Groq, ...).

``POST {base}/chat/completions``; a streamed response is server-sent events
whose data are ``chat.completion.chunk`` objects, ending with ``data: [DONE]``.
This module contains no networking code at all.
"""

from __future__ import annotations

import re
from typing import Any, cast
from urllib.parse import parse_qsl, quote, urlsplit

import msgspec

from ..errors import ConfigError, MALError
from ..framing import DEFAULT_MAX_EVENT_SIZE, ServerSentEvent, SSEParser
from ..images import Image
from ..schema import OutputSchema
from ..types import Chunk, Message, ToolCall, ToolCallDelta, Usage
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
from ._tools import ToolCallAssembler

__all__ = ["OpenAIProtocol", "OpenAIStreamDecoder", "OpenAIBodyDecoder"]

#: OpenAI's own values are the normalised ones; ``function_call`` is the
#: deprecated name of ``tool_calls``.
FINISH_REASONS = {"function_call": "tool_calls"}

#: Error types OpenAI marks as transient.
RETRYABLE_ERRORS = frozenset({"server_error"})


# View structs: only the fields mal reads; the rest is skipped unparsed.


class _Function(msgspec.Struct, gc=False):
    name: str | None = None
    # A string on the wire; some servers send the object itself.
    arguments: str | dict[str, Any] | None = None


class _ToolDelta(msgspec.Struct, gc=False):
    index: int | None = None  # some servers (Gemini's compatible API) leave it out
    id: str | None = None
    function: _Function | None = None


class _Delta(msgspec.Struct, gc=False):
    content: str | None = None
    tool_calls: list[_ToolDelta] | None = None
    refusal: str | None = None  # in place of content, when the model refuses
    reasoning_content: str | None = None  # DeepSeek, vLLM
    reasoning: str | None = None  # OpenRouter, newer vLLM, Ollama's OpenAI API


class _Choice(msgspec.Struct, gc=False):
    index: int = 0
    delta: _Delta | None = None
    message: _Delta | None = None
    finish_reason: str | None = None


class _PromptDetails(msgspec.Struct, gc=False):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class _CompletionDetails(msgspec.Struct, gc=False):
    reasoning_tokens: int | None = None


class _Usage(msgspec.Struct, gc=False):
    """``usage``: the OpenAPI ``CompletionUsage`` (openai/openai-openapi). The
    details are optional, and compatible servers send them as null (vLLM's
    ``UsageInfo``, vllm/entrypoints/openai/engine/protocol.py) or leave them
    out."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None
    # DeepSeek's own count of the prompt tokens read from its context cache
    # (https://api-docs.deepseek.com/api/create-chat-completion, usage;
    # https://api-docs.deepseek.com/guides/kv_cache): part of prompt_tokens.
    prompt_cache_hit_tokens: int | None = None


def _report_usage(decoder: ResponseDecoder, usage: _Usage) -> Usage:
    """mal's usage of a ``CompletionUsage``. ``prompt_tokens`` counts the
    cached tokens too (``prompt_tokens_details``: "Breakdown of tokens used in
    the prompt"), and ``completion_tokens`` the reasoning tokens
    (``completion_tokens_details``, "like reasoning tokens, these tokens are
    still counted in the total completion tokens"): both are mal's as they
    are. The cache read is DeepSeek's ``prompt_cache_hit_tokens`` where a
    server sends it (the field DeepSeek documents; its newer responses carry
    ``prompt_tokens_details.cached_tokens`` beside it, with the same count),
    else ``prompt_tokens_details.cached_tokens``; the cache write is
    ``prompt_tokens_details.cache_write_tokens``."""
    prompt = usage.prompt_tokens_details
    completion = usage.completion_tokens_details
    cached = usage.prompt_cache_hit_tokens
    if cached is None and prompt is not None:
        cached = prompt.cached_tokens
    return decoder._report_usage(
        usage.prompt_tokens,
        usage.completion_tokens,
        cached,
        prompt.cache_write_tokens if prompt is not None else None,
        completion.reasoning_tokens if completion is not None else None,
    )


class _Error(msgspec.Struct, gc=False):
    message: str = ""
    type: str | None = None
    code: str | int | None = None


class _Completion(msgspec.Struct, gc=False):
    choices: list[_Choice] | None = None
    usage: _Usage | None = None
    error: _Error | str | None = None


_decoder = msgspec.json.Decoder(_Completion)


class OpenAIStreamDecoder(ResponseDecoder):
    """Decodes a streamed ``chat/completions`` body (SSE ending in ``[DONE]``)."""

    provider = "openai"

    framing = SSEParser

    def __init__(self, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        super().__init__(max_size)
        self._whole_event = cast(SSEParser, self._framer).whole_event

    def feed(self, data: bytes) -> list[Chunk]:
        payload = self._whole_event(data)
        if payload is None:
            return super().feed(data)
        # One whole event, the common case of a paced stream: it is decoded
        # here and goes straight to its chunk. What does not decode ([DONE], a
        # broken event) takes the general path, which says what it is.
        if not self.done:
            try:
                body = _decoder.decode(payload)
            except (msgspec.DecodeError, UnicodeDecodeError):
                pass
            else:
                # _plain_text, inlined: this runs once per token.
                text = None
                choices = body.choices
                if choices and body.usage is None:
                    choice = choices[0]
                    d = choice.delta
                    if (
                        d is not None
                        and choice.finish_reason is None
                        and d.reasoning_content is None
                        and d.reasoning is None
                        and d.tool_calls is None
                        and d.refusal is None
                        and not choice.index
                    ):
                        text = d.content
                        if text:
                            self._parts.append(text)
                            return [Chunk(text)]
                if text is None:
                    # The hot path of a tool call: a piece of a known call's arguments.
                    piece = _plain_piece(body)
                    if piece is not None:
                        delta = self._tools.more(piece[0], piece[1])
                        if delta is not None:
                            return [Chunk("", "", None, None, (delta,))]
                try:
                    chunk = self._chunk(body)
                except MALError as exc:
                    raise self._failed(exc, []) from None
                return [chunk] if chunk is not None else []
        return self._taken([ServerSentEvent(data=payload)])

    def _chunks(self, events: list[ServerSentEvent], chunks: list[Chunk]) -> list[Chunk]:
        if self.done:
            return chunks  # nothing counts after [DONE]
        parts = self._parts
        for event in events:
            data = event.data
            try:
                body = _decoder.decode(data)
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                if data == b"[DONE]":
                    self.done = True
                    break
                raise self._decode_error(exc, data) from None
            text = _plain_text(body)
            if text:
                parts.append(text)
                chunks.append(Chunk(text))
                continue
            if text is None:
                piece = _plain_piece(body)
                if piece is not None:
                    delta = self._tools.more(piece[0], piece[1])
                    if delta is not None:
                        chunks.append(Chunk("", "", None, None, (delta,)))
                        continue
            chunk = self._chunk(body)
            if chunk is not None:
                chunks.append(chunk)
        return chunks

    def _chunk(self, body: _Completion) -> Chunk | None:
        if body.error is not None:
            raise _error(body.error)
        text = reasoning = refusal = ""
        finish = usage = None
        calls: tuple[ToolCallDelta, ...] = ()
        choice = _first_choice(body.choices) if body.choices else None
        if choice is not None:
            delta = choice.delta
            if delta is not None:
                if delta.tool_calls:
                    calls = self._tool_deltas(delta.tool_calls)
                text = delta.content or ""
                reasoning = delta.reasoning_content or delta.reasoning or ""
                if reasoning:
                    self._reasoning.append(reasoning)
                refusal = delta.refusal or ""
                if refusal:
                    self._refusal.append(refusal)
            if choice.finish_reason is not None:
                finish = self._finish(choice.finish_reason, FINISH_REASONS)
        if body.usage is not None:
            usage = _report_usage(self, body.usage)
        if text:
            self._parts.append(text)
        elif not (reasoning or finish or usage or refusal or calls):
            return None  # the role-only first chunk, and other empty ones
        return Chunk(text, reasoning, finish, usage, calls, refusal)

    def _tool_deltas(self, entries: list[_ToolDelta]) -> tuple[ToolCallDelta, ...]:
        return _tool_deltas(self._tools, entries)


class OpenAIBodyDecoder(BodyDecoder):
    """Decodes a non-streamed ``chat.completion`` body into one chunk."""

    provider = "openai"
    body_decoder = _decoder

    def _body_chunk(self, completion: _Completion, body: bytes) -> Chunk:
        if completion.error is not None:
            raise _error(completion.error)
        text = reasoning = refusal = ""
        finish = usage = None
        calls: tuple[ToolCallDelta, ...] = ()
        if completion.choices:
            choice = _first_choice(completion.choices)
            message = choice.message or choice.delta
            if message is not None:
                text = message.content or ""
                reasoning = message.reasoning_content or message.reasoning or ""
                if reasoning:
                    self._reasoning.append(reasoning)
                refusal = message.refusal or ""
                if refusal:
                    self._refusal.append(refusal)
                if message.tool_calls:
                    calls = _tool_deltas(self._tools, message.tool_calls)
            finish = self._finish(choice.finish_reason, FINISH_REASONS)
        elif completion.choices is None:
            raise self._decode_error(ValueError("no 'choices'"), body)
        if completion.usage is not None:
            usage = _report_usage(self, completion.usage)
        return Chunk(text, reasoning, finish, usage, calls, refusal)


def _tool_deltas(tools: ToolCallAssembler, entries: list[_ToolDelta]) -> tuple[ToolCallDelta, ...]:
    """The deltas of a chunk's ``tool_calls`` entries (several entries, even
    of one index, are merged in order)."""
    out: list[ToolCallDelta] = []
    for position, entry in enumerate(entries):
        function = entry.function
        name = arguments = None
        if function is not None:
            name = function.name
            args = function.arguments
            arguments = args if isinstance(args, str) or args is None else _encode_args(args)
        key = entry.index if entry.index is not None else position
        delta = tools.piece(key, entry.id, name, arguments)
        if delta is not None:
            out.append(delta)
    return tuple(out)


def _encode_args(arguments: dict[str, Any]) -> str:
    return msgspec.json.encode(arguments).decode()


def _plain_piece(body: _Completion) -> tuple[int, str] | None:
    """``(index, arguments)`` of a body that holds nothing but a piece of one
    call's arguments (no id, no name, no text): the hot path of a tool call."""
    choices = body.choices
    if choices and body.usage is None:
        choice = choices[0]
        delta = choice.delta
        if (
            delta is not None
            and choice.finish_reason is None
            and not choice.index
            and not delta.content
            and delta.reasoning_content is None
            and delta.reasoning is None
            and delta.refusal is None
        ):
            calls = delta.tool_calls
            if calls is not None and len(calls) == 1:
                entry = calls[0]
                function = entry.function
                if entry.id is None and function is not None and function.name is None:
                    arguments = function.arguments
                    if type(arguments) is str:
                        return (0 if entry.index is None else entry.index), arguments
    return None


def _plain_text(body: _Completion) -> str | None:
    """The text of a body that holds nothing but a text delta of the first
    choice (the hot path); None for any other body."""
    choices = body.choices
    if choices and body.usage is None:
        choice = choices[0]
        delta = choice.delta
        if (
            delta is not None
            and choice.finish_reason is None
            and delta.reasoning_content is None
            and delta.reasoning is None
            and delta.tool_calls is None
            and delta.refusal is None
            and not choice.index
        ):
            return delta.content
    return None


def _first_choice(choices: list[_Choice]) -> _Choice:
    # With several choices (n > 1) mal follows the first one.
    choice = choices[0]
    if choice.index:
        choice = next((c for c in choices if c.index == 0), _NO_CHOICE)
    return choice


_NO_CHOICE = _Choice(index=-1)


def _error(error: _Error | str) -> Exception:
    if isinstance(error, str):
        return stream_error("openai", error, None, False)
    etype = error.type or (str(error.code) if error.code is not None else None)
    return stream_error("openai", error.message, etype, etype in RETRYABLE_ERRORS)


def _openai_message(message: Message | dict[str, Any]) -> dict[str, Any]:
    """A message in the chat completions form: tool results are ``role:
    "tool"`` messages with the call's id (text only), and an assistant turn's
    calls carry their arguments as JSON text."""
    if isinstance(message, dict):
        if message["role"] == "tool":
            tool_result_id(message)
            message.pop("is_error", None)  # mal's own key; OpenAI has no such field
            message["content"] = text_only(message.get("content", ""), "openai", "tool results")
            return message
        calls = message_tool_calls(message)
        if calls is not None:
            message["tool_calls"] = [_call_out(call) for call in calls]
        if "content" in message:
            message["content"] = content_parts(message["content"], "openai", Image.to_openai)
        return message
    if message.role == "tool":
        return {
            "role": "tool",
            "tool_call_id": tool_result_id(message),
            "content": text_only(message.content, "openai", "tool results"),
        }
    out: dict[str, Any] = {
        "role": message.role,
        "content": content_parts(message.content, "openai", Image.to_openai),
    }
    if message.name is not None:
        out["name"] = message.name
    if message.tool_calls:
        if not out["content"]:
            out["content"] = None
        out["tool_calls"] = [_call_out(call) for call in message.tool_calls]
    return out


#: The host of OpenAI's own API.
OPENAI_HOST = "api.openai.com"

#: OpenAI's reasoning models, by the start of their name: ``o`` and a number
#: (o1, o1-2024-12-17, o3-mini, o4-mini) or ``gpt-5`` (gpt-5, gpt-5-nano,
#: gpt-5.1), then the end of the name or a separator: the "gpt-5 and o-series
#: models" of openai/openai-openapi (component ``Reasoning``; model ids as in
#: ``AssistantSupportedModels``). A name given with an organisation
#: (``openai/o3-mini``, as OpenRouter names them) is matched on its last part;
#: a name that says nothing of the model (an Azure deployment's, a fine-tune's
#: ``ft:...``) is not recognised.
_REASONING = re.compile(r"(?:o[0-9]+|gpt-5)(?:[-.:]|\Z)")


def reasoning_model(model: str) -> bool:
    """Whether ``model`` is the name of one of OpenAI's reasoning models
    (``o1``, ``o3-mini``, ``openai/o4-mini``, ``gpt-5-nano``...), which take
    ``max_completion_tokens``, never ``max_tokens``."""
    return _REASONING.match(model.rsplit("/", 1)[-1].lower()) is not None


def _names_token_limit(extra_body: dict[str, Any] | None) -> bool:
    # An explicit extra_body wins: the caller chose the field, mal adds none.
    return extra_body is not None and (
        "max_tokens" in extra_body or "max_completion_tokens" in extra_body
    )


def schema_spec(schema: OutputSchema) -> dict[str, Any]:
    """An output schema as OpenAI takes it: strict when it has a strict form,
    sent as it is otherwise."""
    return {
        "name": schema.name,
        "schema": schema.strict_schema if schema.strict else schema.json_schema,
        "strict": schema.strict,
    }


def bearer_headers(stream: bool, api_key: str | None) -> dict[str, str]:
    """The headers of an OpenAI request: JSON in, SSE or JSON out, the key as a bearer."""
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
    }
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


def _call_out(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json},
    }


class OpenAIProtocol(Protocol):
    """``POST {base}/chat/completions`` with ``Authorization: Bearer``."""

    name = "openai"
    default_base_url = "https://api.openai.com/v1"
    base_url_env = "OPENAI_BASE_URL"
    api_key_env = "OPENAI_API_KEY"

    def build_request(
        self, params: GenerateParams, *, base_url: str | None = None, api_key: str | None = None
    ) -> HTTPRequest:
        messages = [_openai_message(message) for message in chat_messages(params.prompt)]
        if params.system is not None:
            messages.insert(0, {"role": "system", "content": params.system})
        body: dict[str, Any] = {"model": params.model, "messages": messages}
        if params.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        for key in ("temperature", "top_p", "stop", "seed"):
            value = getattr(params, key)
            if value is not None:
                body[key] = value
        if params.max_tokens is not None and not _names_token_limit(params.extra_body):
            body[self._max_tokens_field(base_url, params.model)] = params.max_tokens
        if params.tools:
            body["tools"] = [tool.to_openai() for tool in params.tools]
            choice = params.tool_choice
            if choice is not None:
                body["tool_choice"] = (
                    choice
                    if choice in ("auto", "none", "required")
                    else {"type": "function", "function": {"name": choice}}
                )
            if params.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = params.parallel_tool_calls
        schema = params.schema
        if schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": schema_spec(schema)}
        headers = self._headers(params.stream, api_key)
        return self._finish_request(self._url(base_url, params.model), body, headers, params)

    def _url(self, base_url: str | None, model: str) -> str:
        return join_url(base_url or self.default_base_url, "/chat/completions")

    def _headers(self, stream: bool, api_key: str | None) -> dict[str, str]:
        return bearer_headers(stream, api_key)

    def _max_tokens_field(self, base_url: str | None, model: str) -> str:
        """The field of ``max_tokens=``: ``max_completion_tokens`` for OpenAI's
        own API and for its reasoning models wherever they are served, else
        ``max_tokens``, which every OpenAI-compatible server knows.

        openai/openai-openapi, ``CreateChatCompletionRequest.max_tokens``:
        "deprecated in favor of `max_completion_tokens`, and is not compatible
        with o-series models"; the reasoning models answer it with 400
        "Unsupported parameter: 'max_tokens' is not supported with this model.
        Use 'max_completion_tokens' instead." Other servers (vLLM, llama.cpp,
        LM Studio, Ollama's OpenAI API...) may not know the newer field."""
        host = urlsplit(base_url or self.default_base_url).hostname
        if host == OPENAI_HOST or reasoning_model(model):
            return "max_completion_tokens"
        return "max_tokens"

    def decoder(self, stream: bool, *, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> ResponseDecoder:
        return OpenAIStreamDecoder(max_size) if stream else OpenAIBodyDecoder(max_size)


#: The Azure OpenAI API version when neither ``MALConfig.azure_api_version``
#: nor ``OPENAI_API_VERSION`` gives one: the latest generally available.
AZURE_API_VERSION = "2024-10-21"


class AzureOpenAIProtocol(OpenAIProtocol):
    """Azure OpenAI: the chat completions API at a deployment's URL.

    The base URL is the resource endpoint (``AZURE_OPENAI_ENDPOINT``,
    ``https://NAME.openai.azure.com``) and the model name is the deployment:
    requests go to ``{endpoint}/openai/deployments/{deployment}/chat/completions
    ?api-version=...`` with the key in an ``api-key`` header. A base URL that
    is already a deployment's URL, or the v1 API's (``.../openai/v1``, which
    takes no api-version), is used as it is. The API version travels as the
    base URL's query (see :func:`mal.config.resolve_endpoint`).
    """

    name = "azure"
    default_base_url = ""
    base_url_env = "AZURE_OPENAI_ENDPOINT"
    api_key_env = "AZURE_OPENAI_API_KEY"

    def _url(self, base_url: str | None, model: str) -> str:
        return azure_url(base_url or "", model, "/chat/completions")

    def _max_tokens_field(self, base_url: str | None, model: str) -> str:
        """``max_completion_tokens``, which every api-version since
        2024-09-01-preview takes (and the v1 API, which has none); ``max_tokens``
        for the versions before it, which do not know the newer field.

        The model name is a deployment's, which says nothing of the model.
        Sources: learn.microsoft.com/azure/ai-services/openai/api-version-deprecation,
        "Changes between 2024-09-01-preview and 2024-08-01-preview:
        max_completion_tokens added to support o1-preview and o1-mini models.
        max_tokens does not work with the o1 series models."; Azure/azure-rest-api-specs,
        AzureOpenAI/inference/stable/2024-10-21/inference.yaml
        ``chatCompletionsRequestCommon`` has both (``max_tokens`` "deprecated in
        favor of `max_completion_tokens`"), stable/2024-06-01 has only ``max_tokens``."""
        version = azure_api_version(base_url or "")
        if version is not None and version[:10] < AZURE_MAX_COMPLETION_TOKENS_SINCE:
            return "max_tokens"
        return "max_completion_tokens"

    def _headers(self, stream: bool, api_key: str | None) -> dict[str, str]:
        headers = bearer_headers(stream, None)
        if api_key:
            headers["api-key"] = api_key
        return headers


#: The first Azure OpenAI api-version that takes ``max_completion_tokens``.
AZURE_MAX_COMPLETION_TOKENS_SINCE = "2024-09-01"


def azure_api_version(base_url: str) -> str | None:
    """The api-version in the query of an Azure base URL, or None."""
    for name, value in parse_qsl(urlsplit(base_url).query):
        if name == "api-version":
            return value
    return None


def azure_url(base_url: str, deployment: str, path: str) -> str:
    """The URL of ``path`` (``/chat/completions``, ``/embeddings``) of a
    deployment, from a resource endpoint whose query holds the api-version."""
    if not base_url:
        raise ConfigError(
            "azure needs its resource endpoint: set AZURE_OPENAI_ENDPOINT or "
            "MALConfig(base_urls={'azure': 'https://NAME.openai.azure.com'})"
        )
    base, _, query = base_url.partition("?")
    base = base.rstrip("/")
    if base.endswith("/openai/v1"):
        return base + path  # the v1 API: no deployment in the URL, no api-version
    if "/openai/deployments/" not in base:
        base = f"{base}/openai/deployments/{quote(deployment, safe='')}"
    return f"{base}{path}?{query}" if query else f"{base}{path}"
