"""An async-shaped adapter over the sync and the async API, so that each test
body is written once: ``Api("sync")`` calls ``mal.Client`` / ``mal.Stream`` /
``mal.generate`` / ``mal.stream`` (blocking, which is fine: the servers run in
threads of their own), ``Api("asyncio")`` and ``Api("trio")`` call
``mal.AsyncClient`` / ``mal.AsyncStream`` / ``mal.agenerate`` / ``mal.astream``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

import anyio

import mal
from mal.testing import MockServer

PROVIDERS = ("ollama", "openai", "anthropic")

#: A model name for each provider, as a user writes it.
MODELS = {
    "ollama": "ollama/mock-model",
    "openai": "openai/gpt-mock",
    "anthropic": "anthropic/claude-mock",
}

#: The values of the ``flavour`` fixture: the sync API, and the async API under
#: each anyio backend.
FLAVOURS = ("sync", "asyncio", "trio")


def make_config(server: MockServer, **fields: Any) -> mal.MALConfig:
    """A config that sends every provider to ``server`` (``base_urls`` given
    here override single providers)."""
    base_urls = {provider: server.url(provider) for provider in PROVIDERS}
    base_urls.update(fields.pop("base_urls", {}))
    return mal.MALConfig(base_urls=base_urls, **fields)


class _SyncChunks:
    """An async iterator over a sync iterator of chunks (``iter(stream)``).

    It holds the only reference to that iterator, so dropping it (a ``break``)
    drops the sync generator at once, exactly as a sync ``for`` loop does.
    """

    def __init__(self, iterator: Iterator[mal.Chunk]) -> None:
        self._iterator = iterator

    def __aiter__(self) -> _SyncChunks:
        return self

    async def __anext__(self) -> mal.Chunk:
        try:
            return next(self._iterator)
        except StopIteration:
            raise StopAsyncIteration from None


SyncT = TypeVar("SyncT", mal.Stream, mal.Client)
AsyncT = TypeVar("AsyncT", mal.AsyncStream, mal.AsyncClient)
AdapterT = TypeVar("AdapterT", bound="_Adapter[Any, Any]")


class _Adapter(Generic[SyncT, AsyncT]):
    """What a stream and a client share: ``close``, and the ``with`` block, each
    checked to be of the flavour asked for."""

    _sync_type: type[SyncT]
    _async_type: type[AsyncT]

    def __init__(self, raw: SyncT | AsyncT, *, sync: bool) -> None:
        expected = self._sync_type if sync else self._async_type
        assert type(raw) is expected, f"expected a {expected.__name__}, got {raw!r}"
        self.raw: SyncT | AsyncT = raw
        self.sync = sync

    async def aclose(self) -> None:
        """``close()`` / ``await aclose()``."""
        if isinstance(self.raw, (mal.Stream, mal.Client)):
            self.raw.close()
        else:
            await self.raw.aclose()

    async def __aenter__(self: AdapterT) -> AdapterT:
        if isinstance(self.raw, (mal.Stream, mal.Client)):
            entered: object = self.raw.__enter__()
        else:
            entered = await self.raw.__aenter__()
        assert entered is self.raw
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(self.raw, (mal.Stream, mal.Client)):
            self.raw.__exit__(exc_type, exc, tb)
        else:
            await self.raw.__aexit__(exc_type, exc, tb)


class StreamAdapter(_Adapter[mal.Stream, mal.AsyncStream]):
    """An async-shaped view of a ``mal.Stream`` or a ``mal.AsyncStream``."""

    _sync_type = mal.Stream
    _async_type = mal.AsyncStream

    def __aiter__(self) -> AsyncIterator[mal.Chunk]:
        if isinstance(self.raw, mal.Stream):
            return _SyncChunks(iter(self.raw))
        return self.raw.__aiter__()

    async def next(self) -> mal.Chunk:
        """``next(stream)`` / ``await anext(stream)``: the next chunk."""
        if isinstance(self.raw, mal.Stream):
            return next(self.raw)
        return await self.raw.__anext__()

    @property
    def text(self) -> str:
        return self.raw.text

    @property
    def finish_reason(self) -> str | None:
        return self.raw.finish_reason

    @property
    def raw_finish_reason(self) -> str | None:
        return self.raw.raw_finish_reason

    @property
    def usage(self) -> mal.Usage | None:
        return self.raw.usage

    @property
    def stats(self) -> mal.CallStats:
        return self.raw.stats

    @property
    def provider(self) -> str:
        return self.raw.provider

    @property
    def model(self) -> str:
        return self.raw.model


class ClientAdapter(_Adapter[mal.Client, mal.AsyncClient]):
    """An async-shaped view of a ``mal.Client`` or a ``mal.AsyncClient``."""

    _sync_type = mal.Client
    _async_type = mal.AsyncClient

    async def generate(self, prompt: Any, **options: Any) -> str:
        if isinstance(self.raw, mal.Client):
            return self.raw.generate(prompt, **options)
        return await self.raw.generate(prompt, **options)

    def stream(self, prompt: Any, **options: Any) -> StreamAdapter:
        return StreamAdapter(self.raw.stream(prompt, **options), sync=self.sync)

    @property
    def metrics(self) -> mal.ClientMetrics:
        return self.raw.metrics


class Api:
    """The public API of one flavour ("sync", "asyncio" or "trio"), async-shaped.

    ``client_defaults`` are keyword arguments every client is made with, unless
    the test gives its own.
    """

    def __init__(self, flavour: str, **client_defaults: Any) -> None:
        assert flavour in FLAVOURS, flavour
        self.flavour = flavour
        self.sync = flavour == "sync"
        self.client_defaults = client_defaults

    def __repr__(self) -> str:
        return f"Api({self.flavour})"

    def client(self, config: mal.MALConfig | None = None, **kwargs: Any) -> ClientAdapter:
        """``mal.Client`` / ``mal.AsyncClient``."""
        kwargs = {**self.client_defaults, **kwargs}
        raw = mal.Client(config, **kwargs) if self.sync else mal.AsyncClient(config, **kwargs)
        return ClientAdapter(raw, sync=self.sync)

    def client_for(self, server: MockServer, **config: Any) -> ClientAdapter:
        """A client whose providers all point at ``server``, with no retries
        unless ``max_retries`` is given."""
        config.setdefault("max_retries", 0)
        return self.client(make_config(server, **config))

    async def generate(self, prompt: Any, **options: Any) -> str:
        """``mal.generate`` / ``mal.agenerate``."""
        if self.sync:
            return mal.generate(prompt, **options)
        return await mal.agenerate(prompt, **options)

    def stream(self, prompt: Any, **options: Any) -> StreamAdapter:
        """``mal.stream`` / ``mal.astream``."""
        raw = mal.stream(prompt, **options) if self.sync else mal.astream(prompt, **options)
        return StreamAdapter(raw, sync=self.sync)


async def collect(stream: StreamAdapter) -> list[mal.Chunk]:
    """Read a stream to its end."""
    return [chunk async for chunk in stream]


async def read_into(stream: StreamAdapter, texts: list[str], *, with_block: bool = True) -> None:
    """Read a stream to its end, inside its ``with`` block or in a bare loop,
    adding each chunk's text to ``texts``: what the caller saw stays there when
    the read raises or is cancelled."""
    if with_block:
        async with stream:
            async for chunk in stream:
                texts.append(chunk.text)
    else:
        async for chunk in stream:
            texts.append(chunk.text)


async def wait_disconnect(server: MockServer, timeout: float, count: int = 1) -> bool:
    """``server.wait_for_disconnect`` without blocking the event loop (which may
    have to run an async generator's finalizer for the disconnect to happen)."""
    return await anyio.to_thread.run_sync(lambda: server.wait_for_disconnect(timeout, count))
