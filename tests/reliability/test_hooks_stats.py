"""Hooks, per-call stats and per-client metrics."""

from __future__ import annotations

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, PROVIDERS, Api, make_config
from ._support import SHORT_TEXT, SHORT_TOKENS, Recorder, run

pytestmark = pytest.mark.anyio


async def test_hooks_and_stats_of_a_streamed_call(api: Api, server: MockServer) -> None:
    recorder = Recorder()
    async with api.client(make_config(server), hooks=recorder.hooks()) as client:
        for provider in PROVIDERS:
            recorder.clear()
            reply = Reply(tokens=SHORT_TOKENS, chunk_delay=0.01, input_tokens=13, output_tokens=9)
            server.add(reply)
            progress: list[str] = []
            outcome = await run(client, MODELS[provider], progress_callback=progress.append)
            assert outcome.error is None, f"{provider}: {outcome.error!r}"
            assert outcome.text == SHORT_TEXT, provider
            assert progress == SHORT_TOKENS, provider

            (info,) = recorder.requests
            assert isinstance(info, mal.RequestInfo)
            assert "headers" not in mal.RequestInfo.__struct_fields__
            assert info.provider == provider
            assert info.model == MODELS[provider].split("/", 1)[1]
            assert info.url.startswith(server.base_url)
            assert info.streamed is True
            assert info.attempt == 0

            stats = outcome.stream.stats
            (completed,) = recorder.completes
            assert completed == stats, provider
            assert stats.provider == provider
            assert stats.model == info.model
            assert stats.streamed is True
            ttft = stats.time_to_first_token
            assert ttft is not None and ttft > 0, provider
            assert recorder.first_tokens == [ttft], provider
            assert stats.duration >= ttft + 0.02, provider  # three gaps of 10 ms
            assert stats.chunks == len(outcome.chunks), provider
            assert stats.bytes > 100, provider
            assert stats.input_tokens == 13, provider
            assert stats.output_tokens == 9, provider
            assert stats.tokens_per_second == pytest.approx(9 / (stats.duration - ttft))
            assert stats.retries == 0
            assert stats.fallbacks == 0
            assert stats.error is None
            usage = outcome.stream.usage
            assert usage is not None
            assert (usage.input_tokens, usage.output_tokens) == (13, 9), provider
            cached = (usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens)
            assert (stats.cache_read_tokens, stats.cache_write_tokens, stats.reasoning_tokens) == (
                cached
            ), provider


async def test_on_chunk_is_called_for_every_chunk_yielded(api: Api, server: MockServer) -> None:
    # Including chunks that carry no text (Anthropic's usage at message_start,
    # the finish reason, the final usage).
    recorder = Recorder()
    async with api.client(make_config(server), hooks=recorder.hooks()) as client:
        for provider in PROVIDERS:
            recorder.clear()
            server.add(Reply(tokens=SHORT_TOKENS))
            outcome = await run(client, MODELS[provider])
            assert outcome.error is None, f"{provider}: {outcome.error!r}"
            assert recorder.chunks == outcome.chunks, provider
            assert outcome.stream.stats.chunks == len(outcome.chunks), provider


async def test_stats_of_a_non_streamed_call(api: Api, server: MockServer) -> None:
    recorder = Recorder()
    async with api.client(make_config(server), hooks=recorder.hooks()) as client:
        for provider in PROVIDERS:
            recorder.clear()
            server.add(Reply(tokens=SHORT_TOKENS, input_tokens=5, output_tokens=4))
            text = await client.generate("Hi", model=MODELS[provider], stream=False)
            assert text == SHORT_TEXT, provider
            (stats,) = recorder.completes
            assert stats.streamed is False, provider
            assert stats.chunks == 1, provider
            assert stats.time_to_first_token is not None and stats.time_to_first_token > 0
            assert stats.bytes > 50, provider
            assert (stats.input_tokens, stats.output_tokens) == (5, 4), provider
            assert stats.error is None, provider
            (info,) = recorder.requests
            assert info.streamed is False, provider
            (chunk,) = recorder.chunks
            assert chunk.usage is not None
            assert (chunk.usage.input_tokens, chunk.usage.output_tokens) == (5, 4), provider
            expected = mal.Chunk(SHORT_TEXT, finish_reason="stop", usage=chunk.usage)
            assert chunk == expected, provider
        assert client.metrics.non_streamed == len(PROVIDERS)
        assert client.metrics.streamed == 0


async def test_on_complete_once_on_failure(api: Api, server: MockServer) -> None:
    server.add(Reply(status=503), Reply(status=503), Reply(status=503), Reply(status=404))
    recorder = Recorder()
    async with api.client(make_config(server), hooks=recorder.hooks()) as client:
        first = await run(client, MODELS["openai"])
        assert isinstance(first.error, mal.InternalServerError)
        second = await run(client, MODELS["anthropic"])
        assert isinstance(second.error, mal.NotFoundError)
    assert len(recorder.completes) == 2
    failed_after_retries, not_found = recorder.completes
    assert failed_after_retries.error == "InternalServerError"
    assert failed_after_retries.retries == 2
    assert failed_after_retries.time_to_first_token is None
    assert failed_after_retries.chunks == 0
    assert not_found.error == "NotFoundError"
    assert not_found.provider == "anthropic"
    assert first.stream.stats.error == "InternalServerError"
    assert recorder.first_tokens == []
    assert recorder.chunks == []


async def test_on_complete_once_for_a_stream_broken_off(api: Api, server: MockServer) -> None:
    server.add(Reply(tokens=[f" t{i}" for i in range(30)], chunk_delay=0.01))
    recorder = Recorder()
    async with api.client(make_config(server), hooks=recorder.hooks()) as client:
        stream = client.stream("Hi", model=MODELS["ollama"])
        async with stream:
            async for _ in stream:
                break
        await stream.aclose()  # closing again changes nothing
    (stats,) = recorder.completes
    assert stats.error is None
    assert stats.chunks == 1
    assert len(recorder.chunks) == 1


async def test_client_metrics(api: Api, server: MockServer, closed_port: int) -> None:
    server.add(
        Reply(tokens=SHORT_TOKENS),  # streamed
        Reply(tokens=SHORT_TOKENS),  # non-streamed
        Reply(status=503),  # retried once, then served
        Reply(tokens=SHORT_TOKENS),
        Reply(status=404),  # falls back
        Reply(tokens=SHORT_TOKENS),
        Reply(status=400),  # fails
        Reply(headers_delay=5),  # times out
    )
    # Long enough that no served request runs out of it on a loaded machine
    # (which would add a retry), far shorter than the last reply's delay.
    config = make_config(server, first_token_timeout=1.0)
    async with api.client(config) as client:
        assert (await run(client, MODELS["ollama"])).error is None
        assert await client.generate("Hi", model=MODELS["openai"], stream=False) == SHORT_TEXT
        assert (await run(client, MODELS["anthropic"])).error is None
        outcome = await run(client, MODELS["openai"], fallbacks=[MODELS["ollama"]])
        assert outcome.error is None
        assert isinstance((await run(client, MODELS["anthropic"])).error, mal.APIStatusError)
        outcome = await run(client, MODELS["ollama"], max_retries=0)
        assert isinstance(outcome.error, mal.APITimeoutError)
        metrics = client.metrics
    assert isinstance(metrics, mal.ClientMetrics)
    assert metrics.requests == 8
    assert metrics.streamed == 5
    assert metrics.non_streamed == 1
    assert metrics.retries == 1
    assert metrics.fallbacks == 1
    assert metrics.errors == {"BadRequestError": 1, "APITimeoutError": 1}
    assert metrics.timeouts == {"first_token": 1}
