"""``http_client=`` takes httpx's own clients; the official SDKs' fork, httpx2,
hands out clients that only look like them, and mal says so when the client
is made, not with a raw ``TypeError`` at the first call."""

from __future__ import annotations

import httpx
import pytest

import mal

httpx2 = pytest.importorskip("httpx2", reason="httpx2 is in the test extra")


def test_a_sync_client_refuses_an_httpx2_client() -> None:
    with httpx2.Client() as foreign, pytest.raises(mal.ConfigError) as info:
        mal.Client(http_client=foreign)
    message = str(info.value)
    assert "http_client must be an httpx.Client, not httpx2.Client" in message
    assert "httpx2" in message and "give an httpx.Client" in message


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_an_async_client_refuses_an_httpx2_client(anyio_backend: str) -> None:
    async with httpx2.AsyncClient() as foreign:
        with pytest.raises(mal.ConfigError, match=r"not httpx2\.AsyncClient"):
            mal.AsyncClient(http_client=foreign)


def test_the_wrong_flavour_of_httpx_client_is_refused_too() -> None:
    with (
        httpx.Client() as sync_client,
        pytest.raises(mal.ConfigError, match=r"must be an httpx.AsyncClient, not httpx.Client"),
    ):
        mal.AsyncClient(http_client=sync_client)  # type: ignore[arg-type]


def test_httpx_own_client_is_taken() -> None:
    with httpx.Client() as own, mal.Client(http_client=own) as client:
        assert client is not None
