"""The options of a call, checked, and the :class:`Call` they resolve to.

:func:`prepare_call` and :func:`prepare_embed_calls` check a call's options
against the client's config and build its request once, before anything is
sent: a bad option is a ``ConfigError`` at the call, and a retry sends the
same bytes. The :class:`Call` they return is what the lifecycle generator
(:mod:`mal._lifecycle`) runs.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import msgspec

from .config import Endpoint, MALConfig, timeout_parts
from .errors import ConfigError
from .protocols import (
    GenerateParams,
    HTTPRequest,
    Protocol,
    get_protocol,
    split_model,
    unknown_prefix_hint,
)
from .protocols._base import prompt_length
from .schema import OutputSchema
from .tools import Tool, as_tools
from .types import MessageLike, Prompt

if TYPE_CHECKING:
    from httpx import Timeout

__all__ = [
    "Call",
    "CallOptions",
    "EmbedOptions",
    "GenerateOptions",
    "prepare_call",
    "prepare_embed_calls",
]


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


def round_call(
    config: MALConfig,
    endpoints: Mapping[str, Endpoint],
    messages: list[MessageLike],
    first: Call,
    overrides: Mapping[str, Any],
) -> Call:
    """The call of a tool round or a schema re-ask: ``first``'s model and
    options (with ``overrides``), ``messages`` as the prompt, streamed as
    ``first`` was."""
    options = {**first.options, **overrides} if overrides else first.options
    return prepare_call(
        config,
        endpoints,
        messages,
        f"{first.provider}/{first.model}",
        options,
        for_generate=True,
        stream=first.params.stream,
    )


def fallback_call(
    config: MALConfig, endpoints: Mapping[str, Endpoint], model: str, call: Call
) -> Call:
    """The call of fallback ``model`` for ``call``. One of the call's own
    provider keeps the call's base_url and api_key (the same self-hosted
    server, another model); one of another provider uses the client's
    settings for that provider. Either keeps the streaming decision of the
    call it replaces."""
    provider, _ = split_model(model, config.default_provider)
    dropped = ["fallbacks"]
    if provider != call.provider:
        dropped += ["base_url", "api_key"]
    options = {key: value for key, value in call.options.items() if key not in dropped}
    return prepare_call(
        config,
        endpoints,
        call.params.prompt,
        model,
        options,
        for_generate=True,
        stream=call.params.stream,
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
