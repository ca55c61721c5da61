"""The life of one call, written once for the sync and the async driver.

This module contains no networking code at all. :func:`run_call` is a
generator that yields what it needs done and the chunks for the caller
(psycopg's generators and httpx's ``auth_flow`` have the same shape):

* ``Send(request, timeouts, clock)``: send the request; the driver sends back
  the response's :class:`ResponseHead` (status and headers), its body still
  unread. ``clock``, when set, is a :class:`Receive`: the head must have come
  within ``clock.timeout`` seconds, else the send fails with ``clock.expired()``.
  When the send fails, the driver also sets ``reused`` and ``unanswered`` on
  the op before it throws the error (see :class:`Send`);
* ``RECEIVE``: the driver sends back the next bytes of the body, ``b""`` at its end;
* ``Receive(timeout, phase)``: the same, but a read that has not returned after
  ``timeout`` seconds must fail with ``APITimeoutError(phase=phase)``: this is
  how the first-token, idle and total clocks reach a blocked read;
* ``READ_ERROR_BODY``: the driver sends back the (bounded) rest of the body;
* ``Sleep(seconds)``: the driver sleeps (a back-off before a retry);
* ``Await(awaitable)``: the driver awaits it (what an async
  ``progress_callback`` returned; only the async driver meets it: a sync
  client refuses an async callback before anything is sent);
* a :class:`mal.Chunk`: the driver hands it to the caller and resumes the
  generator with ``None`` when the caller asks for the next one;
* a :class:`Handoff`: the driver hands its ``chunk`` to the caller and, when
  the caller asks for the next one, does what ``RECEIVE`` asks. Once text
  flows with no clock or hook to run, the last chunk of each piece comes so:
  one resumption of the generator per token instead of two.

When an operation fails, the driver throws the :class:`mal.MALError` it maps
the failure to into the generator, which adds what it knows (``partial_text``)
and decides what happens next: a retry, a fallback model, or the error for
the caller. Whatever happens, the driver closes the response when the
generator ends or sends a new request: a body read to its end leaves its
connection in the pool, and one cut short drops it, which is the only way to
stop a server (Ollama above all) from generating on.
"""

from __future__ import annotations

import difflib
import inspect
import itertools
import logging
import random
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, TypedDict

import msgspec

from .config import Endpoint, MALConfig, timeout_parts
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigError,
    DecodeError,
    MALError,
    RunawayError,
    StreamError,
    request_id_of,
)
from .hooks import CallStats, ClientMetrics, Hooks, RequestInfo
from .protocols import (
    GenerateParams,
    HTTPRequest,
    Protocol,
    ResponseDecoder,
    get_protocol,
    split_model,
    unknown_prefix_hint,
)
from .protocols._base import prompt_length
from .schema import OutputSchema
from .tools import Tool, as_tools
from .types import Chunk, Prompt, Usage

if TYPE_CHECKING:
    from httpx import Timeout

__all__ = [
    "READ_ERROR_BODY",
    "RECEIVE",
    "Await",
    "Handoff",
    "Call",
    "CallOptions",
    "CallState",
    "GenerateOptions",
    "Receive",
    "ResponseHead",
    "Runtime",
    "Send",
    "Sleep",
    "prepare_call",
    "run_call",
]

#: How much of an error response's body is read to build its error.
MAX_ERROR_BODY = 64 * 1024
#: Exponential back-off with full jitter: a retry waits a random time between
#: 0 and min(BACKOFF_CAP, BACKOFF_BASE * 2 ** retry) seconds, so that clients
#: that failed together do not retry together.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0


class EmbedOptions(TypedDict, total=False):
    """The keyword options of ``embed``."""

    dimensions: int | None
    batch_size: int
    timeout: float | Timeout | None
    max_retries: int | None
    base_url: str | None
    api_key: str | None
    extra_body: dict[str, Any] | None
    extra_headers: dict[str, str] | None
    extra_query: dict[str, Any] | None


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
    extra_query: dict[str, Any] | None
    base_url: str | None
    api_key: str | None
    timeout: float | Timeout | None
    max_retries: int | None
    fallbacks: list[str] | None
    progress_callback: Callable[[str], object] | None
    tools: Sequence[Tool | Callable[..., Any]] | None
    tool_choice: str | None
    parallel_tool_calls: bool | None
    cache_system: bool
    cache_tools: bool
    schema_retries: int
    tool_rounds: int
    tool_errors: Literal["raise", "send"]


class GenerateOptions(CallOptions, total=False):
    """The keyword options of ``generate`` and ``complete``."""

    stream: bool | None


#: ``schema`` is a keyword of its own in the signatures, for their overloads.
_KNOWN_OPTIONS = frozenset(GenerateOptions.__annotations__) | {"schema"}
#: Options that only a call that runs to its end (generate, complete) takes.
_COMPLETE_ONLY = frozenset({"stream"})
_PARAM_OPTIONS = (
    "system",
    "temperature",
    "max_tokens",
    "top_p",
    "stop",
    "seed",
    "extra_body",
    "extra_headers",
    "extra_query",
)


class Receive(msgspec.Struct, gc=False):
    #: Seconds the read may take before it fails with ``expired()``.
    timeout: float
    #: The clock that runs out then: "first_token", "idle" or "total".
    phase: str

    def expired(self) -> APITimeoutError:
        return APITimeoutError(_CLOCK_MESSAGES[self.phase], phase=self.phase)


_CLOCK_MESSAGES = {
    "first_token": "no text arrived within MALConfig.first_token_timeout",
    "idle": "no new text arrived within MALConfig.idle_timeout",
    "total": "the call ran past MALConfig.total_timeout",
}


class Send(msgspec.Struct):
    request: HTTPRequest
    #: httpx's (connect, read, write, pool) seconds, None for no limit.
    timeouts: tuple[float | None, ...]
    #: The first-token or total clock, if one runs while the head is awaited.
    clock: Receive | None = None
    #: Set by the driver when the send fails: whether the request went out on
    #: a kept-alive connection reused from the pool (False when unknown)...
    reused: bool = False
    #: ...and whether the server closed or reset the connection before any
    #: byte of a response came (not a timeout). Both: see :func:`_attempt`.
    unanswered: bool = False

    def head_timeouts(self) -> tuple[float | None, ...]:
        """The timeouts shortened to what the clock leaves, for a driver that
        cannot cancel a blocked send (a sync one): its httpx timeouts then end
        the wait, and the driver reports ``clock.expired()``."""
        if self.clock is None:
            return self.timeouts
        left = max(self.clock.timeout, 1e-3)
        return tuple(left if t is None else min(t, left) for t in self.timeouts)


class Sleep(msgspec.Struct):
    seconds: float


class Await:
    """An awaitable for the driver to await before it resumes the generator."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Any) -> None:
        self.awaitable = awaitable


class _Op:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


RECEIVE: Final = _Op("RECEIVE")


class Handoff:
    """A chunk for the caller, then ``RECEIVE``: one op of each attempt,
    reused for every hand-off (the driver reads ``chunk`` before anything
    else can run)."""

    __slots__ = ("chunk",)

    def __init__(self) -> None:
        self.chunk = Chunk()

    def __repr__(self) -> str:
        return f"Handoff({self.chunk!r})"


#: A value not computed yet.
UNSET: Final = _Op("UNSET")
READ_ERROR_BODY: Final = _Op("READ_ERROR_BODY")

Op = Send | Receive | Sleep | Handoff | Await | _Op
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
    #: Whether ``progress_callback`` is async: what it returns is awaited.
    callback_awaits: bool = False
    max_retries: int = 0
    fallbacks: list[str] = []
    #: The options the call was made with, for building its fallbacks.
    options: Mapping[str, Any] = {}
    #: The request, built once when the call is prepared: a bad option is a
    #: ConfigError before anything is sent, and a retry sends the same bytes
    #: (images are encoded once per call, not per attempt).
    request: HTTPRequest | None = None
    #: What a connection error of this call adds: that the model's prefix
    #: was not a known provider (see :func:`mal.protocols.unknown_prefix_hint`).
    unknown_prefix: str | None = None
    #: Which model call of a loop this is (0, 1, ...): its chunks' ``step``.
    step: int = 0

    def __repr__(self) -> str:
        return f"Call({self.provider}/{self.model}, stream={self.params.stream})"


class Runtime:
    """What a client lends its calls: config, clock, randomness, hooks, counters,
    and the way to prepare a fallback's call."""

    __slots__ = ("call_ids", "clock", "config", "hooks", "make_call", "metrics", "random")

    def __init__(
        self,
        config: MALConfig,
        make_call: Callable[[str, Call], Call],
        *,
        hooks: Hooks | None = None,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.make_call = make_call
        self.hooks = hooks if hooks is not None else Hooks()
        self.metrics = ClientMetrics()
        self.clock: Callable[[], float] = clock
        self.random: Callable[[], float] = random
        self.call_ids = itertools.count(1)


class CallState:
    """What a stream knows about its call so far; the public streams read it."""

    __slots__ = ("decoder", "delivered", "model", "parsed", "parts", "provider", "stats")

    def __init__(self, call: Call) -> None:
        #: Texts of the chunks handed to the caller.
        self.parts: list[str] = []
        #: Whether anything reached the caller: no retry or fallback after that.
        self.delivered = False
        self.provider = call.provider
        self.model = call.model
        self.decoder: ResponseDecoder | None = None
        self.stats = CallStats(call.provider, call.model, call.params.stream)
        #: The output decoded into the schema, once asked for (``UNSET`` before).
        self.parsed: Any = UNSET

    @property
    def text(self) -> str:
        parts = self.parts
        if len(parts) > 1:
            parts[:] = ["".join(parts)]
        return parts[0] if parts else ""

    @property
    def finish_reason(self) -> str | None:
        return self.decoder.finish_reason if self.decoder is not None else None

    @property
    def raw_finish_reason(self) -> str | None:
        return self.decoder.raw_finish_reason if self.decoder is not None else None

    @property
    def usage(self) -> Usage | None:
        return self.decoder.usage if self.decoder is not None else None


#: Anthropic models without structured outputs: ``anthropic_schema="auto"``
#: asks them for a schema with a forced tool.
_ANTHROPIC_TOOL_SCHEMA_MODELS = ("claude-3", "claude-2", "claude-instant")


def _schema_tool(provider: str, model: str, config: MALConfig) -> bool:
    """Whether ``schema=`` goes to this model as a forced tool."""
    if provider != "anthropic":
        return False
    mode = config.anthropic_schema
    if mode == "auto":
        return model.startswith(_ANTHROPIC_TOOL_SCHEMA_MODELS)
    return mode == "tool"


def prepare_call(
    config: MALConfig,
    endpoints: Mapping[str, Endpoint],
    prompt: Prompt,
    model: str,
    options: Mapping[str, Any],
    *,
    for_generate: bool,
    stream: bool | None = None,
    allow_async: bool = True,
) -> Call:
    """Check the options of a call and resolve them against the client's config.

    ``stream``, when given, overrides the streaming decision (a fallback keeps
    the decision of the call it replaces).
    """
    check_known(options, _KNOWN_OPTIONS, "")
    if not for_generate:
        only = sorted(_COMPLETE_ONLY.intersection(options))
        if only:
            raise ConfigError(
                f"{only[0]!r} is an option of generate() and complete(), not of stream()"
            )
    if not isinstance(prompt, (str, list, tuple)):
        raise ConfigError(
            f"prompt must be a str or a list of messages, not {type(prompt).__name__}"
        )
    provider, name = split_model(model, config.default_provider)
    protocol = get_protocol(provider)
    hint = unknown_prefix_hint(model, name, provider)
    callback = options.get("progress_callback")
    if callback is not None and not callable(callback):
        raise ConfigError("progress_callback must be callable")
    awaits = callback is not None and is_async_callable(callback)
    if awaits and not allow_async:
        raise ConfigError(
            "progress_callback is an async function: pass it to mal.AsyncClient "
            "(mal.Client calls sync callbacks only)"
        )
    if stream is None:
        if for_generate:
            system = options.get("system")
            stream = decide_stream(config, options.get("stream"), prompt, system, callback)
        else:
            stream = True
    schema = options.get("schema")
    tools = as_tools(options.get("tools"))
    endpoint = endpoints[provider].replaced(options.get("base_url"), options.get("api_key"))
    check_base_url(provider, protocol, endpoint)
    param_options = {key: options[key] for key in _PARAM_OPTIONS if options.get(key) is not None}
    if endpoint.headers:
        param_options["extra_headers"] = with_headers(endpoint, options.get("extra_headers"))
    params = GenerateParams(
        model=name,
        prompt=prompt,
        stream=stream,
        schema=OutputSchema.of(schema) if schema is not None else None,
        tools=tools,
        tool_choice=check_tool_choice(options.get("tool_choice"), tools),
        parallel_tool_calls=check_parallel(options.get("parallel_tool_calls")),
        schema_tool=schema is not None and _schema_tool(provider, name, config),
        cache_system=check_flag("cache_system", options.get("cache_system", False)),
        cache_tools=check_flag("cache_tools", options.get("cache_tools", False)),
        **param_options,
    )
    timeout = options.get("timeout")
    timeout_parts("timeout", timeout)
    max_retries = checked_retries(options, config)
    fallbacks = options.get("fallbacks")
    if fallbacks is None:
        fallbacks = config.fallbacks
    else:
        if not isinstance(fallbacks, (list, tuple)):
            raise ConfigError("fallbacks must be a list of model names")
        for fallback in fallbacks:
            split_model(fallback, config.default_provider)
    request = protocol.build_request(params, base_url=endpoint.base_url, api_key=endpoint.api_key)
    return Call(
        request=request,
        provider=provider,
        model=name,
        protocol=protocol,
        params=params,
        endpoint=endpoint,
        timeouts=config.timeouts(timeout),
        max_event_size=config.max_event_size,
        progress_callback=callback,
        callback_awaits=awaits,
        max_retries=max_retries,
        fallbacks=list(fallbacks),
        options=options,
        unknown_prefix=hint,
    )


def is_async_callable(function: Any) -> bool:
    """Whether calling ``function`` returns a coroutine: an ``async def``
    function (or a partial of one), or an object whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(function):
        return True
    return inspect.iscoroutinefunction(type(function).__call__)


def with_headers(endpoint: Endpoint, extra: Mapping[str, str] | None) -> dict[str, str] | None:
    """A call's ``extra_headers`` after the endpoint's own headers (from the
    environment), which they replace (names compared in lower case)."""
    if not endpoint.headers:
        return dict(extra) if extra else None
    merged = dict(endpoint.headers)
    for name, value in (extra or {}).items():
        merged[name.lower()] = value
    return merged


#: The options of ``embed``.
EMBED_OPTIONS = frozenset(EmbedOptions.__annotations__)


def prepare_embed_calls(
    config: MALConfig,
    endpoints: Mapping[str, Endpoint],
    texts: Any,
    model: str,
    options: Mapping[str, Any],
) -> tuple[list[Call], str, str]:
    """The calls that embed ``texts``, one per batch of ``batch_size``, each
    run by the same lifecycle as a generation (retries, clocks, hooks, stats,
    logging; no fallbacks: another model's vectors would not compare)."""
    from .embeddings import EmbedProtocol, check_texts, default_batch_size, embed_request

    check_known(options, EMBED_OPTIONS, " of embed()")
    items = check_texts(texts)
    provider, name = split_model(model, config.default_provider)
    hint = unknown_prefix_hint(model, name, provider)
    batch = options.get("batch_size", default_batch_size(provider))
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, not {batch!r}")
    timeout = options.get("timeout")
    timeout_parts("timeout", timeout)
    max_retries = checked_retries(options, config)
    endpoint = endpoints[provider].replaced(
        options.get("base_url") or None, options.get("api_key") or None
    )
    base = get_protocol(provider)
    check_base_url(provider, base, endpoint)
    calls = []
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        request = embed_request(
            provider,
            name,
            chunk,
            dimensions=options.get("dimensions"),
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            extra_body=options.get("extra_body"),
            extra_headers=with_headers(endpoint, options.get("extra_headers")),
            extra_query=options.get("extra_query"),
            first=start,
        )
        calls.append(
            Call(
                request=request,
                provider=provider,
                model=name,
                protocol=EmbedProtocol(base, len(chunk)),
                params=GenerateParams(model=name, prompt="", stream=False),
                endpoint=endpoint,
                timeouts=config.timeouts(timeout),
                max_event_size=config.max_event_size,
                max_retries=max_retries,
                options=options,
                unknown_prefix=hint,
            )
        )
    if not items:  # nothing to send; still a bad provider is an error
        embed_request(provider, name, [], base_url=endpoint.base_url, api_key=None)
    return calls, provider, name


def check_known(options: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    """A ConfigError for an option that is not one of ``known``, with the
    closest known name as a hint."""
    unknown = set(options) - known
    if unknown:
        name = sorted(unknown)[0]
        hint = difflib.get_close_matches(name, known, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint and hint[0] != name else ""
        raise ConfigError(f"unknown option {name!r}{where}{suggestion}")


def checked_retries(options: Mapping[str, Any], config: MALConfig) -> int:
    """``max_retries``: the call's, else the config's."""
    value = options.get("max_retries")
    if value is None:
        return config.max_retries
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"max_retries must be an integer >= 0, not {value!r}")
    return value


def check_base_url(provider: str, protocol: Protocol, endpoint: Endpoint) -> None:
    """A base URL that can be sent to: set, and http(s)."""
    if not endpoint.base_url and protocol.base_url_env:
        raise ConfigError(
            f"{provider} has no base URL: set {protocol.base_url_env} or "
            f"MALConfig(base_urls={{{provider!r}: ...}})"
        )
    if not endpoint.base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"base_url for {provider} must start with http:// or https://, "
            f"not {endpoint.base_url!r}"
        )


def check_tool_choice(choice: Any, tools: list[Tool] | None) -> str | None:
    """``tool_choice``, checked: "auto", "none", "required" or a tool's name."""
    if choice is None:
        return None
    if not isinstance(choice, str):
        raise ConfigError(
            f"tool_choice must be 'auto', 'none', 'required' or a tool's name, not {choice!r}"
        )
    if not tools:
        raise ConfigError("tool_choice needs tools")
    if choice not in ("auto", "none", "required") and all(t.name != choice for t in tools):
        names = ", ".join(repr(t.name) for t in tools)
        raise ConfigError(f"tool_choice={choice!r} is not one of the tools ({names})")
    return choice


def check_parallel(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"parallel_tool_calls must be True, False or None, not {value!r}")
    return value


def check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, not {value!r}")
    return value


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


def run_call(call: Call, state: CallState, runtime: Runtime) -> CallGenerator:
    """The lifecycle of one call: its attempts, retries and fallbacks.

    See the module docstring for what it yields and is sent.
    """
    config = runtime.config
    hooks = runtime.hooks
    metrics = runtime.metrics
    clock = runtime.clock
    stats = state.stats
    stats.call_id = next(runtime.call_ids)
    start = clock()
    total_at = start + config.total_timeout if config.total_timeout is not None else None
    fallbacks = iter(call.fallbacks)
    current = call
    metrics.streamed += call.params.stream
    metrics.non_streamed += not call.params.stream
    error: MALError | None = None
    try:
        while True:  # over the call's model, then its fallbacks
            attempt = 0
            while True:  # over the attempts of one model
                metrics.requests += 1
                try:
                    yield from _attempt(current, state, runtime, attempt, start, total_at)
                    return
                except MALError as exc:
                    error = exc
                    if current.unknown_prefix is not None and _cannot_connect(exc):
                        _add_hint(exc, current.unknown_prefix)
                    if isinstance(exc, APITimeoutError):
                        metrics.timeouts[exc.phase] = metrics.timeouts.get(exc.phase, 0) + 1
                    if state.delivered:
                        raise
                    delay = _retry_delay(exc, attempt, current.max_retries, runtime)
                    if delay is None or (total_at is not None and clock() + delay >= total_at):
                        break
                    attempt += 1
                    stats.retries += 1
                    metrics.retries += 1
                    if hooks.on_retry is not None:
                        hooks.on_retry(attempt, delay, exc)
                    logger.info(
                        "retrying %s/%s in %.2f s after %s (retry %d of %d)",
                        current.provider,
                        current.model,
                        delay,
                        _describe(exc),
                        attempt,
                        current.max_retries,
                    )
                    if delay > 0:
                        yield Sleep(delay)
            following = next(fallbacks, None)
            if following is None or (total_at is not None and clock() >= total_at):
                assert error is not None
                raise error
            if hooks.on_fallback is not None:
                hooks.on_fallback(f"{current.provider}/{current.model}", following, error)
            logger.info(
                "falling back from %s/%s to %s after %s",
                current.provider,
                current.model,
                following,
                _describe(error),
            )
            current = runtime.make_call(following, call)
            current.step = call.step
            state.provider = stats.provider = current.provider
            state.model = stats.model = current.model
            stats.fallbacks += 1
            metrics.fallbacks += 1
    except MALError as exc:
        error = exc
        name = type(exc).__name__
        metrics.errors[name] = metrics.errors.get(name, 0) + 1
        stats.error = name
        raise
    finally:
        _finish_stats(state, clock() - start)
        if hooks.on_complete is not None:
            hooks.on_complete(stats)


def _cannot_connect(error: MALError) -> bool:
    """Whether ``error`` says that the request did not reach a server: a
    connection error, or the connect timeout (not a later timeout)."""
    if isinstance(error, APITimeoutError):
        return error.phase == "connect"
    return isinstance(error, APIConnectionError)


def _add_hint(error: MALError, hint: str) -> None:
    """Add ``hint`` to the message of ``error``."""
    error.message = f"{error.message} ({hint})"
    error.args = (error.message, *error.args[1:])


def _retry_delay(error: MALError, attempt: int, max_retries: int, runtime: Runtime) -> float | None:
    """Seconds to wait before retrying, or None when this error is not retried."""
    if not error.retryable or attempt >= max_retries:
        return None
    retry_after = error.retry_after if isinstance(error, APIStatusError) else None
    if retry_after is not None:
        # The server said when: honour it, unless it is longer than we may wait
        # (then fail at once, or fall back, rather than sleep).
        return retry_after if retry_after <= runtime.config.max_retry_after else None
    return runtime.random() * min(BACKOFF_CAP, BACKOFF_BASE * 2.0**attempt)


def _head_clock(first_at: float | None, total_at: float | None, now: float) -> Receive | None:
    """The clock that runs while a response head is awaited from ``now``: the
    first-token clock, or the total one if it runs out sooner."""
    head_clock = None
    if first_at is not None and (total_at is None or first_at < total_at):
        head_clock = Receive(first_at - now, "first_token")
    elif total_at is not None:
        head_clock = Receive(total_at - now, "total")
    if head_clock is not None and head_clock.timeout <= 0:
        raise head_clock.expired()
    return head_clock


def _attempt(
    call: Call,
    state: CallState,
    runtime: Runtime,
    attempt: int,
    start: float,
    total_at: float | None,
) -> CallGenerator:
    """One request and its response, with the clocks running."""
    config = runtime.config
    clock = runtime.clock
    hooks = runtime.hooks
    stats = state.stats
    protocol = call.protocol
    request = call.request
    if request is None:
        request = call.request = protocol.build_request(
            call.params, base_url=call.endpoint.base_url, api_key=call.endpoint.api_key
        )
    decoder = protocol.decoder_for(call.params, request.stream, max_size=call.max_event_size)
    state.decoder = decoder
    parts = state.parts
    callback = call.progress_callback
    callback_awaits = call.callback_awaits
    step = call.step
    on_chunk = hooks.on_chunk
    idle = config.idle_timeout
    first_token = config.first_token_timeout
    guard = _Guard(config) if config.max_output_chars or config.max_repeated_deltas else None
    if hooks.on_request is not None:
        hooks.on_request(
            RequestInfo(
                call.provider, call.model, request.url, request.stream, attempt, stats.call_id
            )
        )
    sent_at = clock()
    first_at = sent_at + first_token if first_token is not None else None
    clocked = first_at is not None or idle is not None or total_at is not None
    # Before the first chunk, metadata-only chunks (Anthropic's usage at
    # message_start) are held back, so that a failure there can still be retried.
    held: list[Chunk] = []
    got_content = False
    next_at = first_at  # when the first-token, then the idle, clock runs out
    # Once text flows and nothing watches each chunk, a chunk costs one append.
    watched = guard is not None or idle is not None or on_chunk is not None or callback is not None
    fast = False
    received = handed = 0  # body bytes and chunks, kept in stats at the end
    status: int | None = None
    head_at: float | None = None
    outcome: BaseException | None = None
    head: ResponseHead | None = None
    try:
        send = Send(request, call.timeouts, _head_clock(first_at, total_at, sent_at))
        try:
            head = yield send
        except MALError as exc:
            if not (send.reused and send.unanswered):
                raise
            # The request went out on a kept-alive connection that the server
            # had closed (llama.cpp's server closes it after every stream while
            # advertising keep-alive; any server may at the end of its idle
            # timeout): no byte of a response came, and the close means the
            # server did not take the request. So it is sent again at once,
            # once, whatever max_retries says: not a retry, no back-off, and to
            # the hooks and stats the same request. The pool has dropped the
            # closed connection (and drops idle ones it sees closed), so the
            # request goes on a new one. Browsers do the same, for any method:
            # Chromium's net/http/http_network_transaction.cc,
            # ShouldResendRequest (a reused connection reset, closed or empty
            # before any response header).
            logger.info(
                "sending the request to %s/%s again at once: the server had closed "
                "the kept-alive connection it went out on (%s)",
                call.provider,
                call.model,
                exc,
            )
            head = None
        if head is None:
            head = yield Send(request, call.timeouts, _head_clock(first_at, total_at, clock()))
        status, head_at = head.status, clock()
        if not 200 <= head.status < 300:
            body: bytes = yield READ_ERROR_BODY
            raise protocol.status_error(head.status, head.headers, body)
        content_type = head.headers.get("content-type", "")
        streamed = protocol.body_kind(content_type, request.stream)
        if streamed is None:
            # A gateway's or a login page's HTML with a 200, or anything else
            # that is not what the provider sends: not the provider.
            body = yield READ_ERROR_BODY
            excerpt = body[:200].decode("utf-8", "replace")
            raise DecodeError(
                f"expected a {protocol.name} response, got Content-Type {content_type!r}: "
                f"{excerpt!r}"
            )
        if streamed != request.stream:
            # A proxy that answers a streamed request with the whole JSON
            # message (litellm's does): decode it as the non-streamed body.
            decoder = state.decoder = protocol.decoder_for(
                call.params, streamed, max_size=call.max_event_size
            )
        failure: StreamError | None = None
        handoff = Handoff()
        # Bytes the driver read after a hand-off, not decoded yet.
        ahead: bytes | None = None
        while True:
            if ahead is not None:
                data, ahead = ahead, None
            else:
                op: Receive | _Op = RECEIVE
                if clocked:
                    deadline, phase = (
                        (next_at, "idle" if got_content else "first_token")
                        if next_at is not None
                        else (None, "")
                    )
                    if total_at is not None and (deadline is None or total_at <= deadline):
                        deadline, phase = total_at, "total"
                    if deadline is not None:
                        remaining = deadline - clock()
                        op = Receive(remaining, phase)
                        if remaining <= 0:
                            raise op.expired()
                data = yield op
            received += len(data)
            try:
                chunks = decoder.feed(data) if data else decoder.flush()
            except StreamError as exc:
                # The chunks the piece gave before the failure reach the
                # caller first; the error is raised after them, below.
                if not exc.chunks:
                    raise
                chunks, failure = list(exc.chunks), exc
                exc.chunks = ()
            # A hand-off reads without a clock: only when none runs.
            last = (
                chunks[-1] if fast and chunks and data and failure is None and not clocked else None
            )
            for chunk in chunks:
                if step:
                    chunk.step = step
                text = chunk.text
                if fast:
                    if text:
                        parts.append(text)
                    handed += 1
                    if chunk is last:
                        # The piece's last chunk, and the body goes on: the
                        # driver reads the next piece when the caller is back.
                        handoff.chunk = chunk
                        ahead = yield handoff
                    else:
                        yield chunk
                    continue
                if not got_content:
                    if text or chunk.reasoning or chunk.tool_calls or chunk.refusal:
                        got_content = True
                        fast = not watched
                        now = clock()
                        stats.time_to_first_token = now - start
                        # The first-token clock stops; the idle clock starts.
                        next_at = now + idle if idle is not None else None
                        if hooks.on_first_token is not None:
                            hooks.on_first_token(now - start)
                    elif data:
                        held.append(chunk)
                        continue
                    state.delivered = True
                    for early in held:
                        if on_chunk is not None:
                            on_chunk(early)
                        handed += 1
                        yield early
                    held.clear()
                if guard is not None:
                    guard.check(chunk)
                if text:
                    parts.append(text)
                    if callback is not None:
                        if callback_awaits:
                            yield Await(callback(text))
                        else:
                            callback(text)
                if idle is not None and (
                    text or chunk.reasoning or chunk.tool_calls or chunk.refusal
                ):
                    next_at = clock() + idle
                if on_chunk is not None:
                    on_chunk(chunk)
                handed += 1
                yield chunk
            if failure is not None:
                raise failure
            if not data:
                break
    except MALError as exc:
        outcome = exc
        if not exc.partial_text:
            exc.partial_text = decoder.text
        if head is not None and isinstance(exc, StreamError) and exc.request_id is None:
            exc.request_id = request_id_of(head.headers)
        raise
    except GeneratorExit:
        outcome = GeneratorExit()  # the caller stopped reading
        raise
    finally:
        stats.bytes += received
        stats.chunks += handed
        if logger.isEnabledFor(logging.DEBUG):
            _log_attempt(
                call,
                request,
                attempt,
                status,
                clock() - sent_at,
                head_at - sent_at if head_at is not None else None,
                (
                    start + stats.time_to_first_token - sent_at
                    if got_content and stats.time_to_first_token is not None
                    else None
                ),
                received,
                handed,
                outcome,
                config.log_prompts,
            )


#: mal's log: DEBUG, a line per request (and its body, with
#: ``MALConfig.log_prompts``); INFO, retries and fallbacks. Never an API key:
#: they travel in headers, which are not logged, and URLs lose their query.
logger = logging.getLogger("mal")


def _public_url(url: str) -> str:
    """A URL fit for a log: without its query (where some gateways put keys)."""
    base, sep, _ = url.partition("?")
    return f"{base}?…" if sep else base


def _describe(exc: BaseException | None) -> str:
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    return f"{name} {status}" if status is not None else name


def _ending(outcome: BaseException) -> str:
    if isinstance(outcome, GeneratorExit):
        return "closed early by the caller"
    return f"ended by {_describe(outcome)}"


def _log_attempt(
    call: Call,
    request: HTTPRequest,
    attempt: int,
    status: int | None,
    seconds: float,
    head: float | None,
    first_token: float | None,
    received: int,
    handed: int,
    outcome: BaseException | None,
    with_body: bool,
) -> None:
    """The DEBUG line of one request, when it ended."""
    url = _public_url(request.url)
    if with_body:
        logger.debug("request body to %s: %s", url, request.body.decode("utf-8", "replace"))
    logger.debug(
        "%s %s -> %s in %.3f s (head %s, first token %s), %d bytes, %d chunks, %s/%s, attempt %d%s",
        request.method,
        url,
        status if status is not None else "-",
        seconds,
        f"{head:.3f} s" if head is not None else "-",
        f"{first_token:.3f} s" if first_token is not None else "-",
        received,
        handed,
        call.provider,
        call.model,
        attempt + 1,
        "" if outcome is None else f", {_ending(outcome)}",
    )


class _Guard:
    """The runaway guard: too much output, or the same delta over and over."""

    __slots__ = ("chars", "last", "max_chars", "max_repeats", "repeats")

    def __init__(self, config: MALConfig) -> None:
        self.max_chars = config.max_output_chars
        self.max_repeats = config.max_repeated_deltas
        self.chars = 0
        self.last = ""
        self.repeats = 0

    def check(self, chunk: Chunk) -> None:
        text = chunk.text
        if not text:
            return
        self.chars += len(text)
        if self.max_chars is not None and self.chars > self.max_chars:
            raise RunawayError(
                f"the output passed max_output_chars={self.max_chars}; the stream was stopped",
                reason="max_output_chars",
            )
        if text == self.last:
            self.repeats += 1
            if self.max_repeats is not None and self.repeats >= self.max_repeats:
                raise RunawayError(
                    f"the same delta {text!r} came {self.repeats} times in a row; "
                    "the stream was stopped",
                    reason="repeated_deltas",
                )
        else:
            self.last = text
            self.repeats = 1


def _finish_stats(state: CallState, duration: float) -> None:
    stats = state.stats
    stats.duration = duration
    stats.finish_reason = state.finish_reason
    usage = state.usage
    if usage is not None:
        stats.input_tokens = usage.input_tokens
        stats.output_tokens = usage.output_tokens
        stats.cache_read_tokens = usage.cache_read_tokens
        stats.cache_write_tokens = usage.cache_write_tokens
        stats.reasoning_tokens = usage.reasoning_tokens
        ttft = stats.time_to_first_token
        if usage.output_tokens and ttft is not None and duration > ttft:
            stats.tokens_per_second = usage.output_tokens / (duration - ttft)
