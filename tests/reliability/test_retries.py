"""Retries: which failures are retried, how often, after how long (full-jitter
back-off, ``Retry-After``), and never once text has reached the caller or past
``total_timeout``."""

from __future__ import annotations

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, PROVIDERS, Api, make_config
from ._support import Recorder, raw_body, run

pytestmark = pytest.mark.anyio

TOKENS = ["Zebra", " Yak", " Xenops", " Wombat"]
TEXT = "".join(TOKENS)


async def test_503_twice_then_success(api: Api, server: MockServer) -> None:
    recorder = Recorder()
    async with api.client(make_config(server), hooks=recorder.hooks()) as client:
        for provider in PROVIDERS:
            recorder.clear()
            server.reset()
            server.add(Reply(status=503), Reply(status=503), Reply(tokens=TOKENS))
            outcome = await run(client, MODELS[provider])
            assert outcome.error is None, f"{provider}: {outcome.error!r}"
            assert outcome.text == TEXT, provider
            assert outcome.stream.text == TEXT, provider
            assert outcome.stream.stats.retries == 2, provider
            assert len(server.requests) == 3, provider
            assert [(n, delay) for n, delay, _ in recorder.retries] == [(1, 0.0), (2, 0.0)]
            for _, _, error in recorder.retries:
                assert isinstance(error, mal.InternalServerError), provider
                assert error.status_code == 503
            assert recorder.attempts == [0, 1, 2], provider
            assert len(recorder.completes) == 1, provider
        assert client.metrics.retries == 2 * len(PROVIDERS)
        assert client.metrics.requests == 3 * len(PROVIDERS)
        assert client.metrics.errors == {}


async def test_429_retry_after_is_honoured(api: Api, server: MockServer) -> None:
    # random=1.0: the back-off would wait 0.5 s; the server's advice wins.
    recorder = Recorder()
    config = make_config(server)
    async with api.client(config, hooks=recorder.hooks(), random=lambda: 1.0) as client:
        for headers, delay in [({"retry-after-ms": "50"}, 0.05), ({"Retry-After": "0"}, 0.0)]:
            recorder.clear()
            server.add(Reply(status=429, headers=headers), Reply(tokens=TOKENS))
            outcome = await run(client, MODELS["openai"])
            assert outcome.error is None, outcome.error
            assert outcome.text == TEXT
            ((n, waited, error),) = recorder.retries
            assert n == 1
            assert waited == pytest.approx(delay), headers
            assert isinstance(error, mal.RateLimitError)
            assert error.retry_after == pytest.approx(delay)
            assert delay <= outcome.elapsed < 0.45, headers


async def test_retry_after_longer_than_max_retry_after_fails_at_once(
    api: Api, server: MockServer
) -> None:
    server.add(Reply(status=429, headers={"Retry-After": "120"}), Reply(tokens=TOKENS))
    recorder = Recorder()
    async with api.client(make_config(server), hooks=recorder.hooks()) as client:
        outcome = await run(client, MODELS["anthropic"])
        error = outcome.error
        assert isinstance(error, mal.RateLimitError), error
        assert error.retry_after == 120.0
        assert error.status_code == 429
        assert error.retryable
        assert outcome.elapsed < 1.0, "mal slept on a Retry-After it should refuse"
        assert recorder.retries == []
        assert outcome.stream.stats.retries == 0
        assert client.metrics.errors == {"RateLimitError": 1}
    assert len(server.requests) == 1


async def test_max_retry_after_is_configurable(api: Api, server: MockServer) -> None:
    server.add(Reply(status=503, headers={"retry-after-ms": "300"}), Reply(tokens=TOKENS))
    config = make_config(server, max_retry_after=0.1)
    async with api.client(config) as client:
        outcome = await run(client, MODELS["anthropic"])
    assert isinstance(outcome.error, mal.InternalServerError)
    assert outcome.error.retry_after == pytest.approx(0.3)
    assert outcome.elapsed < 0.3
    assert len(server.requests) == 1


CLIENT_ERRORS = [
    (400, mal.BadRequestError),
    (401, mal.AuthenticationError),
    (403, mal.PermissionDeniedError),
    (404, mal.NotFoundError),
    (422, mal.UnprocessableEntityError),
]


async def test_client_errors_are_not_retried(api: Api, server: MockServer) -> None:
    recorder = Recorder()
    async with api.client(make_config(server), hooks=recorder.hooks()) as client:
        for provider in PROVIDERS:
            for status, error_class in CLIENT_ERRORS:
                where = f"{provider} {status}"
                server.reset()
                server.add(Reply(status=status), Reply(tokens=TOKENS))
                outcome = await run(client, MODELS[provider])
                assert type(outcome.error) is error_class, f"{where}: {outcome.error!r}"
                assert outcome.error.status_code == status  # type: ignore[attr-defined]
                assert not outcome.error.retryable, where
                assert len(server.requests) == 1, f"{where} was retried"
        assert client.metrics.retries == 0
        assert client.metrics.requests == len(PROVIDERS) * len(CLIENT_ERRORS)
    assert recorder.retries == []
    assert set(recorder.attempts) == {0}


async def test_501_is_not_retried(api: Api, server: MockServer) -> None:
    # 501 Not Implemented (llama.cpp's not_supported_error): the server lacks
    # the endpoint, which no retry changes.
    recorder = Recorder()
    config = make_config(server, max_retries=2)
    async with api.client(config, hooks=recorder.hooks()) as client:
        for provider in PROVIDERS:
            server.reset()
            server.add(Reply(status=501, error_type="not_supported_error"), Reply(tokens=TOKENS))
            outcome = await run(client, MODELS[provider])
            error = outcome.error
            assert type(error) is mal.InternalServerError, f"{provider}: {error!r}"
            assert error.status_code == 501, provider
            assert not error.retryable, provider
            assert len(server.requests) == 1, f"{provider}: 501 was retried"
            assert outcome.stream.stats.retries == 0, provider
        assert client.metrics.retries == 0
    assert recorder.retries == []


INBAND = [("anthropic", "overloaded_error"), ("openai", "server_error")]


async def test_in_band_error_before_the_first_chunk_is_retried(
    api: Api, server: MockServer
) -> None:
    recorder = Recorder()
    async with api.client(make_config(server), hooks=recorder.hooks()) as client:
        for provider, error_type in INBAND:
            recorder.clear()
            server.reset()
            server.add(
                Reply(tokens=TOKENS, error_after=0, error_type=error_type), Reply(tokens=TOKENS)
            )
            outcome = await run(client, MODELS[provider])
            assert outcome.error is None, f"{provider}: {outcome.error!r}"
            assert outcome.text == TEXT, provider
            assert outcome.stream.stats.retries == 1, provider
            assert len(server.requests) == 2, provider
            ((n, _, error),) = recorder.retries
            assert n == 1
            assert isinstance(error, mal.StreamError), provider
            assert error.error_type == error_type


async def test_in_band_error_after_text_is_never_retried(api: Api, server: MockServer) -> None:
    recorder = Recorder()
    async with api.client(make_config(server), hooks=recorder.hooks()) as client:
        for provider, error_type in INBAND:
            server.reset()
            server.add(
                # The error comes 0.1 s after the text, which reaches the caller first.
                Reply(
                    tokens=TOKENS,
                    error_after=2,
                    error_type=error_type,
                    stall_after=2,
                    stall=0.1,
                ),
                Reply(tokens=TOKENS),
            )
            outcome = await run(client, MODELS[provider])
            error = outcome.error
            assert isinstance(error, mal.StreamError), f"{provider}: {error!r}"
            assert error.error_type == error_type
            assert error.retryable, "the error is transient, even if mal may not retry it"
            assert error.partial_text == "Zebra Yak", provider
            assert outcome.text == "Zebra Yak", provider
            assert outcome.stream.text == "Zebra Yak", provider
            assert len(server.requests) == 1, provider
        assert client.metrics.retries == 0
    assert recorder.retries == []


async def test_max_retries_per_call(api: Api, server: MockServer) -> None:
    server.default = Reply(status=503)
    recorder = Recorder()
    async with api.client(make_config(server), hooks=recorder.hooks()) as client:
        outcome = await run(client, MODELS["ollama"], max_retries=0)
        assert isinstance(outcome.error, mal.InternalServerError)
        assert len(server.requests) == 1
        outcome = await run(client, MODELS["ollama"], max_retries=1)
        assert isinstance(outcome.error, mal.InternalServerError)
        assert len(server.requests) == 3
        outcome = await run(client, MODELS["ollama"])  # the config's: 2
        assert isinstance(outcome.error, mal.InternalServerError)
        assert outcome.stream.stats.retries == 2
        assert len(server.requests) == 6
    assert recorder.attempts == [0, 0, 1, 0, 1, 2]


async def test_max_retries_in_config(api: Api, server: MockServer) -> None:
    server.default = Reply(status=503)
    async with api.client(make_config(server, max_retries=0)) as client:
        outcome = await run(client, MODELS["openai"])
    assert isinstance(outcome.error, mal.InternalServerError)
    assert len(server.requests) == 1


async def test_connection_refused_is_retried(api: Api, closed_port: int) -> None:
    recorder = Recorder()
    url = f"http://127.0.0.1:{closed_port}/v1"
    config = mal.MALConfig(base_urls={"openai": url}, max_retries=3)
    async with api.client(config, hooks=recorder.hooks()) as client:
        outcome = await run(client, MODELS["openai"])
        error = outcome.error
        assert type(error) is mal.APIConnectionError, error
        assert error.retryable
        assert outcome.stream.stats.retries == 3
        assert client.metrics.requests == 4
        assert client.metrics.errors == {"APIConnectionError": 1}
    assert recorder.attempts == [0, 1, 2, 3]
    assert [n for n, _, _ in recorder.retries] == [1, 2, 3]


def _offset(body: bytes, marker: bytes) -> int:
    """Where ``marker`` is in a response body."""
    index = body.find(marker)
    assert index > 0 and body.count(marker) == 1, (marker, body)
    return index


async def test_body_dropped_before_the_first_chunk_is_retried(api: Api, server: MockServer) -> None:
    # Cut in the middle of the first token's event: for Anthropic, after
    # message_start (whose usage chunk mal holds back) and a ping.
    recorder = Recorder()
    async with api.client(make_config(server), hooks=recorder.hooks()) as client:
        for provider in PROVIDERS:
            body = raw_body(server, provider, Reply(tokens=TOKENS))
            server.reset()
            recorder.clear()
            cut = _offset(body, b"Zebra") + 2
            server.add(Reply(tokens=TOKENS, drop_after=cut), Reply(tokens=TOKENS))
            outcome = await run(client, MODELS[provider])
            assert outcome.error is None, f"{provider}: {outcome.error!r}"
            assert outcome.text == TEXT, provider
            assert outcome.stream.stats.retries == 1, provider
            ((_, _, error),) = recorder.retries
            assert isinstance(error, mal.IncompleteStreamError), provider
            assert len(server.requests) == 2, provider


async def test_body_dropped_after_the_first_chunk_is_not_retried(
    api: Api, server: MockServer
) -> None:
    recorder = Recorder()
    async with api.client(make_config(server), hooks=recorder.hooks()) as client:
        for provider in PROVIDERS:
            body = raw_body(server, provider, Reply(tokens=TOKENS))
            server.reset()
            cut = _offset(body, b"Xenops") + 2
            server.add(Reply(tokens=TOKENS, drop_after=cut), Reply(tokens=TOKENS))
            outcome = await run(client, MODELS[provider])
            error = outcome.error
            assert isinstance(error, mal.IncompleteStreamError), f"{provider}: {error!r}"
            assert error.retryable, provider
            assert error.partial_text == "Zebra Yak", provider
            assert outcome.text == "Zebra Yak", provider
            assert len(server.requests) == 1, provider
    assert recorder.retries == []


async def test_backoff_is_full_jitter_exponential_and_capped(api: Api, server: MockServer) -> None:
    # A retry waits random() * min(8, 0.5 * 2 ** n): with random() = 0.002 the
    # waits are tiny, but show the base, the doubling and the cap.
    server.default = Reply(status=500)
    recorder = Recorder()
    config = make_config(server, max_retries=6)
    hooks = recorder.hooks()
    async with api.client(config, hooks=hooks, random=lambda: 0.002) as client:
        outcome = await run(client, MODELS["openai"])
    assert isinstance(outcome.error, mal.InternalServerError)
    delays = [delay for _, delay, _ in recorder.retries]
    assert delays == pytest.approx([0.001, 0.002, 0.004, 0.008, 0.016, 0.016])
    assert outcome.elapsed >= sum(delays), "mal should really sleep for the back-off"
    assert len(server.requests) == 7


async def test_backoff_upper_bound(api: Api, server: MockServer) -> None:
    # random() = 1.0: the first retry waits the whole 0.5 s.
    server.add(Reply(status=502), Reply(tokens=TOKENS))
    recorder = Recorder()
    async with api.client(
        make_config(server), hooks=recorder.hooks(), random=lambda: 1.0
    ) as client:
        outcome = await run(client, MODELS["ollama"])
    assert outcome.error is None, outcome.error
    assert outcome.text == TEXT
    assert [(n, delay) for n, delay, _ in recorder.retries] == [(1, 0.5)]
    assert outcome.elapsed >= 0.5


async def test_retries_stop_at_total_timeout(api: Api, server: MockServer) -> None:
    # 160 ms a retry: the second attempt starts about 140 ms before the total
    # clock ends, and no third one starts (it would end past it). A retry
    # begun a few milliseconds before the end could see the clock run out
    # while it waits for its answer on a busy machine: a timeout, rightly.
    server.default = Reply(status=503, headers={"retry-after-ms": "160"})
    config = make_config(server, max_retries=50, total_timeout=0.3)
    async with api.client(config) as client:
        outcome = await run(client, MODELS["anthropic"])
    assert isinstance(outcome.error, mal.InternalServerError), outcome.error
    assert outcome.elapsed < 0.3 + 0.2
    assert 2 <= len(server.requests) <= 5


async def test_no_backoff_past_total_timeout(api: Api, server: MockServer) -> None:
    # The back-off (0.5 s with random() = 1.0) would end past total_timeout:
    # fail at once rather than sleep for nothing.
    server.default = Reply(status=503)
    config = make_config(server, max_retries=5, total_timeout=0.3)
    async with api.client(config, random=lambda: 1.0) as client:
        outcome = await run(client, MODELS["openai"])
    assert isinstance(outcome.error, mal.InternalServerError), outcome.error
    assert outcome.elapsed < 0.25
    assert len(server.requests) == 1


async def test_retry_while_the_total_clock_runs_out(api: Api, server: MockServer) -> None:
    # Each attempt stalls before its headers; the total clock ends the call,
    # whichever attempt it is in.
    server.default = Reply(headers_delay=5)
    config = make_config(server, max_retries=5, total_timeout=0.3, first_token_timeout=0.1)
    async with api.client(config) as client:
        outcome = await run(client, MODELS["ollama"])
        error = outcome.error
        assert isinstance(error, mal.APITimeoutError), error
        assert error.phase in ("first_token", "total")
        assert outcome.elapsed < 0.3 + 0.3
        assert client.metrics.timeouts.get("first_token", 0) >= 2
    assert 2 <= len(server.requests) <= 4
