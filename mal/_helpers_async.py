"""What the async driver does its own way, on anyio (asyncio and trio alike).

The driver, :mod:`mal._async`, is written once; the sync one is generated
from it. What truly differs between the two runtimes is here and in
:mod:`mal._helpers_sync`, under the same names:

* :class:`Waiter`: the stream's blocking waits (sending a request, a
  back-off sleep) and how a close from another task ends each of them, and
  a body read, at once;
* :func:`body_reader`: the body's reader, ``read(timeout)``;
* :func:`run_tools`: a step's tool functions, run concurrently;
* :func:`release` and :func:`abandon`: closing a response, awaited or not;
* :func:`make_http` and :func:`check_loop`: the client's transport (mal's
  own HTTP/1.1 one, :mod:`mal._http11_async`, unless a proxy is set).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any, Literal

import anyio
import httpx

from ._complete import Outcome, ToolRun
from ._http11 import HeadTimeout
from ._http11_async import AsyncHTTP11Transport
from ._ops import Send, Shared
from ._transport import (
    USER_AGENT,
    AsyncIterBody,
    ConnectionTrace,
    build_request,
    env_proxies,
    make_limits,
    shutdown,
)
from .errors import ConfigError

__all__ = [
    "RUNS_ASYNC_TOOLS",
    "Transport",
    "Waiter",
    "abandon",
    "ask",
    "body_reader",
    "check_loop",
    "make_http",
    "release",
    "run_tools",
    "settle",
]

#: Whether the driver can run coroutine functions as tools and callbacks.
RUNS_ASYNC_TOOLS = True

#: What moves the bytes: httpx's own HTTP client, or aiohttp's (asyncio only).
Transport = Literal["httpx", "aiohttp"]


def _current() -> int:
    return anyio.get_current_task().id


class Waiter:
    """The blocking waits of one stream, and who is in them.

    ``reader`` is the task running the stream's lifecycle, ``None`` while the
    caller holds a chunk. A close from another task than the reader cannot
    close the generator or the response under the reader's feet: it calls
    :meth:`interrupt`, which ends the wait in progress (a sleep or a send by
    cancelling its scope, a body read by shutting the socket down), and the
    reader, seeing ``interrupted``, ends the stream itself.
    """

    __slots__ = ("_scope", "_socket", "interrupted", "reader")

    def __init__(self) -> None:
        self.reader: int | None = None
        self.interrupted = False
        self._scope: anyio.CancelScope | None = None
        self._socket: Any = None

    def enter(self) -> int:
        """The reader starts: the current task."""
        self.reader = _current()
        return self.reader

    def elsewhere(self) -> bool:
        """Whether another task than the current one is the reader."""
        return self.reader is not None and self.reader != _current()

    def interrupt(self) -> None:
        """End the reader's wait at once (called from another task)."""
        self.interrupted = True
        if self._scope is not None:
            self._scope.cancel()
        shutdown(self._socket)

    async def send(
        self, http: httpx.AsyncClient, op: Send, trace: ConnectionTrace
    ) -> httpx.Response:
        """Send the request and await the response head, within the op's clock.

        Raises ``TimeoutError`` when the clock runs out first (mal's
        transport ends the wait at its ``mal.head_timeout``; another one is
        cancelled), and ``httpx.ReadError`` when :meth:`interrupt` ended the
        wait (what a sync send sees when its socket is shut down)."""
        with anyio.CancelScope() as scope:
            if op.clock is not None:
                scope.deadline = anyio.current_time() + op.clock.timeout
            self._scope = scope
            if self.interrupted:
                scope.cancel()
            try:
                return await http.send(
                    build_request(http, op, trace.atrace),
                    stream=True,
                    # Never follow: a redirect to another host would carry the API key.
                    follow_redirects=False,
                )
            except HeadTimeout as exc:
                raise TimeoutError from exc
            finally:
                self._scope = None
        if self.interrupted:
            raise httpx.ReadError("the stream was closed while waiting for the response")
        raise TimeoutError

    def learn(self, network: Any) -> None:
        """The trace named the request's network stream: nothing to note, a
        send waiting for its head is cancelled through its scope."""

    def attach(self, response: httpx.Response) -> None:
        """Note the socket a close from another task shuts down to wake a read."""
        network = response.extensions.get("network_stream")
        self._socket = network.get_extra_info("socket") if network is not None else None

    def detach(self) -> None:
        """The response is let go: nothing may touch its socket after this."""
        self._socket = None

    async def sleep(self, seconds: float) -> None:
        """Sleep (a back-off), or less when :meth:`interrupt` is called."""
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self.interrupted:
                scope.cancel()
            try:
                await anyio.sleep(seconds)
            finally:
                self._scope = None


def body_reader(response: httpx.Response, timeout: float | None) -> Any:
    """The body's reader, ``read(timeout) -> bytes`` with a deadline on that
    read: mal's transport's own, or httpx's stream in the same shape (another
    transport: a user's ``http_client``, a proxy, aiohttp; or a compressed
    body, which httpx decodes). ``timeout``: the request's read timeout."""
    if response.headers.get("content-encoding", "identity") != "identity":
        return AsyncIterBody(response.aiter_bytes(), timeout)
    body = response.extensions.get("mal.body")
    if body is None:
        return AsyncIterBody(response.aiter_raw(), timeout)
    return body


async def settle(awaitable: Any) -> None:
    """Await what an async ``progress_callback`` returned."""
    await awaitable


async def release(response: httpx.Response) -> None:
    """Close a response; shielded: a cancelled task must still close what it opened."""
    with anyio.CancelScope(shield=True):
        await response.aclose()


def abandon(response: httpx.Response) -> None:
    """Close what closes without awaiting (a stream dropped unclosed): shutting
    the socket down tells the server at once (it stops the model); the pool
    drops the dead connection when it next looks."""
    network = response.extensions.get("network_stream")
    if network is not None:
        shutdown(network.get_extra_info("socket"))


async def ask(op: Shared) -> Any:
    """Carry out a command of a store of rate limits; shielded: a cancelled
    task must still give back its turn (a store never blocks for long)."""
    with anyio.CancelScope(shield=True):
        return await op.store.aexecute(op.command)


async def run_tools(runs: list[ToolRun]) -> list[Outcome]:
    """Call the tool functions of one step concurrently: coroutine functions
    on the event loop, sync ones in worker threads. What a tool raised is its
    outcome, not an error here; the outcomes keep the order of the runs."""
    outcomes: list[Outcome] = [(None, None)] * len(runs)

    async def run_one(i: int, run: ToolRun) -> None:
        function = run.tool.function
        assert function is not None
        try:
            if run.tool.is_async:
                value = await function(*run.args, **run.kwargs)
            else:
                value = await anyio.to_thread.run_sync(
                    functools.partial(function, *run.args, **run.kwargs)
                )
                if inspect.isawaitable(value):  # a sync callable that returned a coroutine
                    value = await value
            outcomes[i] = (value, None)
        except Exception as exc:
            outcomes[i] = (None, exc)

    if len(runs) == 1:
        await run_one(0, runs[0])
        return outcomes
    async with anyio.create_task_group() as group:
        for i, run in enumerate(runs):
            group.start_soon(run_one, i, run)
    return outcomes


def make_http(transport: str, timeout: httpx.Timeout) -> httpx.AsyncClient:
    """The client's own HTTP client for ``transport``."""
    if transport == "httpx":
        return httpx.AsyncClient(
            headers={"user-agent": USER_AGENT},
            timeout=timeout,
            limits=make_limits(),
            # mal's own transport; httpx's where the environment names a
            # proxy (trust_env), which a transport passed here would bypass.
            transport=None if env_proxies() else AsyncHTTP11Transport(limits=make_limits()),
        )
    if transport == "aiohttp":
        try:
            from httpx_aiohttp import HttpxAiohttpClient
        except ImportError:
            raise ConfigError(
                "transport='aiohttp' needs httpx-aiohttp: pip install 'mal-llm[aiohttp]'"
            ) from None
        return HttpxAiohttpClient(
            headers={"user-agent": USER_AGENT}, timeout=timeout, limits=make_limits()
        )
    raise ConfigError(f"transport must be 'httpx' or 'aiohttp', not {transport!r}")


def check_loop(transport: str) -> None:
    """Refuse a call that the transport cannot make in the running event loop."""
    if transport == "aiohttp":
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigError(
                "transport='aiohttp' runs on asyncio only; use the default transport under trio"
            ) from None
