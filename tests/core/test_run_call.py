"""The lifecycle driven without sockets or sleeps: the test plays the driver,
answering each op of ``run_call`` (and of ``run_loop``) with scripted results
and reading the ops it gets back: the back-off of a retry, the clocks, a
fallback, a failure after text, a tool round."""

from __future__ import annotations

import json
from typing import Any

import pytest

import mal
from mal._complete import RunTools
from mal._lifecycle import CallState, run_call
from mal._ops import READ_ERROR_BODY, RECEIVE, CallGenerator, Receive, ResponseHead, Send, Sleep

from .test_lifecycle_resend import HEAD, finish

NDJSON = {"content-type": "application/x-ndjson"}


class Clock:
    """A clock that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_client(clock: Clock, **config: Any) -> mal.Client:
    config.setdefault("base_urls", {"ollama": "http://127.0.0.1:9"})
    return mal.Client(mal.MALConfig(**config), clock=clock, random=lambda: 0.5)


def start(
    client: mal.Client, options: dict[str, Any] | None = None
) -> tuple[CallGenerator, CallState, Send]:
    call = client._prepare("Hi", "ollama/m", options or {}, for_generate=False)
    state = CallState(call)
    gen = run_call(call, state, client._runtime)
    op = next(gen)
    assert type(op) is Send
    return gen, state, op


def status(gen: CallGenerator, code: int, headers: dict[str, str] | None = None) -> object:
    """Answer a send with an error status and its body."""
    op = gen.send(ResponseHead(code, {"content-type": "application/json", **(headers or {})}))
    assert op is READ_ERROR_BODY
    return gen.send(b'{"error":"busy"}')


def line(text: str) -> bytes:
    return json.dumps({"model": "m", "response": text, "done": False}).encode() + b"\n"


# Retries ---------------------------------------------------------------------------


def test_a_retryable_status_is_retried_after_a_random_back_off(clock: Clock) -> None:
    with make_client(clock) as client:
        gen, state, send = start(client, {"max_retries": 2})
        op = status(gen, 503)
        # Full jitter: random() * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** 0).
        assert type(op) is Sleep
        assert op.seconds == pytest.approx(0.5 * 0.5)
        retry = gen.send(None)
        assert type(retry) is Send
        assert retry.request is send.request
        op = status(gen, 503)
        assert type(op) is Sleep
        assert op.seconds == pytest.approx(0.5 * 1.0)  # the second back-off doubles
        assert finish(gen, gen.send(None)) == ["Hi", ""]
        assert state.stats.retries == 2
        assert state.stats.error is None
        assert client.metrics.requests == 3


def test_retry_after_is_honoured(clock: Clock) -> None:
    with make_client(clock) as client:
        gen, state, _ = start(client, {"max_retries": 1})
        op = status(gen, 429, {"retry-after": "7"})
        assert type(op) is Sleep
        assert op.seconds == pytest.approx(7.0)
        assert finish(gen, gen.send(None)) == ["Hi", ""]
        assert state.stats.retries == 1


def test_a_retry_after_past_max_retry_after_fails_at_once(clock: Clock) -> None:
    with make_client(clock, max_retry_after=5.0) as client:
        gen, state, _ = start(client, {"max_retries": 1})
        with pytest.raises(mal.RateLimitError):
            status(gen, 429, {"retry-after": "7"})
        assert state.stats.retries == 0
        assert state.stats.error == "RateLimitError"


def test_a_status_that_is_not_retryable_is_not_retried(clock: Clock) -> None:
    with make_client(clock) as client:
        gen, state, _ = start(client, {"max_retries": 2})
        with pytest.raises(mal.APIStatusError) as info:
            status(gen, 400)
        assert info.value.status_code == 400
        assert state.stats.retries == 0


# Clocks ----------------------------------------------------------------------------


def test_the_first_token_clock_runs_from_the_send(clock: Clock) -> None:
    with make_client(clock, first_token_timeout=5.0) as client:
        gen, _, send = start(client, {"max_retries": 0})
        assert send.clock == Receive(5.0, "first_token")
        clock.now += 1.5  # the head came after 1.5 s
        op = gen.send(HEAD)
        assert op == Receive(3.5, "first_token")
        clock.now += 0.5
        op = gen.send(b'{"model":"m","response":"","done":false}\n')  # no text yet
        assert op == Receive(3.0, "first_token")
        with pytest.raises(mal.APITimeoutError) as info:
            gen.throw(op.expired())
        assert info.value.phase == "first_token"
        assert client.metrics.timeouts == {"first_token": 1}


def test_a_send_that_outlives_the_first_token_clock_fails(clock: Clock) -> None:
    with make_client(clock, first_token_timeout=5.0) as client:
        gen, state, send = start(client, {"max_retries": 0})
        assert send.clock is not None
        with pytest.raises(mal.APITimeoutError) as info:
            gen.throw(send.clock.expired())
        assert info.value.phase == "first_token"
        assert state.stats.error == "APITimeoutError"


def test_the_idle_clock_starts_with_the_first_text(clock: Clock) -> None:
    with make_client(clock, idle_timeout=2.0) as client:
        gen, _, _ = start(client, {"max_retries": 3})
        op = gen.send(HEAD)
        assert op is RECEIVE  # no clock before the first text
        clock.now += 10.0
        chunk = gen.send(line("Hi"))
        assert isinstance(chunk, mal.Chunk)
        assert chunk.text == "Hi"
        clock.now += 0.5
        op = gen.send(None)
        assert op == Receive(1.5, "idle")
        with pytest.raises(mal.APITimeoutError) as info:
            gen.throw(op.expired())
        # After text, no retry: what arrived is in the error.
        assert info.value.phase == "idle"
        assert info.value.partial_text == "Hi"


def test_the_idle_clock_starts_again_with_each_piece_of_text(clock: Clock) -> None:
    with make_client(clock, idle_timeout=2.0) as client:
        gen, _, _ = start(client, {"max_retries": 0})
        assert gen.send(HEAD) is RECEIVE
        texts = []
        for word in ("a", "b", "c"):
            chunk = gen.send(line(word))
            assert isinstance(chunk, mal.Chunk)
            texts.append(chunk.text)
            clock.now += 1.5  # each gap is shorter than the clock, their sum is not
            op = gen.send(None)
            # Measured from the last text, not from the first one.
            assert op == Receive(0.5, "idle")
        assert texts == ["a", "b", "c"]
        # Bytes with no text (a keep-alive line) do not start it again.
        clock.now += 0.25
        op = gen.send(b'{"model": "m", "response": "", "done": false}\n')
        assert op == Receive(0.25, "idle")


def test_the_total_clock_runs_from_the_start_and_wins_when_sooner(clock: Clock) -> None:
    with make_client(clock, first_token_timeout=5.0, total_timeout=3.0) as client:
        gen, _, send = start(client, {"max_retries": 0})
        assert send.clock == Receive(3.0, "total")
        clock.now += 1.0
        op = gen.send(HEAD)
        assert op == Receive(2.0, "total")
        with pytest.raises(mal.APITimeoutError) as info:
            gen.throw(op.expired())
        assert info.value.phase == "total"


def test_a_clock_that_ran_out_between_reads_fails_without_a_read(clock: Clock) -> None:
    with make_client(clock, total_timeout=3.0) as client:
        gen, _, _ = start(client, {"max_retries": 0})
        clock.now += 1.0
        chunk = gen.send(HEAD)
        assert chunk == Receive(2.0, "total")
        chunk = gen.send(line("Hi"))
        assert isinstance(chunk, mal.Chunk)
        clock.now += 5.0  # the caller took its time
        with pytest.raises(mal.APITimeoutError) as info:
            gen.send(None)
        assert info.value.phase == "total"
        assert info.value.partial_text == "Hi"


def test_no_retry_that_would_end_past_the_total_clock(clock: Clock) -> None:
    with make_client(clock, total_timeout=3.0) as client:
        gen, state, _ = start(client, {"max_retries": 2})
        clock.now += 2.9
        with pytest.raises(mal.APIStatusError):
            status(gen, 429, {"retry-after": "1"})
        assert state.stats.retries == 0


# Fallbacks and failures ------------------------------------------------------------


def test_a_fallback_after_the_first_model_fails(clock: Clock) -> None:
    seen: list[tuple[str, str]] = []
    hooks = mal.Hooks(on_fallback=lambda old, new, error: seen.append((old, new)))
    config = mal.MALConfig(base_urls={"ollama": "http://127.0.0.1:9"})
    with mal.Client(config, clock=clock, random=lambda: 0.5, hooks=hooks) as client:
        gen, state, send = start(client, {"max_retries": 0, "fallbacks": ["ollama/m2"]})
        assert json.loads(send.request.body)["model"] == "m"
        op = status(gen, 503)
        assert type(op) is Send  # no back-off before a fallback
        assert json.loads(op.request.body)["model"] == "m2"
        assert seen == [("ollama/m", "ollama/m2")]
        assert state.model == "m2"
        assert finish(gen, op) == ["Hi", ""]
        assert state.stats.fallbacks == 1
        assert state.stats.model == "m2"
        assert client.metrics.fallbacks == 1


def test_the_last_fallbacks_error_is_raised(clock: Clock) -> None:
    with make_client(clock) as client:
        gen, state, _ = start(client, {"max_retries": 0, "fallbacks": ["ollama/m2"]})
        op = status(gen, 503)
        assert type(op) is Send
        with pytest.raises(mal.APIStatusError) as info:
            status(gen, 500)
        assert info.value.status_code == 500
        assert state.stats.error == "InternalServerError"


def test_a_failure_after_text_is_not_retried_nor_falls_back(clock: Clock) -> None:
    with make_client(clock) as client:
        gen, state, _ = start(client, {"max_retries": 3, "fallbacks": ["ollama/m2"]})
        assert gen.send(HEAD) is RECEIVE
        chunk = gen.send(line("Hel") + line("lo"))
        assert isinstance(chunk, mal.Chunk)
        assert chunk.text == "Hel"
        chunk = gen.send(None)
        assert isinstance(chunk, mal.Chunk)
        assert chunk.text == "lo"
        assert gen.send(None) is RECEIVE
        with pytest.raises(mal.APIConnectionError) as info:
            gen.throw(mal.APIConnectionError("the connection was reset"))
        assert info.value.partial_text == "Hello"
        assert state.stats.retries == 0
        assert state.stats.fallbacks == 0
        assert client.metrics.requests == 1


# A tool round ----------------------------------------------------------------------


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def chat_line(message: dict[str, Any], done: bool = False) -> bytes:
    body: dict[str, Any] = {"model": "m", "message": {"role": "assistant", **message}}
    body["done"] = done
    if done:
        body["done_reason"] = "stop"
    return json.dumps(body).encode() + b"\n"


def answer(gen: Any, body: bytes) -> tuple[list[mal.Chunk], Any, Any]:
    """Answer a send with a whole streamed body: the chunks handed to the
    caller, then the next op (None at the end) and what the loop returned."""
    op = gen.send(ResponseHead(200, NDJSON))
    assert op is RECEIVE
    chunks = []
    try:
        op = gen.send(body)
        while True:
            if isinstance(op, mal.Chunk) and not op.tool_results:
                chunks.append(op)
                op = gen.send(None)
            elif op is RECEIVE:
                op = gen.send(b"")
            else:
                return chunks, op, None
    except StopIteration as stop:
        return chunks, None, stop.value


def test_a_tool_round_through_run_loop(clock: Clock) -> None:
    with make_client(clock) as client:
        options = {"tools": [add], "tool_rounds": 1, "stream": True, "max_retries": 0}
        _, run, gen = client._start("What is 1+2?", "ollama/m", options, for_generate=True)
        op = next(gen)
        assert type(op) is Send
        call = {"function": {"name": "add", "arguments": {"a": 1, "b": 2}}}
        body = chat_line({"content": "", "tool_calls": [call]}) + chat_line({"content": ""}, True)
        chunks, tools, _ = answer(gen, body)
        assert [c.tool_calls[0].name for c in chunks if c.tool_calls] == ["add"]
        assert type(tools) is RunTools
        [tool_run] = tools.runs
        assert tool_run.tool.name == "add"
        assert tool_run.tool.function(*tool_run.args, **tool_run.kwargs) == 3
        results = gen.send([(3, None)])
        assert isinstance(results, mal.Chunk)
        assert [(r.call.name, r.content) for r in results.tool_results] == [("add", "3")]
        second = gen.send(None)
        assert type(second) is Send
        messages = json.loads(second.request.body)["messages"]
        assert messages[-1]["role"] == "tool"
        assert messages[-1]["content"] == "3"
        assert messages[-2]["tool_calls"][0]["function"]["name"] == "add"
        body = chat_line({"content": "It is 3."}) + chat_line({"content": ""}, True)
        chunks, op, response = answer(gen, body)
        assert op is None
        assert [(c.text, c.step) for c in chunks] == [("It is 3.", 1), ("", 1)]
        assert isinstance(response, mal.Response)
        assert response.text == "It is 3."
        assert len(response.steps) == 2
        assert run.final is response
