"""The module-level calls: ``mal.generate``, ``mal.stream``, ``mal.agenerate``,
``mal.astream``, each on a default client made on first use.

The sync default client is one per process; the async one is one per event
loop run (an ``anyio.lowlevel.RunVar``), because pooled connections belong
to the loop that opened them: ``asyncio.run`` twice and then ``trio.run``
each get their own.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from anyio.lowlevel import RunVar

from ._async import AsyncClient, AsyncStream
from ._sync import Client, Stream
from .embeddings import Embeddings
from .types import Prompt, Response

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._prepare import CallOptions, EmbedOptions, GenerateOptions

__all__ = [
    "acomplete",
    "agenerate",
    "astream",
    "complete",
    "default_client",
    "generate",
    "stream",
]

T = TypeVar("T")

_lock = threading.Lock()
_client: Client | None = None
_async_client: RunVar[AsyncClient] = RunVar("mal_default_async_client")


def default_client() -> Client:
    """The client behind ``mal.generate`` and ``mal.stream``, made on first use
    (environment variables are read then)."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = Client()
    return _client


def default_async_client() -> AsyncClient:
    """The client behind ``mal.agenerate`` and ``mal.astream`` in the running
    event loop, made on first use in that loop."""
    try:
        return _async_client.get()
    except LookupError:
        client = AsyncClient()
        _async_client.set(client)
        return client


@overload
def generate(
    prompt: Prompt, *, model: str, schema: type[T], **options: Unpack[GenerateOptions]
) -> T: ...
@overload
def generate(
    prompt: Prompt, *, model: str, schema: dict[str, Any], **options: Unpack[GenerateOptions]
) -> Any: ...
@overload
def generate(
    prompt: Prompt, *, model: str, schema: None = None, **options: Unpack[GenerateOptions]
) -> str: ...
def generate(
    prompt: Prompt, *, model: str, schema: Any = None, **options: Unpack[GenerateOptions]
) -> Any:
    """Generate and return the whole text (or the ``schema``'s object); see
    :meth:`mal.Client.generate`."""
    return default_client().generate(prompt, model=model, schema=schema, **options)


def stream(
    prompt: Prompt, *, model: str, schema: Any = None, **options: Unpack[CallOptions]
) -> Stream:
    """Stream a generation; see :meth:`mal.Client.stream`."""
    return default_client().stream(prompt, model=model, schema=schema, **options)


def complete(
    prompt: Prompt, *, model: str, schema: Any = None, **options: Unpack[GenerateOptions]
) -> Response:
    """Run a call to its end and return its :class:`mal.Response`; see
    :meth:`mal.Client.complete`."""
    return default_client().complete(prompt, model=model, schema=schema, **options)


@overload
async def agenerate(
    prompt: Prompt, *, model: str, schema: type[T], **options: Unpack[GenerateOptions]
) -> T: ...
@overload
async def agenerate(
    prompt: Prompt, *, model: str, schema: dict[str, Any], **options: Unpack[GenerateOptions]
) -> Any: ...
@overload
async def agenerate(
    prompt: Prompt, *, model: str, schema: None = None, **options: Unpack[GenerateOptions]
) -> str: ...
async def agenerate(
    prompt: Prompt, *, model: str, schema: Any = None, **options: Unpack[GenerateOptions]
) -> Any:
    """Generate and return the whole text (or the ``schema``'s object); see
    :meth:`mal.AsyncClient.generate`."""
    return await default_async_client().generate(prompt, model=model, schema=schema, **options)


def astream(
    prompt: Prompt, *, model: str, schema: Any = None, **options: Unpack[CallOptions]
) -> AsyncStream:
    """Stream a generation with ``async for``; see :meth:`mal.AsyncClient.stream`."""
    return default_async_client().stream(prompt, model=model, schema=schema, **options)


async def acomplete(
    prompt: Prompt, *, model: str, schema: Any = None, **options: Unpack[GenerateOptions]
) -> Response:
    """Run a call to its end and return its :class:`mal.Response`; see
    :meth:`mal.AsyncClient.complete`."""
    return await default_async_client().complete(prompt, model=model, schema=schema, **options)


def embed(texts: str | Sequence[str], *, model: str, **options: Unpack[EmbedOptions]) -> Embeddings:
    """The embedding vectors of ``texts``; see :meth:`mal.Client.embed`."""
    return default_client().embed(texts, model=model, **options)


async def aembed(
    texts: str | Sequence[str], *, model: str, **options: Unpack[EmbedOptions]
) -> Embeddings:
    """The embedding vectors of ``texts``; see :meth:`mal.AsyncClient.embed`."""
    return await default_async_client().embed(texts, model=model, **options)
