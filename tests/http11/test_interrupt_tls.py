"""Waking a read blocked in mal's HTTP/1.1 transport from elsewhere (a socket
shut down from another thread; a cancel scope cancelled from another task),
and TLS: the trust httpx would use, ALPN, SNI, a verification failure."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import trustme

from mal._http11_async import AsyncHTTP11Transport
from mal._http11_sync import HTTP11Transport
from mal._transport import shutdown

from ._adapter import Http
from ._servers import Peer, RawServer, respond

BODY = b"hello, world\n" * 3


def _stalls_after_a_piece(peer: Peer) -> None:
    peer.read_request()
    peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    peer.server.info["closed"] = peer.wait_closed()


def _stalls_before_the_head(peer: Peer) -> None:
    peer.read_request()
    peer.server.info["closed"] = peer.wait_closed()


# --------------------------------------------------------------------------- sync


def test_a_blocked_body_read_wakes_when_another_thread_shuts_its_socket_down() -> None:
    client = httpx.Client(transport=HTTP11Transport(), timeout=60)
    outcome: list[Any] = []
    with RawServer(_stalls_after_a_piece) as server:
        response = client.send(client.build_request("GET", server.url), stream=True)
        body = response.extensions["mal.body"]
        assert body.read(None) == b"hello"

        def reader() -> None:
            try:
                outcome.append(body.read(None))  # no deadline at all
            except httpx.HTTPError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=reader)
        thread.start()
        thread.join(0.1)
        assert thread.is_alive()
        shutdown(response.extensions["network_stream"].get_extra_info("socket"))
        thread.join(10)
        assert not thread.is_alive()
        assert isinstance(outcome[0], httpx.RemoteProtocolError)  # the body ended early
        response.close()
        _wait_for(lambda: "closed" in server.info)
        assert server.info["closed"]
    client.close()


def test_a_request_waiting_for_its_head_wakes_through_the_socket_its_trace_gave() -> None:
    client = httpx.Client(transport=HTTP11Transport(), timeout=60)
    sockets: list[socket.socket] = []
    outcome: list[Any] = []

    def trace(name: str, info: dict[str, Any]) -> None:
        if name == "http11.send_request_headers.started":
            sockets.append(info["network_stream"].get_extra_info("socket"))

    with RawServer(_stalls_before_the_head) as server:

        def sender() -> None:
            try:
                client.get(server.url, extensions={"trace": trace})
            except httpx.HTTPError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=sender)
        thread.start()
        _wait_for(lambda: len(server.requests) == 1)
        assert thread.is_alive()
        shutdown(sockets[0])
        thread.join(10)
        assert not thread.is_alive()
        assert isinstance(outcome[0], httpx.RemoteProtocolError)
    client.close()


# --------------------------------------------------------------------------- async


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_blocked_body_read_ends_when_another_task_cancels_its_scope(
    anyio_backend: str,
) -> None:
    client = httpx.AsyncClient(transport=AsyncHTTP11Transport(), timeout=60)
    with RawServer(_stalls_after_a_piece) as server:
        response = await client.send(client.build_request("GET", server.url), stream=True)
        body = response.extensions["mal.body"]
        assert await body.read(None) == b"hello"
        scope = anyio.CancelScope()
        reading = anyio.Event()
        ended = anyio.Event()

        async def reader() -> None:
            with scope:
                reading.set()
                await body.read(None)
            ended.set()

        async with anyio.create_task_group() as group:
            group.start_soon(reader)
            await reading.wait()
            await anyio.sleep(0.05)
            assert not ended.is_set()
            scope.cancel()  # from this task, not the reading one
            with anyio.fail_after(10):
                await ended.wait()
        assert scope.cancelled_caught
        await response.aclose()  # cut short: the connection is closed
        await anyio.to_thread.run_sync(lambda: _wait_for(lambda: "closed" in server.info))
        assert server.info["closed"]
    await client.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_cancelled_wait_for_the_head_drops_the_connection(anyio_backend: str) -> None:
    transport = AsyncHTTP11Transport(limits=httpx.Limits(max_connections=1))
    client = httpx.AsyncClient(transport=transport, timeout=60)
    with RawServer(_stalls_before_the_head) as server:
        with anyio.move_on_after(0.1):
            await client.get(server.url)
        await anyio.to_thread.run_sync(lambda: _wait_for(lambda: "closed" in server.info))
        assert server.info["closed"]
        # its place in the pool is free again
        with pytest.raises(httpx.ReadTimeout):
            await client.get(server.url, timeout=httpx.Timeout(60, read=0.05, pool=0.5))
    await client.aclose()


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(context)
    context.set_alpn_protocols(["h2", "http/1.1"])
    context.set_servername_callback(
        lambda sock, name, ctx: _note_sni(sock, name)  # type: ignore[arg-type]
    )
    return context


_SNI: list[str | None] = []


def _note_sni(sock: ssl.SSLObject, name: str | None) -> None:
    _SNI.append(name)


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.mark.anyio
@pytest.mark.parametrize("flavour", ["sync", "asyncio", "trio"])
async def test_tls_with_the_trust_from_the_environment(
    flavour: str, anyio_backend: str, ca: trustme.CA, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    http = Http(flavour)
    with RawServer(respond(BODY), tls=_server_context(ca)) as server:
        _SNI.clear()
        assert await http.get(server.url) == BODY
        assert await http.get(server.url) == BODY
        assert server.accepted == 1
        assert server.info["alpn"] == "http/1.1"
        assert _SNI == ["localhost"]
    await http.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("flavour", ["sync", "asyncio", "trio"])
async def test_tls_with_a_given_context(flavour: str, anyio_backend: str, ca: trustme.CA) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    http = Http(flavour, ssl_context=context)
    with RawServer(respond(BODY), tls=_server_context(ca)) as server:
        assert await http.get(server.url) == BODY
    await http.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("flavour", ["sync", "asyncio", "trio"])
async def test_an_untrusted_certificate_is_a_connect_error(
    flavour: str, anyio_backend: str, ca: trustme.CA, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # trust_env=False: the CA in SSL_CERT_FILE is not looked at, certifi's is.
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    http = Http(flavour, trust_env=False)
    with RawServer(respond(BODY), tls=_server_context(ca)) as server:
        with pytest.raises(httpx.ConnectError) as caught:
            await http.get(server.url)
        assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
        assert caught.value.request.url == server.url
    await http.aclose()


@pytest.fixture
def anyio_backend(flavour: str) -> str:
    return "asyncio" if flavour == "sync" else flavour


def _wait_for(condition: Any, timeout: float = 10) -> None:
    import time

    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "the server did not see it in time"
        time.sleep(0.005)
