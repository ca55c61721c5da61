"""mal's HTTP/1.1 transport against raw socket servers on 127.0.0.1: bodies
whole and byte by byte, keep-alive and its liveness check, bodies cut short,
pool limits, every timeout as httpx's exception, the head deadline, the body
reader's own deadline, traces. Each test runs the sync transport and the
async one under asyncio and trio."""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import httpcore
import httpx
import pytest

from mal._http11 import DISCONNECTED, HeadTimeout
from mal._transport import ConnectionTrace, unanswered

from ._adapter import FLAVOURS, Http
from ._servers import Peer, RawServer, respond, response_bytes

pytestmark = pytest.mark.anyio

BODY = b'data: {"x": "h\xc3\xa9llo"}\n\n' * 5


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def anyio_backend(flavour: str) -> str:
    return "asyncio" if flavour == "sync" else flavour


@pytest.fixture
async def http(flavour: str) -> AsyncIterator[Http]:
    client = Http(flavour)
    yield client
    await client.aclose()


# --------------------------------------------------------------------------- bodies


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
async def test_a_body_is_read_whole_and_the_connection_reused(
    http: Http, chunked: bool, bytewise: bool
) -> None:
    with RawServer(respond(BODY, chunked=chunked, bytewise=bytewise)) as server:
        for _ in range(3):
            response = await http.send(server.url + "/x")
            assert response.status_code == 200
            assert response.extensions["http_version"] == b"HTTP/1.1"
            assert response.extensions["reason_phrase"] == b"OK"
            assert await http.read_all(response) == BODY
            # read to its end: the reader says so again, and closing is a no-op
            assert await http.read(response) == b""
            await http.close(response)
        assert server.accepted == 1
        assert len(server.requests) == 3


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_iter_raw_reads_the_same_body(http: Http, chunked: bool) -> None:
    with RawServer(respond(BODY, chunked=chunked, bytewise=True)) as server:
        response = await http.send(server.url)
        assert b"".join(await http.iter_raw(response)) == BODY
        await http.close(response)
        response = await http.send(server.url)
        assert b"".join(await http.iter_raw(response)) == BODY
        await http.close(response)
        assert server.accepted == 1


async def test_a_request_body_reaches_the_server(http: Http) -> None:
    with RawServer(respond(b"ok")) as server:
        content = b"x" * 200_000
        assert await http.get(server.url + "/p?q=1", method="POST", content=content) == b"ok"
        request = server.requests[0]
        assert request.startswith(b"POST /p?q=1 HTTP/1.1\r\n")
        assert request.endswith(b"\r\n\r\n" + content)


async def test_a_close_delimited_body_ends_with_the_connection(http: Http) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        peer.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BODY)
        peer.sock.close()

    with RawServer(script) as server:
        assert await http.get(server.url) == BODY
        assert await http.get(server.url) == BODY
        assert server.accepted == 2


async def test_an_http_1_0_response_is_not_kept_alive(http: Http) -> None:
    def script(peer: Peer) -> None:
        while peer.read_request() is not None:
            peer.send(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY)

    with RawServer(script) as server:
        response = await http.send(server.url)
        assert response.extensions["http_version"] == b"HTTP/1.0"
        assert await http.read_all(response) == BODY
        await http.close(response)
        assert await http.get(server.url) == BODY
        assert server.accepted == 2


async def test_informational_responses_are_skipped(http: Http) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        peer.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + response_bytes(BODY))
        peer.wait_closed()

    with RawServer(script) as server:
        assert await http.get(server.url) == BODY


# --------------------------------------------------------------------------- keep-alive


async def test_an_idle_connection_the_server_closed_is_not_reused(http: Http) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        peer.send(response_bytes(BODY))
        peer.sock.shutdown(socket.SHUT_RDWR)  # keep-alive, then closed while idle

    with RawServer(script) as server:
        assert await http.get(server.url) == BODY
        for _ in range(50):  # the FIN reaches the client's socket
            if server.accepted == 1 and _readable_everywhere(http):
                break
            await _pause(0.01)
        assert await http.get(server.url) == BODY
        assert server.accepted == 2


async def test_an_idle_connection_that_got_bytes_is_not_reused(http: Http) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        peer.send(response_bytes(BODY) + b"HTTP/1.1 200 OK\r\n")  # bytes no one asked for
        peer.wait_closed()

    with RawServer(script) as server:
        assert await http.get(server.url) == BODY
        for _ in range(50):
            if _readable_everywhere(http):
                break
            await _pause(0.01)
        assert await http.get(server.url) == BODY
        assert server.accepted == 2


@pytest.mark.parametrize("flavour", ["sync", "asyncio"])
async def test_an_expired_idle_connection_is_not_reused(flavour: str) -> None:
    http = Http(flavour, limits=httpx.Limits(keepalive_expiry=0.05))
    with RawServer(respond(BODY)) as server:
        assert await http.get(server.url) == BODY
        await _pause(0.1)
        assert await http.get(server.url) == BODY
        assert await http.get(server.url) == BODY  # soon enough: reused
        assert server.accepted == 2
    await http.aclose()


async def test_connection_close_from_the_server_is_honoured(http: Http) -> None:
    def script(peer: Peer) -> None:
        while peer.read_request() is not None:
            peer.send(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(BODY)
                + BODY
            )

    with RawServer(script) as server:
        assert await http.get(server.url) == BODY
        assert await http.get(server.url) == BODY
        assert server.accepted == 2


async def test_a_body_cut_short_closes_its_connection(http: Http) -> None:
    closed: list[bool] = []

    def script(peer: Peer) -> None:
        peer.read_request()
        peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        closed.append(peer.wait_closed())  # a model server would stop generating here

    with RawServer(script) as server:
        response = await http.send(server.url)
        assert await http.read(response) == b"hello"
        await http.close(response)
        for _ in range(200):
            if closed:
                break
            await _pause(0.01)
        assert closed == [True]
    with RawServer(respond(BODY)) as server:  # and the pool is still whole
        assert await http.get(server.url) == BODY


async def test_an_unread_body_closes_its_connection_too(http: Http) -> None:
    with RawServer(respond(BODY)) as server:
        response = await http.send(server.url)
        await http.close(response)  # nothing read
        assert await http.get(server.url) == BODY
        assert server.accepted == 2


# --------------------------------------------------------------------------- pool limits


async def test_the_pool_timeout(flavour: str) -> None:
    http = Http(flavour, limits=httpx.Limits(max_connections=1))
    with RawServer(respond(BODY)) as server:
        held = await http.send(server.url)
        with pytest.raises(httpx.PoolTimeout) as caught:
            await http.send(server.url, timeout=httpx.Timeout(10, pool=0.1))
        assert caught.value.request.url == server.url
        assert await http.read_all(held) == BODY
        await http.close(held)
        assert await http.get(server.url, timeout=httpx.Timeout(10, pool=0.1)) == BODY
        assert server.accepted == 1
    await http.aclose()


async def test_max_connections_makes_room_by_closing_an_idle_connection(flavour: str) -> None:
    http = Http(flavour, limits=httpx.Limits(max_connections=1))
    with RawServer(respond(b"a")) as one, RawServer(respond(b"b")) as two:
        assert await http.get(one.url) == b"a"
        assert await http.get(two.url, timeout=httpx.Timeout(10, pool=0.1)) == b"b"
        assert await http.get(one.url, timeout=httpx.Timeout(10, pool=0.1)) == b"a"
        assert (one.accepted, two.accepted) == (2, 1)
    await http.aclose()


async def test_max_keepalive_connections(flavour: str) -> None:
    http = Http(flavour, limits=httpx.Limits(max_keepalive_connections=0))
    with RawServer(respond(BODY)) as server:
        assert await http.get(server.url) == BODY
        assert await http.get(server.url) == BODY
        assert server.accepted == 2
    await http.aclose()


@pytest.mark.parametrize("flavour", ["asyncio", "trio"])
async def test_a_task_waiting_for_the_pool_gets_the_connection_let_go(flavour: str) -> None:
    import anyio

    http = Http(flavour, limits=httpx.Limits(max_connections=1))
    got: list[bytes] = []
    with RawServer(respond(BODY)) as server:
        held = await http.send(server.url)

        async def second() -> None:
            got.append(await http.get(server.url, timeout=httpx.Timeout(10, pool=5)))

        async with anyio.create_task_group() as group:
            group.start_soon(second)
            await anyio.sleep(0.05)
            assert got == []
            assert await http.read_all(held) == BODY
            await http.close(held)
        assert got == [BODY]
        assert server.accepted == 1
    await http.aclose()


def test_a_thread_waiting_for_the_pool_gets_the_connection_let_go() -> None:
    import threading

    from mal._http11_sync import HTTP11Transport

    client = httpx.Client(transport=HTTP11Transport(limits=httpx.Limits(max_connections=1)))
    got: list[bytes] = []
    with RawServer(respond(BODY)) as server:
        held = client.send(client.build_request("GET", server.url), stream=True)
        thread = threading.Thread(
            target=lambda: got.append(client.get(server.url, timeout=httpx.Timeout(10)).content)
        )
        thread.start()
        thread.join(0.05)
        assert got == []
        held.read()
        held.close()
        thread.join(10)
        assert got == [BODY]
        assert server.accepted == 1
    client.close()


# --------------------------------------------------------------------------- errors


async def test_connect_error(http: Http, closed_port: int) -> None:
    with pytest.raises(httpx.ConnectError) as caught:
        await http.send(f"http://127.0.0.1:{closed_port}/")
    assert caught.value.request.url.port == closed_port
    assert isinstance(caught.value.__cause__, httpcore.ConnectError)


async def test_connect_timeout(http: Http) -> None:
    # A listener that never accepts, its queue full: the next SYN is dropped.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            fillers.append(sock)
        with pytest.raises(httpx.ConnectTimeout) as caught:
            await http.send(f"http://127.0.0.1:{port}/", timeout=httpx.Timeout(10, connect=0.2))
        assert caught.value.request.url.port == port
    finally:
        for sock in fillers:
            sock.close()
        listener.close()


async def test_read_timeout_before_the_head(http: Http) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        peer.wait_closed()

    with RawServer(script) as server:
        with pytest.raises(httpx.ReadTimeout) as caught:
            await http.send(server.url, timeout=httpx.Timeout(10, read=0.1))
        assert caught.value.request.url == server.url
        assert not isinstance(caught.value, HeadTimeout)


async def test_write_timeout(http: Http) -> None:
    def script(peer: Peer) -> None:
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.wait_closed()  # reads nothing... until the client goes

    with RawServer(script) as server:
        with pytest.raises(httpx.WriteTimeout) as caught:
            await http.send(
                server.url,
                method="POST",
                content=b"x" * 50_000_000,
                timeout=httpx.Timeout(10, write=0.2),
            )
        assert caught.value.request.method == "POST"


async def test_a_connection_closed_before_the_status_line(http: Http) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        peer.sock.close()

    with RawServer(script) as server:
        with pytest.raises(httpx.RemoteProtocolError, match=DISCONNECTED) as caught:
            await http.send(server.url)
        assert unanswered(caught.value)
        assert caught.value.request.url == server.url


async def test_a_connection_reset_before_the_status_line(http: Http) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        linger = struct.pack("ii", 1, 0)  # close with a reset
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        peer.sock.close()

    with RawServer(script) as server:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)) as caught:
            await http.send(server.url)
        assert unanswered(caught.value)


async def test_garbage_instead_of_a_response(http: Http) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        peer.send(b"SSH-2.0-OpenSSH\r\n\r\n")
        peer.wait_closed()

    with RawServer(script) as server:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await http.send(server.url)
        assert str(caught.value) != DISCONNECTED
        assert not unanswered(caught.value)
        assert caught.value.request.url == server.url


async def test_a_body_cut_by_the_server(http: Http) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello")
        peer.sock.close()

    with RawServer(script) as server:
        response = await http.send(server.url)
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await http.read_all(response)
        assert caught.value.request.url == server.url
        await http.close(response)


async def test_garbage_in_a_chunked_body(http: Http) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
        peer.wait_closed()

    with RawServer(script) as server:
        response = await http.send(server.url)
        with pytest.raises(httpx.RemoteProtocolError):
            await http.read_all(response)
        await http.close(response)


async def test_an_unsupported_scheme(http: Http) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        await http.send("ftp://127.0.0.1/")


# --------------------------------------------------------------------------- deadlines


def _stalls_after_the_head(peer: Peer) -> None:
    peer.read_request()
    peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    peer.wait_closed()


async def test_a_body_read_takes_its_own_deadline(http: Http) -> None:
    with RawServer(_stalls_after_the_head) as server:
        response = await http.send(server.url, timeout=httpx.Timeout(30))
        assert await http.read(response, 30) == b"hello"
        with pytest.raises(httpx.ReadTimeout) as caught:
            await http.read(response, 0.1)
        assert caught.value.request.url == server.url
        await http.close(response)


async def test_a_deadline_holds_while_bytes_trickle_in(http: Http) -> None:
    # A chunk's size line, a byte at a time: bytes keep coming, no piece does.
    def script(peer: Peer) -> None:
        import time

        peer.read_request()
        peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(100):
            peer.send(b"0")
            time.sleep(0.02)
        peer.wait_closed()

    with RawServer(script) as server:
        response = await http.send(server.url, timeout=httpx.Timeout(30))
        with pytest.raises(httpx.ReadTimeout):
            await http.read(response, 0.3)
        await http.close(response)


async def test_the_head_deadline(http: Http) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        peer.wait_closed()

    with RawServer(script) as server:
        with pytest.raises(HeadTimeout) as caught:
            await http.send(
                server.url, timeout=httpx.Timeout(30), extensions={"mal.head_timeout": 0.1}
            )
        assert isinstance(caught.value, httpx.TimeoutException)
        assert caught.value.request.url == server.url
        # the read timeout shorter than the deadline: the read timeout's error
        with pytest.raises(httpx.ReadTimeout):
            await http.send(
                server.url, timeout=httpx.Timeout(30, read=0.1), extensions={"mal.head_timeout": 30}
            )


async def test_the_head_deadline_bounds_the_pool_wait(flavour: str) -> None:
    http = Http(flavour, limits=httpx.Limits(max_connections=1))
    with RawServer(respond(BODY)) as server:
        held = await http.send(server.url)
        with pytest.raises(HeadTimeout):
            await http.send(server.url, extensions={"mal.head_timeout": 0.1})
        await http.close(held)
    await http.aclose()


async def test_the_head_deadline_leaves_the_body_alone(http: Http) -> None:
    with RawServer(respond(BODY, chunked=True, bytewise=True)) as server:
        response = await http.send(server.url, extensions={"mal.head_timeout": 5})
        assert await http.read_all(response, 5) == BODY
        await http.close(response)


# --------------------------------------------------------------------------- traces


async def test_trace_events(http: Http) -> None:
    with RawServer(respond(BODY)) as server:
        events: list[tuple[str, dict[str, Any]]] = []
        assert await http.get(server.url, trace=events) == BODY
        names = [name for name, _ in events]
        assert names == [
            "connection.connect_tcp.started",
            "connection.connect_tcp.complete",
            "http11.send_request_headers.started",
            "http11.send_request_headers.complete",
            "http11.send_request_body.started",
            "http11.send_request_body.complete",
            "http11.receive_response_headers.started",
            "http11.receive_response_headers.complete",
        ]
        stream = events[1][1]["return_value"]
        assert stream.get_extra_info("socket") is not None
        assert events[2][1]["network_stream"] is stream
        status = events[-1][1]["return_value"]
        assert status[:3] == (b"HTTP/1.1", 200, b"OK")

        again: list[tuple[str, dict[str, Any]]] = []
        assert await http.get(server.url, trace=again) == BODY
        assert not any("connect" in name for name, _ in again)
        assert again[0][1]["network_stream"] is stream


async def test_connection_trace_tells_a_reused_connection(http: Http) -> None:
    with RawServer(respond(BODY)) as server:
        for reused in (False, True):
            trace = ConnectionTrace()
            response = await http.send(server.url, extensions={"trace": _tracer(http, trace)})
            await http.read_all(response)
            await http.close(response)
            assert trace.reused is reused


async def test_a_failed_connect_is_traced(http: Http, closed_port: int) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    with pytest.raises(httpx.ConnectError):
        await http.send(f"http://127.0.0.1:{closed_port}/", trace=events)
    assert [name for name, _ in events] == [
        "connection.connect_tcp.started",
        "connection.connect_tcp.failed",
    ]


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _tracer(http: Http, trace: ConnectionTrace) -> Any:
    return trace.trace if http.sync else trace.atrace


def _readable_everywhere(http: Http) -> bool:
    """Whether every idle connection of the pool has something to read."""
    idle = [c for conns in http.transport._pool._idle.values() for c in conns]
    return all(c.stream.get_extra_info("is_readable") for c in idle)


async def _pause(seconds: float) -> None:
    import anyio

    await anyio.sleep(seconds)


async def test_connections_are_logged_at_debug_without_headers(
    http: Http, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mal.http11")
    with RawServer(respond(BODY)) as server:
        assert await http.get(server.url, extensions={}) == BODY
        response = await http.send(server.url)
        await http.close(response)  # unread: closed
    messages = [record.getMessage() for record in caplog.records]
    port = server.port
    assert messages == [
        f"connected to 127.0.0.1:{port} (http)",
        f"reusing a kept-alive connection to 127.0.0.1:{port}",
        f"closing a connection to 127.0.0.1:{port}: not reusable",
    ]
