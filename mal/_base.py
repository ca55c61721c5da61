"""What the sync and async clients and streams share, with no I/O of their own."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ._lifecycle import Call, CallState, prepare_call
from .config import Endpoint, MALConfig, resolve_endpoint
from .errors import ConfigError
from .protocols import PROTOCOLS
from .types import Prompt, Usage

__all__ = ["ClientBase", "StreamBase"]


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
    def provider(self) -> str:
        """The provider that served the stream."""
        return self._state.provider

    @property
    def model(self) -> str:
        """The model that served the stream, in the provider's own naming."""
        return self._state.model

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._state.provider}/{self._state.model}>"


class ClientBase:
    """Configuration and call preparation, shared by both clients."""

    def __init__(self, config: MALConfig | None, environ: Mapping[str, str] | None) -> None:
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

    def _prepare(
        self, prompt: Prompt, model: str, options: Mapping[str, Any], *, for_generate: bool
    ) -> Call:
        return prepare_call(
            self.config, self._endpoints, prompt, model, options, for_generate=for_generate
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.config!r}>"
