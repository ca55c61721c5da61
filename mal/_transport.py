"""What the sync and async drivers share about httpx: timeouts, connection
limits, the mapping of httpx's exceptions to mal's at this one boundary, and
the sync transport that lets another thread wake a request blocked on its
response head."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import h11
import httpcore
import httpx

from .errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigError,
    DecodeError,
    IncompleteStreamError,
    MALError,
)

__all__ = [
    "TRANSPORT_ERRORS",
    "USER_AGENT",
    "ConnectionTrace",
    "as_httpx_error",
    "async_body",
    "make_limits",
    "make_sync_transport",
    "make_timeout",
    "clock_ran_out",
    "map_error",
    "restore_read_timeout",
    "shutdown",
    "sync_body",
    "take_written_socket",
    "unanswered",
]

from . import __version__

USER_AGENT = f"mal/{__version__}"

_TIMEOUT_PHASES: dict[type[Exception], str] = {
    httpx.ConnectTimeout: "connect",
    httpx.ReadTimeout: "read",
    httpx.WriteTimeout: "write",
    httpx.PoolTimeout: "pool",
}

#: What reading a body may raise: httpx's errors, and httpcore's where the
#: body is read from its connection (:func:`sync_body`).
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    httpx.HTTPError,
    httpcore.ProtocolError,
    httpcore.TimeoutException,
    httpcore.NetworkError,
)


def make_timeout(timeouts: tuple[float | None, ...]) -> httpx.Timeout:
    connect, read, write, pool = timeouts
    return httpx.Timeout(connect=connect, read=read, write=write, pool=pool)


def make_limits() -> httpx.Limits:
    # Streams are long-lived: many may be open at once, and each holds its
    # connection for the whole generation.
    return httpx.Limits(max_connections=1000, max_keepalive_connections=100)


#: httpcore's message when a connection ends before the status line
#: (``HTTP11Connection._receive_event``), which :func:`_h11_body` raises too.
_DISCONNECTED = "Server disconnected without sending a response."


def map_error(exc: Exception, url: str, *, in_body: bool) -> MALError:
    """The mal error for an httpx exception, with the exception as ``__cause__``.

    ``in_body``: whether the response body had begun; a transport failure
    there means the body was cut short.
    """
    error: MALError
    if not isinstance(exc, httpx.HTTPError):
        exc = as_httpx_error(exc)
    phase = _TIMEOUT_PHASES.get(type(exc))
    if phase is not None:
        where = "reading the response body" if in_body else "waiting"
        error = APITimeoutError(f"{phase} timeout from {url} while {where}", phase=phase)
    elif isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        error = ConfigError(f"cannot send a request to {url!r}: {exc}")
    elif isinstance(exc, httpx.DecodingError):
        error = DecodeError(f"cannot decode the response body from {url}: {exc}")
    elif in_body:
        error = IncompleteStreamError(
            f"the connection to {url} broke before the response ended: {exc or type(exc).__name__}"
        )
    elif isinstance(exc, httpx.ConnectError):
        error = APIConnectionError(f"cannot connect to {url}: {exc or type(exc).__name__}")
    else:
        error = APIConnectionError(f"the request to {url} failed: {exc or type(exc).__name__}")
    error.__cause__ = exc
    return error


class ConnectionTrace:
    """Whether a request went out on a connection reused from the pool.

    It is httpcore's ``trace`` request extension (documented by httpx and
    httpcore alike, on their "Extensions" pages), whose callback hears each
    step of a request: on a new connection the connect comes first
    (``connection.connect_tcp.started``, ``connection.connect_unix_socket...``,
    ``socks.connect_tcp...`` through a SOCKS proxy); a reused one starts with
    sending the request. A transport that does not trace (another one than
    httpx's own) calls nothing, and ``reused`` stays False: unknown.
    Pass ``trace`` to a sync client, ``atrace`` to an async one.
    """

    __slots__ = ("connected", "traced")

    def __init__(self) -> None:
        self.traced = False
        self.connected = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        self.traced = True
        if ".connect_" in event:
            self.connected = True

    async def atrace(self, event: str, info: dict[str, Any]) -> None:
        self.trace(event, info)

    @property
    def reused(self) -> bool:
        return self.traced and not self.connected


def unanswered(exc: Exception) -> bool:
    """Whether a send failed because the server closed or reset the connection
    before any byte of a response came: httpcore's "Server disconnected without
    sending a response." (the stream ended while h11 still waited for the
    status line), or a read or write error (a reset) before the head. Not a
    timeout: a server that is slow to answer may be at work on the request."""
    if isinstance(exc, httpx.RemoteProtocolError):
        # Any other protocol error is about bytes that did come.
        return str(exc) == _DISCONNECTED
    return isinstance(exc, (httpx.ReadError, httpx.WriteError))


def as_httpx_error(exc: Exception) -> httpx.HTTPError:
    """httpx's exception for one of httpcore's, as httpx itself maps them
    (the same class names), with httpcore's as its ``__cause__``."""
    cls = getattr(httpx, type(exc).__name__, None)
    if not (isinstance(cls, type) and issubclass(cls, httpx.TransportError)):
        cls = httpx.TransportError
    mapped = cls(str(exc))
    mapped.__cause__ = exc
    return mapped


# The socket each thread last wrote a request to, while it waits for the
# response head: the only moment a sync request's socket is not otherwise in
# reach (httpx hands it over with the response). Keyed by thread ident.
_written: dict[int, socket.socket] = {}


def take_written_socket(thread: int | None = None) -> socket.socket | None:
    """The socket a thread (the current one by default) is waiting on for a
    response head; with no argument, the entry is also forgotten."""
    if thread is None:
        return _written.pop(threading.get_ident(), None)
    return _written.get(thread)


def _watch_writes(stream: Any) -> Any:
    sock = stream.get_extra_info("socket")
    write = stream.write
    start_tls = stream.start_tls

    def watched_write(buffer: bytes, timeout: float | None = None) -> None:
        _written[threading.get_ident()] = sock
        write(buffer, timeout)

    def watched_start_tls(*args: Any, **kwargs: Any) -> Any:
        return _watch_writes(start_tls(*args, **kwargs))

    stream.write = watched_write
    stream.start_tls = watched_start_tls
    return stream


class _WatchingBackend(httpcore.NetworkBackend):
    """httpcore's sync network backend, noting which socket each thread writes
    its request to. Reads are untouched: the hot path costs nothing more."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _watch_writes(self._inner.connect_tcp(*args, **kwargs))  # type: ignore[no-any-return]

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _watch_writes(self._inner.connect_unix_socket(*args, **kwargs))  # type: ignore[no-any-return]

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def make_sync_transport(limits: httpx.Limits) -> httpx.HTTPTransport:
    """httpx's transport, with a network backend that lets ``Stream.close()``
    from another thread wake a request still waiting for its response head.
    httpx does not expose the backend; where its internals differ, the
    transport is left as it is (close() then wakes body reads only)."""
    transport = httpx.HTTPTransport(limits=limits)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.NetworkBackend):
        pool._network_backend = _WatchingBackend(backend)  # type: ignore[union-attr]
    return transport


def shutdown(sock: Any) -> None:
    """Shut a socket down (a ``socket.socket``, or asyncio's ``TransportSocket``),
    waking a read blocked on it and telling the server at once."""
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already closed
        if isinstance(sock, ssl.SSLSocket):
            # socket.socket's own method: SSLSocket's override would drop the
            # TLS state under the reading thread's feet.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        else:
            sock.shutdown(socket.SHUT_RDWR)


def restore_read_timeout(response: httpx.Response, read_timeout: float | None) -> None:
    """Give the body's reads the configured read timeout.

    A sync driver awaits the head with its timeouts shortened to what the
    clocks leave; httpcore reads the read timeout from the request's
    extensions when the body starts, so setting it back here gives the body
    the configured one (the clocks see to the rest)."""
    timeouts = response.request.extensions.get("timeout")
    if isinstance(timeouts, dict):
        timeouts["read"] = read_timeout


_TIMEOUT_INDEX: dict[type[Exception], int] = {
    httpx.ConnectTimeout: 0,
    httpx.ReadTimeout: 1,
    httpx.WriteTimeout: 2,
    httpx.PoolTimeout: 3,
}


def clock_ran_out(exc: Exception, configured: tuple[float | None, ...], clock: float) -> bool:
    """Whether an httpx timeout during a send shortened to ``clock`` seconds
    was the clock's doing rather than the configured timeout's."""
    index = _TIMEOUT_INDEX.get(type(exc))
    if index is None:
        return False
    limit = configured[index]
    return limit is None or clock < limit


# The body of an HTTP/1.1 response reaches httpx.Response.stream through five
# generators, one inside the other: httpx's BoundSyncStream and ResponseStream
# (which maps httpcore's exceptions to httpx's), httpcore's PoolByteStream and
# HTTP11ConnectionByteStream (which close the response when a read fails, and
# trace), and HTTP11Connection._receive_response_body, which asks
# _receive_event for h11's events, entering a context manager for each one
# (to map h11's RemoteProtocolError). Every piece of a stream pays for all of
# it: about 1.3 µs a chunk in sync code, a sixth of what the bare httpx
# stream costs, for work that a stream of tokens does twenty thousand times.
#
# So where the stack is exactly httpx's default HTTP/1.1 one, a driver reads
# the body itself, with the connection's own h11 state machine and network
# stream, in the same steps as _receive_event and _receive_response_body:
# next_event(); on NEED_DATA, read READ_NUM_BYTES with the request's read
# timeout and feed them; yield each Data; stop at EndOfMessage. It maps
# h11's error to httpcore's as httpcore does, and httpcore's to httpx's at
# the driver (TRANSPORT_ERRORS, map_error), so an error's __cause__ is what
# httpx would raise. Closing the response, which the driver does as before,
# closes the wrappers and hands the connection back to the pool (or drops it
# when the body was cut short), as httpx would. The wrappers are httpx's and
# httpcore's private classes: anything else (HTTP/2, another transport,
# another version of either) keeps the whole stack, and so does httpcore's
# own DEBUG log, so that its trace lines still come.

try:  # pragma: no branch
    from httpcore._async.connection_pool import PoolByteStream as _AsyncPoolByteStream
    from httpcore._async.http11 import (
        HTTP11ConnectionByteStream as _AsyncHTTP11ByteStream,
    )
    from httpcore._sync.connection_pool import PoolByteStream as _PoolByteStream
    from httpcore._sync.http11 import HTTP11ConnectionByteStream as _HTTP11ByteStream
    from httpx._client import BoundAsyncStream as _BoundAsyncStream
    from httpx._client import BoundSyncStream as _BoundSyncStream
    from httpx._transports.default import AsyncResponseStream as _AsyncResponseStream
    from httpx._transports.default import ResponseStream as _ResponseStream
except ImportError:  # pragma: no cover - another httpx or httpcore
    _INNER = None
else:
    _INNER = (
        (_BoundSyncStream, _ResponseStream, _PoolByteStream, _HTTP11ByteStream),
        (_BoundAsyncStream, _AsyncResponseStream, _AsyncPoolByteStream, _AsyncHTTP11ByteStream),
    )

_httpcore_log = logging.getLogger("httpcore.http11")


def _innermost(stream: Any, classes: tuple[type, ...]) -> Any:
    """httpcore's HTTP/1.1 byte stream under ``stream``, or None."""
    bound, response, pool, http11 = classes
    if type(stream) is not bound or _httpcore_log.isEnabledFor(logging.DEBUG):
        return None
    inner = getattr(stream, "_stream", None)
    if type(inner) is not response:
        return None
    inner = getattr(inner, "_httpcore_stream", None)
    if type(inner) is not pool:
        return None
    inner = getattr(inner, "_stream", None)
    if type(inner) is not http11:
        return None
    return inner


def _h11_reader(stream: Any, classes: tuple[type, ...]) -> Any:
    """The HTTP/1.1 connection under ``stream`` and its request, or None."""
    inner = _innermost(stream, classes)
    if inner is None:
        return None
    connection = getattr(inner, "_connection", None)
    request = getattr(inner, "_request", None)
    if not all(
        hasattr(connection, name) for name in ("_h11_state", "_network_stream", "READ_NUM_BYTES")
    ) or not isinstance(getattr(request, "extensions", None), dict):
        return None
    return connection, request


def _read_timeout(request: Any) -> float | None:
    timeouts = request.extensions.get("timeout", {})
    return timeouts.get("read") if isinstance(timeouts, dict) else None


def _h11_body(connection: Any, request: Any) -> Iterator[bytes]:
    """The body's pieces, read as httpcore's ``_receive_response_body`` reads them."""
    state = connection._h11_state
    read = connection._network_stream.read
    size = connection.READ_NUM_BYTES
    timeout = _read_timeout(request)
    next_event = state.next_event
    while True:
        try:
            event = next_event()
        except h11.RemoteProtocolError as exc:
            raise httpcore.RemoteProtocolError(str(exc)) from exc
        if event is h11.NEED_DATA:
            data = read(size, timeout=timeout)
            if not data and state.their_state is h11.SEND_RESPONSE:
                raise httpcore.RemoteProtocolError(_DISCONNECTED)
            state.receive_data(data)
        elif type(event) is h11.Data:
            yield bytes(event.data)
        elif type(event) is h11.EndOfMessage or event is h11.PAUSED:
            return


async def _h11_body_async(connection: Any, request: Any) -> AsyncIterator[bytes]:
    """:func:`_h11_body` over an async connection."""
    state = connection._h11_state
    read = connection._network_stream.read
    size = connection.READ_NUM_BYTES
    timeout = _read_timeout(request)
    next_event = state.next_event
    while True:
        try:
            event = next_event()
        except h11.RemoteProtocolError as exc:
            raise httpcore.RemoteProtocolError(str(exc)) from exc
        if event is h11.NEED_DATA:
            data = await read(size, timeout=timeout)
            if not data and state.their_state is h11.SEND_RESPONSE:
                raise httpcore.RemoteProtocolError(_DISCONNECTED)
            state.receive_data(data)
        elif type(event) is h11.Data:
            yield bytes(event.data)
        elif type(event) is h11.EndOfMessage or event is h11.PAUSED:
            return


def sync_body(response: httpx.Response) -> Iterator[bytes]:
    """The pieces of a response's body: read from its HTTP/1.1 connection
    where the stack is httpx's default one (see above), else from httpx's
    stream."""
    stream = cast(httpx.SyncByteStream, response.stream)
    found = _h11_reader(stream, _INNER[0]) if _INNER is not None else None
    if found is not None:
        return _h11_body(*found)
    return iter(stream)


def async_body(response: httpx.Response) -> AsyncIterator[bytes]:
    """:func:`sync_body` for an ``httpx.AsyncClient``'s response."""
    stream = cast(httpx.AsyncByteStream, response.stream)
    found = _h11_reader(stream, _INNER[1]) if _INNER is not None else None
    if found is not None:
        return _h11_body_async(*found)
    return aiter(stream)
