"""What the sync and async clients and streams share, with no I/O of their own."""

from __future__ import annotations

import os
import random as _random
from collections.abc import Callable, Generator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from ._complete import Run, check_complete_options, response_of, run_loop
from ._lifecycle import UNSET, CallState, Runtime, run_call
from ._prepare import Call, prepare_call
from .config import Endpoint, MALConfig, resolve_endpoint
from .errors import ConfigError, OutputValidationError
from .hooks import CallStats, ClientMetrics, Hooks
from .protocols import PROTOCOLS
from .schema import partial_json
from .types import Message, Prompt, Response, ToolCall, Usage

__all__ = ["AsyncClosing", "ClientBase", "Closing", "StreamBase"]

if TYPE_CHECKING:
    from httpx import Timeout

_Self = TypeVar("_Self")


class Closing:
    """``with`` support for an object with ``close()``: leaving the block closes it."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClosing:
    """``async with`` support for an object with ``aclose()``."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self: _Self) -> _Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class StreamBase:
    """The read-only view of a stream, shared by :class:`mal.Stream` and
    :class:`mal.AsyncStream`."""

    _run: Run
    _call: Call

    @property
    def _state(self) -> CallState:
        """The state of the model call under way (the last one, once ended)."""
        return self._run.state

    @property
    def text(self) -> str:
        """The text of the chunks yielded so far (with ``tool_rounds``, of
        the step under way: the last step's once the stream has ended)."""
        return self._state.text

    @property
    def finish_reason(self) -> str | None:
        """The normalised stop reason, once the provider has sent it."""
        return self._state.finish_reason

    @property
    def raw_finish_reason(self) -> str | None:
        """The provider's own stop reason (``end_turn``, ``max_tokens``...), once ended."""
        return self._state.raw_finish_reason

    @property
    def usage(self) -> Usage | None:
        """Token counts: the latest value reported for each field, once ended."""
        return self._state.usage

    @property
    def stats(self) -> CallStats:
        """What the call did so far: time to first token, chunks, retries..."""
        return self._state.stats

    @property
    def reasoning(self) -> str:
        """The thinking text decoded so far."""
        decoder = self._state.decoder
        return decoder.reasoning if decoder is not None else ""

    @property
    def refusal(self) -> str:
        """The model's refusal text (OpenAI ``refusal``), "" when it did not refuse."""
        decoder = self._state.decoder
        return decoder.refusal if decoder is not None else ""

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The assembled tool calls, once the stream has ended."""
        decoder = self._state.decoder
        return list(decoder.tool_calls) if decoder is not None else []

    @property
    def message(self) -> Message:
        """The assistant turn, ready to send back, once the stream has ended."""
        decoder = self._state.decoder
        return decoder.message() if decoder is not None else Message("assistant")

    @property
    def parsed(self) -> Any:
        """The output decoded into the call's ``schema`` once the stream has
        ended (None before, or without a schema); raises
        :class:`mal.OutputValidationError` when it does not match."""
        schema = self._call.params.schema
        state = self._state
        decoder = state.decoder
        if schema is None or decoder is None or not decoder.done:
            return None
        if state.parsed is UNSET:
            state.parsed = schema.decode(state.text)
        return state.parsed

    def partial(self) -> Any:
        """The JSON output decoded so far, for a stream of structured output:
        what has arrived of the object (a dict), or None before anything
        parseable came. Needs ``pip install 'mal-llm[partial]'``."""
        return partial_json(self._state.text)

    def response(self) -> Response:
        """What the stream holds, as a :class:`mal.Response` (complete once
        the stream has ended). With ``tool_rounds``, the whole call: its
        ``steps``, and its usage summed over them."""
        run = self._run
        if run.final is not None:
            return run.final
        if len(run.steps) > run.step:  # between a step's end and the next
            response = msgspec.structs.replace(run.steps[-1])
        else:
            response = response_of(self._state)
            if self._call.params.schema is not None:
                response.parsed = self.parsed
        response.steps = [*run.steps[: run.step], response]
        response.messages = [response.message]
        return response

    @property
    def provider(self) -> str:
        """The provider that served the stream (a fallback's, if one took over)."""
        return self._state.provider

    @property
    def model(self) -> str:
        """The model that served the stream, in the provider's own naming."""
        return self._state.model

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._state.provider}/{self._state.model}>"


def with_schema(options: Mapping[str, Any], schema: Any) -> Mapping[str, Any]:
    """The options of a call, with its ``schema`` (a keyword of its own)."""
    return {**options, "schema": schema} if schema is not None else options


def generated(response: Response, schema: Any) -> Any:
    """What ``generate`` returns: the text, or with a schema the decoded output
    (an error, not a silent None, when the turn ended on tool calls)."""
    if schema is None:
        return response.text
    if response.parsed is None and response.tool_calls:
        names = ", ".join(call.name for call in response.tool_calls)
        raise OutputValidationError(
            f"the model called tools ({names}) instead of giving the output of the schema; "
            "let mal run them with tool_rounds=N, or handle them with complete()",
            raw_text=response.text,
        )
    return response.parsed


def replaced_config(config: MALConfig, changes: Mapping[str, Any]) -> MALConfig:
    """``config`` with ``changes`` (field names) replaced, checked as a new
    config is; a name that is no field is a ConfigError naming it."""
    if not changes:
        return config
    fields = config.__struct_fields__
    for name in changes:
        if name not in fields:
            raise ConfigError(f"{name!r} is not a field of mal.MALConfig")
    granular = {"connect_timeout", "read_timeout", "write_timeout", "pool_timeout"}
    if config.timeout is not None and "timeout" not in changes and granular & changes.keys():
        # The config's single timeout would hide a granular one given here:
        # it becomes the four granular values, of which those given replace some.
        single = config.timeout
        changes = {**dict.fromkeys(granular, single), "timeout": None, **changes}
    try:
        return msgspec.structs.replace(config, **changes)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def check_http_client(value: object, expected: type, name: str) -> None:
    """Refuse an ``http_client`` that is not ``expected`` (httpx's own client
    class), naming what to pass. The official SDKs and much of the ecosystem
    moved to ``httpx2``, a fork whose classes only look like httpx's: handed
    to mal they would fail at the first call with a raw ``TypeError``."""
    if value is None or isinstance(value, expected):
        return
    kind = type(value)
    given = f"{kind.__module__.partition('.')[0]}.{kind.__qualname__}"
    hint = ""
    if given.startswith("httpx2."):
        hint = (
            " mal sends its requests with httpx, not its fork httpx2: give an "
            f"{name} (with the proxies, certificates or transport you need), or none"
        )
    raise ConfigError(f"http_client must be an {name}, not {given}.{hint}")


class ClientBase:
    """Configuration and call preparation, shared by both clients."""

    def __init__(
        self,
        config: MALConfig | None,
        environ: Mapping[str, str] | None,
        *,
        hooks: Hooks | None,
        clock: Callable[[], float],
        random: Callable[[], float] | None,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | Timeout | None = None,
        max_retries: int | None = None,
    ) -> None:
        if config is None:
            config = MALConfig()
        elif not isinstance(config, MALConfig):
            raise ConfigError(f"config must be a mal.MALConfig, not {type(config).__name__}")
        # The official SDKs' keywords: each replaces the config's value.
        changes: dict[str, Any] = {}
        if timeout is not None:
            changes["timeout"] = timeout
        if max_retries is not None:
            changes["max_retries"] = max_retries
        self.config = config = replaced_config(config, changes)
        for name, value in (("api_key", api_key), ("base_url", base_url)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{name} must be a non-empty str, not {value!r}")
        self._api_key = api_key
        self._base_url = base_url
        # Environment variables are read once, when the client is made (and
        # kept for the clients that with_options derives from it).
        env = self._environ = dict(os.environ if environ is None else environ)
        # The client's api_key and base_url go with every call that does not
        # pass its own, whatever its provider, as if passed to each call.
        self._endpoints: dict[str, Endpoint] = {
            name: resolve_endpoint(protocol, config, env).replaced(base_url, api_key)
            for name, protocol in PROTOCOLS.items()
        }
        self._runtime = Runtime(
            config,
            self._endpoints,
            hooks=hooks,
            clock=clock,
            random=random if random is not None else _random.random,
        )

    def _derived(
        self,
        api_key: str | None,
        base_url: str | None,
        timeout: Any,
        max_retries: int | None,
        fields: dict[str, Any],
    ) -> dict[str, Any]:
        """The arguments of a client made by ``with_options(...)``: this one's
        config with ``timeout``, ``max_retries`` (when given) and the config
        ``fields`` replaced, its api_key and base_url unless given, its hooks,
        clock, randomness and environment as read."""
        changes = dict(fields)
        for name, value in (("timeout", timeout), ("max_retries", max_retries)):
            if value is not None:
                changes[name] = value
        runtime = self._runtime
        return {
            "config": replaced_config(self.config, changes),
            "api_key": api_key if api_key is not None else self._api_key,
            "base_url": base_url if base_url is not None else self._base_url,
            "hooks": runtime.hooks,
            "environ": self._environ,
            "clock": runtime.clock,
            "random": runtime.random,
        }

    @property
    def metrics(self) -> ClientMetrics:
        """Counters over every call of this client."""
        return self._runtime.metrics

    def _prepare(
        self, prompt: Prompt, model: str, options: Mapping[str, Any], *, for_generate: bool
    ) -> Call:
        return prepare_call(
            self.config,
            self._endpoints,
            prompt,
            model,
            options,
            for_generate=for_generate,
            allow_async=self._runs_async_tools,
        )

    def _embed_calls(
        self, texts: Any, model: str, options: Mapping[str, Any]
    ) -> tuple[list[Call], str, str]:
        """The calls of ``embed``, a batch each, built before anything is sent;
        and the provider and model."""
        from ._prepare import prepare_embed_calls

        return prepare_embed_calls(self.config, self._endpoints, texts, model, options)

    def _start(
        self, prompt: Prompt, model: str, options: Mapping[str, Any], *, for_generate: bool
    ) -> tuple[Call, Run, Generator[Any, Any, Any]]:
        """The first call of a stream (``complete`` is one read to its end),
        what it holds, and its generator: the loop of its steps, or for a
        stream without ``tool_rounds`` nor ``schema_retries`` the one call."""
        checked = check_complete_options(options)
        call = self._prepare(prompt, model, options, for_generate=for_generate)
        run = Run(call)
        gen: Generator[Any, Any, Any]
        if for_generate or checked.tool_rounds or checked.schema_retries:
            gen = run_loop(
                call,
                checked,
                self._runtime,
                run,
                allow_async=self._runs_async_tools,
                on_schema_retry=self._runtime.hooks.on_schema_retry,
            )
        else:
            gen = run_call(call, run.state, self._runtime)
        return call, run, gen

    #: Whether the client's complete() can run coroutine-function tools.
    _runs_async_tools = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.config!r}>"
