"""The drivers read a body from its HTTP/1.1 connection under httpx's default
stack (``mal._transport.sync_body`` / ``async_body``), and from httpx's stream
anywhere else; h11's and httpcore's exceptions become httpx's, as httpx and
httpcore map them."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import anyio
import httpcore
import httpx
import pytest

import mal
from mal._transport import TRANSPORT_ERRORS, as_httpx_error, async_body, map_error, sync_body
from mal.testing import MockServer, Reply

INNERMOST = ("_h11_body", "_h11_body_async")


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as running:
        yield running


def post(client: httpx.Client, server: MockServer) -> httpx.Response:
    request = client.build_request(
        "POST",
        server.url("openai") + "/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "Hi"}], "stream": True},
    )
    return client.send(request, stream=True)


def test_sync_reads_the_innermost_generator(server: MockServer) -> None:
    server.add(Reply(text="Hello there"))
    with httpx.Client() as client:
        response = post(client, server)
        body = sync_body(response)
        assert body.gi_code.co_name in INNERMOST, (
            "httpx's or httpcore's stack changed: mal reads bodies through every wrapper"
        )
        data = b"".join(body)
        response.close()
    assert b"Hello" in data and data.rstrip().endswith(b"data: [DONE]")
    # The connection went back to the pool, read to its end.
    assert len(server.requests) == 1


def test_async_reads_the_innermost_generator(server: MockServer) -> None:
    server.add(Reply(text="Hello there"))

    async def main() -> bytes:
        async with httpx.AsyncClient() as client:
            request = client.build_request(
                "POST",
                server.url("openai") + "/chat/completions",
                json={
                    "model": "m",
                    "messages": [{"role": "user", "content": "Hi"}],
                    "stream": True,
                },
            )
            response = await client.send(request, stream=True)
            body = async_body(response)
            assert body.ag_code.co_name in INNERMOST
            data = b"".join([piece async for piece in body])
            await response.aclose()
            return data

    assert b"Hello" in anyio.run(main)


def test_with_httpcore_debug_logging_the_whole_stack_is_kept(server: MockServer) -> None:
    server.add(Reply(text="Hi"))
    log = logging.getLogger("httpcore.http11")
    old = log.level
    log.setLevel(logging.DEBUG)
    try:
        with httpx.Client() as client:
            response = post(client, server)
            body = sync_body(response)
            assert body.gi_code.co_name not in INNERMOST
            assert b"Hi" in b"".join(body)
            response.close()
    finally:
        log.setLevel(old)


def test_a_body_cut_short_is_httpx_remote_protocol_error(server: MockServer) -> None:
    server.add(Reply(text="Hello there, and more", drop_after=2))
    with httpx.Client() as client:
        response = post(client, server)
        pieces = []
        with pytest.raises(TRANSPORT_ERRORS) as info:
            for piece in sync_body(response):
                pieces.append(piece)
        response.close()
    assert pieces  # what came before the cut came
    failure = map_error(info.value, "http://x", in_body=True)
    assert isinstance(failure, mal.IncompleteStreamError)
    assert isinstance(failure.__cause__, httpx.RemoteProtocolError | httpx.ReadError)
    # The connection was dropped, not pooled: the client still works.
    server.add(Reply(text="Again"))
    with httpx.Client() as client:
        response = post(client, server)
        assert b"Again" in b"".join(sync_body(response))
        response.close()


def test_another_transport_keeps_httpx_stream() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=b"data: x\n\n"))
    with httpx.Client(transport=transport) as client:
        response = client.send(client.build_request("POST", "http://x/"), stream=True)
        assert b"".join(sync_body(response)) == b"data: x\n\n"
        response.close()


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
