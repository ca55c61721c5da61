"""The opt-in aiohttp transport: the same behaviour through mal's async driver."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
import trio

import mal
from mal.testing import MockServer, Reply

PROVIDERS = ["ollama", "openai", "anthropic"]


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


def client_for(server: MockServer, **config: object) -> mal.AsyncClient:
    base_urls = {provider: server.url(provider) for provider in PROVIDERS}
    return mal.AsyncClient(
        mal.MALConfig(base_urls=base_urls, max_retries=0, **config),  # type: ignore[arg-type]
        transport="aiohttp",
    )


@pytest.mark.parametrize("provider", PROVIDERS)
def test_streams_the_same_text(server: MockServer, provider: str) -> None:
    text = "Héllo there, 漢字 and 😀 too."
    server.default = Reply(text=text, reasoning="thinking first")

    async def main() -> tuple[str, str, str | None, str]:
        async with client_for(server) as client:
            async with client.stream("Hi", model=f"{provider}/m") as stream:
                reasoning = "".join([chunk.reasoning async for chunk in stream])
            whole = await client.generate("Hi", model=f"{provider}/m", stream=False)
            return stream.text, reasoning, stream.finish_reason, whole

    streamed, reasoning, finish, whole = asyncio.run(main())
    assert streamed == text == whole
    assert reasoning == "thinking first"
    assert finish == "stop"


def test_a_dropped_body_is_an_incomplete_stream(server: MockServer) -> None:
    server.add(Reply(tokens=["one ", "two ", "three"], drop_after=150, chunk_delay=0.05))

    async def main() -> None:
        async with client_for(server) as client:
            await client.generate("Hi", model="ollama/m", stream=True)

    with pytest.raises(mal.IncompleteStreamError) as caught:
        asyncio.run(main())
    assert "one two three".startswith(caught.value.partial_text)


def test_connection_refused_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> None:
        async with mal.AsyncClient(mal.MALConfig(max_retries=0), transport="aiohttp") as client:
            await client.generate("Hi", model="ollama/m", base_url=f"http://127.0.0.1:{port}")

    with pytest.raises(mal.APIConnectionError):
        asyncio.run(main())


def test_the_idle_clock_holds(server: MockServer) -> None:
    server.add(Reply(tokens=["a", "b", "c"], stall_after=1, ping_interval=0.05))

    async def main() -> None:
        async with client_for(server, idle_timeout=0.3) as client:
            await client.generate("Hi", model="openai/m", stream=True)

    with pytest.raises(mal.APITimeoutError) as caught:
        asyncio.run(main())
    assert caught.value.phase == "idle"
    assert caught.value.partial_text == "a"


def test_trio_is_refused_with_a_clear_error(server: MockServer) -> None:
    async def main() -> None:
        async with client_for(server) as client:
            await client.generate("Hi", model="openai/m")

    with pytest.raises(mal.ConfigError, match="asyncio only"):
        trio.run(main)


def test_trio_is_refused_for_embeddings_too(server: MockServer) -> None:
    async def main() -> None:
        async with client_for(server) as client:
            await client.embed("Hi", model="openai/text-embedding-mock")

    with pytest.raises(mal.ConfigError, match="asyncio only"):
        trio.run(main)
    assert server.requests == []


def test_a_sync_client_refuses_the_aiohttp_transport() -> None:
    with pytest.raises(mal.ConfigError, match=r"transport='aiohttp' is for mal\.AsyncClient"):
        mal.Client(transport="aiohttp")  # type: ignore[arg-type]
    with pytest.raises(mal.ConfigError, match="transport must be 'httpx', not 'h2'"):
        mal.Client(transport="h2")  # type: ignore[arg-type]
