"""The three clocks (first token, idle, total) and the read timeout: each one
raises ``APITimeoutError`` with its ``phase`` and the text received so far, on
time, even while keep-alive pings keep bytes coming (which httpx's own read
timeout cannot see), and each is counted in ``client.metrics.timeouts``.

Where the providers' wire formats differ (preludes, pings), the providers run
side by side in one test (``for_each``: tasks, or threads for the sync API), so
that their clocks run at the same time."""

from __future__ import annotations

import msgspec
import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, PROVIDERS, Api, make_config
from ._support import PING_PROVIDERS, Outcome, for_each, raw_body, run

pytestmark = pytest.mark.anyio

#: How late a clock may fire: thread wake-ups, the server's 50 ms poll, a busy box.
SLACK = 0.5

#: One keep-alive ping on the wire.
PING = {"openai": b": ping\n\n", "anthropic": b'event: ping\ndata: {"type": "ping"}\n\n'}
_FRAME_START = {"ollama": b'{"model"', "openai": b"data: ", "anthropic": b"event: "}


def bytes_before(server: MockServer, provider: str, tokens: list[str], index: int) -> int:
    """How many body bytes come before the event of ``tokens[index]``."""
    body = raw_body(server, provider, Reply(tokens=tokens))
    server.reset()
    marker = msgspec.json.encode(tokens[index])
    assert body.count(marker) == 1, (marker, body)
    return body.rfind(_FRAME_START[provider], 0, body.index(marker))


def assert_timeout(outcome: Outcome, phase: str, partial: str, limit: float, where: str) -> None:
    error = outcome.error
    assert isinstance(error, mal.APITimeoutError), f"{where}: expected a timeout, got {error!r}"
    assert error.phase == phase, f"{where}: wrong phase {error.phase!r}: {error}"
    assert error.partial_text == partial, where
    assert error.retryable, where
    assert outcome.text == partial, f"{where}: the caller saw other text than the error carries"
    assert outcome.stream.text == partial, where
    assert limit - 0.01 <= outcome.elapsed < limit + SLACK, (
        f"{where}: the {phase} clock fired after {outcome.elapsed:.2f}s, not {limit}s"
    )


@pytest.mark.parametrize(
    ("phase", "provider"),
    [("first_token", "ollama"), ("total", "openai"), ("read", "anthropic")],
)
async def test_clock_while_waiting_for_headers(
    api: Api, server: MockServer, phase: str, provider: str
) -> None:
    # The first-token and total clocks, and the read timeout, each alone.
    server.add(Reply(headers_delay=5))
    config = make_config(server, **{f"{phase}_timeout": 0.15}, max_retries=0)
    async with api.client(config) as client:
        outcome = await run(client, MODELS[provider])
        assert_timeout(outcome, phase, "", 0.15, provider)
        assert client.metrics.timeouts == {phase: 1}


async def test_first_token_clock_after_headers_pings_do_not_count(
    api: Api, server: MockServer
) -> None:
    # Headers and the prelude (OpenAI's role chunk, Anthropic's message_start)
    # come at once, then only pings (none for Ollama) for five seconds.
    prelude = {p: bytes_before(server, p, ["Hi"], 0) for p in PING_PROVIDERS}
    server.default = Reply(tokens=["Hi"], first_delay=5, ping_interval=0.03)
    config = make_config(server, first_token_timeout=0.2, max_retries=0)
    async with api.client(config) as client:

        async def one(_: int, provider: str) -> None:
            outcome = await run(client, MODELS[provider])
            assert_timeout(outcome, "first_token", "", 0.2, provider)
            if provider in PING_PROVIDERS:
                pings = (outcome.stream.stats.bytes - prelude[provider]) / len(PING[provider])
                assert pings >= 2, f"{provider}: only {pings} pings came"

        await for_each(api, PROVIDERS, one, workers=len(PROVIDERS))
        assert client.metrics.timeouts == {"first_token": len(PROVIDERS)}


async def test_idle_clock_fires_while_pings_trickle(api: Api, server: MockServer) -> None:
    # Two tokens, then a stall with a ping every 30 ms: bytes keep coming, so a
    # read timeout never fires, but no text does either.
    tokens = ["Hel", "lo", " there"]
    before_stall = {p: bytes_before(server, p, tokens, 2) for p in PING_PROVIDERS}
    server.default = Reply(tokens=tokens, stall_after=2, stall=3, ping_interval=0.03)
    config = make_config(server, idle_timeout=0.2, max_retries=0)
    async with api.client(config) as client:

        async def one(_: int, provider: str) -> None:
            outcome = await run(client, MODELS[provider])
            assert_timeout(outcome, "idle", "Hello", 0.2, provider)
            pings = (outcome.stream.stats.bytes - before_stall[provider]) / len(PING[provider])
            assert pings >= 2, f"{provider}: only {pings} pings came"

        await for_each(api, PING_PROVIDERS, one, workers=len(PING_PROVIDERS))
        assert client.metrics.timeouts == {"idle": len(PING_PROVIDERS)}


async def test_idle_clock_lets_a_steady_stream_through(api: Api, server: MockServer) -> None:
    # Every gap is shorter than idle_timeout, the whole stream much longer.
    tokens = [f" t{i}" for i in range(6)]
    server.add(Reply(tokens=tokens, chunk_delay=0.06))
    config = make_config(server, idle_timeout=0.2, max_retries=0)
    async with api.client(config) as client:
        outcome = await run(client, MODELS["openai"])
        assert outcome.error is None, outcome.error
        assert outcome.text == "".join(tokens)
        assert client.metrics.timeouts == {}


async def test_total_clock_across_a_slow_stream(api: Api, server: MockServer) -> None:
    tokens = [f" t{i}" for i in range(40)]
    full = "".join(tokens)
    server.default = Reply(tokens=tokens, chunk_delay=0.02)
    config = make_config(server, total_timeout=0.2, max_retries=0)
    async with api.client(config) as client:

        async def one(_: int, provider: str) -> None:
            outcome = await run(client, MODELS[provider])
            error = outcome.error
            assert isinstance(error, mal.APITimeoutError), f"{provider}: {error!r}"
            assert error.phase == "total", provider
            assert error.partial_text and full.startswith(error.partial_text), provider
            assert error.partial_text != full, provider
            assert outcome.text == error.partial_text, provider
            assert 0.19 <= outcome.elapsed < 0.2 + SLACK, f"{provider}: {outcome.elapsed:.2f}s"

        await for_each(api, PROVIDERS, one, workers=len(PROVIDERS))
        assert client.metrics.timeouts == {"total": len(PROVIDERS)}


async def test_read_timeout_mid_stream(api: Api, server: MockServer) -> None:
    server.default = Reply(tokens=["Hel", "lo", " there"], stall_after=2, stall=3)
    config = make_config(server, read_timeout=0.15, max_retries=0)
    async with api.client(config) as client:

        async def one(_: int, provider: str) -> None:
            outcome = await run(client, MODELS[provider])
            assert_timeout(outcome, "read", "Hello", 0.15, provider)

        await for_each(api, PROVIDERS, one, workers=len(PROVIDERS))
        assert client.metrics.timeouts == {"read": len(PROVIDERS)}


@pytest.mark.parametrize(
    "clocks",
    [
        # With no idle_timeout, later gaps may be as long as they like
        # (read_timeout is 600 s).
        pytest.param({}, id="no-idle-timeout"),
        # Gaps of 0.2 s are within idle_timeout (2 s) and read_timeout (600 s):
        # the first-token clock does not shorten the later reads.
        pytest.param({"idle_timeout": 2.0}, id="idle-timeout"),
    ],
)
async def test_first_token_clock_stops_at_the_first_token(
    api: Api, server: MockServer, clocks: dict[str, float]
) -> None:
    # first_token_timeout (0.1 s) bounds the wait for the first delta only: it
    # has stopped once the first token came.
    server.add(Reply(tokens=["Hel", "lo", " there"], chunk_delay=0.2))
    config = make_config(server, first_token_timeout=0.1, **clocks, max_retries=0)
    async with api.client(config) as client:
        outcome = await run(client, MODELS["openai"])
        error = outcome.error
        assert error is None, f"{error!r} (phase {getattr(error, 'phase', None)!r})"
        assert outcome.text == "Hello there"
        assert client.metrics.timeouts == {}


async def test_timeouts_are_counted_by_phase(api: Api, server: MockServer) -> None:
    server.add(
        Reply(headers_delay=5),
        Reply(headers_delay=5),
        Reply(tokens=["a", "b"], stall_after=1, stall=3),
    )
    config = make_config(server, first_token_timeout=0.1, idle_timeout=0.1, max_retries=0)
    async with api.client(config) as client:
        for _ in range(2):
            outcome = await run(client, MODELS["openai"])
            assert isinstance(outcome.error, mal.APITimeoutError)
        outcome = await run(client, MODELS["openai"])
        assert isinstance(outcome.error, mal.APITimeoutError)
        assert outcome.error.partial_text == "a"
        assert client.metrics.timeouts == {"first_token": 2, "idle": 1}
        assert client.metrics.errors == {"APITimeoutError": 3}
