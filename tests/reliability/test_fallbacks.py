"""Fallbacks: models tried in order when a call fails before anything reached
the caller, per call or from the config, with the client's own settings for
their providers."""

from __future__ import annotations

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, Api, ClientAdapter, make_config
from ._support import Outcome, Recorder, run

pytestmark = pytest.mark.anyio

TOKENS = ["Fall", "back", " text"]
TEXT = "".join(TOKENS)
PRIMARY = MODELS["openai"]
FALLBACK = "anthropic/claude-fallback"


def check_served_by_fallback(outcome: Outcome, recorder: Recorder, client: ClientAdapter) -> None:
    stream = outcome.stream
    assert outcome.error is None, outcome.error
    assert outcome.text == TEXT
    assert stream.provider == "anthropic"
    assert stream.model == "claude-fallback"
    assert stream.stats.provider == "anthropic"
    assert stream.stats.model == "claude-fallback"
    assert stream.stats.fallbacks == 1
    assert client.metrics.fallbacks == 1
    ((failed, following, error),) = recorder.fallbacks
    assert failed == "openai/gpt-mock"
    assert following == FALLBACK
    assert isinstance(error, mal.NotFoundError)
    (stats,) = recorder.completes
    assert stats.fallbacks == 1
    assert stats.provider == "anthropic"
    assert stats.error is None


async def test_fallback_per_call(api: Api, server: MockServer) -> None:
    server.add(Reply(status=404), Reply(tokens=TOKENS))
    recorder = Recorder()
    async with api.client(make_config(server), hooks=recorder.hooks()) as client:
        outcome = await run(client, PRIMARY, fallbacks=[FALLBACK])
        check_served_by_fallback(outcome, recorder, client)
    first, second = server.requests
    assert first.provider == "openai" and first.json["model"] == "gpt-mock"
    assert second.provider == "anthropic" and second.json["model"] == "claude-fallback"
    assert second.path == "/v1/messages"


async def test_fallback_from_config(api: Api, server: MockServer) -> None:
    server.add(Reply(status=404), Reply(tokens=TOKENS))
    recorder = Recorder()
    config = make_config(server, fallbacks=[FALLBACK], max_retries=0)
    async with api.client(config, hooks=recorder.hooks()) as client:
        outcome = await run(client, PRIMARY)
        check_served_by_fallback(outcome, recorder, client)
    assert [r.provider for r in server.requests] == ["openai", "anthropic"]


async def test_fallback_uses_the_clients_settings_for_its_provider(
    api: Api, server: MockServer
) -> None:
    # The per-call base_url and api_key are the primary's; the fallback goes
    # where the client sends anthropic, with the client's anthropic key.
    server.add(Reply(tokens=TOKENS))
    recorder = Recorder()
    config = make_config(server, api_keys={"anthropic": "sk-ant-config"})
    with MockServer() as other:
        other.add(Reply(status=404))
        async with api.client(config, hooks=recorder.hooks()) as client:
            outcome = await run(
                client,
                PRIMARY,
                fallbacks=[FALLBACK],
                base_url=other.url("openai"),
                api_key="sk-primary-only",
            )
            check_served_by_fallback(outcome, recorder, client)
        (primary,) = other.requests
    assert primary.provider == "openai"
    assert primary.headers["authorization"] == "Bearer sk-primary-only"
    (fallback,) = server.requests
    assert fallback.provider == "anthropic"
    assert fallback.headers.get("x-api-key") == "sk-ant-config"
    assert "sk-primary-only" not in str(fallback.headers)


async def test_fallback_after_retries(api: Api, server: MockServer) -> None:
    server.add(Reply(status=503), Reply(status=503), Reply(status=503), Reply(tokens=TOKENS))
    recorder = Recorder()
    async with api.client(make_config(server), hooks=recorder.hooks()) as client:
        outcome = await run(client, PRIMARY, fallbacks=[FALLBACK])
        assert outcome.error is None, outcome.error
        assert outcome.text == TEXT
        assert outcome.stream.stats.retries == 2
        assert outcome.stream.stats.fallbacks == 1
        assert client.metrics.requests == 4
    assert [n for n, _, _ in recorder.retries] == [1, 2]
    ((_, _, error),) = recorder.fallbacks
    assert isinstance(error, mal.InternalServerError)
    assert recorder.attempts == [0, 1, 2, 0]


async def test_refused_retry_after_falls_back_at_once(api: Api, server: MockServer) -> None:
    server.add(Reply(status=429, headers={"Retry-After": "3600"}), Reply(tokens=TOKENS))
    recorder = Recorder()
    async with api.client(make_config(server), hooks=recorder.hooks()) as client:
        outcome = await run(client, PRIMARY, fallbacks=[FALLBACK])
    assert outcome.error is None, outcome.error
    assert outcome.text == TEXT
    assert outcome.elapsed < 1.0
    assert recorder.retries == []
    ((_, _, error),) = recorder.fallbacks
    assert isinstance(error, mal.RateLimitError)


async def test_no_fallback_once_a_chunk_reached_the_caller(api: Api, server: MockServer) -> None:
    server.add(
        Reply(tokens=["one", " two", " three"], error_after=2, stall_after=2, stall=0.1),
        Reply(tokens=TOKENS),
    )
    recorder = Recorder()
    config = make_config(server, fallbacks=[FALLBACK])
    async with api.client(config, hooks=recorder.hooks()) as client:
        outcome = await run(client, MODELS["ollama"])
        error = outcome.error
        assert isinstance(error, mal.StreamError), error
        assert error.partial_text == "one two"
        assert outcome.text == "one two"
        assert outcome.stream.provider == "ollama"
        assert outcome.stream.stats.fallbacks == 0
        assert client.metrics.fallbacks == 0
    assert recorder.fallbacks == []
    assert len(server.requests) == 1


async def test_all_failing_raises_the_last_error(api: Api, server: MockServer) -> None:
    server.add(Reply(status=404), Reply(status=529), Reply(status=400))
    recorder = Recorder()
    config = make_config(server, max_retries=0)
    async with api.client(config, hooks=recorder.hooks()) as client:
        outcome = await run(client, PRIMARY, fallbacks=[FALLBACK, "ollama/last-resort"])
        error = outcome.error
        assert type(error) is mal.BadRequestError, error
        assert error.status_code == 400
        assert error.provider == "ollama"
        assert outcome.stream.stats.fallbacks == 2
        assert outcome.stream.stats.error == "BadRequestError"
        assert client.metrics.fallbacks == 2
        assert client.metrics.errors == {"BadRequestError": 1}
    assert [(a, b) for a, b, _ in recorder.fallbacks] == [
        ("openai/gpt-mock", FALLBACK),
        ("anthropic/claude-fallback", "ollama/last-resort"),
    ]
    assert [type(e) for _, _, e in recorder.fallbacks] == [
        mal.NotFoundError,
        mal.OverloadedError,
    ]
    assert [r.provider for r in server.requests] == ["openai", "anthropic", "ollama"]
    assert len(recorder.completes) == 1


async def test_fallback_keeps_the_streaming_decision(api: Api, server: MockServer) -> None:
    server.add(Reply(status=404), Reply(tokens=TOKENS))
    async with api.client(make_config(server)) as client:
        text = await client.generate("Hi", model=PRIMARY, fallbacks=[FALLBACK], stream=False)
    assert text == TEXT
    first, second = server.requests
    assert not first.json.get("stream")
    assert not second.json.get("stream")
