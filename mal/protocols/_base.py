"""What every provider protocol shares: the request and decoder shapes, message
normalisation, the deep merge of ``extra_body``, and the mapping of an error
status to the :class:`mal.APIStatusError` family.

This module contains no networking code at all.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

import msgspec

from ..errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConflictError,
    DecodeError,
    IncompleteStreamError,
    InternalServerError,
    MALError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    StreamError,
    UnprocessableEntityError,
)
from ..framing import DEFAULT_MAX_EVENT_SIZE, NDJSONSplitter, SSEParser, Utf8Validator
from ..images import Image
from ..schema import OutputSchema
from ..tools import Tool
from ..types import Chunk, Message, Prompt, ToolCall, Usage
from ._tools import ToolCallAssembler

__all__ = [
    "GenerateParams",
    "HTTPRequest",
    "Protocol",
    "ResponseDecoder",
    "status_error",
    "parse_retry_after",
    "deep_merge",
    "with_query",
    "normalize_messages",
    "chat_messages",
    "prompt_length",
    "content_parts",
]

#: How much of an error body that is not JSON (an HTML page from a proxy) an
#: error keeps: enough to recognise the page, not a whole document in a log line.
MAX_ERROR_TEXT = 1000

_encoder = msgspec.json.Encoder()
_any_decoder = msgspec.json.Decoder()


class GenerateParams(msgspec.Struct, kw_only=True):
    """A provider-neutral generation request; each protocol maps it to its own body."""

    model: str
    prompt: Prompt
    stream: bool = True
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    extra_body: dict[str, Any] | None = None
    extra_headers: dict[str, str] | None = None
    #: Parameters merged into the URL's query (see :func:`with_query`).
    extra_query: dict[str, Any] | None = None
    #: The output schema of a structured call.
    schema: OutputSchema | None = None
    #: The tools the model may call, and how it may call them.
    tools: list[Tool] | None = None
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None
    #: Ask for ``schema`` with a forced tool whose input is the answer
    #: (Anthropic models and platforms without structured outputs).
    schema_tool: bool = False
    #: Prompt-cache breakpoints after the system prompt and after the tools
    #: (only providers that take breakpoints read them).
    cache_system: bool = False
    cache_tools: bool = False


def forced_tool(params: GenerateParams) -> bool:
    """Whether the call forces a tool call (``required`` or a tool's name)."""
    return bool(params.tools) and params.tool_choice not in (None, "auto", "none")


class HTTPRequest(msgspec.Struct):
    """An HTTP request to send, in terms any HTTP client understands."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    #: Whether the response body is a stream of events.
    stream: bool

    def __repr__(self) -> str:
        # Headers carry API keys: never show them.
        return f"HTTPRequest({self.method} {self.url}, stream={self.stream})"


class ResponseDecoder:
    """Turns one response body into :class:`mal.Chunk` objects.

    ``feed(data)`` takes the body's bytes as they arrive, in pieces of any size,
    and returns the chunks they completed; ``flush()`` is called at the end of
    the body and raises :class:`mal.IncompleteStreamError` when the provider's
    end marker never came. Errors raised here carry ``partial_text``: all text
    decoded before the failure.

    After the end, ``finish_reason`` is the normalised stop reason,
    ``raw_finish_reason`` the provider's own, ``usage`` the latest value
    reported for each field, ``tool_calls`` the assembled calls, ``reasoning``
    and ``refusal`` the whole thinking and refusal texts, and :meth:`message`
    the assistant turn, ready to be sent back.
    """

    #: The assembled tool calls, set at the end of the body.
    tool_calls: list[ToolCall]

    provider: ClassVar[str] = ""
    #: The framing of a stream decoder's body (``SSEParser`` or ``NDJSONSplitter``).
    framing: ClassVar[type[SSEParser] | type[NDJSONSplitter] | None] = None

    def __init__(self, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        if self.framing is not None:
            self._framer = framer = self.framing(max_size)
            self._frame = framer.feed
            self._frame_end = framer.flush
        self._max_size = max_size
        self._parts: list[str] = []
        # Thinking and refusal pieces: only reasoning and refusal chunks touch them.
        self._reasoning: list[str] = []
        self._refusal: list[str] = []
        self.tool_calls = []
        self._tools = ToolCallAssembler()
        self._ending = False
        self.done = False
        self.finish_reason: str | None = None
        self.raw_finish_reason: str | None = None
        self.usage: Usage | None = None

    @property
    def text(self) -> str:
        """All text decoded so far."""
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def reasoning(self) -> str:
        """All thinking text decoded so far."""
        return "".join(self._reasoning)

    @property
    def refusal(self) -> str:
        """All refusal text decoded so far (OpenAI's ``refusal``)."""
        return "".join(self._refusal)

    def message(self) -> Message:
        """The assistant turn of this response, to send back in a conversation.

        Providers whose turns carry more than text and tool calls (Anthropic's
        signed thinking blocks) override this."""
        return Message(
            "assistant",
            self.text,
            tool_calls=self.tool_calls or None,
            reasoning=self.reasoning or None,
        )

    # ``_frame`` and ``_frame_end`` are the framing object's bound ``feed`` and
    # ``flush`` (no call in between on the hot path); ``_chunks`` turns what
    # they return into chunks.
    _framer: SSEParser | NDJSONSplitter
    _frame: Callable[[bytes], list[Any]]
    _frame_end: Callable[[], list[Any]]

    def feed(self, data: bytes) -> list[Chunk]:
        chunks: list[Chunk] = []
        try:
            return self._chunks(self._frame(data), chunks)
        except MALError as exc:
            if isinstance(exc, DecodeError) and exc.frames:
                # Whole frames before bad bytes: their chunks and text still count.
                with contextlib.suppress(MALError):
                    self._chunks(list(exc.frames), chunks)
            self._failed(exc, chunks)
            raise

    def _taken(self, frames: list[Any]) -> list[Chunk]:
        """``_chunks`` of frames that a provider's fast path took from the
        framing object itself; errors are completed as in ``feed``."""
        chunks: list[Chunk] = []
        try:
            return self._chunks(frames, chunks)
        except MALError as exc:
            self._failed(exc, chunks)
            raise

    def flush(self) -> list[Chunk]:
        chunks: list[Chunk] = []
        # From here on, JSON cut short means the body itself was cut short.
        self._ending = True
        try:
            self._chunks(self._frame_end(), chunks)
        except MALError as exc:
            self._failed(exc, chunks)
            raise
        if not self.done:
            raise self._failed(
                IncompleteStreamError(f"the {self.provider} response ended before its end marker"),
                chunks,
            )
        if self._tools:
            closing = self._tools.close_all()
            if closing:
                chunks.append(Chunk(tool_calls=tuple(closing)))
            try:
                self.tool_calls = self._tools.finish(self.finish_reason == "length")
            except MALError as exc:
                self._failed(exc, chunks)
                raise
            if self.finish_reason is None:
                self.finish_reason = "tool_calls"
        return chunks

    def _failed(self, exc: MALError, chunks: list[Chunk]) -> MALError:
        """Complete an error raised while decoding a piece: the chunks the piece
        gave before the failure go with it (the caller hands them on first, so
        that what was yielded is exactly ``partial_text``), and so does the text."""
        if chunks and isinstance(exc, StreamError):
            exc.chunks = chunks
        exc.partial_text = self.text
        return exc

    def _chunks(self, frames: list[Any], chunks: list[Chunk]) -> list[Chunk]:
        """Append the chunks of ``frames`` to ``chunks`` and return it. When it
        raises, ``chunks`` holds those decoded before the failure."""
        raise NotImplementedError

    # Helpers for the provider decoders.

    def _finish(self, raw: str | None, table: Mapping[str, str]) -> str | None:
        if raw is None:
            return None
        self.raw_finish_reason = raw
        reason = table.get(raw, raw)
        if reason == "stop" and self._tools:
            # Calls were made, yet the server says "stop": Ollama always does,
            # OpenAI does for a forced tool, and so do some compatible servers.
            reason = "tool_calls"
        self.finish_reason = reason
        return reason

    def _report_usage(
        self,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> Usage:
        """The usage of one report (in mal's meaning of each field), which
        goes on its chunk; ``self.usage`` keeps the latest value reported for
        each field, so a report that leaves a field out keeps the earlier one.
        Usage comes once or twice a response: this is off the hot path."""
        usage = Usage(
            input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens
        )
        old = self.usage
        if old is None:
            self.usage = usage
        else:
            self.usage = Usage(
                *(
                    new if new is not None else before
                    for new, before in zip(
                        msgspec.structs.astuple(usage), msgspec.structs.astuple(old), strict=True
                    )
                )
            )
        return usage

    def _decode_error(self, exc: Exception, payload: bytes) -> DecodeError | IncompleteStreamError:
        """The error of a payload that does not decode. A complete line or event
        that is not valid JSON is a ``DecodeError`` wherever it stands, even when
        msgspec calls it truncated; only JSON cut short by the end of the body
        (the last line without its line end, a whole body) means the body was
        cut short: ``IncompleteStreamError``."""
        excerpt = payload[:200].decode("utf-8", "replace")
        if self._ending and "truncated" in str(exc):
            return IncompleteStreamError(f"the {self.provider} response was cut short: {excerpt!r}")
        what = "line" if self.framing is NDJSONSplitter else "event data"
        if self.framing is None:
            what = "body"
        return DecodeError(f"invalid JSON from {self.provider} ({exc}) in the {what} {excerpt!r}")


class BodyDecoder(ResponseDecoder):
    """A decoder for a non-streamed body: it is decoded whole at the end."""

    def __init__(self, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        super().__init__(max_size)
        self._body: list[bytes] = []
        self._size = 0
        self._frame = self._keep
        self._frame_end = self._whole

    def _keep(self, data: bytes) -> list[bytes]:
        self._body.append(data)
        self._size += len(data)
        if self._size > self._max_size:
            raise DecodeError(
                f"the {self.provider} response body is larger than {self._max_size} bytes; "
                "raise MALConfig.max_event_size if this is expected"
            )
        return []

    def _whole(self) -> list[bytes]:
        body = b"".join(self._body)
        self._body = []
        if not body.strip():
            raise IncompleteStreamError(f"the {self.provider} response body was empty")
        Utf8Validator().check(body, final=True)
        return [body]

    def _chunks(self, frames: list[bytes], chunks: list[Chunk]) -> list[Chunk]:
        if not frames:
            return chunks
        body = frames[0]
        try:
            decoded = self.body_decoder.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise self._decode_error(exc, body) from None
        chunk = self._body_chunk(decoded, body)
        closing = self._tools.close_all()
        if closing:
            chunk.tool_calls += tuple(closing)
        self.done = True
        if chunk.text:
            self._parts.append(chunk.text)
        chunks.append(chunk)
        return chunks

    #: Decodes the whole body into the provider's response struct.
    body_decoder: ClassVar[msgspec.json.Decoder[Any]]

    def _body_chunk(self, decoded: Any, body: bytes) -> Chunk:
        """The one chunk of a decoded body (``body`` is for error messages)."""
        raise NotImplementedError


class Protocol:
    """One provider's wire protocol: requests out, decoders for what comes back.

    A protocol object holds no state of a call and can be shared freely.
    """

    name: ClassVar[str]
    default_base_url: ClassVar[str]
    base_url_env: ClassVar[str | None] = None
    api_key_env: ClassVar[str | None] = None
    #: Variables read for the key, in order, when ``api_key_env`` is not set.
    more_api_key_envs: ClassVar[tuple[str, ...]] = ()

    def build_request(
        self, params: GenerateParams, *, base_url: str | None = None, api_key: str | None = None
    ) -> HTTPRequest:
        raise NotImplementedError

    def decoder(self, stream: bool, *, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> ResponseDecoder:
        raise NotImplementedError

    def decoder_for(
        self, params: GenerateParams, stream: bool, *, max_size: int = DEFAULT_MAX_EVENT_SIZE
    ) -> ResponseDecoder:
        """The decoder of the response to a request built from ``params``
        (a provider whose decoding depends on the request overrides this)."""
        return self.decoder(stream, max_size=max_size)

    #: The media types of the provider's streamed body.
    stream_media_types: ClassVar[frozenset[str]] = frozenset({"text/event-stream"})

    def body_kind(self, content_type: str, stream: bool) -> bool | None:
        """How to decode a 2xx body with this ``Content-Type``: as a stream
        (True), as one JSON body (False), or not at all (None: it is not what
        the provider sends, such as a gateway's HTML page).

        The body's own type wins over what was asked: a proxy may answer a
        streamed request with the whole JSON message. A body with no type, or
        ``text/plain`` (some servers label everything so), is decoded as asked.
        """
        media = content_type.partition(";")[0].strip().lower()
        if not media or media == "text/plain":
            return stream
        if media in self.stream_media_types:
            return True
        if media == "application/json" or media.endswith("+json"):
            return False
        return None

    def status_error(self, status: int, headers: Mapping[str, str], body: bytes) -> APIStatusError:
        return status_error(status, headers, body, provider=self.name, api_key_env=self.api_key_env)

    def _finish_request(
        self,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        params: GenerateParams,
    ) -> HTTPRequest:
        if params.extra_body:
            body = deep_merge(body, params.extra_body)
        if params.extra_headers:
            # Header names are case-insensitive: the caller's value replaces ours.
            for name, value in params.extra_headers.items():
                headers[name.lower()] = value
        if params.extra_query:
            url = with_query(url, params.extra_query)
        try:
            data = _encoder.encode(body)
        except (TypeError, msgspec.EncodeError) as exc:
            raise ConfigError(f"the request body cannot be encoded as JSON: {exc}") from None
        return HTTPRequest("POST", url, headers, data, params.stream)


def with_query(url: str, extra: Mapping[str, Any]) -> str:
    """``url`` with the parameters of ``extra`` in its query: a name the URL
    already has takes the caller's value (Azure's ``api-version`` too), the
    others are added; a None value removes the name. Values are strings,
    numbers or booleans (``true``/``false``, as the official SDKs send them)."""
    if not isinstance(extra, Mapping):
        raise ConfigError(f"extra_query must be a dict, not {type(extra).__name__}")
    added = []
    for name, value in extra.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"extra_query: a parameter name must be a non-empty str: {name!r}")
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            text = str(value)
        else:
            raise ConfigError(
                f"extra_query[{name!r}] must be a str, number or bool, not {type(value).__name__}"
            )
        added.append(f"{quote(name, safe='')}={quote(text, safe='')}")
    parts = urlsplit(url)
    # The URL's own parameters stay as they were written, but for those named.
    kept = [
        pair
        for pair in parts.query.split("&")
        if pair and unquote_plus(pair.partition("=")[0]) not in extra
    ]
    return urlunsplit(parts._replace(query="&".join(kept + added)))


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``extra`` merged in: nested dicts merge, the rest replaces."""
    merged = dict(base)
    for key, value in extra.items():
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping):
            merged[key] = deep_merge(old, value)
        else:
            merged[key] = value
    return merged


def chat_messages(prompt: Prompt, *, keep_cache: bool = False) -> list[Message | dict[str, Any]]:
    """The prompt as a list of messages, checked: a string is one user
    message; :class:`mal.Message` objects stay themselves (each provider maps
    their tool calls, tool results and replay blocks to its own form) and
    dicts, already in the provider's own form, are copied.

    A dict's ``"cache"`` key (a prompt-cache breakpoint, see
    :class:`mal.Message`) is mal's own, never a field of a provider's
    message: it is removed from the copy unless ``keep_cache`` (the
    providers that mark breakpoints read it, then remove it)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, Sequence):
        raise ConfigError(
            f"prompt must be a str or a list of messages, not {type(prompt).__name__}"
        )
    out: list[Message | dict[str, Any]] = []
    for i, message in enumerate(prompt):
        if isinstance(message, Message):
            if not isinstance(message.role, str):
                raise ConfigError(f"prompt message {i} has no 'role' string")
            if message.cache is not False:
                _check_cache(message.cache, i)
            out.append(message)
        elif isinstance(message, Mapping):
            if "role" not in message or not isinstance(message["role"], str):
                raise ConfigError(f"prompt message {i} has no 'role' string")
            if "content" not in message and not message.get("tool_calls"):
                raise ConfigError(f"prompt message {i} has no 'content'")
            copy = dict(message)
            if "cache" in copy:
                _check_cache(copy["cache"], i)
                if not keep_cache:
                    del copy["cache"]
            out.append(copy)
        else:
            raise ConfigError(
                f"prompt message {i} must be a dict or mal.Message, not {type(message).__name__}"
            )
    if not out:
        raise ConfigError("prompt is an empty list of messages")
    return out


def normalize_messages(prompt: Prompt) -> list[dict[str, Any]]:
    """Return the prompt as a list of ``{"role", "content"}`` dicts (a string
    is one user message)."""
    return [
        {"role": m.role, "content": m.content} if isinstance(m, Message) else m
        for m in chat_messages(prompt)
    ]


def _check_cache(value: Any, index: int) -> None:
    if not isinstance(value, bool):
        raise ConfigError(
            f"prompt message {index}: cache must be True or False, not {value!r} "
            "(a breakpoint's lifetime cannot be chosen)"
        )


def message_cache(message: Message | Mapping[str, Any]) -> bool:
    """Whether a message of :func:`chat_messages` marks a prompt-cache breakpoint."""
    if isinstance(message, Message):
        return message.cache
    return message.get("cache") is True


def tool_result_id(message: Message | Mapping[str, Any]) -> str:
    """The ``tool_call_id`` of a tool result; a ConfigError when it has none."""
    id = message.tool_call_id if isinstance(message, Message) else message.get("tool_call_id")
    if not isinstance(id, str) or not id:
        raise ConfigError(
            "a tool result (role 'tool') needs the tool_call_id of the call it answers"
        )
    return id


def text_only(content: Any, provider: str, what: str) -> Any:
    """Content that must be text (a tool result for OpenAI and Ollama): a
    string, or a list of str and text parts; an Image is a ConfigError."""
    if not isinstance(content, (list, tuple)):
        return content if isinstance(content, str) else str(content)
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping) and part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif isinstance(part, Image):
            raise ConfigError(f"{provider} takes no images in {what}; Anthropic does")
        else:
            raise ConfigError(f"{what} for {provider} must be text, not {part!r:.60}")
    return "\n".join(texts)


def message_tool_calls(message: Message | Mapping[str, Any]) -> list[ToolCall] | None:
    """The :class:`mal.ToolCall` objects of an assistant turn (a Message's,
    or a dict's whose ``tool_calls`` are ToolCall objects); None when the turn
    has none or its calls are already in a provider's own form."""
    calls = message.tool_calls if isinstance(message, Message) else message.get("tool_calls")
    if not calls or not isinstance(calls, (list, tuple)):
        return None
    if all(isinstance(call, ToolCall) for call in calls):
        return list(calls)
    return None


def content_parts(content: Any, provider: str, image: Callable[[Image], Any]) -> Any:
    """A message's content in a provider's own form: a string stays one; in a
    list, ``str`` parts become text parts, :class:`mal.Image` parts what
    ``image`` makes of them (after checking the provider can take them), and
    dict parts, already the provider's own, pass through."""
    if not isinstance(content, (list, tuple)):
        return content
    out: list[Any] = []
    for part in content:
        if isinstance(part, str):
            out.append({"type": "text", "text": part})
        elif isinstance(part, Image):
            part.check(provider)
            out.append(image(part))
        elif isinstance(part, Mapping):
            out.append(dict(part))
        else:
            raise ConfigError(
                f"a content part must be a str, a mal.Image or a dict, not {type(part).__name__}"
            )
    return out


def prompt_length(prompt: Prompt, system: str | None = None) -> int:
    """Characters of prompt text: the system text and every message's content."""
    total = len(system) if system else 0
    if isinstance(prompt, str):
        return total + len(prompt)
    for message in prompt:
        content = message.content if isinstance(message, Message) else message.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:  # text parts count; images do not
                if isinstance(part, str):
                    total += len(part)
                elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    total += len(part["text"])
    return total


def stop_list(stop: str | list[str] | None) -> list[str] | None:
    if stop is None:
        return None
    return [stop] if isinstance(stop, str) else list(stop)


def join_url(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + path


#: The class of each status, as the official SDKs map them
#: (``_make_status_error`` in anthropic-python's and openai-python's ``_client.py``).
_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    529: OverloadedError,
}


def status_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    provider: str,
    api_key_env: str | None = None,
    now: float | None = None,
) -> APIStatusError:
    """Map an error response to the :class:`mal.APIStatusError` family.

    Reads the error shapes of OpenAI (``{"error": {"message", "type", "code"}}``),
    Anthropic (``{"type": "error", "error": {"type", "message"}}``) and Ollama
    (``{"error": "..."}``); a body that is not JSON is kept as text, cut to
    ``MAX_ERROR_TEXT`` characters.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    decoded: object
    try:
        decoded = _any_decoder.decode(body) if body.strip() else None
    except (msgspec.DecodeError, UnicodeDecodeError):
        decoded = body.decode("utf-8", "replace").strip()[:MAX_ERROR_TEXT]
    detail, error_type = _error_detail(decoded)
    message = f"{provider} returned HTTP {status}"
    if error_type:
        message += f" ({error_type})"
    if detail:
        message += f": {detail}"
    if 300 <= status < 400:
        message += (
            f"; redirected to {lower.get('location', '?')}, which mal does not follow so that"
            " the API key never reaches another host: set base_url to the new address"
        )
    if status == 401 and api_key_env:
        message += f"; set {api_key_env} or pass api_key="
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIStatusError
    kwargs: dict[str, Any] = {
        "status_code": status,
        "body": decoded,
        "provider": provider,
        "headers": dict(lower),
    }
    if error_type in ("overloaded_error",):
        kwargs["retryable"] = True
    retry_after = parse_retry_after(lower, now)
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=retry_after, **kwargs)
    error = cls(message, **kwargs)
    error.retry_after = retry_after
    return error


def _error_detail(decoded: object) -> tuple[str, str | None]:
    if isinstance(decoded, str):
        return decoded, None
    if not isinstance(decoded, dict):
        return "", None
    error = decoded.get("error", decoded)
    if isinstance(error, str):
        return error, None
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or ""
        # Google's errors name their google.rpc.Code in "status" beside the
        # numeric "code" (https://ai.google.dev/gemini-api/docs/troubleshooting).
        status = error.get("status")
        etype = error.get("type") or (status if isinstance(status, str) else None)
        etype = etype or error.get("code")
        return str(message), (str(etype) if etype else None)
    return "", None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``Retry-After`` in seconds or
    as an HTTP date (RFC 9110 section 10.2.3); None when absent or unreadable.
    ``headers`` must have lower-case keys."""
    value = headers.get("retry-after-ms")
    if value is not None:
        seconds = _seconds(value)
        if seconds is not None:
            return seconds / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    # Imported here: email.utils imports socket, which the sans-I/O core must not.
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def _seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def stream_error(
    provider: str, message: str, error_type: str | None, retryable: bool
) -> StreamError:
    text = f"{provider} reported an error in the stream"
    if error_type:
        text += f" ({error_type})"
    return StreamError(f"{text}: {message}", error_type=error_type, retryable=retryable)
