"""The life of one call, written once for the sync and the async driver.

This module contains no networking code at all. :func:`run_call` is a
generator that yields what it needs done and the chunks for the caller
(psycopg's generators and httpx's ``auth_flow`` have the same shape):

* ``Send(request, timeouts)``: send the request; the driver sends back the
  response's :class:`ResponseHead` (status and headers), its body still unread;
* ``RECEIVE``: the driver sends back the next bytes of the body, ``b""`` at its end;
* ``READ_ERROR_BODY``: the driver sends back the (bounded) rest of the body;
* a :class:`mal.Chunk`: the driver hands it to the caller and resumes the
  generator with ``None`` when the caller asks for the next one.

When an operation fails, the driver throws the :class:`mal.MALError` it maps
the failure to into the generator, which adds what it knows (``partial_text``)
and decides what happens next; retries, back-off sleeps and fallbacks belong
here, so that both drivers get them at once. Whatever happens, the driver
closes the response when the generator ends: a body read to its end leaves its
connection in the pool, and one cut short drops it, which is the only way to
stop a server (Ollama above all) from generating on.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Generator, Mapping
from typing import Any, Final, TypedDict

import msgspec

from .config import Endpoint, MALConfig
from .errors import ConfigError, MALError
from .protocols import GenerateParams, HTTPRequest, Protocol, get_protocol, split_model
from .protocols._base import prompt_length
from .types import Chunk, Prompt, Usage

__all__ = [
    "READ_ERROR_BODY",
    "RECEIVE",
    "Call",
    "CallOptions",
    "CallState",
    "GenerateOptions",
    "ResponseHead",
    "Send",
    "prepare_call",
    "run_call",
]

#: How much of an error response's body is read to build its error.
MAX_ERROR_BODY = 64 * 1024


class CallOptions(TypedDict, total=False):
    """The keyword options of ``stream`` (and of ``generate``, with ``stream``)."""

    system: str | None
    temperature: float | None
    max_tokens: int | None
    top_p: float | None
    stop: str | list[str] | None
    seed: int | None
    extra_body: dict[str, Any] | None
    extra_headers: dict[str, str] | None
    base_url: str | None
    api_key: str | None
    timeout: float | None
    max_retries: int | None
    fallbacks: list[str] | None
    progress_callback: Callable[[str], object] | None


class GenerateOptions(CallOptions, total=False):
    stream: bool | None


_KNOWN_OPTIONS = frozenset(GenerateOptions.__annotations__)
_PARAM_OPTIONS = (
    "system",
    "temperature",
    "max_tokens",
    "top_p",
    "stop",
    "seed",
    "extra_body",
    "extra_headers",
)


class Send(msgspec.Struct):
    request: HTTPRequest
    #: (connect, read, write, pool) seconds, None for no limit.
    timeouts: tuple[float | None, ...]


class _Op:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


RECEIVE: Final = _Op("RECEIVE")
READ_ERROR_BODY: Final = _Op("READ_ERROR_BODY")

Op = Send | _Op
#: What :func:`run_call` yields, is sent and returns.
CallGenerator = Generator["Op | Chunk", Any, None]


class ResponseHead(msgspec.Struct):
    status: int
    headers: Mapping[str, str]


class Call(msgspec.Struct, kw_only=True):
    """Everything one call needs, resolved from the options and the client."""

    provider: str
    model: str
    protocol: Protocol
    params: GenerateParams
    endpoint: Endpoint
    timeouts: tuple[float | None, ...]
    max_event_size: int
    progress_callback: Callable[[str], object] | None = None
    max_retries: int = 0
    fallbacks: list[str] = []

    def __repr__(self) -> str:
        return f"Call({self.provider}/{self.model}, stream={self.params.stream})"


class CallState:
    """What a stream knows about its call so far; the public streams read it."""

    __slots__ = ("_parts", "finish_reason", "model", "provider", "raw_finish_reason", "usage")

    def __init__(self, call: Call) -> None:
        self._parts: list[str] = []
        self.provider = call.provider
        self.model = call.model
        self.finish_reason: str | None = None
        self.raw_finish_reason: str | None = None
        self.usage: Usage | None = None

    @property
    def text(self) -> str:
        parts = self._parts
        if len(parts) > 1:
            parts[:] = ["".join(parts)]
        return parts[0] if parts else ""


def prepare_call(
    config: MALConfig,
    endpoints: Mapping[str, Endpoint],
    prompt: Prompt,
    model: str,
    options: Mapping[str, Any],
    *,
    for_generate: bool,
) -> Call:
    """Check the options of a call and resolve them against the client's config."""
    unknown = set(options) - _KNOWN_OPTIONS
    if not for_generate and "stream" in options:
        unknown.add("stream")
    if unknown:
        name = sorted(unknown)[0]
        hint = difflib.get_close_matches(name, _KNOWN_OPTIONS, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint and hint[0] != name else ""
        raise ConfigError(f"unknown option {name!r}{suggestion}")
    if not isinstance(prompt, (str, list, tuple)):
        raise ConfigError(
            f"prompt must be a str or a list of messages, not {type(prompt).__name__}"
        )
    provider, name = split_model(model, config.default_provider)
    protocol = get_protocol(provider)
    callback = options.get("progress_callback")
    if callback is not None and not callable(callback):
        raise ConfigError("progress_callback must be callable")
    if for_generate:
        system = options.get("system")
        stream = decide_stream(config, options.get("stream"), prompt, system, callback)
    else:
        stream = True
    params = GenerateParams(
        model=name,
        prompt=prompt,
        stream=stream,
        **{key: options[key] for key in _PARAM_OPTIONS if options.get(key) is not None},
    )
    endpoint = endpoints[provider]
    base_url = options.get("base_url")
    api_key = options.get("api_key")
    if base_url is not None or api_key is not None:
        endpoint = Endpoint(
            base_url if base_url is not None else endpoint.base_url,
            api_key if api_key is not None else endpoint.api_key,
        )
    if not endpoint.base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"base_url for {provider} must start with http:// or https://, "
            f"not {endpoint.base_url!r}"
        )
    timeout = options.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise ConfigError(f"timeout must be a number of seconds > 0, not {timeout!r}")
    max_retries = options.get("max_retries")
    if max_retries is None:
        max_retries = config.max_retries
    elif isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"max_retries must be an integer >= 0, not {max_retries!r}")
    fallbacks = options.get("fallbacks")
    if fallbacks is None:
        fallbacks = config.fallbacks
    else:
        for fallback in fallbacks:
            split_model(fallback, config.default_provider)
    return Call(
        provider=provider,
        model=name,
        protocol=protocol,
        params=params,
        endpoint=endpoint,
        timeouts=config.timeouts(timeout),
        max_event_size=config.max_event_size,
        progress_callback=callback,
        max_retries=max_retries,
        fallbacks=list(fallbacks),
    )


def decide_stream(
    config: MALConfig,
    stream: bool | None,
    prompt: Prompt,
    system: str | None,
    progress_callback: Callable[[str], object] | None,
) -> bool:
    """Whether to stream: as asked, or by the config's rule when ``stream`` is None."""
    if stream is not None:
        if not isinstance(stream, bool):
            raise ConfigError(f"stream must be True, False or None, not {stream!r}")
        return stream
    if not config.use_streaming:
        return False
    if progress_callback is not None:
        return True
    return prompt_length(prompt, system) > config.streaming_threshold


def run_call(call: Call, state: CallState) -> CallGenerator:
    """The lifecycle of one call; see the module docstring for the protocol."""
    request = call.protocol.build_request(
        call.params, base_url=call.endpoint.base_url, api_key=call.endpoint.api_key
    )
    decoder = call.protocol.decoder(request.stream, max_size=call.max_event_size)
    parts = state._parts
    callback = call.progress_callback
    try:
        head: ResponseHead = yield Send(request, call.timeouts)
        if not 200 <= head.status < 300:
            body: bytes = yield READ_ERROR_BODY
            raise call.protocol.status_error(head.status, head.headers, body)
        while True:
            data: bytes = yield RECEIVE
            chunks = decoder.feed(data) if data else decoder.flush()
            for chunk in chunks:
                text = chunk.text
                if text:
                    parts.append(text)
                    if callback is not None:
                        callback(text)
                if chunk.finish_reason is not None:
                    state.finish_reason = chunk.finish_reason
                yield chunk
            if not data:
                break
    except MALError as exc:
        if not exc.partial_text:
            exc.partial_text = decoder.text
        raise
    finally:
        state.usage = decoder.usage
        state.raw_finish_reason = decoder.raw_finish_reason
