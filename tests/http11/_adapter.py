"""One test body for both transports: ``Http`` wraps the sync transport's
client (its calls block, as the sync flavour of the driver tests does) or the
async one's, behind the same awaitable methods."""

from __future__ import annotations

from typing import Any

import httpx

from mal._http11_async import AsyncBody, AsyncHTTP11Transport
from mal._http11_sync import Body, HTTP11Transport

FLAVOURS = ("sync", "asyncio", "trio")


class Http:
    def __init__(self, flavour: str, **transport: Any) -> None:
        self.sync = flavour == "sync"
        self.timeout = transport.pop("timeout", httpx.Timeout(10))
        self.client: httpx.Client | httpx.AsyncClient
        if self.sync:
            self.transport: Any = HTTP11Transport(**transport)
            self.client = httpx.Client(transport=self.transport, timeout=self.timeout)
        else:
            self.transport = AsyncHTTP11Transport(**transport)
            self.client = httpx.AsyncClient(transport=self.transport, timeout=self.timeout)

    async def send(
        self,
        url: str,
        *,
        method: str = "GET",
        content: bytes | None = None,
        timeout: httpx.Timeout | None = None,
        extensions: dict[str, Any] | None = None,
        trace: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> httpx.Response:
        extensions = dict(extensions or {})
        if trace is not None:
            if self.sync:
                extensions["trace"] = lambda name, info: trace.append((name, info))
            else:

                async def atrace(name: str, info: dict[str, Any]) -> None:
                    trace.append((name, info))

                extensions["trace"] = atrace
        request = self.client.build_request(
            method,
            url,
            content=content,
            timeout=timeout or self.timeout,
            extensions=extensions,
        )
        if isinstance(self.client, httpx.Client):
            return self.client.send(request, stream=True)
        return await self.client.send(request, stream=True)

    async def read(self, response: httpx.Response, timeout: float | None = None) -> bytes:
        """The next piece through the body reader, within ``timeout``."""
        body = response.extensions["mal.body"]
        if isinstance(body, Body):
            return body.read(timeout)
        assert isinstance(body, AsyncBody)
        return await body.read(timeout)

    async def read_all(self, response: httpx.Response, timeout: float | None = None) -> bytes:
        pieces = []
        while piece := await self.read(response, timeout):
            pieces.append(piece)
        return b"".join(pieces)

    async def iter_raw(self, response: httpx.Response) -> list[bytes]:
        if self.sync:
            return list(response.iter_raw())
        return [piece async for piece in response.aiter_raw()]

    async def close(self, response: httpx.Response) -> None:
        if self.sync:
            response.close()
        else:
            await response.aclose()

    async def get(self, url: str, **kwargs: Any) -> bytes:
        response = await self.send(url, **kwargs)
        try:
            return await self.read_all(response)
        finally:
            await self.close(response)

    async def aclose(self) -> None:
        if isinstance(self.client, httpx.Client):
            self.client.close()
        else:
            await self.client.aclose()
