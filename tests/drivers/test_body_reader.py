"""Which body reader the drivers use: mal's own transport's (``mal.body``,
a deadline on each read) for a client mal makes, httpx's public stream in
the same shape (``IterBody``, ``AsyncIterBody``) for a user's ``http_client``,
a proxy from the environment, or a compressed body; and the mapping of
another library's exceptions to httpx's."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator

import anyio
import httpcore
import httpx
import pytest

import mal
from mal._transport import AsyncIterBody, IterBody, as_httpx_error, env_proxies, map_error
from mal.testing import MockServer, Reply


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as running:
        yield running


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_an_async_client_of_mals_own_sends_through_mals_transport(
    server: MockServer, anyio_backend: str
) -> None:
    server.add(Reply(text="Hello there"))
    async with mal.AsyncClient() as client:
        url = server.url("openai")
        async with client.stream("Hi", model="openai/m", base_url=url, api_key="k") as stream:
            assert "".join([chunk.text async for chunk in stream]) == "Hello there"
            assert stream._response is not None
            assert "mal.body" in stream._response.extensions


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_proxy_in_the_environment_keeps_httpx_transport(
    variable: str, server: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not env_proxies()
    monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the test's server is reached directly
    assert env_proxies()
    server.add(Reply(text="Hello there"))
    with mal.Client() as client:
        url = server.url("openai")
        with client.stream("Hi", model="openai/m", base_url=url, api_key="k") as stream:
            assert "".join(chunk.text for chunk in stream) == "Hello there"
            assert stream._response is not None
            assert "mal.body" not in stream._response.extensions  # httpx's transport


def test_a_stream_reads_mals_body_reader(server: MockServer) -> None:
    server.add(Reply(text="Hello there"))
    with mal.Client() as client:
        config_url = server.url("openai")
        with client.stream("Hi", model="openai/m", base_url=config_url, api_key="k") as stream:
            assert "".join(chunk.text for chunk in stream) == "Hello there"
            response = stream._response
            assert response is not None
            assert "mal.body" in response.extensions


def test_a_users_http_client_is_read_through_iter_raw(server: MockServer) -> None:
    server.add(Reply(text="Hello there"))
    with httpx.Client() as http, mal.Client(http_client=http) as client:
        url = server.url("openai")
        with client.stream("Hi", model="openai/m", base_url=url, api_key="k") as stream:
            assert "".join(chunk.text for chunk in stream) == "Hello there"
            response = stream._response
            assert response is not None
            assert "mal.body" not in response.extensions


def test_iter_body_checks_a_clock_when_the_read_returns() -> None:
    def slow() -> Iterator[bytes]:
        yield b"a"
        time.sleep(0.05)
        yield b"b"

    body = IterBody(slow(), timeout=10)
    assert body.read(10) == b"a"  # the read timeout: httpx's own bounds it
    with pytest.raises(httpx.ReadTimeout):
        body.read(0.01)  # a clock: the piece came too late
    assert body.read(10) == b""
    body = IterBody(slow(), timeout=None)
    assert body.read(None) == b"a"
    assert body.read(None) == b"b"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_async_iter_body_cancels_a_read_at_the_clock(anyio_backend: str) -> None:
    async def slow() -> Iterator[bytes]:  # type: ignore[misc]
        yield b"a"
        await anyio.sleep(30)
        yield b"b"

    body = AsyncIterBody(slow(), timeout=60)  # type: ignore[arg-type]
    assert await body.read(60) == b"a"
    with anyio.fail_after(10), pytest.raises(httpx.ReadTimeout):
        await body.read(0.05)


def test_a_compressed_body_is_decoded(server: MockServer) -> None:
    # httpx decodes a content-encoding: the driver reads iter_bytes() there.
    payload = gzip.compress(b'{"model":"m","response":"Hi","done":true}\n')

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=payload,
            headers={"content-encoding": "gzip", "content-type": "application/x-ndjson"},
        )

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        client = mal.Client(http_client=http, base_url="http://x")
        assert client.generate("Hi", model="ollama/m", stream=True) == "Hi"


@pytest.mark.parametrize(
    ("error", "mapped"),
    [
        (httpcore.ReadTimeout("timed out"), httpx.ReadTimeout),
        (httpcore.ReadError("reset"), httpx.ReadError),
        (httpcore.RemoteProtocolError("peer closed"), httpx.RemoteProtocolError),
        (httpcore.ProxyError("no"), httpx.ProxyError),
    ],
)
def test_httpcore_errors_become_httpx_errors(error: Exception, mapped: type[Exception]) -> None:
    converted = as_httpx_error(error)
    assert type(converted) is mapped
    assert converted.__cause__ is error
    assert str(converted) == str(error)
    # And so reach mal's errors as httpx's would, with httpx's as the cause.
    failure = map_error(error, "http://x", in_body=True)
    assert type(failure.__cause__) is mapped


def test_read_timeout_from_httpcore_is_a_read_timeout() -> None:
    failure = map_error(httpcore.ReadTimeout("timed out"), "http://x", in_body=True)
    assert failure.phase == "read"


def test_a_clock_with_a_users_sync_client_is_checked_when_a_read_returns(
    server: MockServer,
) -> None:
    # httpx's transport cannot be given a deadline on a blocked read: the
    # idle clock ends the stream when the late piece comes, not before.
    server.add(Reply(tokens=["a", "b", "c"], chunk_delay=0.3))
    with httpx.Client() as http:
        client = mal.Client(mal.MALConfig(max_retries=0, idle_timeout=0.1), http_client=http)
        url = server.url("openai")
        with pytest.raises(mal.APITimeoutError) as caught:
            client.generate("Hi", model="openai/m", base_url=url, api_key="k", stream=True)
    assert caught.value.phase == "idle"


def test_a_clock_with_mals_transport_ends_the_blocked_read(server: MockServer) -> None:
    server.add(Reply(tokens=["a", "b"], chunk_delay=30))
    client = mal.Client(mal.MALConfig(max_retries=0, idle_timeout=0.1))
    start = time.monotonic()
    with pytest.raises(mal.APITimeoutError) as caught:
        client.generate(
            "Hi", model="openai/m", base_url=server.url("openai"), api_key="k", stream=True
        )
    assert caught.value.phase in ("idle", "first_token")
    assert time.monotonic() - start < 20  # not the server's 30 s pause
    client.close()
