"""Rate limits and cool-downs end to end, against the built-in server, in the
sync API (threads) and the async one (tasks, under asyncio and trio): the
server's arrival times keep under the limits, a concurrency slot is freed
however its response ends, and a model cooling down is tried last.

The window of the per-minute limits is shortened (``mal._limits.WINDOW``),
and each test has a process store of its own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import mal
from mal import _limits
from mal._limits import LocalStore
from mal.limits import Acquire, Cooling, RateLimit, Release
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, Api, ClientAdapter, make_config, read_into
from ._support import wait_disconnect

pytestmark = pytest.mark.anyio


class Store(LocalStore):
    """A process store that counts the turns it refused (the tests' probes aside)."""

    def __init__(self) -> None:
        super().__init__()
        self.refusals = 0

    def execute(self, command: Any) -> Any:
        result = super().execute(command)
        if isinstance(command, Acquire) and command.lease != "probe" and result[0] > 0:
            self.refusals += 1
        return result


@pytest.fixture(autouse=True)
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """The process's store, fresh for the test: no turns left from others."""
    fresh = Store()
    monkeypatch.setattr(_limits, "PROCESS_STORE", fresh)
    yield fresh


def slot_free(store: LocalStore, name: str, limit: RateLimit) -> bool:
    """Whether a request under ``limit`` would get its turn now (the probe's
    own turn is given back at once)."""
    wait, _ = store.execute(Acquire(((name, limit),), 0, "probe", 60.0, _limits.WINDOW))
    store.execute(Release((name,), "probe"))
    return bool(wait == 0.0)


async def generate_at_once(
    api: Api, clients: list[ClientAdapter], count: int, **options: Any
) -> list[str]:
    """``count`` generations at the same time, spread over ``clients``: each in a
    thread of its own with the sync API, a task of its own with the async one."""
    results: list[Any] = [None] * count
    prompts = [f"Question {i}" for i in range(count)]
    if api.sync:

        def work(i: int) -> None:
            raw = clients[i % len(clients)].raw
            assert isinstance(raw, mal.Client)
            try:
                results[i] = raw.generate(prompts[i], **options)
            except BaseException as exc:  # seen by the test, not lost in the thread
                results[i] = exc

        threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:

        async def awork(i: int) -> None:
            results[i] = await clients[i % len(clients)].generate(prompts[i], **options)

        async with anyio.create_task_group() as group:
            for i in range(count):
                group.start_soon(awork, i)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


# Requests per minute -----------------------------------------------------------------


async def test_workers_of_two_clients_keep_under_one_requests_per_minute(
    api: Api, fresh_server: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = 1.5
    monkeypatch.setattr(_limits, "WINDOW", window)
    limits = {"openai": RateLimit(requests_per_minute=3)}
    config = make_config(fresh_server, rate_limits=limits, max_retries=0)
    async with api.client(config) as one, api.client(config) as two:
        texts = await generate_at_once(api, [one, two], 9, model=MODELS["openai"])
    assert texts == [mal.testing.DEFAULT_TEXT] * 9  # every call done
    arrivals = sorted(request.received_at for request in fresh_server.requests)
    assert len(arrivals) == 9
    # No window holds more than 3 arrivals: the 4th after any one comes a
    # window later, less the time from a turn to its arrival at the server
    # (which only shortens the spans seen here: a client's first request, cold,
    # on a busy machine, has been seen to take a third of a second; without
    # the limit all nine come within a few milliseconds).
    spans = [arrivals[i + 3] - arrivals[i] for i in range(len(arrivals) - 3)]
    assert min(spans) >= window - 0.5, spans


async def test_a_turn_that_would_end_past_total_timeout_fails_at_once_unsent(
    api: Api, server: MockServer
) -> None:
    limits = {"openai/gpt-mock": RateLimit(requests_per_minute=1)}
    config = make_config(server, rate_limits=limits, max_retries=0, total_timeout=5.0)
    async with api.client(config) as client:
        assert await client.generate("Hi", model=MODELS["openai"]) == mal.testing.DEFAULT_TEXT
        with pytest.raises(mal.RateLimitError) as info:
            await client.generate("Hi", model=MODELS["openai"])
    assert info.value.retry_after is not None and info.value.retry_after > 5.0
    assert "rate_limits['openai/gpt-mock'] (requests_per_minute=1)" in str(info.value)
    assert len(server.requests) == 1  # nothing sent beyond the limit


async def test_a_fallback_takes_over_when_the_turn_comes_too_late(
    api: Api, server: MockServer
) -> None:
    limits = {"openai": RateLimit(requests_per_minute=1)}
    config = make_config(server, rate_limits=limits, max_retries=0, total_timeout=5.0)
    async with api.client(config) as client:
        await client.generate("Hi", model=MODELS["openai"])
        server.add("From Claude")
        text = await client.generate("Hi", model=MODELS["openai"], fallbacks=[MODELS["anthropic"]])
    assert text == "From Claude"
    assert [request.provider for request in server.requests] == ["openai", "anthropic"]


# Concurrency -------------------------------------------------------------------------


async def test_no_more_requests_in_flight_than_the_limit(
    api: Api, fresh_server: MockServer
) -> None:
    delay = 0.2  # each answer takes this long from the request's arrival
    fresh_server.add(*[Reply(text=f"answer {i}", headers_delay=delay) for i in range(6)])
    limits = {"anthropic": RateLimit(concurrent=2)}
    config = make_config(fresh_server, rate_limits=limits, max_retries=0, total_timeout=10.0)
    async with api.client(config) as client:
        texts = await generate_at_once(api, [client], 6, model=MODELS["anthropic"])
    assert sorted(texts) == [f"answer {i}" for i in range(6)]
    arrivals = sorted(request.received_at for request in fresh_server.requests)
    # A third request in flight would have arrived within `delay` of the
    # first of two still answering: the slots make it wait for an answer.
    spans = [arrivals[i + 2] - arrivals[i] for i in range(len(arrivals) - 2)]
    assert min(spans) >= delay, spans


async def test_a_stream_holds_its_slot_and_closing_it_early_frees_it(
    api: Api, server: MockServer, store: Store
) -> None:
    limit = RateLimit(concurrent=1)
    server.add(Reply(tokens=["Hel", "lo", " there"], stall_after=2, stall=5))
    # A slot never freed would make the next call fail at total_timeout.
    config = make_config(server, rate_limits={"openai": limit}, max_retries=0, total_timeout=5.0)
    async with api.client(config) as client:
        stream = client.stream("Hi", model=MODELS["openai"])
        async with stream:
            assert (await stream.next()).text == "Hel"
            assert not slot_free(store, "openai", limit)
        assert slot_free(store, "openai", limit)
        assert await wait_disconnect(server)
        assert await client.generate("Hi", model=MODELS["openai"]) == mal.testing.DEFAULT_TEXT
    assert slot_free(store, "openai", limit)


async def test_breaking_out_of_the_loop_frees_the_slot(
    api: Api, server: MockServer, store: Store
) -> None:
    limit = RateLimit(concurrent=1)
    server.add(Reply(tokens=["Hel", "lo", " there"], stall_after=2, stall=5))
    # A slot never freed would make the next call fail at total_timeout.
    config = make_config(server, rate_limits={"openai": limit}, max_retries=0, total_timeout=5.0)
    async with api.client(config) as client:
        stream = client.stream("Hi", model=MODELS["openai"])
        async for chunk in stream:
            assert chunk.text == "Hel"
            break
        assert await wait_disconnect(server)
        assert slot_free(store, "openai", limit)


async def test_a_failed_send_frees_its_slot(api: Api, closed_port: int, store: Store) -> None:
    limit = RateLimit(concurrent=1)
    config = mal.MALConfig(
        base_urls={"openai": f"http://127.0.0.1:{closed_port}/v1"},
        rate_limits={"openai": limit},
        max_retries=0,
    )
    async with api.client(config) as client:
        with pytest.raises(mal.APIConnectionError):
            await client.generate("Hi", model=MODELS["openai"])
    assert slot_free(store, "openai", limit)


@pytest.mark.parametrize("retry_after", ["0", None])
async def test_a_retry_does_not_wait_for_the_slot_of_the_attempt_before(
    api: Api, server: MockServer, store: Store, retry_after: str | None
) -> None:
    # Retry-After: 0 retries with no back-off: the turn is asked at once.
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    server.add(Reply(status=503, headers=headers), "At last")
    limit = RateLimit(concurrent=1)
    config = make_config(server, rate_limits={"ollama": limit}, max_retries=1, total_timeout=5.0)
    async with api.client(config, random=lambda: 0.0) as client:
        assert await client.generate("Hi", model=MODELS["ollama"]) == "At last"
    assert len(server.requests) == 2
    assert store.refusals == 0  # the retry's turn came at once
    assert slot_free(store, "ollama", limit)


@pytest.mark.parametrize("flavour", ["asyncio", "trio"])
async def test_a_cancelled_task_frees_its_slot(api: Api, server: MockServer, store: Store) -> None:
    limit = RateLimit(concurrent=1)
    server.add(Reply(tokens=["Hel", "lo", " there"], stall_after=2, stall=5))
    # A slot never freed would make the next call fail at total_timeout.
    config = make_config(server, rate_limits={"openai": limit}, max_retries=0, total_timeout=5.0)
    async with api.client(config) as client:
        texts: list[str] = []
        stream = client.stream("Hi", model=MODELS["openai"])
        with anyio.move_on_after(0.3) as scope:
            await read_into(stream, texts)
        assert scope.cancelled_caught
        assert "".join(texts) == "Hello"
        assert slot_free(store, "openai", limit)


# Cool-downs --------------------------------------------------------------------------


async def test_a_model_that_failed_is_tried_after_its_fallback(
    api: Api, server: MockServer, store: Store
) -> None:
    config = make_config(server, cooldown_failures=1, cooldown_seconds=60.0, max_retries=0)
    options = {"model": MODELS["openai"], "fallbacks": [MODELS["anthropic"]]}
    async with api.client(config) as client:
        server.add(Reply(status=503), "From Claude")
        assert await client.generate("Hi", **options) == "From Claude"
        # OpenAI cools down: the next call asks Claude first.
        server.add("Claude again")
        assert await client.generate("Hi", **options) == "Claude again"
        # When Claude fails too, OpenAI is still tried, last.
        server.add(Reply(status=503), "OpenAI is back")
        assert await client.generate("Hi", **options) == "OpenAI is back"
    providers = [request.provider for request in server.requests]
    assert providers == ["openai", "anthropic", "anthropic", "anthropic", "openai"]
    # OpenAI answered: its cool-down is over; Claude's began.
    assert store.execute(Cooling(("openai/gpt-mock", "anthropic/claude-mock"))) == (
        False,
        True,
    )
