"""The sync driver: :class:`Client` and :class:`Stream` over ``httpx.Client``.

It runs the lifecycle generator of :mod:`mal._lifecycle` and knows nothing of
providers; :mod:`mal._async` is the same driver with ``await``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from ._base import ClientBase, StreamBase
from ._lifecycle import MAX_ERROR_BODY, RECEIVE, Call, CallState, ResponseHead, Send, run_call
from ._transport import USER_AGENT, make_limits, make_timeout, map_error
from .config import MALConfig
from .errors import MALError
from .types import Chunk, Prompt

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._lifecycle import CallOptions, GenerateOptions

__all__ = ["Client", "Stream"]


class Stream(StreamBase):
    """A streamed generation: iterate it for :class:`mal.Chunk` objects.

    The request is sent when iteration starts. Breaking out of the loop,
    leaving the ``with`` block or calling :meth:`close` closes the response at
    once; a stream read to its end leaves its connection in the pool.
    """

    def __init__(self, http: httpx.Client, call: Call) -> None:
        self._http = http
        self._call = call
        self._state = CallState(call)
        self._gen = run_call(call, self._state)
        self._response: httpx.Response | None = None
        self._iterator: Iterator[Chunk] | None = None
        self._closed = False

    def __iter__(self) -> Iterator[Chunk]:
        # A fresh generator that the stream does not keep: when a ``for`` loop
        # breaks, it is dropped at once and its ``finally`` closes the response.
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
        try:
            while True:
                try:
                    op = gen.send(value) if error is None else gen.throw(error)
                except StopIteration:
                    return
                value = error = None
                if type(op) is Chunk:
                    yield op
                elif op is RECEIVE:
                    try:
                        value = next(body, b"")
                    except httpx.HTTPError as exc:
                        error = map_error(exc, url, in_body=True)
                elif isinstance(op, Send):
                    url = op.request.url
                    try:
                        value, body = self._send(op)
                    except httpx.HTTPError as exc:
                        error = map_error(exc, url, in_body=False)
                else:  # READ_ERROR_BODY
                    try:
                        value = _read_bounded(body)
                    except httpx.HTTPError as exc:
                        error = map_error(exc, url, in_body=True)
        finally:
            self.close()

    def _send(self, op: Send) -> tuple[ResponseHead, Iterator[bytes]]:
        if self._response is not None:
            self._response.close()
        request = op.request
        response = self._http.send(
            self._http.build_request(
                request.method,
                request.url,
                headers=request.headers,
                content=request.body,
                timeout=make_timeout(op.timeouts),
            ),
            stream=True,
        )
        self._response = response
        # Raw bytes unless the server compressed the body.
        encoded = response.headers.get("content-encoding", "identity") != "identity"
        body = response.iter_bytes() if encoded else response.iter_raw()
        return ResponseHead(response.status_code, response.headers), body

    def close(self) -> None:
        """Close the response at once; ``text`` keeps what arrived."""
        if self._closed:
            return
        self._closed = True
        self._gen.close()
        if self._response is not None:
            self._response.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and self._response is not None:
            warnings.warn(
                f"{self!r} was not closed; use 'with' or close()",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )
            self.close()


def _read_bounded(body: Iterator[bytes]) -> bytes:
    pieces = []
    size = 0
    for piece in body:
        pieces.append(piece)
        size += len(piece)
        if size >= MAX_ERROR_BODY:
            break
    return b"".join(pieces)


class Client(ClientBase):
    """A pool of connections and one config for many calls.

    ``http_client`` lets you bring your own ``httpx.Client`` (proxies,
    certificates, transports); mal then leaves closing it to you.
    """

    def __init__(
        self,
        config: MALConfig | None = None,
        *,
        http_client: httpx.Client | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(config, environ)
        self._own_http = http_client is None
        self._http = http_client or httpx.Client(
            headers={"user-agent": USER_AGENT},
            timeout=make_timeout(self.config.timeouts()),
            limits=make_limits(),
        )

    def stream(self, prompt: Prompt, *, model: str, **options: Unpack[CallOptions]) -> Stream:
        """Start a streamed generation; iterate the returned :class:`Stream`."""
        return Stream(self._http, self._prepare(prompt, model, options, for_generate=False))

    def generate(
        self, prompt: Prompt, *, model: str, **options: Unpack[GenerateOptions]
    ) -> str:
        """Return the whole generated text (streamed or not, by ``stream``)."""
        with Stream(self._http, self._prepare(prompt, model, options, for_generate=True)) as s:
            for _ in s:
                pass
            return s.text

    def close(self) -> None:
        """Close the pooled connections (not those of an ``http_client`` you passed)."""
        if self._own_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
