"""Helpers for the reliability tests only (the adapter over the sync and the
async API is ``tests.support.adapters``): reading a stream into an ``Outcome``,
recording hooks, the raw wire body, and running a job on concurrent workers."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import httpx

import mal
from mal.protocols import GenerateParams, get_protocol
from mal.testing import MockServer, Reply

from ..support import adapters
from ..support.adapters import MODELS, Api, ClientAdapter, StreamAdapter

#: Providers whose wire format has keep-alive pings (SSE comments, ``ping`` events).
PING_PROVIDERS = ("openai", "anthropic")

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


#: ``server.wait_for_disconnect`` without blocking the event loop, waiting two seconds.
wait_disconnect = functools.partial(adapters.wait_disconnect, timeout=2.0)


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
