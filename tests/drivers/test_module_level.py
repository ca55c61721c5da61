"""The module-level calls: ``mal.generate`` / ``mal.stream`` on one default client,
``mal.agenerate`` / ``mal.astream`` on one default client per event loop run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest
import trio

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, PROVIDERS, Api, collect

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_module_calls_share_one_client(
    api: Api, fresh_server: MockServer, provider: str
) -> None:
    server = fresh_server
    base_url = server.url(provider)
    model = MODELS[provider]
    server.add("First", "Second", "Third", "Fourth")
    assert await api.generate("Hi", model=model, base_url=base_url, stream=True) == "First"
    assert await api.generate("Hi", model=model, base_url=base_url, stream=False) == "Second"
    async with api.stream("Hi", model=model, base_url=base_url) as stream:
        chunks = await collect(stream)
    assert "".join(chunk.text for chunk in chunks) == stream.text == "Third"
    bare = api.stream("Hi", model=model, base_url=base_url)
    assert "".join([chunk.text async for chunk in bare]) == "Fourth"
    assert len(server.requests) == 4
    assert server.connections == 1


def test_async_module_calls_from_several_event_loops(fresh_server: MockServer) -> None:
    server = fresh_server
    url = server.url("ollama")

    async def main(n: int) -> tuple[str, str]:
        server.add(f"generated {n}", f"streamed {n}")
        text = await mal.agenerate("Hi", model="ollama/m", base_url=url)
        stream = mal.astream("Hi", model="ollama/m", base_url=url)
        assert isinstance(stream, mal.AsyncStream)
        streamed = "".join([chunk.text async for chunk in stream])
        return text, streamed

    assert asyncio.run(main(1)) == ("generated 1", "streamed 1")
    assert asyncio.run(main(2)) == ("generated 2", "streamed 2")
    assert trio.run(main, 3) == ("generated 3", "streamed 3")
    assert asyncio.run(main(4)) == ("generated 4", "streamed 4")
    assert len(server.requests) == 8


def test_sync_module_calls_read_the_environment_once(fresh_server: MockServer) -> None:
    """In a fresh interpreter: the default client is made on first use, with the
    environment of that moment."""
    server = fresh_server
    server.add("from ollama", "from openai", "again", "async")
    script = textwrap.dedent(
        """
        import asyncio, os, mal
        print(mal.generate("Hi", model="ollama/m", stream=False))
        print(mal.generate("Hi", model="openai/m", stream=False))
        os.environ["OPENAI_API_KEY"] = "sk-too-late"
        print(mal.generate("Hi", model="openai/m", stream=False))
        print(asyncio.run(mal.agenerate("Hi", model="openai/m", stream=False)))
        """
    )
    env = dict(os.environ)
    env.update(
        OLLAMA_HOST=f"127.0.0.1:{server.port}",
        OPENAI_BASE_URL=server.url("openai"),
        OPENAI_API_KEY="sk-first",
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["from ollama", "from openai", "again", "async"]
    ollama, openai, again, late = server.requests
    assert ollama.path == "/api/generate"
    assert openai.path == again.path == late.path == "/v1/chat/completions"
    assert openai.headers["authorization"] == "Bearer sk-first"
    # The sync default client was made before the change.
    assert again.headers["authorization"] == "Bearer sk-first"
    # The async default client is made on first use in its event loop: after it.
    assert late.headers["authorization"] == "Bearer sk-too-late"
    # One connection for the sync default client (both providers are on the same
    # host), one for the async default client.
    assert server.connections == 2


def test_module_calls_return_the_right_types(fresh_server: MockServer) -> None:
    url = fresh_server.url("openai")
    with mal.stream("Hi", model="openai/m", base_url=url) as stream:
        assert isinstance(stream, mal.Stream)
        assert "".join(chunk.text for chunk in stream) == Reply().text
