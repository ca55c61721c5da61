"""mal's own HTTP/1.1 transport for httpx's clients.

h11 writes the request and reads the response head; a response body is
framed by mal's own sans-I/O reader (:class:`mal._http11.BodyReader`:
chunked, Content-Length or until the close), from the bytes h11 holds past
the head; httpcore's public network backend moves the bytes (its streams'
``read``, ``write``, ``start_tls``, ``get_extra_info`` and close);
:mod:`mal._http11` keeps the pool's books. The async module is the
source, for asyncio and trio (``AnyIOBackend``); the sync one is generated
from it by ``scripts/unasync.py`` (``SyncBackend``).

Why mal has one: a body read here takes a deadline of its own
(``Body.read``), which is how a caller's clocks (first token, idle, total)
reach a read in progress; a read can be woken from elsewhere (shut the
``network_stream`` socket down from another thread, or cancel the reading
task's scope); and a piece of the body costs a few string operations and at
most one socket read, with no wrapper between them (h11's events cost about
eight times more per piece, most of a token's cost in a stream).

Request extensions, beside httpx's ``timeout``:

* ``trace``: called with httpcore's event names and arguments
  (``connection.connect_tcp.started`` ... ``.complete`` with the network
  stream as ``return_value``, ``connection.start_tls...``,
  ``http11.send_request_headers...``, ``http11.send_request_body...``,
  ``http11.receive_response_headers...``, ``...failed`` with the
  ``exception``); ``http11.send_request_headers.started`` also carries the
  connection's ``network_stream``, new or reused;
* ``mal.head_timeout``: seconds within which the response head must come,
  from the call (pool, connect, write and head read included); when they run
  out, :class:`mal._http11.HeadTimeout`.

The response's extensions: ``http_version``, ``reason_phrase``,
``network_stream``, and ``mal.body``: the body reader that is also the
response's stream.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, cast

import h11
import httpcore
import httpx

from . import _http11
from ._http11 import (
    DISCONNECTED,
    READ_SIZE,
    BodyError,
    BodyReader,
    Connection,
    HeadTimeout,
    Pool,
    body_framing,
    bound,
    client_ssl_context,
    keeps_alive,
    raise_httpx,
    raise_protocol,
    raise_step,
)

__all__ = ["AsyncBody", "AsyncHTTP11Transport"]

_Conn = Connection[httpcore.AsyncNetworkStream]
#: Connections opened, reused, kept and closed, at DEBUG (never a header).
_log = logging.getLogger("mal.http11")
_PORTS = {"http": 80, "https": 443}
_NO_TIMEOUTS: dict[str, float | None] = {}


class AsyncHTTP11Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive, within ``limits``; TLS with ``ssl_context``,
    by default the trust httpx would use (see :func:`client_ssl_context`)."""

    def __init__(
        self,
        *,
        limits: httpx.Limits | None = None,
        ssl_context: ssl.SSLContext | None = None,
        trust_env: bool = True,
    ) -> None:
        self._pool: Pool[httpcore.AsyncNetworkStream] = Pool(limits or httpx.Limits())
        self._backend = httpcore.AnyIOBackend()
        self._ssl_context = ssl_context
        self._trust_env = trust_env

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = _PORTS.get(url.scheme)
        if port is None:
            raise httpx.UnsupportedProtocol(
                f"mal's HTTP/1.1 transport sends http and https URLs, not {url.scheme!r}",
                request=request,
            )
        if self._pool.closed:
            raise RuntimeError("the transport is closed")
        extensions = request.extensions
        timeouts = extensions.get("timeout") or _NO_TIMEOUTS
        trace = extensions.get("trace")
        head_timeout = extensions.get("mal.head_timeout")
        deadline = None if head_timeout is None else time.monotonic() + head_timeout
        key = (url.scheme, url.raw_host.decode("ascii"), url.port or port)
        conn = await self._acquire(key, request, timeouts, deadline, trace)
        try:
            event = await self._exchange(conn, request, timeouts, deadline, trace)
        except BaseException:
            await self._drop(conn)
            raise
        stream = conn.stream
        # h11 read the head; the body is framed by mal's reader, from the
        # bytes h11 holds past the head.
        mode, length = body_framing(request.method, event)
        data, closed = conn.h11.trailing_data
        reader = BodyReader(mode, length, data)
        if closed:
            reader.feed(b"")
        reusable = keeps_alive(event) and conn.h11.our_state is h11.DONE and not conn.broken
        body = AsyncBody(self, conn, request, timeouts.get("read"), reader, reusable)
        return httpx.Response(
            event.status_code,
            headers=event.headers.raw_items(),
            stream=body,
            extensions={
                "http_version": b"HTTP/" + event.http_version,
                "reason_phrase": event.reason,
                "network_stream": stream,
                "mal.body": body,
            },
        )

    async def _acquire(
        self,
        key: tuple[str, str, int],
        request: httpx.Request,
        timeouts: dict[str, float | None],
        deadline: float | None,
        trace: Any,
    ) -> _Conn:
        """A connection from the pool, or a new one, within the pool timeout."""
        pool = self._pool
        pool_timeout = timeouts.get("pool")
        until = None if pool_timeout is None else time.monotonic() + pool_timeout
        while True:
            conn, new, closing, generation = pool.checkout(key)
            for stale in closing:
                _log.debug("closing an idle connection to %s:%d", *stale.key[1:])
                await _close(stale)
            if conn is not None:
                _log.debug("reusing a kept-alive connection to %s:%d", *key[1:])
                return conn
            if new:
                break
            signal = _http11.AsyncSignal()
            pool.wait(signal, generation)
            wait, binding = bound(pool_timeout, deadline)
            if until is not None and not binding:
                wait = max(until - time.monotonic(), 0.0)
            if not await signal.wait(wait):
                pool.forget(signal)
                if binding:
                    raise HeadTimeout("the response head did not come in time", request=request)
                raise httpx.PoolTimeout("no connection was free in time", request=request)
        try:
            return await self._connect(key, request, timeouts, deadline, trace)
        except BaseException:
            pool.discard()
            raise

    async def _connect(
        self,
        key: tuple[str, str, int],
        request: httpx.Request,
        timeouts: dict[str, float | None],
        deadline: float | None,
        trace: Any,
    ) -> _Conn:
        scheme, host, port = key
        timeout, binding = bound(timeouts.get("connect"), deadline)
        info: dict[str, Any] = {
            "host": host,
            "port": port,
            "local_address": None,
            "timeout": timeout,
            "socket_options": None,
        }
        if trace is not None:
            await trace("connection.connect_tcp.started", info)
        try:
            stream = await self._backend.connect_tcp(host, port, timeout=timeout)
        except Exception as exc:
            if trace is not None:
                await trace("connection.connect_tcp.failed", {"exception": exc})
            raise_step(exc, request, binding)
        if trace is not None:
            await trace("connection.connect_tcp.complete", {"return_value": stream})
        if scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = client_ssl_context(self._trust_env)
            timeout, binding = bound(timeouts.get("connect"), deadline)
            info = {"ssl_context": self._ssl_context, "server_hostname": host, "timeout": timeout}
            if trace is not None:
                await trace("connection.start_tls.started", info)
            try:
                stream = await stream.start_tls(self._ssl_context, host, timeout)
            except Exception as exc:
                await stream.aclose()
                if trace is not None:
                    await trace("connection.start_tls.failed", {"exception": exc})
                raise_step(exc, request, binding)
            if trace is not None:
                await trace("connection.start_tls.complete", {"return_value": stream})
        _log.debug("connected to %s:%d (%s)", host, port, scheme)
        return Connection(key, stream)

    async def _exchange(
        self,
        conn: _Conn,
        request: httpx.Request,
        timeouts: dict[str, float | None],
        deadline: float | None,
        trace: Any,
    ) -> h11.Response:
        """Write the request, read the response head."""
        state = conn.h11
        stream = conn.stream
        info = {"request": request}
        if trace is not None:
            await trace(
                "http11.send_request_headers.started",
                {"request": request, "network_stream": stream},
            )
        try:
            out: list[bytes | None] = [
                state.send(
                    h11.Request(
                        method=request.method,
                        target=request.url.raw_path,
                        headers=request.headers.raw,
                    )
                )
            ]
        except h11.ProtocolError as exc:
            raise_protocol(exc, request)
        if trace is not None:
            await trace("http11.send_request_headers.complete", info)
            await trace("http11.send_request_body.started", info)
        # The head and the body go out together while they are small: one
        # write, one segment for a short request.
        size = len(out[0] or b"")
        try:
            async for piece in cast(AsyncIterable[bytes], request.stream):
                out.append(state.send(h11.Data(data=piece)))
                size += len(piece)
                if size >= READ_SIZE:
                    await self._write(conn, out, request, timeouts, deadline)
                    out, size = [], 0
            out.append(state.send(h11.EndOfMessage()))
        except h11.ProtocolError as exc:
            raise_protocol(exc, request)
        await self._write(conn, out, request, timeouts, deadline)
        if trace is not None:
            await trace("http11.send_request_body.complete", info)
            await trace("http11.receive_response_headers.started", info)
        while True:
            try:
                event = state.next_event()
            except h11.ProtocolError as exc:
                raise_protocol(exc, request)
            if event is h11.NEED_DATA:
                timeout, binding = bound(timeouts.get("read"), deadline)
                try:
                    data = await stream.read(READ_SIZE, timeout)
                except Exception as exc:
                    raise_step(exc, request, binding)
                if not data and state.their_state is h11.SEND_RESPONSE:
                    raise httpx.RemoteProtocolError(DISCONNECTED, request=request)
                state.receive_data(data)
            elif type(event) is h11.Response:
                break
            elif type(event) is h11.ConnectionClosed:
                raise httpx.RemoteProtocolError(DISCONNECTED, request=request)
            # else: a 1xx informational response, before the real one.
        if trace is not None:
            await trace(
                "http11.receive_response_headers.complete",
                {
                    "return_value": (
                        b"HTTP/" + event.http_version,
                        event.status_code,
                        event.reason,
                        event.headers.raw_items(),
                    )
                },
            )
        return event

    async def _write(
        self,
        conn: _Conn,
        out: list[bytes | None],
        request: httpx.Request,
        timeouts: dict[str, float | None],
        deadline: float | None,
    ) -> None:
        timeout, binding = bound(timeouts.get("write"), deadline)
        try:
            await conn.stream.write(b"".join(piece for piece in out if piece), timeout)
        except httpcore.WriteError:
            # The server may have answered and closed before it read the
            # whole request (a 413, a 401): its response says why, and if
            # none comes the read says the server disconnected. So does httpx.
            conn.broken = True
        except Exception as exc:
            raise_step(exc, request, binding)

    async def _release(self, conn: _Conn, reusable: bool) -> None:
        """A response ended: its connection goes back to the pool if it can
        carry the next request (not after ``Connection: close``, HTTP/1.0, a
        body not read to its end, or bytes after it that no request asked
        for), else it is closed."""
        if reusable:
            conn.next_cycle()
            for stale in self._pool.checkin(conn):
                _log.debug("closing a connection to %s:%d: the pool is full", *stale.key[1:])
                await _close(stale)
        else:
            _log.debug("closing a connection to %s:%d: not reusable", *conn.key[1:])
            await self._drop(conn)

    async def _drop(self, conn: _Conn) -> None:
        self._pool.discard(conn)
        await _close(conn)

    async def aclose(self) -> None:
        """Close the idle connections; a response still open closes its own."""
        for conn in self._pool.close():
            await _close(conn)


async def _close(conn: _Conn) -> None:
    with contextlib.suppress(Exception):  # a socket that fails to close is closed
        await conn.stream.aclose()


class AsyncBody(httpx.AsyncByteStream):
    """A response's body, read from its connection.

    :meth:`read` is the fast path: the next piece, each read within a
    deadline of its own; iterating (what ``aiter_raw()`` does) reads with the
    request's read timeout. A body read to its end gives its connection back
    to the pool; one closed before its end closes the connection, which is
    how a client tells a server to stop sending.
    """

    __slots__ = (
        "_conn",
        "_feed",
        "_next",
        "_read",
        "_reader",
        "_request",
        "_reusable",
        "_transport",
        "timeout",
    )

    def __init__(
        self,
        transport: AsyncHTTP11Transport,
        conn: _Conn,
        request: httpx.Request,
        timeout: float | None,
        reader: BodyReader,
        reusable: bool,
    ) -> None:
        self._transport = transport
        self._conn: _Conn | None = conn
        self._reader = reader
        self._next = reader.next
        self._feed = reader.feed
        self._read = conn.stream.read
        self._request = request
        self._reusable = reusable
        #: The request's read timeout.
        self.timeout = timeout

    async def read(self, timeout: float | None) -> bytes:
        """The next piece of the body, ``b""`` at its end; ``timeout``: the
        seconds this call may take (None: no limit), else ``httpx.ReadTimeout``."""
        if self._conn is None:
            return b""
        deadline = None
        while True:
            try:
                piece = self._next()
            except BodyError as exc:
                await self.aclose()
                raise httpx.RemoteProtocolError(str(exc), request=self._request) from exc
            if piece is not None:
                if not piece:
                    await self.aclose()  # the end: the connection goes back
                return piece
            if timeout is not None:
                if deadline is None:
                    deadline = time.monotonic() + timeout
                else:
                    timeout = max(deadline - time.monotonic(), 0.0)
            try:
                data = await self._read(READ_SIZE, timeout)
            except Exception as exc:
                await self.aclose()
                raise_httpx(exc, self._request)
            self._feed(data)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        timeout = self.timeout
        while piece := await self.read(timeout):
            yield piece

    async def aclose(self) -> None:
        """Close the body: a connection whose response was read to its end
        goes back to the pool, any other is closed."""
        conn = self._conn
        if conn is not None:
            self._conn = None
            reader = self._reader
            await self._transport._release(conn, self._reusable and reader.clean)
