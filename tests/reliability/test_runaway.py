"""The runaway guard: too much output or the same delta over and over stops the
stream with ``RunawayError``, and closing the connection stops the model."""

from __future__ import annotations

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, PROVIDERS, Api, make_config
from ._support import Recorder, run, wait_disconnect

pytestmark = pytest.mark.anyio


async def test_repeated_deltas(api: Api, server: MockServer) -> None:
    # The model is stuck: "ha" 200 times, still being generated when mal stops it.
    recorder = Recorder()
    config = make_config(server, max_repeated_deltas=5)
    async with api.client(config, hooks=recorder.hooks()) as client:
        for count, provider in enumerate(PROVIDERS, 1):
            server.add(Reply(tokens=["Oh", " no"] + ["ha"] * 200, chunk_delay=0.005))
            outcome = await run(client, MODELS[provider])
            error = outcome.error
            assert isinstance(error, mal.RunawayError), f"{provider}: {error!r}"
            assert error.reason == "repeated_deltas"
            assert not error.retryable
            assert error.partial_text == "Oh no" + "ha" * 5, provider
            # The fifth "ha" never reached the caller.
            assert outcome.text == "Oh no" + "ha" * 4, provider
            assert await wait_disconnect(server, count=count), (
                f"{provider}: the connection was not closed: the model runs on"
            )
        assert client.metrics.errors == {"RunawayError": len(PROVIDERS)}
        assert client.metrics.retries == 0
    assert len(server.requests) == len(PROVIDERS)
    assert [stats.error for stats in recorder.completes] == ["RunawayError"] * len(PROVIDERS)


async def test_max_output_chars(api: Api, server: MockServer) -> None:
    tokens = [f" w{i:02d}" for i in range(100)]  # four characters each
    full = "".join(tokens)
    config = make_config(server, max_output_chars=30)
    async with api.client(config) as client:
        for count, provider in enumerate(PROVIDERS, 1):
            server.add(Reply(tokens=tokens, chunk_delay=0.005))
            outcome = await run(client, MODELS[provider])
            error = outcome.error
            assert isinstance(error, mal.RunawayError), f"{provider}: {error!r}"
            assert error.reason == "max_output_chars"
            # The delta that passed the limit is the eighth (32 > 30 characters).
            assert error.partial_text == full[:32], provider
            assert outcome.text == full[:28], provider
            assert await wait_disconnect(server, count=count), (
                f"{provider}: the connection was not closed: the model runs on"
            )
    assert len(server.requests) == len(PROVIDERS)


async def test_the_guard_lets_normal_text_through(api: Api, server: MockServer) -> None:
    # Repeats below the limit, and a repeat run broken by another delta.
    tokens = ["ha", "ha", "ha", "!", "ha", "ha", "ha"]
    server.add(Reply(tokens=tokens))
    config = make_config(server, max_repeated_deltas=4, max_output_chars=100)
    async with api.client(config) as client:
        outcome = await run(client, MODELS["openai"])
    assert outcome.error is None, outcome.error
    assert outcome.text == "".join(tokens)


async def test_stream_text_is_what_was_yielded_when_the_guard_fires(
    api: Api, server: MockServer
) -> None:
    # Stream.text holds the text of the chunks yielded so far: the delta that
    # tripped the guard was never handed to the caller (it is in partial_text).
    server.add(Reply(tokens=["ha"] * 50, chunk_delay=0.005))
    config = make_config(server, max_repeated_deltas=3)
    async with api.client(config) as client:
        outcome = await run(client, MODELS["openai"])
    assert isinstance(outcome.error, mal.RunawayError)
    assert outcome.error.partial_text == "ha" * 3
    assert outcome.text == "ha" * 2
    assert outcome.stream.text == outcome.text
