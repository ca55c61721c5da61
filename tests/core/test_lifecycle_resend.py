"""The lifecycle's decision to send a request again at once, driven without
sockets: the test plays the driver, throwing the failure of a ``Send`` with
the facts a driver reports (``reused``, ``unanswered``) into ``run_call``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import mal
from mal._lifecycle import CallState, run_call
from mal._ops import RECEIVE, CallGenerator, ResponseHead, Send, Sleep

BODY = (
    b'{"model":"m","response":"Hi","done":false}\n'
    b'{"model":"m","response":"","done":true,"done_reason":"stop"}\n'
)
HEAD = ResponseHead(200, {"content-type": "application/x-ndjson"})


@pytest.fixture
def client() -> Iterator[mal.Client]:
    config = mal.MALConfig(base_urls={"ollama": "http://127.0.0.1:9"})
    with mal.Client(config, random=lambda: 1.0) as client:
        yield client


def start(client: mal.Client, max_retries: int) -> tuple[CallGenerator, CallState, Send]:
    call = client._prepare("Hi", "ollama/m", {"max_retries": max_retries}, for_generate=False)
    state = CallState(call)
    gen = run_call(call, state, client._runtime)
    op = next(gen)
    assert type(op) is Send
    return gen, state, op


def fail(gen: CallGenerator, send: Send, *, reused: bool, unanswered: bool) -> object:
    """What the driver does when a send fails: the facts, then the error."""
    send.reused, send.unanswered = reused, unanswered
    return gen.throw(mal.APIConnectionError("the request failed: Server disconnected"))


def finish(gen: CallGenerator, op: object) -> list[str]:
    """Answer a send with a whole body; the texts of the chunks."""
    assert type(op) is Send
    texts = []
    op = gen.send(HEAD)
    assert op is RECEIVE
    op = gen.send(BODY)
    while True:
        if isinstance(op, mal.Chunk):
            texts.append(op.text)
            op = gen.send(None)
        else:
            assert op is RECEIVE
            try:
                op = gen.send(b"")
            except StopIteration:
                return texts


def test_a_reused_unanswered_send_is_sent_again_at_once(client: mal.Client) -> None:
    gen, state, send = start(client, max_retries=0)
    again = fail(gen, send, reused=True, unanswered=True)
    assert type(again) is Send  # no Sleep before it
    assert again is not send
    assert again.request is send.request
    assert finish(gen, again) == ["Hi", ""]
    assert state.stats.retries == 0
    assert state.stats.error is None
    assert client.metrics.requests == 1
    assert client.metrics.retries == 0


@pytest.mark.parametrize(
    ("reused", "unanswered"),
    [(False, True), (True, False), (False, False)],
    ids=["new connection", "not before the response", "neither"],
)
def test_otherwise_max_retries_decides(client: mal.Client, reused: bool, unanswered: bool) -> None:
    gen, _, send = start(client, max_retries=0)
    with pytest.raises(mal.APIConnectionError):
        fail(gen, send, reused=reused, unanswered=unanswered)
    gen, state, send = start(client, max_retries=1)
    op = fail(gen, send, reused=reused, unanswered=unanswered)
    assert type(op) is Sleep  # a retry, after its back-off
    assert op.seconds == pytest.approx(0.5)
    assert state.stats.retries == 1


def test_the_request_is_sent_again_once(client: mal.Client) -> None:
    gen, state, send = start(client, max_retries=0)
    again = fail(gen, send, reused=True, unanswered=True)
    assert type(again) is Send
    with pytest.raises(mal.APIConnectionError):
        fail(gen, again, reused=True, unanswered=True)
    assert state.stats.retries == 0
    assert state.stats.error == "APIConnectionError"


def test_a_retry_may_be_sent_again_once_too(client: mal.Client) -> None:
    # Each attempt is a request of its own: a retry that meets a closed
    # connection is sent again at once, once.
    gen, state, send = start(client, max_retries=1)
    again = fail(gen, send, reused=True, unanswered=True)
    assert type(again) is Send
    op = fail(gen, again, reused=True, unanswered=True)
    assert type(op) is Sleep
    retry = gen.send(None)
    assert type(retry) is Send
    again = fail(gen, retry, reused=True, unanswered=True)
    assert type(again) is Send
    assert finish(gen, again) == ["Hi", ""]
    assert state.stats.retries == 1
    assert client.metrics.requests == 2
