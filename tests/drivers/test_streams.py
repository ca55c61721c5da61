"""Stream objects: closing mid-stream, iterating after close, leaving a ``with``
block by an exception, the state they expose, and the warning of a sync stream
dropped without being closed."""

from __future__ import annotations

import gc
import warnings

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, PROVIDERS, Api, collect, make_config
from ._support import wait_disconnect

pytestmark = pytest.mark.anyio

LONG_TEXT = " ".join(f"word{i}" for i in range(60))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_close_mid_stream(api: Api, server: MockServer, provider: str) -> None:
    server.add(Reply(text=LONG_TEXT, chunk_delay=0.02))
    async with api.client_for(server) as client:
        stream = client.stream("Hi", model=MODELS[provider])
        chunks = [await stream.next() for _ in range(3)]
        text = "".join(chunk.text for chunk in chunks)
        assert stream.text == text
        await stream.aclose()
        assert await wait_disconnect(server)
        assert stream.text == text  # what was yielded is kept
        assert LONG_TEXT.startswith(text)
        assert stream.finish_reason is None
        # Iterating after close yields nothing, and closing again is harmless.
        assert await collect(stream) == []
        await stream.aclose()
        assert stream.text == text
        assert len(server.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_close_inside_the_loop_ends_it(api: Api, server: MockServer, provider: str) -> None:
    server.add(Reply(text=LONG_TEXT, chunk_delay=0.02))
    async with api.client_for(server) as client:
        stream = client.stream("Hi", model=MODELS[provider])
        seen: list[mal.Chunk] = []
        async for chunk in stream:
            seen.append(chunk)
            if len(seen) == 2:
                await stream.aclose()
        assert len(seen) == 2
        assert stream.text == "".join(chunk.text for chunk in seen)
        assert await wait_disconnect(server)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_closed_before_start_sends_nothing(
    api: Api, server: MockServer, provider: str
) -> None:
    async with api.client_for(server) as client:
        stream = client.stream("Hi", model=MODELS[provider])
        await stream.aclose()
        assert await collect(stream) == []
        assert stream.text == ""
        # The client still works.
        assert await client.generate("Hi", model=MODELS[provider]) == Reply().text
    assert len(server.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_read_to_the_end_then_iterated_again(
    api: Api, server: MockServer, provider: str
) -> None:
    async with api.client_for(server) as client:
        async with client.stream("Hi", model=MODELS[provider]) as stream:
            first = await collect(stream)
            assert await collect(stream) == []
        assert await collect(stream) == []
    assert "".join(chunk.text for chunk in first) == stream.text == Reply().text
    assert len(server.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_exception_in_with_block_closes(api: Api, server: MockServer, provider: str) -> None:
    server.add(Reply(text=LONG_TEXT, chunk_delay=0.02))
    async with api.client_for(server) as client:
        with pytest.raises(KeyError):
            async with client.stream("Hi", model=MODELS[provider]) as stream:
                await stream.next()
                await stream.next()
                raise KeyError("boom")
        assert await wait_disconnect(server)
        assert LONG_TEXT.startswith(stream.text)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_state_before_during_and_after(api: Api, server: MockServer, provider: str) -> None:
    server.add(Reply(text="Alpha beta gamma delta", input_tokens=4, output_tokens=6))
    async with api.client_for(server) as client:
        stream = client.stream("Hi", model=MODELS[provider])
        assert stream.text == ""
        assert stream.finish_reason is None
        async with stream:
            seen = ""
            async for chunk in stream:
                seen += chunk.text
                assert stream.text == seen  # text so far, at every step
        assert stream.finish_reason == "stop"
        assert stream.usage is not None
        assert (stream.usage.input_tokens, stream.usage.output_tokens) == (4, 6)
        assert stream.text == "Alpha beta gamma delta"


# --------------------------------------------------------------------------- sync only


def _sync_client(server: MockServer) -> mal.Client:
    return mal.Client(make_config(server, max_retries=0))


def _stream_warnings(record: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [
        w
        for w in record
        if issubclass(w.category, ResourceWarning)
        and (isinstance(w.source, mal.Stream) or str(w.message).startswith("<Stream"))
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_unclosed_sync_stream_warns_and_closes(server: MockServer, provider: str) -> None:
    server.add(Reply(text=LONG_TEXT, chunk_delay=0.02))
    with _sync_client(server) as client:
        stream = client.stream("Hi", model=MODELS[provider])
        assert isinstance(next(stream), mal.Chunk)
        gc.collect()  # earlier tests' garbage, and its warnings, out of the way
        with pytest.warns(ResourceWarning) as record:
            del stream
            gc.collect()
        # Not just any ResourceWarning: the stream's own.
        assert _stream_warnings(record.list)
        assert server.wait_for_disconnect(1.0)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_sync_stream_read_to_the_end_does_not_warn(server: MockServer, provider: str) -> None:
    with _sync_client(server) as client:
        stream = client.stream("Hi", model=MODELS[provider])
        text = "".join(chunk.text for chunk in stream)
        assert text == Reply().text
        gc.collect()
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            del stream
            gc.collect()
        assert _stream_warnings(record) == []
