"""A kept-alive connection the server closed while the client's pool held it.

Some servers (llama.cpp's after every stream) advertise keep-alive and then
close the idle connection. A request written to it just before the close
reached the server fails before any byte of its response arrives: it is sent
again at once on a new connection, once, whatever ``max_retries`` says, and
without a back-off. A failure on a new connection, or after response bytes
arrived, is not resent so.

The server here is a plain socket server of the test's own on 127.0.0.1, which
counts the connections it accepts and the requests it sees.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from typing import Any

import msgspec
import pytest

import mal
from mal import _lifecycle

from ..support.adapters import Api
from ._support import Recorder, for_each, run

pytestmark = pytest.mark.anyio

MODEL = "ollama/mock-model"
TEXT = "Hello there"


def _ndjson_body(text: str) -> bytes:
    """An Ollama /api/generate stream of one token."""
    line = {"model": "mock-model", "created_at": "2024-01-01T00:00:00Z"}
    first = {**line, "response": text, "done": False}
    last = {
        **line,
        "response": "",
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 3,
        "eval_count": 1,
    }
    return msgspec.json.encode(first) + b"\n" + msgspec.json.encode(last) + b"\n"


BODY = _ndjson_body(TEXT)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/x-ndjson\r\n"
    b"Connection: keep-alive\r\n"
    b"Keep-Alive: timeout=60\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


class ClosingServer:
    """Answers the first request of each connection (of the first connection
    only, with ``answer_once``), keep-alive advertised, then closes the
    connection without answering again:

    * ``close_on="request"``: as soon as the next request's first bytes arrive
      (the close lands just as the request is written);
    * ``close_on="pause"``: ``pause`` seconds after the answer, whatever came.

    ``reset``: close with SO_LINGER 0, so that the client sees a reset rather
    than an end of stream. Without it, the request that came is read first.
    ``together``: the first answers wait until that many connections have a
    request, so that as many are open at once.
    """

    def __init__(
        self,
        *,
        close_on: str = "request",
        pause: float = 0.0,
        reset: bool = False,
        answer_once: bool = False,
        together: int = 1,
    ) -> None:
        self.close_on = close_on
        self.pause = pause
        self.reset = reset
        self.answer_once = answer_once
        self.connections = 0
        self.requests = 0
        self.answered = 0
        self._together = threading.Barrier(together, timeout=5.0)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ClosingServer:
        self._accepting.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._accepting.join(5)
        self._listener.close()
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with self._lock:
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5.0)
        try:
            with conn:
                buffer = bytearray()
                if not self._read_request(conn, buffer):
                    return
                with self._lock:
                    answer = not self.answer_once or self.answered == 0
                    if answer:
                        self.answered += 1
                    wait = answer and self.answered <= self._together.parties
                if answer:
                    if wait:
                        self._together.wait()
                    conn.sendall(RESPONSE)
                    if self.close_on == "pause":
                        time.sleep(self.pause)
                    elif self.reset:
                        self._wait_for_bytes(conn)  # the next request's first bytes
                    else:
                        self._read_request(conn, buffer)  # the next request, whole
                if self.reset:
                    # Close with a reset, whatever is left unread.
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass

    def _wait_for_bytes(self, conn: socket.socket) -> None:
        if conn.recv(1):
            with self._lock:
                self.requests += 1

    def _read_request(self, conn: socket.socket, buffer: bytearray) -> bool:
        """Read one whole request (head and Content-Length body); False when
        the client closed the connection first."""
        while b"\r\n\r\n" not in buffer:
            data = conn.recv(65536)
            if not data:
                return False
            buffer += data
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            data = conn.recv(65536)
            if not data:
                return False
            rest += data
        buffer[:] = rest[length:]
        with self._lock:
            self.requests += 1
        return True


@pytest.fixture
def slow_backoff(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A back-off of 10 s (at random()=1.0): a resend that slept on it would be
    plain. Returns the list that counts the draws of ``random``."""
    monkeypatch.setattr(_lifecycle, "BACKOFF_BASE", 10.0)
    return []


def make_client(api: Api, server: ClosingServer, draws: list[int], **config: Any) -> Any:
    def random() -> float:
        draws.append(1)
        return 1.0

    config.setdefault("max_retries", 0)
    recorder = Recorder()
    client = api.client(
        mal.MALConfig(base_urls={"ollama": server.url}, **config),
        hooks=recorder.hooks(),
        random=random,
    )
    return client, recorder


#: The ways a server closes a kept-alive connection under a request written to it.
CLOSES = {
    "end of stream as the request lands": {"close_on": "request"},
    "reset as the request lands": {"close_on": "request", "reset": True},
    "close after a pause": {"close_on": "pause", "pause": 0.2},
    "close at once after the answer": {"close_on": "pause", "pause": 0.0},
}


@pytest.mark.parametrize("close", list(CLOSES))
@pytest.mark.parametrize("max_retries", [0, 2])
async def test_request_on_a_closed_keepalive_connection_is_sent_again_at_once(
    api: Api, slow_backoff: list[int], close: str, max_retries: int
) -> None:
    with ClosingServer(**CLOSES[close]) as server:
        client, recorder = make_client(api, server, slow_backoff, max_retries=max_retries)
        async with client:
            first = await run(client, MODEL)
            assert first.error is None, first.error
            assert first.text == TEXT
            recorder.clear()
            second = await run(client, MODEL)
            assert second.error is None, f"{close}: {second.error!r}"
            assert second.text == TEXT
            # Not a retry: no back-off drawn or slept, no retry counted or hooked.
            assert slow_backoff == []
            assert second.elapsed < 3.0, f"{close}: took {second.elapsed:.2f} s"
            assert recorder.retries == []
            assert second.stream.stats.retries == 0
            assert second.stream.stats.error is None
            assert client.metrics.retries == 0
            assert client.metrics.errors == {}
        assert server.connections == 2
        assert server.answered == 2


async def test_every_call_on_a_server_that_closes_after_each_answer(
    api: Api, slow_backoff: list[int]
) -> None:
    # llama.cpp's way: each call finds the last one's connection closed.
    with ClosingServer(close_on="request") as server:
        client, _ = make_client(api, server, slow_backoff)
        async with client:
            for i in range(4):
                outcome = await run(client, MODEL)
                assert outcome.error is None, f"call {i}: {outcome.error!r}"
                assert outcome.text == TEXT
        assert server.connections == 4
        assert server.answered == 4
        assert slow_backoff == []


async def test_the_resend_is_the_same_request_not_a_retry(
    api: Api, slow_backoff: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    with ClosingServer(close_on="request") as server:
        client, recorder = make_client(api, server, slow_backoff, max_retries=2)
        async with client:
            await run(client, MODEL)
            recorder.clear()
            with caplog.at_level(logging.INFO, logger="mal"):
                outcome = await run(client, MODEL)
            assert outcome.error is None, outcome.error
            # Said once, at INFO, and not as a retry.
            (line,) = [r.getMessage() for r in caplog.records if "again" in r.getMessage()]
            assert line.startswith("sending the request to ollama/mock-model again at once")
            assert "Server disconnected without sending a response" in line
            assert not [r for r in caplog.records if "retrying" in r.getMessage()]
            # Two requests on the wire, one to the hooks and the counters: the
            # same request, sent again; one call, complete once, with no retry.
            assert server.requests == 3
            assert recorder.attempts == [0]
            assert client.metrics.requests == 2
            assert client.metrics.retries == 0
            assert len(recorder.completes) == 1
            stats = recorder.completes[0]
            assert stats.retries == 0
            assert stats.fallbacks == 0
            assert stats.error is None


async def test_the_resend_happens_once(api: Api, slow_backoff: list[int]) -> None:
    # Two idle connections in the pool, both closed by the server as the next
    # request lands: the resend meets the second one, and the call fails with
    # the usual error (max_retries=0).
    with ClosingServer(close_on="request", together=2) as server:
        client, _ = make_client(api, server, slow_backoff)
        async with client:
            # Two calls at once, each on a connection of its own.
            async def call(worker: int, _: int) -> None:
                outcome = await run(client, MODEL)
                assert outcome.error is None, f"worker {worker}: {outcome.error!r}"

            await for_each(api, range(2), call, workers=2)
            assert server.connections == 2
            outcome = await run(client, MODEL)
            error = outcome.error
            assert isinstance(error, mal.APIConnectionError), error
            assert not isinstance(error, mal.APITimeoutError)
            assert error.retryable
            assert outcome.stream.stats.retries == 0
            assert client.metrics.errors == {"APIConnectionError": 1}
        assert server.connections == 2
        assert server.requests == 4
        assert slow_backoff == []


async def test_a_failure_on_a_new_connection_is_not_resent(
    api: Api, slow_backoff: list[int]
) -> None:
    # The server answers one request in all: the resend, on a new connection,
    # meets the same close, and that failure is the call's (max_retries=0).
    with ClosingServer(close_on="request", answer_once=True) as server:
        client, _ = make_client(api, server, slow_backoff)
        async with client:
            assert (await run(client, MODEL)).error is None
            outcome = await run(client, MODEL)
            assert isinstance(outcome.error, mal.APIConnectionError), outcome.error
            assert outcome.stream.stats.retries == 0
        assert server.connections == 2
        assert server.requests == 3
        assert slow_backoff == []


async def test_a_first_request_on_a_new_connection_is_not_resent(
    api: Api, slow_backoff: list[int]
) -> None:
    # No connection to reuse: a close before the answer is the call's failure.
    with ClosingServer(close_on="request", answer_once=True) as server:
        server.answered = 1  # answers nothing
        client, _ = make_client(api, server, slow_backoff)
        async with client:
            outcome = await run(client, MODEL)
            assert isinstance(outcome.error, mal.APIConnectionError), outcome.error
        assert server.connections == 1
        assert server.requests == 1
