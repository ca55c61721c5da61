"""What mal's HTTP/1.1 transports share: the pool's bookkeeping, TLS, errors.

:mod:`mal._http11_async` is the transport (``AsyncHTTP11Transport``, behind
``httpx.AsyncBaseTransport``) and :mod:`mal._http11_sync` is the same code
with ``await`` taken out (``HTTP11Transport``, behind ``httpx.BaseTransport``).
They speak HTTP/1.1 with h11 (sans-I/O, like mal's own core) over httpcore's
public network backends. This module holds what does no I/O: the pool of
connections as state (:class:`Pool`: which connection to reuse, which to
close, who waits), a response body's framing (:class:`BodyReader`), the SSL
context, the mapping of errors to httpx's public exception classes, and the
two ways of waiting for the pool (:class:`AsyncSignal` and :class:`Signal`).
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
    "CHUNKED",
    "DISCONNECTED",
    "LENGTH",
    "NO_BODY",
    "READ_SIZE",
    "UNTIL_CLOSE",
    "AsyncSignal",
    "BodyError",
    "BodyReader",
    "Connection",
    "HeadTimeout",
    "Pool",
    "Signal",
    "body_framing",
    "bound",
    "client_ssl_context",
    "keeps_alive",
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


def raise_step(exc: Exception, request: httpx.Request, binding: bool) -> NoReturn:
    """Raise httpx's exception for a failed step of a request (:func:`raise_httpx`),
    or :class:`HeadTimeout` when the step timed out on the head's deadline
    (``binding``, from :func:`bound`)."""
    if binding and isinstance(exc, httpcore.TimeoutException):
        raise HeadTimeout("the response head did not come in time", request=request) from exc
    raise_httpx(exc, request)


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

    __slots__ = ("broken", "expires", "h11", "key", "stream")

    def __init__(self, key: Key, stream: S) -> None:
        self.key = key
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        #: When an idle connection may no longer be reused (monotonic).
        self.expires: float | None = None
        #: A write failed: whatever the server answers, no next request.
        self.broken = False

    def next_cycle(self) -> None:
        """Ready for the next request. h11 read this response's head only
        (its body was read by :class:`BodyReader`): a new h11 state machine."""
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)


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


class BodyError(Exception):
    """The response body broke HTTP/1.1's framing (or ended too soon)."""


#: How a response body ends (RFC 9112 section 6.3).
NO_BODY, CHUNKED, LENGTH, UNTIL_CLOSE = range(4)

#: The longest chunk-size line or trailer line kept while waiting for its end.
MAX_LINE = 64 * 1024

_HEX = frozenset(b"0123456789abcdefABCDEF")


def body_framing(method: str, event: h11.Response) -> tuple[int, int]:
    """How the body of the response ``event`` to a ``method`` request ends,
    and its length for LENGTH (RFC 9112 section 6.3): no body after HEAD, a
    1xx, 204 or 304; chunked when a Transfer-Encoding came (h11 refused any
    other coding with the head); Content-Length (h11 checked it); else at
    the close."""
    status = event.status_code
    if method == "HEAD" or status in (204, 304) or status < 200:
        return NO_BODY, 0
    length = None
    for name, value in event.headers:
        if name == b"transfer-encoding":
            return CHUNKED, 0
        if name == b"content-length":
            length = int(value)
    if length is not None:
        return LENGTH, length
    return UNTIL_CLOSE, 0


def keeps_alive(event: h11.Response) -> bool:
    """Whether the server lets the connection carry another request: HTTP/1.1
    without a ``close`` connection option (RFC 9112 section 9.3)."""
    if event.http_version != b"1.1":
        return False
    for name, value in event.headers:
        if name == b"connection" and b"close" in {
            token.strip() for token in value.lower().split(b",")
        }:
            return False
    return True


class BodyReader:
    """A response body's framing, sans I/O: :meth:`feed` it the bytes the
    connection gives (``b""`` when it closes), take the pieces with
    :meth:`next`. Each piece is what the buffer holds of one HTTP chunk (of
    the body, for other framings), as h11's ``Data`` events are; what h11
    does per piece in a dozen calls, this does in a few string operations,
    which is most of a token's cost in a stream.

    Chunked coding: RFC 9112 section 7.1 (chunk extensions are ignored,
    section 7.1.1; trailer fields are read and dropped, section 7.1.2)."""

    __slots__ = ("_buf", "_eof", "_left", "_mode", "_pos", "done")

    # _left, in CHUNKED mode: > 0: bytes of the chunk still to come; -1: a
    # chunk-size line is next; -2: the CRLF after a chunk's data; -3: the
    # trailer section.

    def __init__(self, mode: int, length: int, data: bytes) -> None:
        self._mode = mode
        self._buf = data
        self._pos = 0
        self._eof = False
        self._left = length if mode == LENGTH else -1
        self.done = mode == NO_BODY or (mode == LENGTH and length == 0)

    def feed(self, data: bytes) -> None:
        """Bytes from the connection; ``b""``: it closed."""
        if not data:
            self._eof = True
        elif self._pos < len(self._buf):
            self._buf = self._buf[self._pos :] + data
            self._pos = 0
        else:
            self._buf = data
            self._pos = 0

    @property
    def clean(self) -> bool:
        """Whether the body ended with nothing after it, the connection open."""
        return self.done and not self._eof and self._pos >= len(self._buf)

    def next(self) -> bytes | None:
        """The next piece; ``b""`` at the end of the body (then ``done``);
        None when more bytes are needed. Raises :class:`BodyError`."""
        if self.done:
            return b""
        mode = self._mode
        buf = self._buf
        pos = self._pos
        if mode == CHUNKED:
            while True:
                left = self._left
                if left > 0:
                    end = pos + left
                    if end <= len(buf):
                        self._pos = end
                        self._left = -2
                        return buf[pos:end]
                    if pos < len(buf):
                        self._left = end - len(buf)
                        self._pos = len(buf)
                        return buf[pos:]
                    break
                if left == -2:
                    if len(buf) - pos < 2:
                        break
                    if buf[pos : pos + 2] != b"\r\n":
                        raise BodyError("a chunk's data is not followed by CRLF")
                    pos += 2
                    self._left = -1
                    continue
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    if len(buf) - pos > MAX_LINE:
                        raise BodyError("a chunk-size or trailer line is too long")
                    break
                line = buf[pos:end]
                pos = end + 2
                if left == -1:
                    size = line.split(b";", 1)[0].rstrip(b" \t")
                    if not size or len(size) > 16 or not _HEX.issuperset(size):
                        raise BodyError(f"not a chunk size: {line[:40]!r}")
                    self._left = int(size, 16) or -3
                elif not line:  # the blank line that ends the trailer section
                    self._pos = pos
                    self.done = True
                    return b""
            self._pos = pos
            if self._eof:
                raise BodyError(
                    "the connection closed before the end of the body (incomplete chunked read)"
                )
            return None
        if pos < len(buf):
            if mode == LENGTH:
                end = min(pos + self._left, len(buf))
                self._left -= end - pos
                self._pos = end
                self.done = self._left == 0
                return buf[pos:end] if pos or end < len(buf) else buf
            self._pos = len(buf)
            return buf[pos:] if pos else buf
        if self._eof:
            if mode == UNTIL_CLOSE:
                self.done = True
                return b""
            raise BodyError(f"the connection closed {self._left} bytes before the end of the body")
        return None
