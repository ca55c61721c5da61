"""Network behaviour against the local server: refused connections, stalls,
dropped connections, missing end markers, in-band errors, status errors,
closing on ``break`` and connection reuse."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import mal
from mal.testing import MockServer, Reply, split_tokens

from ..support.adapters import MODELS, PROVIDERS, Api, ClientAdapter, collect, read_into
from ._support import wait_disconnect

pytestmark = pytest.mark.anyio

LONG_TEXT = " ".join(f"word{i}" for i in range(60))
"""Sixty tokens: with a small chunk_delay the server is still sending when the
client goes away, so it sees the disconnect."""


async def run(
    client: ClientAdapter, model: str, *, streamed: bool, **options: Any
) -> list[mal.Chunk]:
    """Read a stream to its end, or ``generate``; returns the chunks seen."""
    if streamed:
        stream = client.stream("Hi", model=model, **options)
        chunks: list[mal.Chunk] = []
        async with stream:
            async for chunk in stream:
                chunks.append(chunk)
        return chunks
    return [mal.Chunk(text=await client.generate("Hi", model=model, **options))]


#: Short, to keep the tests fast; the server sends everything before a stall at once.
READ_TIMEOUT = 0.2

STREAMED = pytest.mark.parametrize("streamed", [True, False], ids=["stream", "generate"])


# --------------------------------------------------------------------------- connecting


@pytest.mark.parametrize("provider", PROVIDERS)
@STREAMED
async def test_connection_refused(
    api: Api, closed_port: int, provider: str, streamed: bool
) -> None:
    base_url = f"http://127.0.0.1:{closed_port}" + ("/v1" if provider == "openai" else "")
    config = mal.MALConfig(base_urls={provider: base_url}, max_retries=0)
    async with api.client(config) as client:
        with pytest.raises(mal.APIConnectionError) as info:
            await run(client, MODELS[provider], streamed=streamed)
    error = info.value
    assert not isinstance(error, mal.APITimeoutError)
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert error.retryable is True
    assert error.partial_text == ""


# --------------------------------------------------------------------------- read timeouts


@pytest.mark.parametrize(
    ("provider", "stall_after"),
    [
        pytest.param("ollama", 0, id="ollama-after-headers"),
        pytest.param("ollama", 3, id="ollama-after-tokens"),
        pytest.param("openai", 3, id="openai-after-tokens"),
        pytest.param("anthropic", 3, id="anthropic-after-tokens"),
    ],
)
async def test_stall_longer_than_read_timeout(
    api: Api, server: MockServer, provider: str, stall_after: int
) -> None:
    tokens = ["Once", " upon", " a", " time", " there", " was"]
    server.add(Reply(tokens=tokens, stall_after=stall_after, stall=5.0))
    received: list[str] = []
    async with api.client_for(server, read_timeout=READ_TIMEOUT) as client:
        stream = client.stream("Hi", model=MODELS[provider])
        with pytest.raises(mal.APITimeoutError) as info:
            await read_into(stream, received)
    error = info.value
    assert error.phase == "read"
    assert error.partial_text == "".join(tokens[:stall_after])
    assert "".join(received) == error.partial_text == stream.text
    assert isinstance(error.__cause__, httpx.ReadTimeout)
    assert error.retryable is True
    # The response was closed, so the stalled server sees the client go.
    assert await wait_disconnect(server)


async def test_headers_later_than_read_timeout(api: Api, server: MockServer) -> None:
    server.add(Reply(headers_delay=3.0))
    async with api.client_for(server, read_timeout=READ_TIMEOUT) as client:
        with pytest.raises(mal.APITimeoutError) as info:
            await client.generate("Hi", model=MODELS["openai"], stream=False)
    assert info.value.phase == "read"
    assert info.value.partial_text == ""
    assert isinstance(info.value.__cause__, httpx.TimeoutException)


# --------------------------------------------------------------------------- broken bodies


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_connection_dropped_mid_body(api: Api, server: MockServer, provider: str) -> None:
    server.add(Reply(text=LONG_TEXT, drop_after=1000))
    received: list[str] = []
    async with api.client_for(server) as client:
        stream = client.stream("Hi", model=MODELS[provider])
        with pytest.raises(mal.IncompleteStreamError) as info:
            await read_into(stream, received)
    error = info.value
    assert error.partial_text, "some text arrived before the drop"
    assert LONG_TEXT.startswith(error.partial_text)
    assert len(error.partial_text) < len(LONG_TEXT)
    assert "".join(received) == error.partial_text == stream.text
    assert isinstance(error.__cause__, httpx.TransportError)
    assert error.retryable is True


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_connection_dropped_mid_body_not_streamed(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(Reply(text=LONG_TEXT, drop_after=100))
    async with api.client_for(server) as client:
        with pytest.raises(mal.IncompleteStreamError) as info:
            await client.generate("Hi", model=MODELS[provider], stream=False)
    assert info.value.partial_text == ""
    assert isinstance(info.value.__cause__, httpx.TransportError)
    assert info.value.retryable is True


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("via", ["stream", "generate"])
async def test_missing_end_marker(api: Api, server: MockServer, provider: str, via: str) -> None:
    server.add(Reply(text="Nearly done", omit_end=True))
    received: list[str] = []
    async with api.client_for(server) as client:
        with pytest.raises(mal.IncompleteStreamError) as info:
            if via == "stream":
                await read_into(client.stream("Hi", model=MODELS[provider]), received)
            else:
                await client.generate("Hi", model=MODELS[provider], stream=True)
    assert info.value.partial_text == "Nearly done"
    if via == "stream":
        assert "".join(received) == "Nearly done"
    assert info.value.__cause__ is None  # the body ended cleanly
    assert info.value.retryable is True


# --------------------------------------------------------------------------- in-band errors


@pytest.mark.parametrize(
    ("provider", "error_type", "expected_type", "retryable"),
    [
        ("ollama", None, None, False),
        ("openai", None, "server_error", True),
        ("openai", "invalid_request_error", "invalid_request_error", False),
        ("anthropic", "overloaded_error", "overloaded_error", True),
        ("anthropic", "api_error", "api_error", True),
        ("anthropic", "invalid_request_error", "invalid_request_error", False),
    ],
)
async def test_in_band_error(
    api: Api,
    server: MockServer,
    provider: str,
    error_type: str | None,
    expected_type: str | None,
    retryable: bool,
) -> None:
    tokens = ["Half", " an", " answer"]
    server.add(Reply(tokens=tokens, error_after=2, error_type=error_type))
    received: list[str] = []
    async with api.client_for(server) as client:
        with pytest.raises(mal.StreamError) as info:
            await read_into(client.stream("Hi", model=MODELS[provider]), received)
    error = info.value
    assert type(error) is mal.StreamError
    assert error.error_type == expected_type
    assert error.retryable is retryable
    assert error.partial_text == "Half an" == "".join(received)


# --------------------------------------------------------------------------- status errors

STATUS_CLASSES: list[tuple[int, type[mal.APIStatusError], bool]] = [
    (400, mal.BadRequestError, False),
    (401, mal.AuthenticationError, False),
    (403, mal.PermissionDeniedError, False),
    (404, mal.NotFoundError, False),
    (408, mal.APIStatusError, True),
    (409, mal.ConflictError, True),
    (422, mal.UnprocessableEntityError, False),
    (429, mal.RateLimitError, True),
    (500, mal.InternalServerError, True),
    (503, mal.InternalServerError, True),
    (529, mal.OverloadedError, True),
]


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [pytest.param(*case, id=str(case[0])) for case in STATUS_CLASSES],
)
async def test_status_errors(
    api: Api, server: MockServer, status: int, cls: type[mal.APIStatusError], retryable: bool
) -> None:
    headers = {"Retry-After": "7"} if status == 429 else {}
    async with api.client_for(server) as client:
        for provider in PROVIDERS:
            for streamed in (True, False):
                where = f"{provider}, {'stream' if streamed else 'generate'}"
                server.add(Reply(status=status, headers=headers))
                with pytest.raises(mal.APIStatusError) as info:
                    await run(client, MODELS[provider], streamed=streamed)
                error = info.value
                assert type(error) is cls, where
                assert error.status_code == status, where
                assert error.provider == provider, where
                assert error.retryable is retryable, where
                assert error.partial_text == "", where
                assert error.body, where  # the decoded error body
                if isinstance(error, mal.RateLimitError):
                    assert error.retry_after == 7.0, where
    assert len(server.requests) == 6  # no retry with max_retries=0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rate_limit_without_retry_after(api: Api, server: MockServer, provider: str) -> None:
    server.add(Reply(status=429), Reply(status=429, headers={"retry-after-ms": "1500"}))
    async with api.client_for(server) as client:
        with pytest.raises(mal.RateLimitError) as bare:
            await client.generate("Hi", model=MODELS[provider])
        with pytest.raises(mal.RateLimitError) as ms:
            await client.generate("Hi", model=MODELS[provider])
    assert bare.value.retry_after is None
    assert ms.value.retry_after == 1.5


# --------------------------------------------------------------------------- closing on break


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("with_block", [True, False], ids=["with", "bare-loop"])
async def test_break_closes_the_response(
    api: Api, server: MockServer, provider: str, with_block: bool
) -> None:
    server.add(Reply(text=LONG_TEXT, chunk_delay=0.02))
    async with api.client_for(server) as client:
        seen = 0
        if with_block:
            async with client.stream("Hi", model=MODELS[provider]) as stream:
                async for _ in stream:
                    seen += 1
                    if seen == 2:
                        break
            assert await wait_disconnect(server)
        else:
            stream = client.stream("Hi", model=MODELS[provider])
            async for _ in stream:
                seen += 1
                if seen == 2:
                    break
            assert await wait_disconnect(server)
        assert seen == 2
        assert LONG_TEXT.startswith(stream.text)
        assert len(stream.text) < len(LONG_TEXT)
        # The client stays usable.
        server.add(Reply(text="Again"))
        assert await client.generate("Hi", model=MODELS[provider], stream=True) == "Again"


# --------------------------------------------------------------------------- connection reuse


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_streams_read_to_the_end_reuse_one_connection(
    api: Api, server: MockServer, provider: str
) -> None:
    async with api.client_for(server) as client:
        for i in range(10):
            server.add(Reply(text=f"Answer number {i}."))
            async with client.stream("Hi", model=MODELS[provider]) as stream:
                chunks = await collect(stream)
            assert "".join(chunk.text for chunk in chunks) == f"Answer number {i}."
        assert len(server.requests) == 10
        assert server.connections == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_generations_reuse_one_connection(
    api: Api, server: MockServer, provider: str
) -> None:
    async with api.client_for(server) as client:
        for i in range(10):
            server.add(Reply(tokens=split_tokens(f"Answer number {i}.")))
            streamed = i % 2 == 0
            text = await client.generate("Hi", model=MODELS[provider], stream=streamed)
            assert text == f"Answer number {i}."
        assert server.connections == 1
