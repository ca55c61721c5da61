"""What the sync and async drivers share about httpx: timeouts, connection
limits, which transport a client of mal's own uses, the mapping of httpx's
exceptions to mal's at this one boundary, and the body readers over httpx's
public stream (a user's ``http_client``, a proxy, HTTP/2, a compressed body)
that have the shape of mal's own transport's (:mod:`mal._http11_async`)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from .errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigError,
    DecodeError,
    IncompleteStreamError,
    MALError,
)

if TYPE_CHECKING:
    from ._ops import Send

__all__ = [
    "build_request",
    "EMPTY",
    "TRANSPORT_ERRORS",
    "USER_AGENT",
    "AsyncIterBody",
    "ConnectionTrace",
    "IterBody",
    "as_httpx_error",
    "env_proxies",
    "make_limits",
    "make_timeout",
    "map_error",
    "shutdown",
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

#: What sending a request or reading a body may raise: httpx's errors (mal's
#: own transport raises httpx's public exception classes, as httpx's does).
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError,)


def make_timeout(timeouts: tuple[float | None, ...]) -> httpx.Timeout:
    connect, read, write, pool = timeouts
    return httpx.Timeout(connect=connect, read=read, write=write, pool=pool)


def make_limits() -> httpx.Limits:
    # Streams are long-lived: many may be open at once, and each holds its
    # connection for the whole generation.
    return httpx.Limits(max_connections=1000, max_keepalive_connections=100)


#: httpcore's message when a connection ends before the status line, which
#: mal's own transport raises too (:data:`mal._http11.DISCONNECTED`).
_DISCONNECTED = "Server disconnected without sending a response."


def env_proxies() -> bool:
    """Whether the environment names a proxy that httpx's ``trust_env`` would
    use (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, as
    ``urllib.request.getproxies`` reads them, which httpx reads too): a
    client of mal's own then keeps httpx's transport, which speaks to it."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


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
    """Whether a request went out on a connection reused from the pool, and
    which connection it is.

    It is httpcore's ``trace`` request extension (documented by httpx and
    httpcore alike, on their "Extensions" pages), whose callback hears each
    step of a request: on a new connection the connect comes first
    (``connection.connect_tcp.started``, ``connection.connect_unix_socket...``,
    ``socks.connect_tcp...`` through a SOCKS proxy); a reused one starts with
    sending the request. A transport that does not trace (another one than
    httpx's own or mal's) calls nothing, and ``reused`` stays False: unknown.
    Pass ``trace`` to a sync client, ``atrace`` to an async one.

    ``on_stream`` is called with the connection's network stream as soon as
    the trace names it: the ``return_value`` of a connect or of a TLS
    handshake, or, from mal's own transport, the ``network_stream`` of
    ``http11.send_request_headers.started`` (a reused connection too). A
    sync driver learns so which socket to shut down to wake a request still
    waiting for its response head.
    """

    __slots__ = ("connected", "on_stream", "traced")

    def __init__(self, on_stream: Callable[[Any], None] | None = None) -> None:
        self.traced = False
        self.connected = False
        self.on_stream = on_stream

    def trace(self, event: str, info: dict[str, Any]) -> None:
        self.traced = True
        if ".connect_" in event:
            self.connected = True
        if self.on_stream is not None:
            if event == "http11.send_request_headers.started":
                stream = info.get("network_stream")
            elif event.endswith(".complete") and event.startswith("connection."):
                stream = info.get("return_value")
            else:
                return
            if stream is not None:
                self.on_stream(stream)

    async def atrace(self, event: str, info: dict[str, Any]) -> None:
        self.trace(event, info)

    @property
    def reused(self) -> bool:
        return self.traced and not self.connected


def unanswered(exc: Exception) -> bool:
    """Whether a send failed because the server closed or reset the connection
    before any byte of a response came: "Server disconnected without sending a
    response." (httpcore's message, and mal's transport's: the stream ended
    while h11 still waited for the status line), or a read or write error (a
    reset) before the head. Not a
    timeout: a server that is slow to answer may be at work on the request."""
    if isinstance(exc, httpx.RemoteProtocolError):
        # Any other protocol error is about bytes that did come.
        return str(exc) == _DISCONNECTED
    return isinstance(exc, (httpx.ReadError, httpx.WriteError))


def as_httpx_error(exc: Exception) -> httpx.HTTPError:
    """httpx's exception for another library's of the same class name (an
    httpcore exception that escaped a transport), with it as ``__cause__``."""
    cls = getattr(httpx, type(exc).__name__, None)
    if not (isinstance(cls, type) and issubclass(cls, httpx.TransportError)):
        cls = httpx.TransportError
    mapped = cls(str(exc))
    mapped.__cause__ = exc
    return mapped


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


class _Empty:
    """The body before any request: nothing to read."""

    __slots__ = ()

    def read(self, timeout: float | None) -> bytes:
        return b""


EMPTY: Any = _Empty()


class IterBody:
    """A body read through httpx's public iteration (``iter_raw()``, or
    ``iter_bytes()`` where the server compressed it), with the shape of mal's
    own transport's body reader: ``read(timeout)``.

    A blocked read of httpx's transport cannot be given a new deadline: the
    configured read timeout (``timeout``) bounds each of its socket reads, and
    a shorter ``timeout`` passed to :meth:`read` (a clock) is checked when the
    read returns: a piece that came too late raises ``httpx.ReadTimeout``.
    """

    __slots__ = ("_next", "timeout")

    def __init__(self, pieces: Iterator[bytes], timeout: float | None) -> None:
        self._next = pieces.__next__
        self.timeout = timeout

    def read(self, timeout: float | None) -> bytes:
        if timeout is None or (self.timeout is not None and self.timeout <= timeout):
            try:
                return self._next()
            except StopIteration:
                return b""
        start = time.monotonic()
        try:
            piece = self._next()
        except StopIteration:
            piece = b""
        if time.monotonic() - start > timeout:
            raise httpx.ReadTimeout(f"no piece of the body came within {timeout:.3g} s")
        return piece


class AsyncIterBody:
    """:class:`IterBody` for an async client: a deadline shorter than the
    read timeout cancels the read (an anyio cancel scope)."""

    __slots__ = ("_next", "timeout")

    def __init__(self, pieces: AsyncIterator[bytes], timeout: float | None) -> None:
        self._next = pieces.__anext__
        self.timeout = timeout

    async def read(self, timeout: float | None) -> bytes:
        if timeout is None or (self.timeout is not None and self.timeout <= timeout):
            try:
                return await self._next()
            except StopAsyncIteration:
                return b""
        try:
            with anyio.fail_after(timeout):
                return await self._next()
        except StopAsyncIteration:
            return b""
        except TimeoutError:
            raise httpx.ReadTimeout(f"no piece of the body came within {timeout:.3g} s") from None


def build_request(
    http: httpx.Client | httpx.AsyncClient, op: Send, trace: Callable[..., Any]
) -> httpx.Request:
    """The httpx request of a ``Send`` op: the call's timeouts, ``trace`` (a
    :class:`ConnectionTrace`'s callback), and the op's clock as the
    ``mal.head_timeout`` extension that mal's transport keeps."""
    request = op.request
    extensions: dict[str, Any] = {"trace": trace}
    if op.clock is not None:
        extensions["mal.head_timeout"] = op.clock.timeout
    return http.build_request(
        request.method,
        request.url,
        headers=request.headers,
        content=request.body,
        timeout=make_timeout(op.timeouts),
        extensions=extensions,
    )
