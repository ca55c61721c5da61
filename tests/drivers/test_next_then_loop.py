"""A stream read first with ``next()`` / ``anext()`` and then with a loop goes on
where ``next()`` stopped: the loop does not start a second read of the body."""

from __future__ import annotations

import pytest

import mal
from mal.testing import MockServer, Reply

TEXT = "one two three four five six seven eight nine ten eleven twelve"


def test_next_then_for(server: MockServer) -> None:
    server.add(Reply(text=TEXT))
    config = mal.MALConfig(base_urls={"openai": server.url("openai")}, max_retries=0)
    with mal.Client(config) as client, client.stream("Hi", model="openai/m") as s:
        first = next(s)
        rest = list(s)
    assert first.text + "".join(c.text for c in rest) == TEXT
    assert s.text == TEXT
    assert len(server.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_anext_then_async_for(server: MockServer, anyio_backend: str) -> None:
    server.add(Reply(text=TEXT))
    config = mal.MALConfig(base_urls={"openai": server.url("openai")}, max_retries=0)
    async with mal.AsyncClient(config) as client, client.stream("Hi", model="openai/m") as s:
        first = await s.__anext__()
        rest = [chunk async for chunk in s]
    assert first.text + "".join(c.text for c in rest) == TEXT
    assert s.text == TEXT
    assert len(server.requests) == 1
