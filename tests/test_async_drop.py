"""An async stream dropped unclosed mid-body warns and tells the server at once."""

from __future__ import annotations

import asyncio
import gc

import pytest

import mal
from mal.testing import MockServer, Reply


def test_dropped_async_stream_warns_and_disconnects() -> None:
    with MockServer() as server:
        server.add(Reply(tokens=["a", "b", "c", "d"], chunk_delay=0.05, stall_after=2))
        config = mal.MALConfig(base_urls={"openai": server.url("openai")})

        async def main() -> None:
            async with mal.AsyncClient(config) as client:
                stream = client.stream("Hi", model="openai/m")
                first = await stream.__anext__()
                assert first.text == "a"
                with pytest.warns(ResourceWarning, match="was not closed"):
                    del stream
                    gc.collect()
                # The server sees the connection go while the loop runs on.
                for _ in range(100):
                    if server.disconnects:
                        break
                    await asyncio.sleep(0.01)

        asyncio.run(main())
        assert server.disconnects == 1
