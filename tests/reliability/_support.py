"""Helpers for the reliability tests: one async-shaped adapter over the sync and
the async API, so that each test body is written once, and small helpers to run
a stream and wait on the local server without blocking the event loop."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx

import mal
from mal.protocols import GenerateParams, get_protocol
from mal.testing import MockServer, Reply

PROVIDERS = ("ollama", "openai", "anthropic")
#: Providers whose wire format has keep-alive pings (SSE comments, ``ping`` events).
PING_PROVIDERS = ("openai", "anthropic")

#: A model name for each provider, as a user writes it.
MODELS = {
    "ollama": "ollama/mock-model",
    "openai": "openai/gpt-mock",
    "anthropic": "anthropic/claude-mock",
}

#: A short reply of four tokens.
SHORT_TOKENS = ["The", " sky", " is", " blue."]
SHORT_TEXT = "".join(SHORT_TOKENS)

#: Sixty tokens: with a small chunk_delay the server is still sending when the
#: client goes away, so it sees the disconnect.
LONG_TOKENS = [f" word{i}" for i in range(60)]

SECRET = "sk-secret-123"

T = TypeVar("T")


def zero() -> float:
    """``random`` for the clients: back-off never sleeps."""
    return 0.0


def make_config(server: MockServer, **fields: Any) -> mal.MALConfig:
    """A config that sends every provider to ``server``."""
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

    async def aclose(self) -> None:
        if isinstance(self.raw, mal.Stream):
            self.raw.close()
        else:
            await self.raw.aclose()

    async def __aenter__(self) -> StreamAdapter:
        if isinstance(self.raw, mal.Stream):
            self.raw.__enter__()
        else:
            await self.raw.__aenter__()
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
    def stats(self) -> mal.CallStats:
        return self.raw.stats

    @property
    def provider(self) -> str:
        return self.raw.provider

    @property
    def model(self) -> str:
        return self.raw.model

    @property
    def usage(self) -> mal.Usage | None:
        return self.raw.usage


class ClientAdapter:
    """An async-shaped view of a ``mal.Client`` or a ``mal.AsyncClient``."""

    def __init__(self, raw: mal.Client | mal.AsyncClient, *, sync: bool) -> None:
        self.raw = raw
        self.sync = sync

    async def generate(self, prompt: Any, **options: Any) -> str:
        if isinstance(self.raw, mal.Client):
            return self.raw.generate(prompt, **options)
        return await self.raw.generate(prompt, **options)

    def stream(self, prompt: Any, **options: Any) -> StreamAdapter:
        return StreamAdapter(self.raw.stream(prompt, **options), sync=self.sync)

    @property
    def metrics(self) -> mal.ClientMetrics:
        return self.raw.metrics

    async def __aenter__(self) -> ClientAdapter:
        if isinstance(self.raw, mal.Client):
            self.raw.__enter__()
        else:
            await self.raw.__aenter__()
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
    """The public API of one flavour ("sync", "asyncio" or "trio"), async-shaped."""

    def __init__(self, flavour: str) -> None:
        self.flavour = flavour
        self.sync = flavour == "sync"

    def client(self, config: mal.MALConfig | None = None, **kwargs: Any) -> ClientAdapter:
        """``mal.Client`` / ``mal.AsyncClient``; back-off does not sleep unless
        ``random`` is given."""
        kwargs.setdefault("random", zero)
        raw = mal.Client(config, **kwargs) if self.sync else mal.AsyncClient(config, **kwargs)
        return ClientAdapter(raw, sync=self.sync)

    def __repr__(self) -> str:
        return f"Api({self.flavour})"


@dataclass
class Outcome:
    """What reading one stream gave: the chunks yielded, and the error if any."""

    stream: StreamAdapter
    chunks: list[mal.Chunk] = field(default_factory=list)
    error: mal.MALError | None = None
    elapsed: float = 0.0

    @property
    def text(self) -> str:
        """The text of the chunks the caller saw."""
        return "".join(chunk.text for chunk in self.chunks)


async def run(client: ClientAdapter, model: str, prompt: Any = "Hi", **options: Any) -> Outcome:
    """Read a stream to its end inside its ``with`` block; a ``mal.MALError`` is
    kept in the outcome, any other exception fails the test."""
    stream = client.stream(prompt, model=model, **options)
    outcome = Outcome(stream)
    start = time.monotonic()
    try:
        async with stream:
            async for chunk in stream:
                outcome.chunks.append(chunk)
    except mal.MALError as exc:
        outcome.error = exc
    outcome.elapsed = time.monotonic() - start
    return outcome


async def wait_disconnect(server: MockServer, timeout: float = 2.0, count: int = 1) -> bool:
    """``server.wait_for_disconnect`` without blocking the event loop."""
    return await anyio.to_thread.run_sync(lambda: server.wait_for_disconnect(timeout, count))


class Recorder:
    """``mal.Hooks`` that record every call they get."""

    def __init__(self) -> None:
        self.requests: list[mal.RequestInfo] = []
        self.first_tokens: list[float] = []
        self.chunks: list[mal.Chunk] = []
        self.retries: list[tuple[int, float, mal.MALError]] = []
        self.fallbacks: list[tuple[str, str, mal.MALError]] = []
        self.completes: list[mal.CallStats] = []

    def clear(self) -> None:
        for name in ("requests", "first_tokens", "chunks", "retries", "fallbacks", "completes"):
            getattr(self, name).clear()

    def hooks(self) -> mal.Hooks:
        return mal.Hooks(
            on_request=self.requests.append,
            on_first_token=self.first_tokens.append,
            on_chunk=self.chunks.append,
            on_retry=lambda n, delay, error: self.retries.append((n, delay, error)),
            on_fallback=lambda failed, following, error: self.fallbacks.append(
                (failed, following, error)
            ),
            on_complete=self.completes.append,
        )

    @property
    def attempts(self) -> list[int]:
        return [info.attempt for info in self.requests]


def request_for(provider: str, base_url: str, *, stream: bool = True) -> httpx.Request:
    """The request mal sends for a "Hi" prompt, built by mal's sans-I/O core."""
    protocol = get_protocol(provider)
    model = MODELS[provider].split("/", 1)[1]
    request = protocol.build_request(
        GenerateParams(model=model, prompt="Hi", stream=stream), base_url=base_url
    )
    return httpx.Request(request.method, request.url, headers=request.headers, content=request.body)


def raw_body(server: MockServer, provider: str, reply: Reply, *, stream: bool = True) -> bytes:
    """The body the server sends for ``reply``, fetched with plain httpx (the
    request is recorded by the server, like any other)."""
    server.add(reply)
    with httpx.Client() as http:
        response = http.send(request_for(provider, server.url(provider), stream=stream))
        assert response.status_code == 200, response.text
        return response.content


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine of the sync adapter, which never suspends (its calls
    block), to its end in the calling thread."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("the sync adapter suspended: it must only block")


async def for_each(
    api: Api, items: Iterable[T], job: Callable[[int, T], Awaitable[None]], *, workers: int
) -> None:
    """Await ``job(worker, item)`` for every item, on ``workers`` concurrent
    workers: tasks for the async API, threads for the sync API (whose client is
    shared by the threads, as it may be)."""
    pending = list(items)[::-1]
    lock = threading.Lock()

    def take() -> tuple[bool, Any]:
        with lock:
            return (True, pending.pop()) if pending else (False, None)

    async def task_worker(index: int) -> None:
        while True:
            more, item = take()
            if not more:
                return
            await job(index, item)

    def thread_worker(index: int) -> None:
        while True:
            more, item = take()
            if not more:
                return
            run_blocking(job(index, item))  # type: ignore[arg-type]

    async with anyio.create_task_group() as group:
        for index in range(workers):
            if api.sync:
                group.start_soon(anyio.to_thread.run_sync, thread_worker, index)
            else:
                group.start_soon(task_worker, index)
