"""A user's own httpx client (sync, asyncio and trio): mal sends through it,
leaves it open, and its own timeouts and redirect policy still hold."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import Api, make_config

pytestmark = pytest.mark.anyio


def users_client(api: Api, **kwargs: Any) -> Any:
    return httpx.Client(**kwargs) if api.sync else httpx.AsyncClient(**kwargs)


async def close(api: Api, http: Any) -> None:
    if api.sync:
        http.close()
    else:
        await http.aclose()


async def test_calls_go_through_it_and_it_stays_open(api: Api, server: MockServer) -> None:
    seen: list[str] = []

    def on_request(request: httpx.Request) -> None:
        seen.append(request.headers.get("x-team", ""))

    async def on_request_async(request: httpx.Request) -> None:
        on_request(request)

    hook = on_request if api.sync else on_request_async
    http = users_client(api, headers={"x-team": "agents"}, event_hooks={"request": [hook]})
    server.add(Reply(text="One."), Reply(text="Two."))
    async with api.client(make_config(server, max_retries=0), http_client=http) as client:
        assert await client.generate("?", model="openai/gpt-x") == "One."
    # mal did not close a client it did not make: it still works for mal and for its owner.
    assert not http.is_closed
    async with api.client(make_config(server, max_retries=0), http_client=http) as client:
        assert await client.generate("?", model="ollama/llama") == "Two."
    assert seen == ["agents", "agents"]
    assert [r.headers.get("x-team") for r in server.requests] == ["agents", "agents"]
    await close(api, http)


async def test_mals_timeouts_hold(api: Api, server: MockServer) -> None:
    # The user's client waits forever; the call's read timeout still applies.
    http = users_client(api, timeout=None)
    server.add(Reply(tokens=["Hel", "lo"], stall_after=1, stall=5))
    config = make_config(server, max_retries=0, read_timeout=0.3)
    async with api.client(config, http_client=http) as client:
        stream = client.stream("?", model="openai/gpt-x")
        texts: list[str] = []
        with pytest.raises(mal.APITimeoutError) as info:
            async with stream:
                async for chunk in stream:
                    texts.append(chunk.text)
    assert info.value.phase == "read"
    assert "".join(texts) == info.value.partial_text == "Hel"
    await close(api, http)


async def test_redirects_are_not_followed(api: Api, server: MockServer) -> None:
    # Even by a client that follows them: the API key must not reach another host.
    http = users_client(api, follow_redirects=True)
    server.add(Reply(status=307, headers={"location": "http://127.0.0.2:9/v1/chat/completions"}))
    config = make_config(server, max_retries=0, api_keys={"openai": "sk-secret"})
    async with api.client(config, http_client=http) as client:
        with pytest.raises(mal.APIStatusError, match="which mal does not follow") as info:
            await client.generate("?", model="openai/gpt-x")
    assert info.value.status_code == 307
    assert len(server.requests) == 1
    await close(api, http)


def test_close_from_another_thread_wakes_a_read_on_it(server: MockServer) -> None:
    # Sync only: the stalled read is on a socket of the user's client's pool.
    import threading
    import time

    server.add(Reply(tokens=["Hel", "lo"], stall_after=1, stall=5))
    with (
        httpx.Client() as http,
        mal.Client(make_config(server, max_retries=0), http_client=http) as client,
    ):
        stream = client.stream("?", model="openai/gpt-x")
        timer = threading.Timer(0.3, stream.close)
        start = time.monotonic()
        timer.start()
        try:
            texts = [chunk.text for chunk in stream]
        finally:
            timer.cancel()
        elapsed = time.monotonic() - start
        assert texts == ["Hel"] and stream.text == "Hel"
        assert elapsed < 2, f"close() took {elapsed:.2f} s to wake the read"
        assert not http.is_closed
    assert server.wait_for_disconnect(1)


def test_close_from_another_thread_with_a_transport_without_a_socket() -> None:
    # A custom transport exposes no socket to shut down: the close takes
    # effect when the read in progress returns, and nothing after it is handed out.
    import threading
    import time

    events = [
        b'data: {"choices":[{"index":0,"delta":{"content":"piece %d "}}]}\n\n' % i
        for i in range(50)
    ]

    class Slow(httpx.SyncByteStream):
        def __iter__(self) -> Any:
            for event in events:
                time.sleep(0.05)
                yield event

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Slow())

    http = httpx.Client(transport=httpx.MockTransport(handler))
    config = mal.MALConfig(base_urls={"openai": "http://mock/v1"}, max_retries=0)
    with mal.Client(config, http_client=http) as client:
        stream = client.stream("?", model="openai/gpt-x")
        seen: list[str] = []
        timer = threading.Timer(0.3, stream.close)
        timer.start()
        try:
            for chunk in stream:
                seen.append(chunk.text)
        finally:
            timer.cancel()
    assert 2 <= len(seen) <= 8, seen  # stopped near 0.3 s, not after all 50 pieces
    assert stream.text == "".join(seen)
