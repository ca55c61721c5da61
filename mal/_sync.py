"""The sync driver: :class:`Client` and :class:`Stream` over ``httpx.Client``.

It runs the lifecycle generator of :mod:`mal._lifecycle` and knows nothing of
providers; :mod:`mal._async` is the same driver with ``await``. What only a
sync driver needs: a blocked read cannot be cancelled, so the clocks and a
``close()`` from another thread wake it by shutting its socket down.
"""

from __future__ import annotations

import inspect
import socket
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

import httpx

from . import _watchdog
from ._base import ClientBase, Closing, StreamBase, check_http_client, generated, with_schema
from ._complete import Outcome, Run, RunTools, ToolRun
from ._lifecycle import Runtime, run_call
from ._ops import MAX_ERROR_BODY, RECEIVE, Handoff, Receive, ResponseHead, Send, Shared, Sleep
from ._prepare import Call
from ._transport import (
    TRANSPORT_ERRORS,
    USER_AGENT,
    ConnectionTrace,
    clock_ran_out,
    make_limits,
    make_sync_transport,
    make_timeout,
    map_error,
    restore_read_timeout,
    shutdown,
    sync_body,
    take_written_socket,
    unanswered,
)
from .config import MALConfig
from .embeddings import Embeddings, _EmbedDecoder, join_embeddings
from .errors import MALError
from .hooks import Hooks
from .types import Chunk, Prompt, Response

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._prepare import CallOptions, EmbedOptions, GenerateOptions

__all__ = ["Client", "Stream"]

T = TypeVar("T")


class Stream(StreamBase, Closing):
    """A streamed generation: iterate it for :class:`mal.Chunk` objects.

    The request is sent when iteration starts. Breaking out of the loop,
    leaving the ``with`` block or calling :meth:`close` (from any thread)
    closes the response at once; a stream read to its end leaves its
    connection in the pool.
    """

    def __init__(
        self,
        http: httpx.Client,
        call: Call,
        runtime: Runtime,
        run: Run | None = None,
        gen: Generator[Any, Any, Any] | None = None,
    ) -> None:
        self._http = http
        self._call = call
        if run is None or gen is None:  # one model call (an embedding batch)
            run = Run(call)
            gen = run_call(call, run.state, runtime)
        self._run = run
        self._gen = gen
        self._response: httpx.Response | None = None
        # What frees the response's turn under the rate limits, once let go.
        self._lease: Shared | None = None
        self._iterator: Iterator[Chunk] | None = None
        self._closed = False
        # The reading thread while it runs the lifecycle, for close() from others.
        self._reader: int | None = None
        self._interrupted = False
        # The clock of the read in progress, watched by the watchdog thread.
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._deadline: float | None = None
        self._watch_at: float | None = None
        self._expired = False
        # Set by close() from another thread, to cut a back-off sleep short.
        self._wake = threading.Event()

    def __iter__(self) -> Iterator[Chunk]:
        # A fresh generator that the stream does not keep: when a ``for`` loop
        # breaks, it is dropped at once and its ``finally`` closes the response.
        # Once ``next()`` has started the stream's own, a loop goes on with it.
        if self._iterator is not None:
            return self._iterator
        return self._iterate()

    def __next__(self) -> Chunk:
        if self._iterator is None:
            self._iterator = self._iterate()
        return next(self._iterator)

    def _iterate(self) -> Iterator[Chunk]:
        if self._closed:
            return
        gen = self._gen
        body: Iterator[bytes] = iter(())
        value: Any = None
        error: MALError | None = None
        url = self._call.endpoint.base_url
        reader = self._reader = threading.get_ident()
        try:
            while True:
                try:
                    op = gen.send(value) if error is None else gen.throw(error)
                except StopIteration:
                    return
                value = error = None
                # Text flows: a chunk, then a read, then the next hand-off,
                # in a loop of their own.
                while type(op) is Handoff:
                    self._reader = None
                    yield op.chunk
                    if self._closed:
                        return  # closed by the caller between two chunks
                    self._reader = reader
                    try:
                        data = next(body, b"")
                    except TRANSPORT_ERRORS as exc:
                        if self._interrupted:
                            return
                        error = map_error(exc, url, in_body=True)
                        break
                    if self._interrupted:
                        return  # closed from another thread while the read went on
                    try:
                        op = gen.send(data)
                    except StopIteration:
                        return
                if error is not None:
                    continue
                if op is RECEIVE:
                    try:
                        value = next(body, b"")
                    except TRANSPORT_ERRORS as exc:
                        if self._interrupted:
                            return
                        error = map_error(exc, url, in_body=True)
                    if self._interrupted:
                        return  # closed from another thread while the read went on
                elif type(op) is Chunk:
                    self._reader = None
                    yield op
                    self._reader = reader
                elif type(op) is Receive:
                    self._arm(op.timeout)
                    try:
                        value = next(body, b"")
                    except TRANSPORT_ERRORS as exc:
                        if self._interrupted:
                            return
                        error = map_error(exc, url, in_body=True)
                    self._deadline = None
                    if self._interrupted:
                        return  # closed from another thread while the read went on
                    if self._expired:
                        error = op.expired()
                elif type(op) is Send:
                    url = op.request.url
                    trace = ConnectionTrace()
                    try:
                        value, body = self._send(op, trace)
                    except httpx.HTTPError as exc:
                        error = map_error(exc, url, in_body=False)
                        op.reused, op.unanswered = trace.reused, unanswered(exc)
                        if op.clock is not None and clock_ran_out(
                            exc, op.timeouts, op.clock.timeout
                        ):
                            error = op.clock.expired()
                            error.__cause__ = exc
                    if self._interrupted:
                        return
                elif type(op) is Sleep:
                    self._release()
                    if self._wake.wait(op.seconds):
                        return  # closed from another thread
                elif type(op) is Shared:
                    self._release()
                    value = op.store.execute(op.command)
                elif type(op) is RunTools:
                    self._release()  # the step's response was read to its end
                    value = [_run_tool(run) for run in op.runs]
                    if self._interrupted:
                        return  # closed from another thread while the tools ran
                else:  # READ_ERROR_BODY
                    try:
                        value = _read_bounded(body)
                    except TRANSPORT_ERRORS as exc:
                        error = map_error(exc, url, in_body=True)
        finally:
            self._reader = None
            self.close()

    def _send(self, op: Send, trace: ConnectionTrace) -> tuple[ResponseHead, Iterator[bytes]]:
        self._release()
        self._lease = op.release
        request = op.request
        try:
            response = self._http.send(
                self._http.build_request(
                    request.method,
                    request.url,
                    headers=request.headers,
                    content=request.body,
                    timeout=make_timeout(op.head_timeouts()),
                    extensions={"trace": trace.trace},
                ),
                stream=True,
                # Never follow: a redirect to another host would carry the API key.
                follow_redirects=False,
            )
        finally:
            take_written_socket()
        self._response = response
        if op.clock is not None:
            restore_read_timeout(response, op.timeouts[1])
        network = response.extensions.get("network_stream")
        with self._lock:
            self._socket = network.get_extra_info("socket") if network is not None else None
            self._expired = False
        # The body's pieces, read from the connection (see sync_body), without
        # iter_raw()'s per-piece bookkeeping; iter_bytes() if the server
        # compressed the body.
        encoded = response.headers.get("content-encoding", "identity") != "identity"
        if encoded or not isinstance(response.stream, httpx.SyncByteStream):
            body = response.iter_bytes()
        else:
            body = sync_body(response)
        return ResponseHead(response.status_code, response.headers), body

    def _arm(self, timeout: float) -> None:
        """Give the read about to start a deadline, watched by the watchdog."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._deadline = deadline
            if self._watch_at is None or deadline < self._watch_at:
                self._watch_at = deadline
                _watchdog.watch(self, deadline)

    def _check_deadline(self, now: float) -> float | None:
        """The watchdog's call (on its thread): past the deadline, wake the read."""
        with self._lock:
            deadline = self._deadline
            if deadline is not None and deadline > now:
                self._watch_at = deadline
                return deadline
            self._watch_at = None
            if deadline is None:
                return None
            self._deadline = None
            self._expired = True
            sock = self._socket
        shutdown(sock)
        return None

    def _release(self) -> None:
        """Let the response go: no clock may touch its socket after this."""
        with self._lock:
            self._deadline = None
            self._socket = None
        if self._response is not None:
            self._response.close()
        if self._lease is not None:
            lease, self._lease = self._lease, None
            lease.store.execute(lease.command)

    def close(self) -> None:
        """Close the response at once; ``text`` keeps what arrived.

        From another thread than the one reading, this wakes the blocked read
        (by shutting the socket down), and the reading thread ends the stream.
        """
        if self._closed:
            return
        reader = self._reader
        if reader is not None and reader != threading.get_ident():
            with self._lock:
                self._interrupted = True
                sock = self._socket or take_written_socket(reader)
            self._wake.set()
            shutdown(sock)
            return
        self._closed = True
        self._gen.close()
        self._release()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and self._response is not None:
            warnings.warn(
                f"{self!r} was not closed; use 'with' or close()",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )
            self.close()


def _run_tool(run: ToolRun) -> Outcome:
    """Call one tool function; what it raised is the outcome, not an error here."""
    function = run.tool.function
    assert function is not None
    try:
        value = function(*run.args, **run.kwargs)
    except Exception as exc:
        return None, exc
    if inspect.isawaitable(value):
        if inspect.iscoroutine(value):
            value.close()
        return None, TypeError(
            f"tool {run.tool.name!r} returned an awaitable; run it with mal.AsyncClient"
        )
    return value, None


def _read_bounded(body: Iterator[bytes]) -> bytes:
    pieces = []
    size = 0
    for piece in body:
        pieces.append(piece)
        size += len(piece)
        if size >= MAX_ERROR_BODY:
            break
    return b"".join(pieces)


class Client(ClientBase, Closing):
    """A pool of connections and one config for many calls.

    ``http_client`` lets you bring your own ``httpx.Client`` (proxies,
    certificates, transports); mal then leaves closing it to you. ``hooks``
    are called through the life of every call; ``clock`` and ``random`` are
    there for tests.
    """

    def __init__(
        self,
        config: MALConfig | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        http_client: httpx.Client | None = None,
        hooks: Hooks | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] | None = None,
    ) -> None:
        check_http_client(http_client, httpx.Client, "httpx.Client")
        super().__init__(
            config,
            environ,
            hooks=hooks,
            clock=clock,
            random=random,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._own_http = http_client is None
        self._http = http_client or httpx.Client(
            headers={"user-agent": USER_AGENT},
            timeout=make_timeout(self.config.timeouts()),
            transport=make_sync_transport(make_limits()),
        )

    def stream(
        self,
        prompt: Prompt,
        *,
        model: str,
        schema: Any = None,
        **options: Unpack[CallOptions],
    ) -> Stream:
        """Start a streamed generation; iterate the returned :class:`Stream`.

        With ``tool_rounds``, the stream is the whole tool loop: each chunk
        says its ``step``; after a step's tools ran, one chunk holds their
        ``tool_results``, then the next step streams. ``response()`` is then
        the whole call, with its ``steps``."""
        call, run, gen = self._start(
            prompt, model, with_schema(options, schema), for_generate=False
        )
        return Stream(self._http, call, self._runtime, run, gen)

    @overload
    def generate(
        self, prompt: Prompt, *, model: str, schema: type[T], **options: Unpack[GenerateOptions]
    ) -> T: ...
    @overload
    def generate(
        self,
        prompt: Prompt,
        *,
        model: str,
        schema: dict[str, Any],
        **options: Unpack[GenerateOptions],
    ) -> Any: ...
    @overload
    def generate(
        self, prompt: Prompt, *, model: str, schema: None = None, **options: Unpack[GenerateOptions]
    ) -> str: ...
    def generate(
        self, prompt: Prompt, *, model: str, schema: Any = None, **options: Unpack[GenerateOptions]
    ) -> Any:
        """Return the whole generated text (streamed or not, by ``stream``), or
        with ``schema`` the output decoded into it."""
        return generated(self.complete(prompt, model=model, schema=schema, **options), schema)

    def complete(
        self, prompt: Prompt, *, model: str, schema: Any = None, **options: Unpack[GenerateOptions]
    ) -> Response:
        """Run a call to its end and return its :class:`mal.Response`: with
        ``schema``, the output decoded (re-asked up to ``schema_retries``
        times when it does not match), with ``tool_rounds`` the tools run."""
        call, run, gen = self._start(prompt, model, with_schema(options, schema), for_generate=True)
        with Stream(self._http, call, self._runtime, run, gen) as stream:
            for _ in stream:
                pass
        assert run.final is not None
        return run.final

    def embed(
        self, texts: str | Sequence[str], *, model: str, **options: Unpack[EmbedOptions]
    ) -> Embeddings:
        """The embedding vectors of ``texts`` (OpenAI-compatible, Ollama and
        Gemini models), sent in batches of ``batch_size`` (512; Gemini's 100);
        ``dimensions`` asks for shorter vectors where the model can give them."""
        calls, provider, name = self._embed_calls(texts, model, options)
        parts = []
        for call in calls:
            with Stream(self._http, call, self._runtime) as stream:
                for _ in stream:
                    pass
            decoder = stream._state.decoder
            assert isinstance(decoder, _EmbedDecoder) and decoder.result is not None
            parts.append(decoder.result)
        return join_embeddings(parts or [Embeddings(vectors=[])], provider, name)

    def with_options(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        **fields: Any,
    ) -> Client:
        """A new client with these settings replaced, sharing this client's
        connection pool: ``api_key`` and ``base_url`` as in the constructor,
        ``timeout`` (seconds or an ``httpx.Timeout``), and any field of
        :class:`mal.MALConfig` (``max_retries=0``, ``read_timeout=5``...).
        Closing the new client leaves the pool open; closing this one closes it.
        """
        derived = self._derived(api_key, base_url, timeout, max_retries, fields)
        return Client(http_client=self._http, **derived)

    def close(self) -> None:
        """Close the pooled connections (not those of an ``http_client`` you passed)."""
        if self._own_http:
            self._http.close()
