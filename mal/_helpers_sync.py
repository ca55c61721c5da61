"""What the sync driver does its own way: the names of
:mod:`mal._helpers_async`, for threads.

A blocked sync read cannot be cancelled: a ``close()`` from another thread
wakes it by shutting its socket down (the socket the request's trace named,
or its response's ``network_stream``). The clocks need no thread: mal's
transport (:mod:`mal._http11_sync`) gives each read, and the wait for the
head, a deadline of its own. A step's tools run one after another, in the
reading thread.
"""

from __future__ import annotations

import inspect
import socket
import threading
import time
from typing import Any, Literal

import httpx

from ._complete import Outcome, ToolRun
from ._http11 import HeadTimeout
from ._http11_sync import HTTP11Transport
from ._ops import Send, Shared
from ._transport import (
    USER_AGENT,
    ConnectionTrace,
    IterBody,
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
RUNS_ASYNC_TOOLS = False

#: What moves the bytes: httpx's own HTTP client.
Transport = Literal["httpx"]


class Waiter:
    """The blocking waits of one stream, and who is in them.

    ``reader`` is the thread running the stream's lifecycle, ``None`` while
    the caller holds a chunk. A close from another thread than the reader
    cannot close the generator or the response under the reader's feet: it
    calls :meth:`interrupt`, which ends the wait in progress (a sleep by
    setting an event, a send or a body read by shutting the socket down), and
    the reader, seeing ``interrupted``, ends the stream itself.
    """

    __slots__ = ("_lock", "_socket", "_wake", "interrupted", "reader")

    def __init__(self) -> None:
        self.reader: int | None = None
        self.interrupted = False
        # The socket of the request in progress, for interrupt().
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        # Set by interrupt(), to cut a back-off sleep short.
        self._wake = threading.Event()

    def enter(self) -> int:
        """The reader starts: the current thread."""
        self.reader = threading.get_ident()
        return self.reader

    def elsewhere(self) -> bool:
        """Whether another thread than the current one is the reader."""
        return self.reader is not None and self.reader != threading.get_ident()

    def interrupt(self) -> None:
        """End the reader's wait at once (called from another thread)."""
        with self._lock:
            self.interrupted = True
            sock = self._socket
        self._wake.set()
        shutdown(sock)

    def send(self, http: httpx.Client, op: Send, trace: ConnectionTrace) -> httpx.Response:
        """Send the request and wait for the response head, within the op's clock.

        Raises ``TimeoutError`` when the clock runs out first: mal's transport
        ends the wait at its ``mal.head_timeout``; another transport, whose
        blocked wait cannot be given a deadline, is checked when the head comes."""
        sent = time.monotonic()
        try:
            response = http.send(
                build_request(http, op, trace.trace),
                stream=True,
                # Never follow: a redirect to another host would carry the API key.
                follow_redirects=False,
            )
        except HeadTimeout as exc:
            raise TimeoutError from exc
        if op.clock is not None and time.monotonic() - sent > op.clock.timeout:
            response.close()
            raise TimeoutError
        return response

    def learn(self, network: Any) -> None:
        """The trace named the request's network stream: its socket is the one
        :meth:`interrupt` shuts down, at once if it came first."""
        sock = network.get_extra_info("socket")
        with self._lock:
            self._socket = sock
            interrupted = self.interrupted
        if interrupted:
            shutdown(sock)

    def attach(self, response: httpx.Response) -> None:
        """Note the socket a close from another thread shuts down to wake a read."""
        network = response.extensions.get("network_stream")
        if network is not None:
            self.learn(network)

    def detach(self) -> None:
        """The response is let go: nothing may touch its socket after this."""
        with self._lock:
            self._socket = None

    def sleep(self, seconds: float) -> None:
        """Sleep (a back-off), or less when :meth:`interrupt` is called."""
        self._wake.wait(seconds)


def body_reader(response: httpx.Response, timeout: float | None) -> Any:
    """The body's reader, ``read(timeout) -> bytes`` with a deadline on that
    read: mal's transport's own, or httpx's stream in the same shape (another
    transport: a user's ``http_client``, a proxy; or a compressed body, which
    httpx decodes), whose blocked read the configured read timeout bounds
    and a clock is checked when it returns. ``timeout``: the read timeout."""
    if response.headers.get("content-encoding", "identity") != "identity":
        return IterBody(response.iter_bytes(), timeout)
    body = response.extensions.get("mal.body")
    if body is None:
        return IterBody(response.iter_raw(), timeout)
    return body


def settle(awaitable: Any) -> None:
    """Never called: a sync client refuses an async ``progress_callback``
    before anything is sent, so no ``Await`` op reaches its driver."""
    raise TypeError(f"a sync client cannot await {awaitable!r}; use mal.AsyncClient")


def release(response: httpx.Response) -> None:
    """Close a response."""
    response.close()


def abandon(response: httpx.Response) -> None:
    """Close a response dropped unclosed (no thread is reading it any more)."""
    response.close()


def ask(op: Shared) -> Any:
    """Carry out a command of a store of rate limits."""
    return op.store.execute(op.command)


def run_tools(runs: list[ToolRun]) -> list[Outcome]:
    """Call the tool functions of one step one after another. What a tool
    raised is its outcome, not an error here."""
    return [_run_tool(run) for run in runs]


def _run_tool(run: ToolRun) -> Outcome:
    function = run.tool.function
    assert function is not None
    try:
        value = function(*run.args, **run.kwargs)
    except Exception as exc:
        return None, exc
    if inspect.isawaitable(value):
        if inspect.iscoroutine(value):
            value.close()
        return None, TypeError(
            f"tool {run.tool.name!r} returned an awaitable; run it with mal.AsyncClient"
        )
    return value, None


def make_http(transport: str, timeout: httpx.Timeout) -> httpx.Client:
    """The client's own HTTP client for ``transport``."""
    if transport == "httpx":
        return httpx.Client(
            headers={"user-agent": USER_AGENT},
            timeout=timeout,
            limits=make_limits(),
            # mal's own transport; httpx's where the environment names a
            # proxy (trust_env), which a transport passed here would bypass.
            transport=None if env_proxies() else HTTP11Transport(limits=make_limits()),
        )
    if transport == "aiohttp":
        raise ConfigError("transport='aiohttp' is for mal.AsyncClient; a sync client uses httpx")
    raise ConfigError(f"transport must be 'httpx', not {transport!r}")


def check_loop(transport: str) -> None:
    """Nothing to check: a sync client's transport works in any thread."""
