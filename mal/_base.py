"""What the sync and async clients and streams share, with no I/O of their own."""

from __future__ import annotations

import os
import random as _random
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from ._lifecycle import Call, CallState, Runtime, prepare_call
from .config import Endpoint, MALConfig, resolve_endpoint
from .errors import ConfigError
from .hooks import CallStats, ClientMetrics, Hooks
from .protocols import PROTOCOLS, split_model
from .types import Prompt, Usage

__all__ = ["AsyncClosing", "ClientBase", "Closing", "StreamBase"]

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

    _state: CallState
    _call: Call

    @property
    def text(self) -> str:
        """The text of the chunks yielded so far."""
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
    def provider(self) -> str:
        """The provider that served the stream (a fallback's, if one took over)."""
        return self._state.provider

    @property
    def model(self) -> str:
        """The model that served the stream, in the provider's own naming."""
        return self._state.model

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._state.provider}/{self._state.model}>"


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
    ) -> None:
        if config is None:
            config = MALConfig()
        elif not isinstance(config, MALConfig):
            raise ConfigError(f"config must be a mal.MALConfig, not {type(config).__name__}")
        self.config = config
        # Environment variables are read once, when the client is made.
        env = os.environ if environ is None else environ
        self._endpoints: dict[str, Endpoint] = {
            name: resolve_endpoint(protocol, config, env) for name, protocol in PROTOCOLS.items()
        }
        self._runtime = Runtime(
            config,
            self._fallback_call,
            hooks=hooks,
            clock=clock,
            random=random if random is not None else _random.random,
        )

    @property
    def metrics(self) -> ClientMetrics:
        """Counters over every call of this client."""
        return self._runtime.metrics

    def _prepare(
        self, prompt: Prompt, model: str, options: Mapping[str, Any], *, for_generate: bool
    ) -> Call:
        return prepare_call(
            self.config, self._endpoints, prompt, model, options, for_generate=for_generate
        )

    def _fallback_call(self, model: str, call: Call) -> Call:
        # A fallback of the call's own provider keeps the call's base_url and
        # api_key (the same self-hosted server, another model); one of another
        # provider uses the client's settings for that provider. Either keeps
        # the streaming decision of the call it replaces.
        provider, _ = split_model(model, self.config.default_provider)
        dropped = ["fallbacks"]
        if provider != call.provider:
            dropped += ["base_url", "api_key"]
        options = {key: value for key, value in call.options.items() if key not in dropped}
        return prepare_call(
            self.config,
            self._endpoints,
            call.params.prompt,
            model,
            options,
            for_generate=True,
            stream=call.params.stream,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.config!r}>"
