"""What mal's HTTP/1.1 transports share: the pool's bookkeeping, TLS, errors.

:mod:`mal._http11_async` is the transport (``AsyncHTTP11Transport``, behind
``httpx.AsyncBaseTransport``) and :mod:`mal._http11_sync` is the same code
with ``await`` taken out (``HTTP11Transport``, behind ``httpx.BaseTransport``).
They speak HTTP/1.1 with h11 (sans-I/O, like mal's own core) over httpcore's
public network backends. This module holds what does no I/O: the pool of
connections as state (:class:`Pool`: which connection to reuse, which to
close, who waits), the SSL context, the mapping of errors to httpx's public
exception classes, and the two ways of waiting for the pool
(:class:`AsyncSignal` and :class:`Signal`).
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from typing import Any, Generic, NoReturn, TypeVar

import anyio
import h11
import httpcore
import httpx

__all__ = [
    "DISCONNECTED",
    "READ_SIZE",
    "AsyncSignal",
    "Connection",
    "HeadTimeout",
    "Pool",
    "Signal",
    "bound",
    "client_ssl_context",
    "raise_httpx",
    "raise_protocol",
]

#: What one read asks the socket for (httpcore reads the same 64 KiB).
READ_SIZE = 64 * 1024

#: The largest head h11 buffers before it gives up (as httpcore sets it).
MAX_HEAD = 100 * 1024

#: httpcore's message when a connection ends before the status line; mal's
#: lifecycle (``unanswered()``) tells a stale kept-alive connection by it.
DISCONNECTED = "Server disconnected without sending a response."


class HeadTimeout(httpx.TimeoutException):
    """The ``mal.head_timeout`` request extension ran out before the response
    head came: a clock of the caller's (first token, total), not httpx's
    connect, write, pool or read timeout."""


_HTTPX_ERRORS: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
}


def raise_httpx(exc: Exception, request: httpx.Request) -> NoReturn:
    """Raise httpx's public exception for one of httpcore's network backends
    (the same class names, as httpx's own transport maps them), with the
    request attached and httpcore's exception as the cause."""
    cls = _HTTPX_ERRORS.get(type(exc), httpx.TransportError)
    raise cls(str(exc) or type(exc).__name__, request=request) from exc


def raise_protocol(exc: h11.ProtocolError, request: httpx.Request) -> NoReturn:
    """httpx's exception for h11's: the server broke HTTP/1.1 (remote), or the
    request could not be written as HTTP/1.1 (local)."""
    if isinstance(exc, h11.RemoteProtocolError):
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    raise httpx.LocalProtocolError(str(exc), request=request) from exc


def bound(timeout: float | None, deadline: float | None) -> tuple[float | None, bool]:
    """The timeout of one step: ``timeout``, or what is left until ``deadline``
    (``time.monotonic()``) if that is shorter; and whether the deadline is the
    shorter one (a timeout then is the deadline's, :class:`HeadTimeout`)."""
    if deadline is None:
        return timeout, False
    left = max(deadline - time.monotonic(), 0.0)
    if timeout is None or left < timeout:
        return left, True
    return timeout, False


def client_ssl_context(trust_env: bool) -> ssl.SSLContext:
    """The trust httpx would use: ``httpx.create_ssl_context`` (public in
    httpx 0.28 and 0.29): certifi's CA bundle, or with ``trust_env``
    ``SSL_CERT_FILE`` or ``SSL_CERT_DIR``; hostname checks on. ALPN offers
    HTTP/1.1 only (RFC 7301), as httpcore does without HTTP/2."""
    context = httpx.create_ssl_context(trust_env=trust_env)
    context.set_alpn_protocols(["http/1.1"])
    return context


S = TypeVar("S")
Key = tuple[str, str, int]


class Connection(Generic[S]):
    """One HTTP/1.1 connection: its network stream and its h11 state."""

    __slots__ = ("expires", "h11", "key", "stream")

    def __init__(self, key: Key, stream: S) -> None:
        self.key = key
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        #: When an idle connection may no longer be reused (monotonic).
        self.expires: float | None = None


class AsyncSignal:
    """A wake-up for a task waiting for the pool (asyncio or trio)."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float | None) -> bool:
        """Whether it was set within ``timeout`` seconds."""
        with anyio.move_on_after(timeout):
            await self._event.wait()
        return self._event.is_set()


class Signal:
    """A wake-up for a thread waiting for the pool."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout: float | None) -> bool:
        """Whether it was set within ``timeout`` seconds."""
        return self._event.wait(timeout)


class Pool(Generic[S]):
    """The connections of one transport, per (scheme, host, port), within
    ``httpx.Limits``: ``max_connections`` open at once (idle, busy or being
    opened), ``max_keepalive_connections`` idle ones kept, each for
    ``keepalive_expiry`` seconds. No I/O: each method says which connections
    the caller must close. A lock guards the state (threads in sync code; in
    async code it is never contended, and nothing awaits while it is held).
    """

    def __init__(self, limits: httpx.Limits) -> None:
        self.max_connections = limits.max_connections
        self.max_keepalive = limits.max_keepalive_connections
        self.expiry = limits.keepalive_expiry
        self._lock = threading.Lock()
        # Idle connections, the most recently used last, per key.
        self._idle: dict[Key, list[Connection[S]]] = {}
        self._idle_count = 0
        #: Open or being opened.
        self._open = 0
        self._waiters: list[Any] = []
        #: Counts the times a place may have come free, for :meth:`wait`.
        self._generation = 0
        self.closed = False

    def checkout(self, key: Key) -> tuple[Connection[S] | None, bool, list[Connection[S]], int]:
        """A connection for a request to ``key``: ``(connection, False, ...)``
        to reuse one; ``(None, True, ...)``: open a new one (its place is
        taken: call :meth:`discard` if opening fails); ``(None, False, ...)``:
        none is free, :meth:`wait` with the last item. The list: connections
        to close (expired, closed by the server, or idle ones of another key
        making room)."""
        closing: list[Connection[S]] = []
        now = time.monotonic()
        with self._lock:
            generation = self._generation
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                self._idle_count -= 1
                # An idle connection that became readable was closed by the
                # server, or got bytes no request asked for: either way it
                # cannot carry a request (RFC 9112 section 9.3).
                if (conn.expires is not None and conn.expires <= now) or conn.stream.get_extra_info(  # type: ignore[attr-defined]
                    "is_readable"
                ):
                    self._open -= 1
                    closing.append(conn)
                    continue
                conn.expires = None
                return conn, False, closing, generation
            if self.max_connections is None or self._open < self.max_connections:
                self._open += 1
                return None, True, closing, generation
            # Make room: close the longest idle connection of another key.
            oldest: Connection[S] | None = None
            for conns in self._idle.values():
                if conns and (oldest is None or _expiry(conns[0]) < _expiry(oldest)):
                    oldest = conns[0]
            if oldest is not None:
                self._idle[oldest.key].remove(oldest)
                self._idle_count -= 1
                closing.append(oldest)
                return None, True, closing, generation  # its place goes to the new one
            return None, False, closing, generation

    def wait(self, waiter: Any, generation: int) -> None:
        """Have ``waiter.set()`` called when a place may have come free: at
        once if one may have since the :meth:`checkout` that said to wait."""
        with self._lock:
            if generation == self._generation:
                self._waiters.append(waiter)
                return
        waiter.set()

    def forget(self, waiter: Any) -> None:
        """A waiter that gave up."""
        with self._lock, contextlib.suppress(ValueError):
            self._waiters.remove(waiter)

    def checkin(self, conn: Connection[S]) -> list[Connection[S]]:
        """A connection whose response ended and whose h11 state started its
        next cycle: kept idle, or to be closed."""
        with self._lock:
            if self.closed or (
                self.max_keepalive is not None and self._idle_count >= self.max_keepalive
            ):
                self._open -= 1
                closing = [conn]
            else:
                if self.expiry is not None:
                    conn.expires = time.monotonic() + self.expiry
                self._idle.setdefault(conn.key, []).append(conn)
                self._idle_count += 1
                closing = []
            self._wake()
        return closing

    def discard(self, conn: Connection[S] | None = None) -> None:
        """A connection closed (or never opened) frees its place."""
        with self._lock:
            self._open -= 1
            self._wake()

    def close(self) -> list[Connection[S]]:
        """Close the pool: the idle connections to close; busy ones are closed
        when their responses end."""
        with self._lock:
            self.closed = True
            closing = [conn for conns in self._idle.values() for conn in conns]
            self._idle.clear()
            self._open -= len(closing)
            self._idle_count = 0
            self._wake()
        return closing

    def _wake(self) -> None:
        self._generation += 1
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.set()


def _expiry(conn: Connection[Any]) -> float:
    return conn.expires if conn.expires is not None else float("inf")
