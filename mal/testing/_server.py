"""A scriptable local model server that speaks the Ollama, OpenAI and Anthropic wire formats.

`MockServer` is a real HTTP/1.1 server on the loopback interface, running in a
background thread.  It answers the generation endpoints of the three providers
(with OpenAI's Responses API, Azure OpenAI's deployment URLs, and the OpenAI
and Ollama embedding endpoints), streaming (ndjson or
server-sent events, one HTTP chunk per token event) or not (one JSON body with
a Content-Length), with realistic ids, timestamps, usage figures and pacing.
Each request takes the next queued `Reply`, which decides the text, reasoning,
tool calls, JSON output or refusal, the timing and any misbehaviour: status
errors, in-band errors, a connection dropped after N body bytes, a stall,
keep-alive pings, garbage bodies or a stream that ends without its end marker.
Strict by default, it first answers a request the real API would reject with
that provider's own error (the rules are in `mal.testing._rules`).

It only uses the standard library and `msgspec`, so it can run anywhere the
package runs: the library's own tests, ``python -m mal demo`` and users' tests.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from mal.testing._httpd import _HTTPServer
from mal.testing._script import DEFAULT_MODEL, RecordedRequest, Reply

__all__ = ["MockServer"]


class MockServer:
    """A local model server for tests and demos; see the module docstring.

    Use it as a context manager, or call `start` and `stop`.  Replies queued
    with `add` are used first-in first-out, one per generation or embedding
    request; when the queue is empty `default` answers.

    With `strict` (the default) each generation and embedding request is first
    checked against the provider's published rules: one the real API would
    reject gets that provider's own error body and status instead, takes no
    reply, and is recorded with its `RecordedRequest.violation`.
    ``strict=False`` accepts any request.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default: Reply | None = None,
        models: list[str] | None = None,
        strict: bool = True,
    ) -> None:
        self.default: Reply = default if default is not None else Reply()
        self.strict: bool = strict
        self.models: list[str] = list(models) if models is not None else [DEFAULT_MODEL]
        self._host = host
        self._port = port
        self._cond = threading.Condition()
        self._queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._connections = 0
        self._disconnects = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> MockServer:
        """Start serving (no-op when already started); returns self."""
        if self._httpd is not None:
            return self
        httpd = _HTTPServer((self._host, self._port), self)
        thread = threading.Thread(
            target=httpd.serve,
            name=f"mal-mock-server-{httpd.server_port}",
            daemon=True,
        )
        thread.start()
        self._httpd, self._thread = httpd, thread
        return self

    def stop(self, timeout: float = 1.0) -> None:
        """Stop serving and close every connection, waiting up to `timeout`."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        deadline = time.monotonic() + timeout
        httpd.stopping.set()
        httpd.wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(deadline - time.monotonic(), 0))
        httpd.server_close()
        workers = httpd.close_connections()
        for worker in workers:
            if worker is not threading.current_thread():
                worker.join(max(deadline - time.monotonic(), 0))

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._httpd is not None else "stopped"
        return f"<MockServer {where}>"

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the MockServer is not running")
        return self._httpd.server_port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self._host}:{self.port}"

    def url(self, provider: str) -> str:
        """The base URL a client of `provider` should use."""
        if provider in ("ollama", "anthropic", "gemini"):
            return self.base_url
        if provider == "openai":
            return self.base_url + "/v1"
        if provider == "azure":  # the resource endpoint, as AZURE_OPENAI_ENDPOINT
            return self.base_url
        raise ValueError(f"unknown provider {provider!r}")

    # ------------------------------------------------------------------ script

    def add(self, *replies: Reply | str) -> None:
        """Queue replies (a string is short for ``Reply(text=...)``)."""
        with self._cond:
            for reply in replies:
                self._queue.append(Reply(text=reply) if isinstance(reply, str) else reply)

    @property
    def pending(self) -> int:
        """Number of queued replies not used yet."""
        with self._cond:
            return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far."""
        with self._cond:
            return list(self._requests)

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        with self._cond:
            return self._connections

    @property
    def disconnects(self) -> int:
        """Responses cut short because the client went away."""
        with self._cond:
            return self._disconnects

    def wait_for_disconnect(self, timeout: float = 2.0, count: int = 1) -> bool:
        """Wait until `disconnects` reaches `count` (since the last reset)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._disconnects >= count, timeout)

    def wait_for_requests(self, count: int = 1, timeout: float = 2.0) -> bool:
        """Wait until `count` requests were received (since the last reset)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._requests) >= count, timeout)

    def reset(self) -> None:
        """Forget requests, queued replies and counters (`default` is kept)."""
        with self._cond:
            self._queue.clear()
            self._requests.clear()
            self._connections = 0
            self._disconnects = 0

    # ------------------------------------------------------------------ handler hooks

    def _take(self) -> Reply:
        with self._cond:
            return self._queue.popleft() if self._queue else self.default

    def _record(self, request: RecordedRequest) -> None:
        with self._cond:
            self._requests.append(request)
            self._cond.notify_all()

    def _connected(self) -> None:
        with self._cond:
            self._connections += 1

    def _disconnected(self) -> None:
        with self._cond:
            self._disconnects += 1
            self._cond.notify_all()
