"""The async driver: :class:`AsyncClient` and :class:`AsyncStream` over
``httpx.AsyncClient``, on anyio (asyncio and trio alike).

It runs the lifecycle generator of :mod:`mal._lifecycle` and knows nothing of
providers; it is :mod:`mal._sync` with ``await``. A client of mal's own sends
through :class:`mal._http11_async.AsyncHTTP11Transport`, whose body reads take
the clocks' deadlines; anyio cancellation closes the response.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
import warnings
from collections.abc import AsyncIterator, Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import anyio
import httpx

from ._base import AsyncClosing, ClientBase, StreamBase, check_http_client, generated, with_schema
from ._complete import Outcome, Run, RunTools, ToolRun
from ._http11 import HeadTimeout
from ._http11_async import AsyncHTTP11Transport
from ._lifecycle import Runtime, run_call
from ._ops import MAX_ERROR_BODY, RECEIVE, Await, Handoff, Receive, ResponseHead, Send, Sleep
from ._prepare import Call
from ._transport import (
    EMPTY,
    TRANSPORT_ERRORS,
    USER_AGENT,
    AsyncIterBody,
    ConnectionTrace,
    env_proxies,
    make_limits,
    make_timeout,
    map_error,
    shutdown,
    unanswered,
)
from .config import MALConfig
from .embeddings import Embeddings, _EmbedDecoder, join_embeddings
from .errors import ConfigError, MALError
from .hooks import Hooks
from .types import Chunk, Prompt, Response

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._prepare import CallOptions, EmbedOptions, GenerateOptions

__all__ = ["AsyncClient", "AsyncStream"]

T = TypeVar("T")


class AsyncStream(StreamBase, AsyncClosing):
    """A streamed generation: ``async for`` it for :class:`mal.Chunk` objects.

    The request is sent when iteration starts. Breaking out of the loop,
    leaving the ``async with`` block, calling :meth:`aclose` or cancelling the
    task closes the response at once; a stream read to its end leaves its
    connection in the pool.
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
        self._iterator: AsyncIterator[Chunk] | None = None
        self._closed = False
        # The reading task while it is in a read or a send (not while a chunk
        # is with the caller), for aclose() from another task.
        self._reader: object = None
        self._interrupted = False
        self._scope: anyio.CancelScope | None = None

    def __aiter__(self) -> AsyncIterator[Chunk]:
        # A fresh generator that the stream does not keep: when an ``async for``
        # loop breaks, it is dropped, and the event loop's async-generator hooks
        # (asyncio's and trio's alike) run its ``finally``, closing the response.
        # Once ``anext()`` has started the stream's own, a loop goes on with it.
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
        body: Any = EMPTY  # the response's body reader: read(timeout) -> bytes
        read_timeout: float | None = None
        value: Any = None
        error: MALError | None = None
        url = self._call.endpoint.base_url
        reader = self._reader = anyio.get_current_task().id
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
                        data = await body.read(read_timeout)
                    except TRANSPORT_ERRORS as exc:
                        if self._interrupted:
                            return  # closed by another task
                        error = map_error(exc, url, in_body=True)
                        break
                    if self._interrupted:
                        return
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
                        if self._interrupted:
                            return  # closed by another task
                        error = map_error(exc, url, in_body=True)
                    if self._interrupted:
                        return
                elif type(op) is Chunk:
                    self._reader = None
                    yield op
                    self._reader = reader
                elif type(op) is Receive:
                    # The clock's deadline on this read, unless the read
                    # timeout is the shorter.
                    clock = read_timeout is None or op.timeout < read_timeout
                    try:
                        value = await body.read(op.timeout if clock else read_timeout)
                    except TRANSPORT_ERRORS as exc:
                        if self._interrupted:
                            return  # closed by another task
                        if clock and isinstance(exc, httpx.ReadTimeout):
                            error = op.expired()
                            error.__cause__ = exc
                        else:
                            error = map_error(exc, url, in_body=True)
                    if self._interrupted:
                        return
                elif type(op) is Send:
                    url = op.request.url
                    read_timeout = op.timeouts[1]
                    trace = ConnectionTrace()
                    try:
                        with anyio.CancelScope() as self._scope:
                            value, body = await self._send(op, trace)
                    except HeadTimeout as exc:
                        assert op.clock is not None
                        error = op.clock.expired()
                        error.__cause__ = exc
                    except httpx.HTTPError as exc:
                        error = map_error(exc, url, in_body=False)
                        op.reused, op.unanswered = trace.reused, unanswered(exc)
                    self._scope = None
                    if self._interrupted:
                        return  # aclose() from another task cancelled the send
                elif type(op) is Sleep:
                    await anyio.sleep(op.seconds)
                elif type(op) is Await:
                    await op.awaitable
                elif type(op) is RunTools:
                    await self._release()  # the step's response was read to its end
                    value = await _run_tools(op.runs)
                else:  # READ_ERROR_BODY
                    try:
                        value = await _read_bounded(body, read_timeout)
                    except TRANSPORT_ERRORS as exc:
                        error = map_error(exc, url, in_body=True)
        finally:
            self._reader = None
            await self.aclose()

    async def _send(self, op: Send, trace: ConnectionTrace) -> tuple[ResponseHead, Any]:
        await self._release()
        request = op.request
        clock = op.clock
        extensions: dict[str, Any] = {"trace": trace.atrace}
        if clock is not None:
            # mal's transport ends the wait for the head there (HeadTimeout).
            extensions["mal.head_timeout"] = clock.timeout
        built = self._http.build_request(
            request.method,
            request.url,
            headers=request.headers,
            content=request.body,
            timeout=make_timeout(op.timeouts),
            extensions=extensions,
        )
        # Never follow: a redirect to another host would carry the API key.
        if clock is None:
            response = await self._http.send(built, stream=True, follow_redirects=False)
        else:
            # Another transport, which knows no head deadline, is cancelled.
            with anyio.move_on_after(clock.timeout) as scope:
                response = await self._http.send(built, stream=True, follow_redirects=False)
            if scope.cancelled_caught:
                raise HeadTimeout("the response head did not come in time", request=built)
        self._response = response
        return ResponseHead(response.status_code, response.headers), _body(response, op)

    async def _release(self) -> None:
        if self._response is not None:
            # Shielded: a cancelled task must still close what it opened.
            with anyio.CancelScope(shield=True):
                await self._response.aclose()

    async def aclose(self) -> None:
        """Close the response at once; ``text`` keeps what arrived.

        From another task than the one reading, this cancels a send waiting
        for its head, or wakes a body read by shutting its socket down, and
        the reading task ends the stream."""
        if self._closed:
            return
        reader = self._reader
        if reader is not None and reader != anyio.get_current_task().id:
            self._interrupted = True
            if self._scope is not None:
                self._scope.cancel()
            elif self._response is not None:
                network = self._response.extensions.get("network_stream")
                if network is not None:
                    shutdown(network.get_extra_info("socket"))
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
            # Nothing can be awaited here: close what closes without the loop.
            # Shutting the socket down tells the server at once (it stops the
            # model); the pool drops the dead connection when it next looks.
            self._closed = True
            self._gen.close()
            network = self._response.extensions.get("network_stream")
            if network is not None:
                shutdown(network.get_extra_info("socket"))


def _body(response: httpx.Response, op: Send) -> Any:
    """The body reader: mal's transport's own (``read(timeout)`` with a
    deadline on that read), or httpx's stream in the same shape (another
    transport: a user's ``http_client``, a proxy, aiohttp; or a compressed
    body, which httpx decodes)."""
    timeout = op.timeouts[1]
    if response.headers.get("content-encoding", "identity") != "identity":
        return AsyncIterBody(response.aiter_bytes(), timeout)
    body = response.extensions.get("mal.body")
    if body is None:
        return AsyncIterBody(response.aiter_raw(), timeout)
    return body


async def _read_bounded(body: Any, timeout: float | None) -> bytes:
    pieces = []
    size = 0
    while piece := await body.read(timeout):
        pieces.append(piece)
        size += len(piece)
        if size >= MAX_ERROR_BODY:
            break
    return b"".join(pieces)


async def _run_tools(runs: list[ToolRun]) -> list[Outcome]:
    """Call the tool functions of one turn concurrently: coroutine functions
    on the event loop, sync ones in worker threads. What a tool raised is its
    outcome, not an error here; the outcomes keep the order of the runs."""
    outcomes: list[Outcome] = [(None, None)] * len(runs)

    async def run_one(i: int, run: ToolRun) -> None:
        function = run.tool.function
        assert function is not None
        try:
            if run.tool.is_async:
                value = await function(*run.args, **run.kwargs)
            else:
                value = await anyio.to_thread.run_sync(
                    functools.partial(function, *run.args, **run.kwargs)
                )
                if inspect.isawaitable(value):  # a sync callable that returned a coroutine
                    value = await value
            outcomes[i] = (value, None)
        except Exception as exc:
            outcomes[i] = (None, exc)

    if len(runs) == 1:
        await run_one(0, runs[0])
        return outcomes
    async with anyio.create_task_group() as group:
        for i, run in enumerate(runs):
            group.start_soon(run_one, i, run)
    return outcomes


class AsyncClient(ClientBase, AsyncClosing):
    """A pool of connections and one config for many calls.

    ``http_client`` lets you bring your own ``httpx.AsyncClient`` (proxies,
    certificates, transports); mal then leaves closing it to you.
    ``transport="aiohttp"`` (``pip install 'mal-llm[aiohttp]'``, asyncio only) moves
    the bytes with aiohttp's C HTTP parser instead of httpx's pure-Python one.
    ``hooks`` are called through the life of every call; ``clock`` and
    ``random`` are there for tests.
    """

    _runs_async_tools = True

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
        transport: Literal["httpx", "aiohttp"] = "httpx",
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
        self._asyncio_only = transport == "aiohttp"
        if http_client is not None:
            self._http = http_client
        elif transport == "httpx":
            self._http = httpx.AsyncClient(
                headers={"user-agent": USER_AGENT},
                timeout=make_timeout(self.config.timeouts()),
                limits=make_limits(),
                # mal's own transport; httpx's where the environment names a
                # proxy (trust_env), which a transport passed here would bypass.
                transport=None if env_proxies() else AsyncHTTP11Transport(limits=make_limits()),
            )
        elif transport == "aiohttp":
            try:
                from httpx_aiohttp import HttpxAiohttpClient
            except ImportError:
                raise ConfigError(
                    "transport='aiohttp' needs httpx-aiohttp: pip install 'mal-llm[aiohttp]'"
                ) from None
            self._http = HttpxAiohttpClient(
                headers={"user-agent": USER_AGENT},
                timeout=make_timeout(self.config.timeouts()),
                limits=make_limits(),
            )
        else:
            raise ConfigError(f"transport must be 'httpx' or 'aiohttp', not {transport!r}")

    def stream(
        self,
        prompt: Prompt,
        *,
        model: str,
        schema: Any = None,
        **options: Unpack[CallOptions],
    ) -> AsyncStream:
        """Start a streamed generation; ``async for`` the returned
        :class:`AsyncStream`. With ``tool_rounds``, the whole tool loop: see
        :meth:`mal.Client.stream`."""
        call, run, gen = self._start(
            prompt, model, with_schema(options, schema), for_generate=False
        )
        self._check_loop()
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
        """Run a call to its end and return its :class:`mal.Response`; see
        :meth:`mal.Client.complete`."""
        call, run, gen = self._start(prompt, model, with_schema(options, schema), for_generate=True)
        self._check_loop()
        async with AsyncStream(self._http, call, self._runtime, run, gen) as stream:
            async for _ in stream:
                pass
        assert run.final is not None
        return run.final

    def _check_loop(self) -> None:
        if self._asyncio_only:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                raise ConfigError(
                    "transport='aiohttp' runs on asyncio only; use the default transport under trio"
                ) from None

    async def embed(
        self, texts: str | Sequence[str], *, model: str, **options: Unpack[EmbedOptions]
    ) -> Embeddings:
        """The embedding vectors of ``texts``; see :meth:`mal.Client.embed`."""
        calls, provider, name = self._embed_calls(texts, model, options)
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
        client._asyncio_only = self._asyncio_only
        return client

    async def aclose(self) -> None:
        """Close the pooled connections (not those of an ``http_client`` you passed)."""
        if self._own_http:
            await self._http.aclose()
