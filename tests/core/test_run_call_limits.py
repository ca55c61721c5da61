"""Rate limits and cool-downs in the lifecycle, driven without sockets or
sleeps: the test plays the driver, answering each ``Shared`` op from an
in-process store on the test's clock, and reads the ops ``run_call`` yields:
the wait as ``Sleep`` ops, the RateLimitError when the wait outlasts
``total_timeout``, the pause after a provider's 429, the correction by the
usage, the release carried by the ``Send``, the cool-downs' order of models."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

import mal
from mal._complete import RunTools
from mal._lifecycle import BYTES_PER_TOKEN, CallState, run_call
from mal._limits import LocalStore
from mal._ops import (
    READ_ERROR_BODY,
    RECEIVE,
    CallGenerator,
    Receive,
    ResponseHead,
    Send,
    Shared,
    Sleep,
)
from mal.limits import Acquire, Cooling, Correct, Pause, Release, Report

from .test_lifecycle_resend import HEAD, finish


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(autouse=True)
def no_slack(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lifecycle's mechanics in whole minutes: the window's slack for the
    way to the provider has a test of its own."""
    monkeypatch.setattr("mal._limits.SLACK", 0.0)


def test_a_request_counts_a_little_longer_than_its_window(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Half a second a minute for the way to the provider: requests granted a
    # minute apart must not arrive less than a minute apart.
    monkeypatch.setattr("mal._limits.SLACK", 1 / 120)
    _, driver = make(clock, rate_limits=RPM1)
    driver.start()
    [acquire] = driver.of(Acquire)
    assert acquire.window == pytest.approx(60.5)


class Driver:
    """Plays the driver's part for ``Shared`` ops: each is carried out by the
    client's store and recorded."""

    def __init__(self, client: mal.Client) -> None:
        self.client = client
        self.commands: list[Any] = []

    def start(
        self, options: dict[str, Any] | None = None, model: str = "ollama/m"
    ) -> tuple[CallGenerator, CallState, Any]:
        call = self.client._prepare("Hi", model, options or {}, for_generate=False)
        state = CallState(call)
        gen = run_call(call, state, self.client._runtime)
        return gen, state, self.run(gen, next(gen))

    def run(self, gen: CallGenerator, op: Any) -> Any:
        """The first op after the ``Shared`` ones, each answered by the store."""
        while type(op) is Shared:
            self.commands.append(op.command)
            op = gen.send(op.store.execute(op.command))
        return op

    def send(self, gen: CallGenerator, value: Any) -> Any:
        return self.run(gen, gen.send(value))

    def status(self, gen: CallGenerator, code: int, headers: dict[str, str] | None = None) -> Any:
        op = gen.send(ResponseHead(code, {"content-type": "application/json", **(headers or {})}))
        assert op is READ_ERROR_BODY
        return self.send(gen, b'{"error":"busy"}')

    def of(self, kind: type) -> list[Any]:
        return [command for command in self.commands if type(command) is kind]


def make(clock: Clock, hooks: mal.Hooks | None = None, **config: Any) -> tuple[mal.Client, Driver]:
    config.setdefault("base_urls", {"ollama": "http://127.0.0.1:9"})
    client = mal.Client(mal.MALConfig(**config), clock=clock, random=lambda: 0.5, hooks=hooks)
    client._runtime.store = LocalStore(clock=clock)
    return client, Driver(client)


def model_of(send: Send) -> str:
    model: str = json.loads(send.request.body)["model"]
    return model


def end(driver: Driver, gen: CallGenerator, body: bytes) -> None:
    """Answer a send with a whole body and run the call to its end."""
    op = gen.send(HEAD)
    assert op is RECEIVE or type(op) is Receive
    op = driver.send(gen, body)
    while True:
        try:
            if isinstance(op, mal.Chunk):
                op = driver.send(gen, None)
            else:
                assert op is RECEIVE or type(op) is Receive
                op = driver.send(gen, b"")
        except StopIteration:
            return


BODY = (
    b'{"model":"m","response":"Hi","done":false}\n'
    b'{"model":"m","response":"","done":true,"done_reason":"stop",'
    b'"prompt_eval_count":30,"eval_count":12}\n'
)

RPM1 = {"ollama": mal.RateLimit(requests_per_minute=1)}


# Waiting for a turn ------------------------------------------------------------------


def test_no_limit_and_no_cool_down_ask_nothing_of_a_store(clock: Clock) -> None:
    client, driver = make(clock)
    assert client._runtime.store is not None  # given by the test...
    client._runtime.store = None  # ...but a client without limits has none
    config = mal.MALConfig(base_urls={"ollama": "http://127.0.0.1:9"})
    assert mal.Client(config)._runtime.store is None
    gen, _, send = driver.start({"max_retries": 0, "fallbacks": ["ollama/m2"]})
    assert type(send) is Send
    assert send.release is None
    assert finish(gen, send) == ["Hi", ""]
    assert driver.commands == []


def test_a_limit_that_matches_no_call_asks_nothing(clock: Clock) -> None:
    _, driver = make(clock, rate_limits={"openai": mal.RateLimit(requests_per_minute=1)})
    _, _, send = driver.start()
    assert type(send) is Send
    assert driver.commands == []


def test_a_full_window_becomes_a_sleep_then_the_request(clock: Clock) -> None:
    seen: list[float] = []
    hooks = mal.Hooks(on_request=lambda info: seen.append(clock.now))
    _, driver = make(clock, hooks, rate_limits=RPM1)
    gen, _, send = driver.start()
    assert type(send) is Send
    [acquire] = driver.of(Acquire)
    assert acquire.limits == (("ollama", RPM1["ollama"]),)
    assert acquire.window == 60.0
    end(driver, gen, BODY)
    clock.now += 20.0
    gen, state, op = driver.start()
    assert op == Sleep(pytest.approx(40.0))  # the first grant leaves the window then
    assert seen == [1000.0]  # nothing sent: no request hook yet
    clock.now += 40.0
    send = driver.send(gen, None)
    assert type(send) is Send
    assert seen == [1000.0, 1060.0]
    assert len(driver.of(Acquire)) == 3  # the call asked twice
    end(driver, gen, BODY)
    assert state.stats.limit_wait == pytest.approx(40.0)
    assert state.stats.error is None


def test_each_retry_waits_its_own_turn(clock: Clock) -> None:
    _, driver = make(clock, rate_limits=RPM1)
    gen, state, _ = driver.start({"max_retries": 1})
    op = driver.status(gen, 503)
    assert op == Sleep(pytest.approx(0.25))  # the back-off
    clock.now += 0.25
    op = driver.send(gen, None)
    assert op == Sleep(pytest.approx(59.75))  # then the turn of the retry
    clock.now += 59.75
    retry = driver.send(gen, None)
    assert type(retry) is Send
    leases = [command.lease for command in driver.of(Acquire)]
    assert len(set(leases)) == 2 and len(leases) == 3
    end(driver, gen, BODY)
    assert state.stats.retries == 1


def test_a_turn_after_the_total_timeout_is_a_rate_limit_error_at_once(clock: Clock) -> None:
    client, driver = make(clock, rate_limits=RPM1, total_timeout=30.0)
    gen, _, _ = driver.start()
    end(driver, gen, BODY)
    clock.now += 1.0
    call = client._prepare("Hi", "ollama/m", {"max_retries": 3}, for_generate=False)
    state = CallState(call)
    gen = run_call(call, state, client._runtime)
    op = next(gen)
    assert type(op) is Shared
    with pytest.raises(mal.RateLimitError) as info:
        gen.send(op.store.execute(op.command))
    error = info.value
    assert error.status_code == 429
    assert error.retry_after == pytest.approx(59.0)
    assert error.retryable is False
    assert error.provider == "ollama"
    assert "rate_limits['ollama'] (requests_per_minute=1)" in str(error)
    assert "total_timeout" in str(error)
    assert state.stats.error == "RateLimitError"
    assert state.stats.retries == 0  # not retried: the wait would not fit either
    assert client.metrics.errors == {"RateLimitError": 1}


def test_a_fallback_is_tried_when_the_models_turn_comes_too_late(clock: Clock) -> None:
    fallbacks: list[tuple[str, str, str]] = []
    hooks = mal.Hooks(on_fallback=lambda a, b, e: fallbacks.append((a, b, type(e).__name__)))
    limits = {"ollama/m": mal.RateLimit(requests_per_minute=1)}
    _, driver = make(clock, hooks, rate_limits=limits, total_timeout=30.0)
    gen, _, _ = driver.start()
    end(driver, gen, BODY)
    gen, state, send = driver.start({"fallbacks": ["ollama/m2"]})
    assert type(send) is Send
    assert model_of(send) == "m2"
    assert fallbacks == [("ollama/m", "ollama/m2", "RateLimitError")]
    end(driver, gen, BODY)
    assert state.stats.fallbacks == 1
    assert state.stats.error is None


def test_a_wait_that_fits_the_total_timeout_is_waited(clock: Clock) -> None:
    _, driver = make(clock, rate_limits=RPM1, total_timeout=100.0)
    gen, _, _ = driver.start()
    end(driver, gen, BODY)
    gen, _, op = driver.start()
    assert op == Sleep(pytest.approx(60.0))


def test_the_window_is_the_modules(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mal._limits.WINDOW", 0.5)
    _, driver = make(clock, rate_limits=RPM1)
    gen, _, _ = driver.start()
    end(driver, gen, BODY)
    gen, _, op = driver.start()
    assert op == Sleep(pytest.approx(0.5))
    assert driver.of(Acquire)[0].window == 0.5


def test_a_provider_limit_and_a_model_limit_both_hold(clock: Clock) -> None:
    limits = {
        "ollama": mal.RateLimit(requests_per_minute=10),
        "ollama/m": mal.RateLimit(concurrent=1),
        "ollama/other": mal.RateLimit(concurrent=1),
        "openai": mal.RateLimit(concurrent=1),
    }
    _, driver = make(clock, rate_limits=limits)
    driver.start()
    [acquire] = driver.of(Acquire)
    assert [name for name, _ in acquire.limits] == ["ollama", "ollama/m"]


def test_a_responses_api_call_counts_under_openais_limits(clock: Clock) -> None:
    limits = {
        "openai": mal.RateLimit(requests_per_minute=10),
        "openai/gpt": mal.RateLimit(concurrent=1),
        "openai-responses": mal.RateLimit(concurrent=3),
    }
    _, driver = make(
        clock, rate_limits=limits, base_urls={"openai-responses": "http://127.0.0.1:9/v1"}
    )
    driver.start(model="openai-responses/gpt")
    [acquire] = driver.of(Acquire)
    names = [name for name, _ in acquire.limits]
    assert names == ["openai-responses", "openai", "openai/gpt"]


# Tokens ------------------------------------------------------------------------------


def test_the_cost_is_the_body_and_the_output_asked_for(clock: Clock) -> None:
    _, driver = make(clock, rate_limits={"ollama": mal.RateLimit(tokens_per_minute=10_000)})
    _, _, send = driver.start({"max_tokens": 500})
    [acquire] = driver.of(Acquire)
    body = len(send.request.body)
    assert acquire.cost == -(-body // BYTES_PER_TOKEN) + 500
    _, _, send = driver.start()  # no max_tokens: the body alone
    assert driver.of(Acquire)[1].cost == -(-len(send.request.body) // BYTES_PER_TOKEN)


def test_the_usage_corrects_the_estimate(clock: Clock) -> None:
    tpm = mal.RateLimit(tokens_per_minute=1000)
    client, driver = make(clock, rate_limits={"ollama": tpm})
    gen, _, _ = driver.start({"max_tokens": 900})
    [acquire] = driver.of(Acquire)
    assert acquire.cost > 900
    # The estimate fills the window: another request of any size waits.
    store = client._runtime.store
    assert store is not None
    probe = Acquire((("ollama", tpm),), 100, "probe", 60.0, 60.0)
    assert store.execute(probe)[0] > 0
    end(driver, gen, BODY)
    [correct] = driver.of(Correct)
    assert correct == Correct((("ollama", tpm),), acquire.lease, 30 + 12, 60.0)
    assert store.execute(probe) == (0.0, "")


def test_with_a_slot_the_correction_goes_with_the_release(clock: Clock) -> None:
    # One round trip to a shared store at the end of a request, not two.
    limit = mal.RateLimit(tokens_per_minute=1000, concurrent=2)
    client, driver = make(clock, rate_limits={"ollama": limit})
    gen, _, send = driver.start({"max_tokens": 900})
    [acquire] = driver.of(Acquire)
    end(driver, gen, BODY)
    assert driver.of(Correct) == []
    assert send.release is not None
    correct = Correct((("ollama", limit),), acquire.lease, 30 + 12, 60.0)
    assert send.release.command == Release(("ollama",), acquire.lease, correct)
    store = client._runtime.store
    assert store is not None
    probe = Acquire((("ollama", limit),), 100, "probe", 60.0, 60.0)
    assert store.execute(probe)[0] > 0  # the estimate, until the driver lets go
    store.execute(send.release.command)
    assert store.execute(probe) == (0.0, "")


def test_no_correction_without_a_token_limit_or_without_usage(clock: Clock) -> None:
    _, driver = make(clock, rate_limits={"ollama": mal.RateLimit(requests_per_minute=9)})
    gen, _, _ = driver.start()
    end(driver, gen, BODY)
    assert driver.of(Correct) == []
    _, driver = make(clock, rate_limits={"ollama": mal.RateLimit(tokens_per_minute=9000)})
    gen, _, _ = driver.start()
    end(driver, gen, BODY.replace(b',"prompt_eval_count":30,"eval_count":12', b""))
    assert driver.of(Correct) == []


# Concurrency -------------------------------------------------------------------------


def test_the_send_carries_the_release_of_its_slot(clock: Clock) -> None:
    limits = {
        "ollama": mal.RateLimit(concurrent=1),
        "ollama/m": mal.RateLimit(tokens_per_minute=99),
    }
    _, driver = make(clock, rate_limits=limits)
    _, _, send = driver.start()
    [acquire] = driver.of(Acquire)
    assert isinstance(send.release, Shared)
    assert send.release.command == Release(("ollama",), acquire.lease)
    # Held until the driver runs the release: a second call polls.
    gen2, _, op = driver.start()
    assert type(op) is Sleep
    assert 0 < op.seconds <= 0.1
    send.release.store.execute(send.release.command)
    assert type(driver.send(gen2, None)) is Send


def test_no_release_without_a_concurrency_limit(clock: Clock) -> None:
    _, driver = make(clock, rate_limits=RPM1)
    _, _, send = driver.start()
    assert type(send) is Send
    assert send.release is None


def test_a_request_sent_again_at_once_takes_a_turn_again(clock: Clock) -> None:
    _, driver = make(clock, rate_limits={"ollama": mal.RateLimit(concurrent=1)})
    gen, _, send = driver.start({"max_retries": 0})
    assert send.release is not None
    # The driver frees the slot of a failed send at once...
    send.release.store.execute(send.release.command)
    send.reused, send.unanswered = True, True
    again = driver.run(gen, gen.throw(mal.APIConnectionError("Server disconnected")))
    # ...and the request sent again holds one of its own.
    assert type(again) is Send
    first, second = driver.of(Acquire)
    assert again.release is not None
    assert again.release.command == Release(("ollama",), second.lease)
    assert first.lease != second.lease


# A provider's 429 --------------------------------------------------------------------


def test_a_429_with_retry_after_pauses_the_limits_of_the_call(clock: Clock) -> None:
    limits = {"ollama": mal.RateLimit(requests_per_minute=100)}
    _, driver = make(clock, rate_limits=limits)
    gen, state, _ = driver.start({"max_retries": 1})
    op = driver.status(gen, 429, {"retry-after": "7"})
    assert driver.of(Pause) == [Pause(("ollama",), 7.0)]
    assert op == Sleep(pytest.approx(7.0))
    # Meanwhile another call waits for the pause to end.
    clock.now += 2.0
    _, _, other = driver.start()
    assert other == Sleep(pytest.approx(5.0))
    clock.now += 5.0
    retry = driver.send(gen, None)
    assert type(retry) is Send
    end(driver, gen, BODY)
    assert state.stats.retries == 1


def test_a_pause_is_no_longer_than_max_retry_after(clock: Clock) -> None:
    _, driver = make(clock, rate_limits=RPM1, max_retry_after=30.0)
    gen, _, _ = driver.start({"max_retries": 1})
    with pytest.raises(mal.RateLimitError):
        driver.status(gen, 429, {"retry-after": "3600"})
    assert driver.of(Pause) == [Pause(("ollama",), 30.0)]


def test_a_429_without_retry_after_pauses_nothing(clock: Clock) -> None:
    _, driver = make(clock, rate_limits={"ollama": mal.RateLimit(requests_per_minute=100)})
    gen, _, _ = driver.start({"max_retries": 1})
    op = driver.status(gen, 429)
    assert type(op) is Sleep
    assert driver.of(Pause) == []


# Cool-downs --------------------------------------------------------------------------


def cooling(client: mal.Client, *models: str) -> None:
    store = client._runtime.store
    assert store is not None
    for model in models:
        store.execute(Report(model, False, 1, 60.0))


def test_the_outcome_of_each_attempt_is_reported(clock: Clock) -> None:
    _, driver = make(clock, cooldown_failures=3, cooldown_seconds=10.0)
    gen, _, _ = driver.start({"max_retries": 2})
    op = driver.status(gen, 503)
    assert type(op) is Sleep
    retry = driver.send(gen, None)
    assert type(retry) is Send
    end(driver, gen, BODY)
    assert driver.of(Report) == [
        Report("ollama/m", False, 3, 10.0),
        Report("ollama/m", True, 3, 10.0),
    ]
    assert driver.of(Cooling) == []  # no fallbacks: nothing to reorder


def test_a_failure_that_is_not_retryable_is_not_reported(clock: Clock) -> None:
    _, driver = make(clock, cooldown_failures=1)
    gen, _, _ = driver.start({"max_retries": 2})
    with pytest.raises(mal.BadRequestError):
        driver.status(gen, 400)
    assert driver.of(Report) == []


def test_models_cooling_down_are_tried_last(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    fallbacks: list[tuple[str, str]] = []
    hooks = mal.Hooks(on_fallback=lambda a, b, e: fallbacks.append((a, b)))
    client, driver = make(clock, hooks, cooldown_failures=2)
    cooling(client, "ollama/m", "ollama/m2")
    caplog.set_level(logging.INFO, logger="mal")
    gen, state, send = driver.start({"max_retries": 0, "fallbacks": ["m2", "ollama/m3"]})
    assert driver.of(Cooling) == [Cooling(("ollama/m", "ollama/m2", "ollama/m3"))]
    assert type(send) is Send
    assert model_of(send) == "m3"  # the one not cooling, first
    assert state.model == "m3"
    assert state.stats.cooling == ("ollama/m", "ollama/m2")
    assert "trying ollama/m after the other models" in caplog.text
    assert "trying ollama/m2 after the other models" in caplog.text
    send = driver.status(gen, 503)
    assert model_of(send) == "m"  # then the cooling ones, in their order
    send = driver.status(gen, 503)
    assert model_of(send) == "m2"
    end(driver, gen, BODY)
    # The hook names a fallback as the call wrote it.
    assert fallbacks == [("ollama/m3", "ollama/m"), ("ollama/m", "m2")]
    assert state.stats.fallbacks == 2
    assert [(r.model, r.ok) for r in driver.of(Report)] == [
        ("ollama/m3", False),
        ("ollama/m", False),
        ("ollama/m2", True),
    ]


def test_when_every_model_cools_they_are_all_tried_in_order(clock: Clock) -> None:
    client, driver = make(clock, cooldown_failures=1)
    cooling(client, "ollama/m", "ollama/m2")
    gen, state, send = driver.start({"max_retries": 0, "fallbacks": ["ollama/m2"]})
    assert model_of(send) == "m"
    send = driver.status(gen, 503)
    assert model_of(send) == "m2"
    end(driver, gen, BODY)
    assert state.stats.cooling == ("ollama/m", "ollama/m2")


def test_a_success_ends_the_cool_down(clock: Clock) -> None:
    client, driver = make(clock, cooldown_failures=1)
    cooling(client, "ollama/m")
    gen, _, send = driver.start({"max_retries": 0, "fallbacks": ["ollama/m2"]})
    assert model_of(send) == "m2"
    send = driver.status(gen, 503)
    assert model_of(send) == "m"
    end(driver, gen, BODY)
    gen, state, send = driver.start({"max_retries": 0, "fallbacks": ["ollama/m2"]})
    assert model_of(send) == "m"
    assert state.stats.cooling == ("ollama/m2",)  # its failure made it cool


def test_a_cool_down_ends_with_its_time(clock: Clock) -> None:
    _, driver = make(clock, cooldown_failures=2, cooldown_seconds=30.0)
    gen, _, send = driver.start({"max_retries": 1, "fallbacks": ["ollama/m2"]})
    send = driver.status(gen, 503)
    assert type(send) is Sleep
    send = driver.send(gen, None)
    send = driver.status(gen, 503)  # the second failure in a row: m cools
    assert model_of(send) == "m2"
    end(driver, gen, BODY)
    _, _, send = driver.start({"max_retries": 0, "fallbacks": ["ollama/m2"]})
    assert model_of(send) == "m2"
    clock.now += 30.0
    _, _, send = driver.start({"max_retries": 0, "fallbacks": ["ollama/m2"]})
    assert model_of(send) == "m"


# A tool loop -------------------------------------------------------------------------


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def test_each_step_of_a_tool_loop_takes_its_own_turn(clock: Clock) -> None:
    limits = {"ollama": mal.RateLimit(requests_per_minute=1, concurrent=1)}
    client, driver = make(clock, rate_limits=limits)
    options = {"tools": [add], "tool_rounds": 1, "stream": True, "max_retries": 0}
    _, _, gen = client._start("What is 1+2?", "ollama/m", options, for_generate=True)
    send = driver.run(gen, next(gen))
    assert type(send) is Send
    call = {"function": {"name": "add", "arguments": {"a": 1, "b": 2}}}
    head = ResponseHead(200, {"content-type": "application/x-ndjson"})
    assert gen.send(head) is RECEIVE
    body = (
        json.dumps({"model": "m", "message": {"role": "assistant", "tool_calls": [call]}})
        + "\n"
        + json.dumps({"model": "m", "message": {"role": "assistant"}, "done": True})
        + "\n"
    ).encode()
    op = driver.send(gen, body)
    while type(op) is not RunTools:
        op = driver.send(gen, None if isinstance(op, mal.Chunk) else b"")
    # The driver lets the step's response go before it runs the tools.
    assert send.release is not None
    send.release.store.execute(send.release.command)
    results = gen.send([(3, None)])
    assert isinstance(results, mal.Chunk)
    op = driver.send(gen, None)
    # The second step waits for its turn: one request a minute.
    assert op == Sleep(pytest.approx(60.0))
    clock.now += 60.0
    second = driver.send(gen, None)
    assert type(second) is Send
    assert len({command.lease for command in driver.of(Acquire)}) == 2
