"""Helpers for the driver tests: adapters that give the sync and the async API the
same async-shaped methods, so that each test body is written once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

import anyio
import httpx
import msgspec

import mal
from mal.testing import MockServer, RecordedRequest

PROVIDERS = ("ollama", "openai", "anthropic")

#: A model name for each provider, as a user writes it.
MODELS = {
    "ollama": "ollama/mock-model",
    "openai": "openai/gpt-mock",
    "anthropic": "anthropic/claude-mock",
}


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


class StreamAdapter:
    """An async-shaped view of a ``mal.Stream`` or a ``mal.AsyncStream``."""

    def __init__(self, raw: mal.Stream | mal.AsyncStream, *, sync: bool) -> None:
        expected = mal.Stream if sync else mal.AsyncStream
        assert type(raw) is expected, f"expected a {expected.__name__}, got {raw!r}"
        self.raw = raw
        self.sync = sync

    def __aiter__(self) -> AsyncIterator[mal.Chunk]:
        if isinstance(self.raw, mal.Stream):
            return _SyncChunks(iter(self.raw))
        return self.raw.__aiter__()

    async def next(self) -> mal.Chunk:
        """``next(stream)`` / ``await anext(stream)``: the next chunk."""
        if isinstance(self.raw, mal.Stream):
            return next(self.raw)
        return await self.raw.__anext__()

    async def aclose(self) -> None:
        if isinstance(self.raw, mal.Stream):
            self.raw.close()
        else:
            await self.raw.aclose()

    async def __aenter__(self) -> StreamAdapter:
        if isinstance(self.raw, mal.Stream):
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
        if isinstance(self.raw, mal.Stream):
            self.raw.__exit__(exc_type, exc, tb)
        else:
            await self.raw.__aexit__(exc_type, exc, tb)

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


class ClientAdapter:
    """An async-shaped view of a ``mal.Client`` or a ``mal.AsyncClient``."""

    def __init__(self, raw: mal.Client | mal.AsyncClient, *, sync: bool) -> None:
        expected = mal.Client if sync else mal.AsyncClient
        assert type(raw) is expected, f"expected a {expected.__name__}, got {raw!r}"
        self.raw = raw
        self.sync = sync

    async def generate(self, prompt: Any, **options: Any) -> str:
        if isinstance(self.raw, mal.Client):
            return self.raw.generate(prompt, **options)
        return await self.raw.generate(prompt, **options)

    def stream(self, prompt: Any, **options: Any) -> StreamAdapter:
        return StreamAdapter(self.raw.stream(prompt, **options), sync=self.sync)

    async def aclose(self) -> None:
        if isinstance(self.raw, mal.Client):
            self.raw.close()
        else:
            await self.raw.aclose()

    async def __aenter__(self) -> ClientAdapter:
        if isinstance(self.raw, mal.Client):
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
        if isinstance(self.raw, mal.Client):
            self.raw.__exit__(exc_type, exc, tb)
        else:
            await self.raw.__aexit__(exc_type, exc, tb)


class Api:
    """The public API of one flavour, async-shaped."""

    def __init__(self, *, sync: bool) -> None:
        self.sync = sync

    def __repr__(self) -> str:
        return f"<Api {'sync' if self.sync else 'async'}>"

    def client(self, config: mal.MALConfig | None = None, **kwargs: Any) -> ClientAdapter:
        raw = mal.Client(config, **kwargs) if self.sync else mal.AsyncClient(config, **kwargs)
        return ClientAdapter(raw, sync=self.sync)

    def client_for(self, server: MockServer, **config: Any) -> ClientAdapter:
        """A client whose providers all point at ``server``, with no retries
        unless ``max_retries`` is given."""
        config.setdefault("max_retries", 0)
        base_urls = {provider: server.url(provider) for provider in PROVIDERS}
        return self.client(mal.MALConfig(base_urls=base_urls, **config))

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


async def wait_disconnect(server: MockServer, timeout: float = 1.0, count: int = 1) -> bool:
    """``server.wait_for_disconnect`` without blocking the event loop (which may
    have to run an async generator's finalizer for the disconnect to happen)."""
    return await anyio.to_thread.run_sync(lambda: server.wait_for_disconnect(timeout, count))


def was_streamed(request: RecordedRequest | httpx.Request) -> bool:
    """Whether a request asked for a streamed response, by each provider's default
    (Ollama streams unless told not to; OpenAI and Anthropic only when asked)."""
    if isinstance(request, httpx.Request):
        body = msgspec.json.decode(request.content)
        ollama = request.url.path.startswith("/api/")
    else:
        body = request.json
        ollama = request.provider == "ollama"
    flag = body.get("stream")
    if ollama:
        assert isinstance(flag, bool), "mal should always say whether Ollama streams"
        return flag
    assert flag in (None, True, False)
    return bool(flag)
