"""Cleanup: however a stream ends (read to its end, broken off, closed from
another thread, interrupted, cancelled) its response is closed, the server sees
the client go, and nothing leaks over many streams."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import anyio
import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, PROVIDERS, Api, StreamAdapter, make_config, read_into
from ._support import LONG_TOKENS, SHORT_TEXT, SHORT_TOKENS, wait_disconnect

#: A stream that sends two tokens, then stalls (no pings) for five seconds.
STALLED = Reply(tokens=["Hel", "lo", " there"], stall_after=2, stall=5)


# --------------------------------------------------------------------------- close() from a thread


def test_close_from_another_thread_unblocks_a_stalled_read(server: MockServer) -> None:
    # Two tokens, then a stall: silent, or with pings (bytes keep coming).
    with mal.Client(make_config(server, max_retries=0)) as client:
        for provider in PROVIDERS:
            for pings in (None, 0.05) if provider != "ollama" else (None,):
                where = f"{provider}, pings every {pings}s"
                server.reset()
                server.add(
                    Reply(
                        tokens=["Hel", "lo", " there"],
                        stall_after=2,
                        stall=5,
                        ping_interval=pings,
                    )
                )
                seen: list[str] = []
                stream = client.stream("Hi", model=MODELS[provider])
                timer = threading.Timer(0.2, stream.close)
                start = time.monotonic()
                timer.start()
                try:
                    for chunk in stream:  # must end quietly, without an error
                        seen.append(chunk.text)
                finally:
                    timer.cancel()
                elapsed = time.monotonic() - start
                assert elapsed < 1.2, f"{where}: close() took {elapsed:.2f}s to unblock the read"
                assert "".join(seen) == "Hello", where
                assert stream.text == "Hello", where
                assert server.wait_for_disconnect(2.0), where
                assert list(stream) == [], f"{where}: a closed stream stays closed"


def test_close_from_another_thread_while_waiting_for_the_headers(server: MockServer) -> None:
    # The server takes its time before the status line (Ollama loading a
    # model): close() must end that wait too, not only a wait for body bytes.
    server.add(Reply(headers_delay=2))
    with mal.Client(make_config(server, max_retries=0)) as client:
        stream = client.stream("Hi", model=MODELS["ollama"])
        timer = threading.Timer(0.2, stream.close)
        start = time.monotonic()
        timer.start()
        try:
            chunks = list(stream)
        finally:
            timer.cancel()
        elapsed = time.monotonic() - start
    assert chunks == []
    assert elapsed < 1.2, f"close() took {elapsed:.2f}s to end the wait for the headers"
    assert server.wait_for_disconnect(0.5)


def test_keyboard_interrupt_in_a_bare_for_loop(server: MockServer) -> None:
    # No ``with``: the dropped generator alone must close the response.
    server.add(Reply(tokens=LONG_TOKENS, chunk_delay=0.01))
    with mal.Client(make_config(server)) as client:

        def consume() -> None:
            for i, _ in enumerate(client.stream("Hi", model=MODELS["openai"])):
                if i == 2:
                    raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            consume()
        assert server.wait_for_disconnect(2.0)


# --------------------------------------------------------------------------- both APIs


@pytest.mark.anyio
async def test_keyboard_interrupt_from_progress_callback(api: Api, server: MockServer) -> None:
    calls: list[str] = []

    def callback(text: str) -> None:
        calls.append(text)
        if len(calls) == 2:
            raise KeyboardInterrupt

    async with api.client(make_config(server)) as client:
        for count, provider in enumerate(PROVIDERS, 1):
            calls.clear()
            server.add(Reply(tokens=LONG_TOKENS, chunk_delay=0.01))
            with pytest.raises(KeyboardInterrupt):
                await client.generate("Hi", model=MODELS[provider], progress_callback=callback)
            assert await wait_disconnect(server, count=count), provider
            assert calls == LONG_TOKENS[:2], provider
        assert client.metrics.retries == 0
    assert len(server.requests) == len(PROVIDERS)


@pytest.mark.anyio
async def test_keyboard_interrupt_from_the_loop_body(api: Api, server: MockServer) -> None:
    server.add(Reply(tokens=LONG_TOKENS, chunk_delay=0.01))
    async with api.client(make_config(server)) as client:
        stream = client.stream("Hi", model=MODELS["anthropic"])
        texts: list[str] = []
        with pytest.raises(KeyboardInterrupt):
            async with stream:
                async for chunk in stream:
                    texts.append(chunk.text)
                    if len(texts) == 3:
                        raise KeyboardInterrupt
        assert await wait_disconnect(server)
    assert stream.text == "".join(texts)


@pytest.mark.anyio
async def test_break_closes_the_response(api: Api, server: MockServer) -> None:
    async with api.client(make_config(server)) as client:
        for count, with_block in enumerate((True, False), 1):
            server.add(Reply(tokens=LONG_TOKENS, chunk_delay=0.01))
            stream = client.stream("Hi", model=MODELS["ollama"])
            if with_block:
                async with stream:
                    async for _ in stream:
                        break
            else:
                async for _ in stream:
                    break
            assert await wait_disconnect(server, count=count), f"with block: {with_block}"
            assert stream.text == LONG_TOKENS[0]


@pytest.mark.anyio
async def test_stream_read_to_its_end_reuses_the_connection(api: Api, server: MockServer) -> None:
    server.default = Reply(tokens=SHORT_TOKENS)
    async with api.client(make_config(server)) as client:
        for provider in PROVIDERS:
            for _ in range(3):
                stream = client.stream("Hi", model=MODELS[provider])
                async with stream:
                    texts = [chunk.text async for chunk in stream]
                assert "".join(texts) == SHORT_TEXT
            assert await client.generate("Hi", model=MODELS[provider]) == SHORT_TEXT
            assert await client.generate("Hi", model=MODELS[provider], stream=True) == SHORT_TEXT
    assert len(server.requests) == 15
    assert server.connections == 1
    assert server.disconnects == 0


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.anyio
async def test_a_thousand_streams_leak_nothing(api: Api, server: MockServer) -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to count open file descriptors")
    server.default = Reply(tokens=SHORT_TOKENS)
    broken = 0
    baseline = 0
    async with api.client(make_config(server, max_retries=0)) as client:
        for i in range(1000):
            stream = client.stream("Hi", model=MODELS[PROVIDERS[i % 3]])
            if i % 10 == 9:
                # Broken off after one or two chunks: inside the ``with`` block,
                # or a bare loop left to the dropped iterator.
                broken += 1
                stop = 1 + (i // 10) % 2
                seen = 0
                if i % 20 == 9:
                    async with stream:
                        async for _ in stream:
                            seen += 1
                            if seen == stop:
                                break
                else:
                    async for _ in stream:
                        seen += 1
                        if seen == stop:
                            break
                assert seen == stop
            else:
                async with stream:
                    texts = [chunk.text async for chunk in stream]
                assert "".join(texts) == SHORT_TEXT
            if i == 9:
                await anyio.sleep(0.05)
                baseline = _open_fds()
        assert len(server.requests) == 1000
        await anyio.sleep(0.05)  # let the server close its side of the last ones
        assert _open_fds() <= baseline + 5, "file descriptors leak"
        # Each broken-off stream dropped its connection; every other one reused one.
        assert server.connections <= broken + 3
        assert client.metrics.requests == 1000
        assert client.metrics.errors == {}


# --------------------------------------------------------------------------- close() from elsewhere
# The same in both APIs: close() from another thread, aclose() from another
# task, ends whatever the reader waits for at once, and the stream ends quietly.


async def read_closed_from_elsewhere(api: Api, stream: StreamAdapter, after: float) -> list[str]:
    """Read ``stream`` in a bare loop while, ``after`` seconds in, another
    thread (sync) or another task (async) closes it; the texts the loop saw."""
    texts: list[str] = []
    if isinstance(stream.raw, mal.Stream):
        timer = threading.Timer(after, stream.raw.close)
        timer.start()
        try:
            texts = [chunk.text for chunk in stream.raw]
        finally:
            timer.cancel()
        return texts

    async def close_later() -> None:
        await anyio.sleep(after)
        await stream.aclose()

    async with anyio.create_task_group() as group:
        group.start_soon(close_later)
        await read_into(stream, texts, with_block=False)
    return texts


@pytest.mark.anyio
async def test_close_from_elsewhere_ends_a_backoff_at_once(api: Api, server: MockServer) -> None:
    # The server asks for 30 s before the retry; the caller gives up after 0.3 s.
    server.default = Reply(status=503, headers={"retry-after": "30"})
    async with api.client(make_config(server, max_retries=2)) as client:
        stream = client.stream("Hi", model=MODELS["openai"])
        start = time.monotonic()
        texts = await read_closed_from_elsewhere(api, stream, 0.3)
        elapsed = time.monotonic() - start
        assert texts == []
        assert elapsed < 2, f"the close took {elapsed:.2f} s to end the back-off"
        assert len(server.requests) == 1, "no retry goes out after the close"
        assert [chunk async for chunk in stream] == [], "a closed stream stays closed"
        # The client still works afterwards.
        server.default = None
        server.add(Reply(tokens=SHORT_TOKENS))
        assert await client.generate("Hi", model=MODELS["openai"]) == SHORT_TEXT


@pytest.mark.anyio
async def test_close_from_elsewhere_ends_the_wait_for_the_headers(
    api: Api, server: MockServer
) -> None:
    server.add(Reply(headers_delay=5))
    async with api.client(make_config(server, max_retries=2)) as client:
        stream = client.stream("Hi", model=MODELS["ollama"])
        start = time.monotonic()
        texts = await read_closed_from_elsewhere(api, stream, 0.3)
        elapsed = time.monotonic() - start
        assert texts == []
        assert elapsed < 2, f"the close took {elapsed:.2f} s to end the wait for the headers"
        assert await wait_disconnect(server)
        assert len(server.requests) == 1, "no retry goes out after the close"


@pytest.mark.anyio
async def test_close_from_elsewhere_ends_a_stalled_read(api: Api, server: MockServer) -> None:
    server.add(STALLED)
    async with api.client(make_config(server, max_retries=2)) as client:
        stream = client.stream("Hi", model=MODELS["anthropic"])
        start = time.monotonic()
        texts = await read_closed_from_elsewhere(api, stream, 0.3)
        elapsed = time.monotonic() - start
        assert "".join(texts) == stream.text == "Hello"
        assert elapsed < 2, f"the close took {elapsed:.2f} s to end the read"
        assert await wait_disconnect(server)
        assert [chunk async for chunk in stream] == [], "a closed stream stays closed"


# --------------------------------------------------------------------------- anyio cancellation
# The async API only: ``flavour`` is parametrized over the two backends.


@pytest.mark.parametrize("flavour", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_move_on_after_mid_stream_closes_the_response(api: Api, server: MockServer) -> None:
    async with api.client(make_config(server, max_retries=0)) as client:
        for count, with_block in enumerate((True, False), 1):
            server.add(STALLED)
            texts: list[str] = []
            stream = client.stream("Hi", model=MODELS["openai"])
            start = time.monotonic()
            with anyio.move_on_after(0.2) as scope:
                await read_into(stream, texts, with_block=with_block)
            assert scope.cancelled_caught
            assert time.monotonic() - start < 1.0
            assert await wait_disconnect(server, count=count), f"with block: {with_block}"
            assert "".join(texts) == "Hello"
            assert stream.text == "Hello"


#: A read of a stream, to be interrupted.
Read = Callable[[], Coroutine[Any, Any, None]]


async def _fail_after(read: Read) -> None:
    """``anyio.fail_after`` ends the read with a ``TimeoutError``."""
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.2):
            await read()


async def _cancel_from_another_task(read: Read) -> None:
    """Another task cancels the task group of the read."""
    async with anyio.create_task_group() as group:
        group.start_soon(read)
        await anyio.sleep(0.2)
        group.cancel_scope.cancel()


@pytest.mark.parametrize("flavour", ["asyncio", "trio"])
@pytest.mark.parametrize(
    "interrupt",
    [
        pytest.param(_fail_after, id="fail_after"),
        pytest.param(_cancel_from_another_task, id="from-another-task"),
    ],
)
@pytest.mark.anyio
async def test_cancelled_mid_stream_closes_the_response(
    api: Api,
    server: MockServer,
    interrupt: Callable[[Read], Awaitable[None]],
) -> None:
    server.add(STALLED)
    texts: list[str] = []
    async with api.client(make_config(server, max_retries=0)) as client:
        stream = client.stream("Hi", model=MODELS["anthropic"])
        await interrupt(functools.partial(read_into, stream, texts, with_block=True))
        assert await wait_disconnect(server)
    assert "".join(texts) == "Hello"


@pytest.mark.parametrize("flavour", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_cancelled_while_waiting_for_the_headers(api: Api, server: MockServer) -> None:
    server.add(Reply(headers_delay=5))
    async with api.client(make_config(server, max_retries=0)) as client:
        stream = client.stream("Hi", model=MODELS["ollama"])
        with anyio.move_on_after(0.2) as scope:
            await read_into(stream, [], with_block=False)
        assert scope.cancelled_caught
        assert await wait_disconnect(server)


@pytest.mark.parametrize("flavour", ["trio"])
@pytest.mark.anyio
async def test_trio_cancel_scope_closes_the_response(api: Api, server: MockServer) -> None:
    import trio

    server.add(STALLED)
    texts: list[str] = []
    async with api.client(make_config(server, max_retries=0)) as client:
        stream = client.stream("Hi", model=MODELS["ollama"])
        with trio.move_on_after(0.2) as scope:
            await read_into(stream, texts, with_block=False)
        assert scope.cancelled_caught
        assert await wait_disconnect(server)
        # The client still works afterwards.
        server.add(Reply(tokens=SHORT_TOKENS))
        assert await client.generate("Hi", model=MODELS["ollama"]) == SHORT_TEXT
    assert "".join(texts) == "Hello"
