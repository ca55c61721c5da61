"""The driver: :class:`AsyncClient` and :class:`AsyncStream` over ``httpx.AsyncClient``.

It runs the lifecycle generator of :mod:`mal._lifecycle` (with the tool loop
of :mod:`mal._complete` around it) and knows nothing of providers: it does
what each op asks (see :mod:`mal._ops`). The sync driver is generated from
the async one by ``scripts/unasync.py``, so the two cannot drift apart; what
truly differs between the runtimes (how a wait is cut short, how tools run,
what moves the bytes) is in :mod:`mal._helpers_async`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import AsyncIterator, Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

import httpx

from ._base import AsyncClosing, ClientBase, StreamBase, check_http_client, generated, with_schema
from ._complete import Run, RunTools
from ._helpers_async import (
    RUNS_ASYNC_TOOLS,
    Transport,
    Waiter,
    abandon,
    ask,
    body_reader,
    check_loop,
    make_http,
    release,
    run_tools,
    settle,
)
from ._lifecycle import Runtime, run_call
from ._ops import (
    MAX_ERROR_BODY,
    RECEIVE,
    Await,
    Handoff,
    Receive,
    ResponseHead,
    Send,
    Shared,
    Sleep,
)
from ._prepare import Call
from ._transport import (
    EMPTY,
    TRANSPORT_ERRORS,
    ConnectionTrace,
    make_timeout,
    map_error,
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

__all__ = ["AsyncClient", "AsyncStream"]

T = TypeVar("T")


class AsyncStream(StreamBase, AsyncClosing):
    """A streamed generation, read with ``async for``: :class:`mal.Chunk` objects.

    The request is sent when iteration starts. Breaking out of the loop,
    leaving the ``async with`` block, an exception raised in it or
    :meth:`aclose` closes the response at once; a stream read to its end
    leaves its connection in the pool.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
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
        self._iterator: AsyncIterator[Chunk] | None = None
        self._closed = False
        self._waiter = Waiter()

    def __aiter__(self) -> AsyncIterator[Chunk]:
        # A fresh generator that the stream does not keep: when a loop over
        # it breaks, it is dropped, and its ``finally`` closes the response.
        # Once the stream's own has started (a first ``__anext__``), a loop
        # goes on with it.
        if self._iterator is not None:
            return self._iterator
        return self._iterate()

    async def __anext__(self) -> Chunk:
        if self._iterator is None:
            self._iterator = self._iterate()
        return await self._iterator.__anext__()

    async def _iterate(self) -> AsyncIterator[Chunk]:
        if self._closed:
            return
        gen = self._gen
        waiter = self._waiter
        body: Any = EMPTY  # the response's body reader: read(timeout) -> bytes
        read_timeout: float | None = None
        value: Any = None
        error: MALError | None = None
        url = self._call.endpoint.base_url
        # Each wait below ends early when the stream is closed from elsewhere
        # (waiter.interrupt()); the stream then ends quietly, here.
        reader = waiter.enter()
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
                    waiter.reader = None
                    yield op.chunk
                    if self._closed:
                        return  # closed by the caller between two chunks
                    waiter.reader = reader
                    try:
                        data = await body.read(read_timeout)
                    except TRANSPORT_ERRORS as exc:
                        error = map_error(exc, url, in_body=True)
                    if waiter.interrupted:
                        return
                    if error is not None:
                        break
                    try:
                        op = gen.send(data)
                    except StopIteration:
                        return
                if error is not None:
                    continue
                if op is RECEIVE:
                    try:
                        value = await body.read(read_timeout)
                    except TRANSPORT_ERRORS as exc:
                        error = map_error(exc, url, in_body=True)
                elif type(op) is Chunk:
                    waiter.reader = None
                    yield op
                    if self._closed:
                        return
                    waiter.reader = reader
                elif type(op) is Receive:
                    # The clock is a deadline on this read, unless the read
                    # timeout is the shorter.
                    clock = read_timeout is None or op.timeout < read_timeout
                    try:
                        value = await body.read(op.timeout if clock else read_timeout)
                    except TRANSPORT_ERRORS as exc:
                        if clock and isinstance(exc, httpx.ReadTimeout):
                            error = op.expired()
                            error.__cause__ = exc
                        else:
                            error = map_error(exc, url, in_body=True)
                elif type(op) is Send:
                    url = op.request.url
                    read_timeout = op.timeouts[1]
                    trace = ConnectionTrace(waiter.learn)
                    try:
                        value, body = await self._send(op, trace)
                    except TimeoutError as exc:
                        assert op.clock is not None
                        error = op.clock.expired()
                        error.__cause__ = exc.__cause__  # httpx's, where it ended the wait
                    except httpx.HTTPError as exc:
                        error = map_error(exc, url, in_body=False)
                        op.reused, op.unanswered = trace.reused, unanswered(exc)
                elif type(op) is Sleep:
                    await self._release()  # a turn under the rate limits is free again
                    await waiter.sleep(op.seconds)
                elif type(op) is Shared:
                    await self._release()
                    value = await ask(op)
                elif type(op) is Await:
                    await settle(op.awaitable)
                elif type(op) is RunTools:
                    await self._release()  # the step's response was read to its end
                    value = await run_tools(op.runs)
                else:  # READ_ERROR_BODY
                    try:
                        value = await _read_bounded(body, read_timeout)
                    except TRANSPORT_ERRORS as exc:
                        error = map_error(exc, url, in_body=True)
                if waiter.interrupted:
                    return  # closed from elsewhere while the op went on
        finally:
            waiter.reader = None
            await self.aclose()

    async def _send(
        self,
        op: Send,
        trace: ConnectionTrace,
    ) -> tuple[ResponseHead, Any]:
        await self._release()
        self._lease = op.release
        response = await self._waiter.send(self._http, op, trace)
        self._response = response
        self._waiter.attach(response)
        # mal's transport's body reader (a deadline on each read), or httpx's
        # stream in its shape (another transport, a compressed body).
        body = body_reader(response, op.timeouts[1])
        return ResponseHead(response.status_code, response.headers), body

    async def _release(self) -> None:
        """Let the response go, and its turn under the rate limits: nothing may
        touch its socket after this."""
        self._waiter.detach()
        if self._response is not None:
            await release(self._response)
        if self._lease is not None:
            lease, self._lease = self._lease, None
            await ask(lease)

    async def aclose(self) -> None:
        """Close the response at once; ``text`` keeps what arrived.

        While another task reads the stream, this ends the wait it is in (a
        read, a back-off, a request waiting for its response) at once, and
        that task ends the stream.
        """
        if self._closed:
            return
        if self._waiter.elsewhere():
            self._waiter.interrupt()
            return
        self._closed = True
        self._gen.close()
        await self._release()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and self._response is not None:
            warnings.warn(
                f"{self!r} was not closed; use 'async with' or aclose()",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )
            # Nothing can be awaited here: close what closes without it.
            self._closed = True
            self._gen.close()
            abandon(self._response)
            if self._lease is not None:  # a store never blocks for long
                self._lease.store.execute(self._lease.command)


async def _read_bounded(body: Any, timeout: float | None) -> bytes:
    pieces = []
    size = 0
    while piece := await body.read(timeout):
        pieces.append(piece)
        size += len(piece)
        if size >= MAX_ERROR_BODY:
            break
    return b"".join(pieces)


class AsyncClient(ClientBase, AsyncClosing):
    """A pool of connections and one config for many calls.

    ``http_client`` lets you bring your own ``httpx.AsyncClient`` (proxies,
    certificates, transports); mal then leaves closing it to you.
    ``transport`` picks what moves the bytes: ``"httpx"``, or in an async
    client on asyncio ``"aiohttp"`` (``pip install 'mal-llm[aiohttp]'``),
    aiohttp's C HTTP parser instead of httpx's pure-Python one.
    ``hooks`` are called through the life of every call; ``clock`` and
    ``random`` are there for tests.
    """

    _runs_async_tools = RUNS_ASYNC_TOOLS

    def __init__(
        self,
        config: MALConfig | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        http_client: httpx.AsyncClient | None = None,
        hooks: Hooks | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] | None = None,
        transport: Transport = "httpx",
    ) -> None:
        check_http_client(http_client, httpx.AsyncClient, "httpx.AsyncClient")
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
        self._transport: str = transport
        if http_client is None:
            self._http = make_http(transport, make_timeout(self.config.timeouts()))
        else:
            self._http = http_client

    def stream(
        self,
        prompt: Prompt,
        *,
        model: str,
        schema: Any = None,
        **options: Unpack[CallOptions],
    ) -> AsyncStream:
        """Start a streamed generation; read the returned :class:`AsyncStream`
        with ``async for``.

        With ``tool_rounds``, the stream is the whole tool loop: each chunk
        says its ``step``; after a step's tools ran, one chunk holds their
        ``tool_results``, then the next step streams. ``response()`` is then
        the whole call, with its ``steps``."""
        call, run, gen = self._start(
            prompt, model, with_schema(options, schema), for_generate=False
        )
        check_loop(self._transport)
        return AsyncStream(self._http, call, self._runtime, run, gen)

    @overload
    async def generate(
        self, prompt: Prompt, *, model: str, schema: type[T], **options: Unpack[GenerateOptions]
    ) -> T: ...
    @overload
    async def generate(
        self,
        prompt: Prompt,
        *,
        model: str,
        schema: dict[str, Any],
        **options: Unpack[GenerateOptions],
    ) -> Any: ...
    @overload
    async def generate(
        self, prompt: Prompt, *, model: str, schema: None = None, **options: Unpack[GenerateOptions]
    ) -> str: ...
    async def generate(
        self, prompt: Prompt, *, model: str, schema: Any = None, **options: Unpack[GenerateOptions]
    ) -> Any:
        """Return the whole generated text (streamed or not, by ``stream``), or
        with ``schema`` the output decoded into it."""
        response = await self.complete(prompt, model=model, schema=schema, **options)
        return generated(response, schema)

    async def complete(
        self, prompt: Prompt, *, model: str, schema: Any = None, **options: Unpack[GenerateOptions]
    ) -> Response:
        """Run a call to its end and return its :class:`mal.Response`: with
        ``schema``, the output decoded (re-asked up to ``schema_retries``
        times when it does not match), with ``tool_rounds`` the tools run."""
        call, run, gen = self._start(prompt, model, with_schema(options, schema), for_generate=True)
        check_loop(self._transport)
        async with AsyncStream(self._http, call, self._runtime, run, gen) as stream:
            async for _ in stream:
                pass
        assert run.final is not None
        return run.final

    async def embed(
        self, texts: str | Sequence[str], *, model: str, **options: Unpack[EmbedOptions]
    ) -> Embeddings:
        """The embedding vectors of ``texts`` (OpenAI-compatible, Ollama and
        Gemini models), sent in batches of ``batch_size`` (512; Gemini's 100);
        ``dimensions`` asks for shorter vectors where the model can give them."""
        calls, provider, name = self._embed_calls(texts, model, options)
        check_loop(self._transport)
        parts = []
        for call in calls:
            async with AsyncStream(self._http, call, self._runtime) as stream:
                async for _ in stream:
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
    ) -> AsyncClient:
        """A new client with these settings replaced, sharing this client's
        connection pool: ``api_key`` and ``base_url`` as in the constructor,
        ``timeout`` (seconds or an ``httpx.Timeout``), and any field of
        :class:`mal.MALConfig` (``max_retries=0``, ``read_timeout=5``...).
        Closing the new client leaves the pool open; closing this one closes it.
        """
        derived = self._derived(api_key, base_url, timeout, max_retries, fields)
        client = AsyncClient(http_client=self._http, **derived)
        client._transport = self._transport
        return client

    async def aclose(self) -> None:
        """Close the pooled connections (not those of an ``http_client`` you passed)."""
        if self._own_http:
            await self._http.aclose()
