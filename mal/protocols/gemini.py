"""Google's Gemini API (the Generative Language API).

``POST {base}/v1beta/models/{model}:generateContent``, or
``:streamGenerateContent?alt=sse`` for server-sent events, each event's data
one ``GenerateContentResponse``; the key goes in ``x-goog-api-key``
(https://ai.google.dev/api/generate-content, "Method: models.generateContent"
and "Method: models.streamGenerateContent"). There is no end marker: the
event whose candidate carries ``finishReason`` is the last one, so a body that
ends before it was cut short. This module contains no networking code at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, cast

import msgspec

from ..errors import ConfigError, MALError
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
    join_url,
    message_tool_calls,
    stop_list,
    stream_error,
    tool_result_id,
)

__all__ = ["GeminiProtocol", "GeminiStreamDecoder", "GeminiBodyDecoder"]

#: ``Candidate.FinishReason`` (https://ai.google.dev/api/generate-content#FinishReason;
#: python-genai ``types.py`` ``FinishReason``): the reasons that are a filter's
#: are "content_filter"; the rest (``OTHER``, ``MALFORMED_FUNCTION_CALL``...) stay as sent.
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}

#: The ``google.rpc.Code`` names of errors worth retrying
#: (https://cloud.google.com/apis/design/errors, "Retrying errors").
RETRYABLE_STATUSES = frozenset(
    {"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}
)


# View structs of ``GenerateContentResponse`` (https://ai.google.dev/api/generate-content
# #v1beta.GenerateContentResponse): only the fields mal reads.


class _Part(msgspec.Struct, gc=False, rename="camel"):
    # ``Part`` (https://ai.google.dev/api/caching#Part): one of text, functionCall...;
    # ``thought`` marks a thought summary, ``thoughtSignature`` is opaque base64 that
    # must go back with the part (https://ai.google.dev/gemini-api/docs/thought-signatures).
    text: str | None = None
    thought: bool = False
    thought_signature: str | None = None
    function_call: dict[str, Any] | None = None


class _Content(msgspec.Struct, gc=False):
    parts: list[_Part] = []


class _Candidate(msgspec.Struct, gc=False, rename="camel"):
    content: _Content | None = None
    finish_reason: str | None = None
    index: int = 0


class _UsageMetadata(msgspec.Struct, gc=False, rename="camel"):
    # ``UsageMetadata`` (https://ai.google.dev/api/generate-content#UsageMetadata).
    prompt_token_count: int | None = None
    candidates_token_count: int | None = None
    cached_content_token_count: int | None = None
    thoughts_token_count: int | None = None


class _PromptFeedback(msgspec.Struct, gc=False, rename="camel"):
    block_reason: str | None = None


class _Error(msgspec.Struct, gc=False):
    code: int | None = None
    message: str = ""
    status: str | None = None


class _Response(msgspec.Struct, gc=False, rename="camel"):
    candidates: list[_Candidate] = []
    # Raw: every event repeats the counts so far; only the last one is decoded.
    usage_metadata: msgspec.Raw = msgspec.Raw()
    prompt_feedback: _PromptFeedback | None = None
    # A failure inside a stream: python-genai ``_api_client.py`` reads a chunk that
    # starts ``{"error":`` as ``{"error": {"code", "message", "status"}}``.
    error: _Error | None = None


_response_decoder = msgspec.json.Decoder(_Response)
_usage_decoder = msgspec.json.Decoder(_UsageMetadata)
_encode = msgspec.json.Encoder().encode


def _usage(decoder: ResponseDecoder, raw: msgspec.Raw) -> Usage | None:
    """mal's usage of Gemini's ``usageMetadata``: ``output_tokens`` counts the
    thinking tokens, which Gemini counts apart (``thoughtsTokenCount``) from
    ``candidatesTokenCount``; ``cachedContentTokenCount`` is part of
    ``promptTokenCount`` (https://ai.google.dev/api/generate-content#UsageMetadata)."""
    try:
        usage = _usage_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise decoder._decode_error(exc, bytes(raw)) from None
    candidates, thoughts = usage.candidates_token_count, usage.thoughts_token_count
    output = None
    if candidates is not None or thoughts is not None:
        output = (candidates or 0) + (thoughts or 0)
    return decoder._report_usage(
        usage.prompt_token_count, output, usage.cached_content_token_count, None, thoughts
    )


def _plain_text(response: _Response) -> str | None:
    """The text of a response that is one plain text part of the first
    candidate (no thought, signature or call), without a finish reason or an
    error: the hot path of a text stream. None for any other response."""
    candidates = response.candidates
    if candidates and response.error is None:
        candidate = candidates[0]
        content = candidate.content
        if candidate.finish_reason is None and content is not None:
            parts = content.parts
            if len(parts) == 1:
                part = parts[0]
                if (
                    not part.thought
                    and part.thought_signature is None
                    and part.function_call is None
                ):
                    return part.text
    return None


class _Turn:
    """The model's turn as its parts came, for sending it back: consecutive text
    pieces of one kind join into one part, which takes the signature that closes
    it (a stream may send it on a last, empty piece). Needed only when a part
    carries a ``thoughtSignature`` or a call its own ``id``: otherwise the turn
    is rebuilt from its text and calls."""

    __slots__ = ("needed", "parts")

    def __init__(self) -> None:
        # [kind, text pieces, signature, functionCall]
        self.parts: list[list[Any]] = []
        self.needed = False

    def add(self, part: _Part) -> None:
        signature = part.thought_signature
        if signature:
            self.needed = True
        if part.function_call is not None:
            if part.function_call.get("id"):
                self.needed = True
            self.parts.append(["call", None, signature, part.function_call])
            return
        if part.text is None:
            return
        kind = "thought" if part.thought else "text"
        parts = self.parts
        if parts and parts[-1][0] == kind and parts[-1][2] is None:
            last = parts[-1]
            if part.text:
                last[1].append(part.text)
            last[2] = signature
        else:
            parts.append([kind, [part.text], signature, None])

    def blocks(self) -> list[dict[str, Any]] | None:
        if not self.needed:
            return None
        out: list[dict[str, Any]] = []
        for kind, pieces, signature, call in self.parts:
            part: dict[str, Any]
            if kind == "call":
                part = {"functionCall": call}
            else:
                part = {"text": "".join(pieces)}
                if kind == "thought":
                    part["thought"] = True
            if signature:
                part["thoughtSignature"] = signature
            out.append(part)
        return out


class _GeminiDecoding:
    """What the stream and body decoders share: one ``GenerateContentResponse``
    into one chunk."""

    provider: ClassVar[str] = "gemini"

    def _setup(self) -> None:
        self._turn = _Turn()
        self._usage_raw: msgspec.Raw | None = None
        # The text pieces of the turn's last part while it is an open run of
        # plain text (no signature yet) that the last response ended with, and
        # no call is open: a response of one more plain text part only adds
        # its text to it. None otherwise.
        self._run: list[str] | None = None

    def _response_chunk(self: Any, response: _Response, last: bool) -> Chunk | None:
        """The chunk of one response (an event, or the whole body); ``last``:
        the body ends with it, whatever it says."""
        if response.error is not None:
            error = response.error
            retryable = error.status in RETRYABLE_STATUSES or (error.code or 0) >= 500
            raise stream_error("gemini", error.message, error.status, retryable)
        if response.usage_metadata:
            self._usage_raw = response.usage_metadata
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCallDelta] = []
        finish_raw = None
        self._run = None
        if response.candidates:
            candidate = response.candidates[0]
            if candidate.content is not None:
                turn = self._turn
                for part in candidate.content.parts:
                    turn.add(part)
                    self._run = None
                    call = part.function_call
                    if call is not None:
                        args = call.get("args")
                        calls.append(
                            self._tools.whole(
                                call.get("id") or None,
                                str(call.get("name") or ""),
                                _encode(args).decode() if args else "{}",
                            )
                        )
                    elif part.text:
                        if part.thought:
                            thoughts.append(part.text)
                        else:
                            self._tools.other_output()
                            texts.append(part.text)
                            if part.thought_signature is None:
                                # The turn's last part is this open text run.
                                self._run = turn.parts[-1][1]
            finish_raw = candidate.finish_reason
        elif response.prompt_feedback is not None and response.prompt_feedback.block_reason:
            # The prompt was blocked: no candidates, the reason in promptFeedback
            # (https://ai.google.dev/api/generate-content#PromptFeedback).
            finish_raw = response.prompt_feedback.block_reason
            self._finish(finish_raw, {finish_raw: "content_filter"})
            self.done = True
            return Chunk("", "", "content_filter", self._final_usage())
        finish = None
        usage = None
        if finish_raw is not None:
            finish = self._finish(finish_raw, FINISH_REASONS)
            self.done = True
            self._run = None
        if finish is not None or last:
            usage = self._final_usage()
        text = "".join(texts) if len(texts) != 1 else texts[0]
        reasoning = "".join(thoughts)
        if text:
            self._parts.append(text)
        if reasoning:
            self._reasoning.append(reasoning)
        if not (text or reasoning or calls or finish or usage):
            return None
        return Chunk(text, reasoning, finish, usage, tuple(calls))

    def _final_usage(self: Any) -> Usage | None:
        raw = self._usage_raw
        return _usage(self, raw) if raw is not None else None

    def message(self: Any) -> Message:
        message: Message = ResponseDecoder.message(self)
        message.blocks = self._turn.blocks()
        return message


class GeminiStreamDecoder(_GeminiDecoding, ResponseDecoder):
    """Decodes a ``streamGenerateContent?alt=sse`` body."""

    framing = SSEParser

    def __init__(self, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        super().__init__(max_size)
        self._setup()
        self._whole_event = cast(SSEParser, self._framer).whole_event

    def feed(self, data: bytes) -> list[Chunk]:
        payload = self._whole_event(data)
        if payload is None:
            return super().feed(data)
        if self.done:
            return []  # nothing counts after the finishing event
        # One whole event, the common case of a paced stream: it is decoded
        # here and goes straight to its chunk. What does not decode (a blank or
        # broken event) takes the general path, which says what it is.
        try:
            response = _response_decoder.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return self._taken([ServerSentEvent(data=payload)])
        run = self._run
        if run is not None:
            # _plain_text, inlined: this runs once per token.
            candidates = response.candidates
            if candidates and response.error is None:
                candidate = candidates[0]
                content = candidate.content
                if candidate.finish_reason is None and content is not None:
                    parts = content.parts
                    if len(parts) == 1:
                        part = parts[0]
                        text = part.text
                        if (
                            text
                            and not part.thought
                            and part.thought_signature is None
                            and part.function_call is None
                        ):
                            if response.usage_metadata:
                                self._usage_raw = response.usage_metadata
                            run.append(text)
                            self._parts.append(text)
                            return [Chunk(text)]
        try:
            chunk = self._response_chunk(response, False)
        except MALError as exc:
            raise self._failed(exc, []) from None
        return [chunk] if chunk is not None else []

    def _chunks(self, events: list[ServerSentEvent], chunks: list[Chunk]) -> list[Chunk]:
        for sse in events:
            if self.done:
                break  # nothing counts after the finishing event
            data = sse.data
            if not data or data.isspace():
                continue
            try:
                response = _response_decoder.decode(data)
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                raise self._decode_error(exc, data) from None
            run = self._run
            if run is not None:
                text = _plain_text(response)
                if text:
                    if response.usage_metadata:
                        self._usage_raw = response.usage_metadata
                    run.append(text)
                    self._parts.append(text)
                    chunks.append(Chunk(text))
                    continue
            chunk = self._response_chunk(response, False)
            if chunk is not None:
                chunks.append(chunk)
        return chunks


class GeminiBodyDecoder(_GeminiDecoding, BodyDecoder):
    """Decodes a ``generateContent`` body into one chunk."""

    body_decoder = _response_decoder

    def __init__(self, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        super().__init__(max_size)
        self._setup()

    def _body_chunk(self, decoded: _Response, body: bytes) -> Chunk:
        chunk = self._response_chunk(decoded, True)
        if chunk is None:
            return Chunk()
        # BodyDecoder keeps the text itself.
        if chunk.text:
            self._parts.pop()
        return chunk


# Requests ------------------------------------------------------------------


def _image_part(image: Image) -> dict[str, Any]:
    # ``Blob`` (https://ai.google.dev/api/caching#Blob): mimeType and base64 data.
    if image.data is None:
        raise ConfigError(
            "Gemini takes images as bytes (inlineData), not URLs; use Image.from_bytes or "
            "Image.from_path"
        )
    image.check("gemini")
    return {"inlineData": {"mimeType": image.media_type, "data": image.base64}}


def _parts(content: Any) -> list[dict[str, Any]]:
    """A message's content as ``Part`` objects: text, images as inlineData; a
    dict part is already Gemini's own."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, (list, tuple)):
        return [{"text": str(content)}]
    out: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, str):
            out.append({"text": part})
        elif isinstance(part, Image):
            out.append(_image_part(part))
        elif isinstance(part, Mapping):
            if part.get("type") == "text" and "text" in part:
                out.append({"text": str(part["text"])})
            else:
                out.append(dict(part))
        else:
            raise ConfigError(
                f"a content part must be a str, a mal.Image or a dict, not {type(part).__name__}"
            )
    return out


def _call_part(call: ToolCall, with_id: bool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": call.name, "args": call.arguments}
    if with_id:
        function["id"] = call.id
    return {"functionCall": function}


def _result_text(content: Any) -> Any:
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                raise ConfigError("a tool result for Gemini must be text")
        return "\n".join(texts)
    return content


def _contents(params: GenerateParams) -> tuple[list[dict[str, Any]], list[str]]:
    """``contents`` (roles ``user`` and ``model``) and the system texts. The
    results of one turn's calls go in one ``user`` content of
    ``functionResponse`` parts, each named after the call it answers
    (https://ai.google.dev/gemini-api/docs/function-calling)."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # call id -> tool name
    own_ids: set[str] = set()  # ids Gemini gave its calls: they go back with the results
    results_open = False
    for message in chat_messages(params.prompt):
        role = message.role if isinstance(message, Message) else message["role"]
        content = message.content if isinstance(message, Message) else message.get("content")
        if role == "system":
            if not isinstance(content, str):
                raise ConfigError("a system message for Gemini must be text")
            system.append(content)
            results_open = False
            continue
        if role == "tool":
            id = tool_result_id(message)
            name = message.name if isinstance(message, Message) else message.get("name")
            name = name or names.get(id)
            if not name:
                raise ConfigError(
                    f"the tool result for call {id!r} has no tool name, and no earlier "
                    "assistant turn made that call: Gemini needs the tool's name (set "
                    "Message.name)"
                )
            is_error = message.is_error if isinstance(message, Message) else message.get("is_error")
            # FunctionResponse.response: "output" holds the output, "error" the
            # failure (python-genai types.py FunctionResponse.response).
            key = "error" if is_error else "output"
            function: dict[str, Any] = {"name": name, "response": {key: _result_text(content)}}
            if id in own_ids:
                function["id"] = id
            part = {"functionResponse": function}
            if results_open:
                contents[-1]["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
                results_open = True
            continue
        results_open = False
        if role == "assistant":
            blocks = message.blocks if isinstance(message, Message) else None
            calls = message_tool_calls(message)
            for call in calls or ():
                names[call.id] = call.name
            if blocks:
                for block in blocks:
                    function_call = block.get("functionCall")
                    if isinstance(function_call, Mapping) and function_call.get("id"):
                        own_ids.add(str(function_call["id"]))
                contents.append({"role": "model", "parts": [dict(b) for b in blocks]})
                continue
            parts = _parts(content)
            parts += [_call_part(call, False) for call in calls or ()]
            if isinstance(message, dict) and not calls and isinstance(message.get("parts"), list):
                parts = list(message["parts"])
            contents.append({"role": "model", "parts": parts})
            continue
        if role != "user":
            raise ConfigError(
                f"Gemini takes the roles user, assistant, system and tool, not {role!r}"
            )
        contents.append({"role": "user", "parts": _parts(content)})
    return contents, system


def _tool_config(params: GenerateParams) -> dict[str, Any] | None:
    """``toolConfig.functionCallingConfig`` (https://ai.google.dev/api/caching#FunctionCallingConfig):
    mode AUTO, ANY (a call is forced) or NONE; a forced tool by name is ANY with
    ``allowedFunctionNames``."""
    choice = params.tool_choice
    if choice is None:
        return None
    config: dict[str, Any]
    if choice == "auto":
        config = {"mode": "AUTO"}
    elif choice == "none":
        config = {"mode": "NONE"}
    elif choice == "required":
        config = {"mode": "ANY"}
    else:
        config = {"mode": "ANY", "allowedFunctionNames": [choice]}
    return {"functionCallingConfig": config}


def model_path(model: str) -> str:
    # The resource name is ``models/{model}``; a tuned model's is ``tunedModels/...``.
    if model.startswith(("models/", "tunedModels/")):
        return model
    return "models/" + model


class GeminiProtocol(Protocol):
    """``POST {base}/v1beta/models/{model}:generateContent`` (or
    ``:streamGenerateContent?alt=sse``) with ``x-goog-api-key``."""

    name = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"
    # python-genai ``_base_url.py``: GOOGLE_GEMINI_BASE_URL overrides the base URL.
    base_url_env = "GOOGLE_GEMINI_BASE_URL"
    api_key_env = "GEMINI_API_KEY"
    more_api_key_envs = ("GOOGLE_API_KEY",)

    def build_request(
        self, params: GenerateParams, *, base_url: str | None = None, api_key: str | None = None
    ) -> HTTPRequest:
        if params.parallel_tool_calls is False:
            raise ConfigError(
                "parallel_tool_calls=False: Gemini cannot turn parallel function calls off"
            )
        contents, system = _contents(params)
        if params.system is not None:
            system.insert(0, params.system)
        body: dict[str, Any] = {"contents": contents}
        if system:
            # ``systemInstruction``: a Content of text parts.
            body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
        config: dict[str, Any] = {}
        # ``GenerationConfig`` (https://ai.google.dev/api/generate-content#generationconfig).
        if params.temperature is not None:
            config["temperature"] = params.temperature
        if params.top_p is not None:
            config["topP"] = params.top_p
        if params.max_tokens is not None:
            config["maxOutputTokens"] = params.max_tokens
        stop = stop_list(params.stop)
        if stop is not None:
            config["stopSequences"] = stop
        if params.seed is not None:
            config["seed"] = params.seed
        if params.schema is not None:
            # ``responseJsonSchema`` takes a JSON Schema as it is (``responseSchema``
            # takes Google's OpenAPI subset); it needs ``responseMimeType``
            # application/json (GenerationConfig.response_json_schema, python-genai types.py).
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = params.schema.json_schema
        if config:
            body["generationConfig"] = config
        if params.tools:
            # ``Tool.functionDeclarations``; ``parametersJsonSchema`` takes a JSON
            # Schema as it is (https://ai.google.dev/api/caching#FunctionDeclaration).
            declarations = []
            for tool in params.tools:
                declaration: dict[str, Any] = {"name": tool.name}
                if tool.description:
                    declaration["description"] = tool.description
                declaration["parametersJsonSchema"] = tool.parameters
                declarations.append(declaration)
            body["tools"] = [{"functionDeclarations": declarations}]
            tool_config = _tool_config(params)
            if tool_config is not None:
                body["toolConfig"] = tool_config
        headers = {"content-type": "application/json"}
        if api_key:
            headers["x-goog-api-key"] = api_key
        path = f"/v1beta/{model_path(params.model)}:"
        path += "streamGenerateContent?alt=sse" if params.stream else "generateContent"
        url = join_url(base_url or self.default_base_url, path)
        return self._finish_request(url, body, headers, params)

    def decoder(self, stream: bool, *, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> ResponseDecoder:
        return GeminiStreamDecoder(max_size) if stream else GeminiBodyDecoder(max_size)
