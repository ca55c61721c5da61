"""The async driver: :class:`AsyncClient` and :class:`AsyncStream` over
``httpx.AsyncClient``, on anyio (asyncio and trio alike).

It runs the lifecycle generator of :mod:`mal._lifecycle` and knows nothing of
providers; it is :mod:`mal._sync` with ``await``, less what only a sync driver
needs: here a read is given a deadline by an anyio cancel scope, and anyio
cancellation closes the response.
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
    TRANSPORT_ERRORS,
    USER_AGENT,
    ConnectionTrace,
    async_body,
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
        # What frees the response's turn under the rate limits, once let go.
        self._lease: Shared | None = None
        self._iterator: AsyncIterator[Chunk] | None = None
        self._closed = False

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
        body: AsyncIterator[bytes] = _empty()
        value: Any = None
        error: MALError | None = None
        url = self._call.endpoint.base_url
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
                    yield op.chunk
                    if self._closed:
                        return  # closed by the caller between two chunks
                    try:
                        data = await body.__anext__()
                    except StopAsyncIteration:
                        data = b""
                    except TRANSPORT_ERRORS as exc:
                        if self._closed:
                            return  # closed by another task
                        error = map_error(exc, url, in_body=True)
                        break
                    try:
                        op = gen.send(data)
                    except StopIteration:
                        return
                if error is not None:
                    continue
                if op is RECEIVE:
                    try:
                        value = await body.__anext__()
                    except StopAsyncIteration:
                        value = b""
                    except TRANSPORT_ERRORS as exc:
                        if self._closed:
                            return  # closed by another task
                        error = map_error(exc, url, in_body=True)
                elif type(op) is Chunk:
                    yield op
                elif type(op) is Receive:
                    try:
                        with anyio.fail_after(op.timeout):
                            value = await anext(body, b"")
                    except TimeoutError:
                        error = op.expired()
                    except TRANSPORT_ERRORS as exc:
                        if self._closed:
                            return  # closed by another task
                        error = map_error(exc, url, in_body=True)
                elif type(op) is Send:
                    url = op.request.url
                    clock = op.clock
                    trace = ConnectionTrace()
                    try:
                        if clock is None:
                            value, body = await self._send(op, trace)
                        else:
                            with anyio.fail_after(clock.timeout):
                                value, body = await self._send(op, trace)
                    except TimeoutError:
                        assert clock is not None
                        error = clock.expired()
                    except httpx.HTTPError as exc:
                        error = map_error(exc, url, in_body=False)
                        op.reused, op.unanswered = trace.reused, unanswered(exc)
                elif type(op) is Sleep:
                    await self._release()
                    await anyio.sleep(op.seconds)
                elif type(op) is Shared:
                    await self._release()
                    value = await op.store.aexecute(op.command)
                elif type(op) is Await:
                    await op.awaitable
                elif type(op) is RunTools:
                    await self._release()  # the step's response was read to its end
                    value = await _run_tools(op.runs)
                else:  # READ_ERROR_BODY
                    try:
                        value = await _read_bounded(body)
                    except TRANSPORT_ERRORS as exc:
                        error = map_error(exc, url, in_body=True)
        finally:
            await self.aclose()

    async def _send(
        self, op: Send, trace: ConnectionTrace
    ) -> tuple[ResponseHead, AsyncIterator[bytes]]:
        await self._release()
        self._lease = op.release
        request = op.request
        response = await self._http.send(
            self._http.build_request(
                request.method,
                request.url,
                headers=request.headers,
                content=request.body,
                timeout=make_timeout(op.timeouts),
                extensions={"trace": trace.atrace},
            ),
            stream=True,
            # Never follow: a redirect to another host would carry the API key.
            follow_redirects=False,
        )
        self._response = response
        # The body's pieces, read from the connection (see async_body), without
        # aiter_raw()'s per-piece bookkeeping; aiter_bytes() if the server
        # compressed the body.
        encoded = response.headers.get("content-encoding", "identity") != "identity"
        if encoded or not isinstance(response.stream, httpx.AsyncByteStream):
            body = response.aiter_bytes()
        else:
            body = async_body(response)
        return ResponseHead(response.status_code, response.headers), body

    async def _release(self) -> None:
        if self._response is not None or self._lease is not None:
            # Shielded: a cancelled task must still close what it opened.
            with anyio.CancelScope(shield=True):
                if self._response is not None:
                    await self._response.aclose()
                if self._lease is not None:
                    lease, self._lease = self._lease, None
                    await lease.store.aexecute(lease.command)

    async def aclose(self) -> None:
        """Close the response at once; ``text`` keeps what arrived."""
        if self._closed:
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
            if self._lease is not None:  # a store never blocks for long
                self._lease.store.execute(self._lease.command)
            network = self._response.extensions.get("network_stream")
            if network is not None:
                shutdown(network.get_extra_info("socket"))


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""


async def _read_bounded(body: AsyncIterator[bytes]) -> bytes:
    pieces = []
    size = 0
    async for piece in body:
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
