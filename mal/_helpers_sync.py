"""What the sync driver does its own way: the names of
:mod:`mal._helpers_async`, for threads.

A blocked sync read cannot be cancelled: the clocks and a ``close()`` from
another thread wake it by shutting its socket down (the watchdog thread of
:mod:`mal._watchdog` does it at a clock's deadline). A step's tools run one
after another, in the reading thread.
"""

from __future__ import annotations

import inspect
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

import httpx

from . import _watchdog
from ._complete import Outcome, ToolRun
from ._ops import Send
from ._transport import (
    USER_AGENT,
    ConnectionTrace,
    clock_ran_out,
    make_limits,
    make_sync_transport,
    make_timeout,
    restore_read_timeout,
    shutdown,
    take_written_socket,
)
from .errors import ConfigError

__all__ = [
    "RUNS_ASYNC_TOOLS",
    "Transport",
    "Waiter",
    "abandon",
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

    __slots__ = (
        "_deadline",
        "_expired",
        "_lock",
        "_socket",
        "_wake",
        "_watch_at",
        "interrupted",
        "reader",
    )

    def __init__(self) -> None:
        self.reader: int | None = None
        self.interrupted = False
        # The clock of the read in progress, watched by the watchdog thread.
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._deadline: float | None = None
        self._watch_at: float | None = None
        self._expired = False
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
            if sock is None and self.reader is not None:
                sock = take_written_socket(self.reader)  # waiting for the head
        self._wake.set()
        shutdown(sock)

    def send(self, http: httpx.Client, op: Send, trace: ConnectionTrace) -> httpx.Response:
        """Send the request and wait for the response head, within the op's clock.

        A blocked send cannot be cancelled: its httpx timeouts are shortened
        to what the clock leaves, and ``TimeoutError`` (from httpx's) is raised
        when it is the clock that ran out."""
        request = op.request
        try:
            response = http.send(
                http.build_request(
                    request.method,
                    request.url,
                    headers=request.headers,
                    content=request.body,
                    timeout=make_timeout(op.head_timeouts()),
                    extensions={"trace": trace.trace},
                ),
                stream=True,
                # Never follow: a redirect to another host would carry the API key.
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            if op.clock is not None and clock_ran_out(exc, op.timeouts, op.clock.timeout):
                raise TimeoutError from exc
            raise
        finally:
            take_written_socket()
        if op.clock is not None:
            restore_read_timeout(response, op.timeouts[1])
        return response

    def attach(self, response: httpx.Response) -> None:
        """Note the socket that the clocks and a close from another thread
        shut down to wake a read."""
        network = response.extensions.get("network_stream")
        with self._lock:
            self._socket = network.get_extra_info("socket") if network is not None else None
            self._expired = False

    def detach(self) -> None:
        """The response is let go: no clock may touch its socket after this."""
        with self._lock:
            self._deadline = None
            self._socket = None

    def read_within(self, body: Iterator[bytes], timeout: float) -> bytes:
        """The next piece of the body, ``b""`` at its end; ``TimeoutError``
        when none came within ``timeout`` seconds (the watchdog then shut the
        socket down, which ended the read)."""
        self._arm(timeout)
        try:
            data = next(body, b"")
        except Exception:
            if self._expired:
                raise TimeoutError from None
            raise
        finally:
            self._deadline = None
        if self._expired:
            raise TimeoutError
        return data

    def _arm(self, timeout: float) -> None:
        """Give the read about to start a deadline, watched by the watchdog."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._deadline = deadline
            if self._watch_at is None or deadline < self._watch_at:
                self._watch_at = deadline
                _watchdog.watch(self, deadline)

    def _check_deadline(self, now: float) -> float | None:
        """The watchdog's call (on its thread): past the deadline, wake the read."""
        with self._lock:
            deadline = self._deadline
            if deadline is not None and deadline > now:
                self._watch_at = deadline
                return deadline
            self._watch_at = None
            if deadline is None:
                return None
            self._deadline = None
            self._expired = True
            sock = self._socket
        shutdown(sock)
        return None

    def sleep(self, seconds: float) -> None:
        """Sleep (a back-off), or less when :meth:`interrupt` is called."""
        self._wake.wait(seconds)


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
            transport=make_sync_transport(make_limits()),
        )
    if transport == "aiohttp":
        raise ConfigError("transport='aiohttp' is for mal.AsyncClient; a sync client uses httpx")
    raise ConfigError(f"transport must be 'httpx', not {transport!r}")


def check_loop(transport: str) -> None:
    """Nothing to check: a sync client's transport works in any thread."""
