"""Azure OpenAI with a per-call ``base_url=``: every path (generation,
streaming, complete's re-asks, fallbacks, embeddings) builds the deployment
URL as the configured endpoint does, api-version included. The built-in
server answers a deployment URL without its api-version with 404, as Azure
does."""

from __future__ import annotations

import msgspec
import pytest

import mal
from mal.protocols.openai import AZURE_API_VERSION
from mal.testing import MockServer, Reply

from ..support.adapters import Api, collect

pytestmark = pytest.mark.anyio

KEY = "azure-key-0123456789abcdef"
#: A configured endpoint that must not be used when the call gives its own.
ELSEWHERE = "http://127.0.0.1:9/unused"


def config(**fields: object) -> mal.MALConfig:
    return mal.MALConfig(
        base_urls={"azure": ELSEWHERE},
        api_keys={"azure": KEY},
        max_retries=0,
        **fields,  # type: ignore[arg-type]
    )


def deployment_requests(server: MockServer, deployment: str, path: str) -> list[str]:
    """The query of each request sent to ``deployment``'s ``path``."""
    want = f"/openai/deployments/{deployment}/{path}"
    return [r.query for r in server.requests if r.path == want]


async def test_generate_and_stream_with_a_per_call_base_url(api: Api, server: MockServer) -> None:
    server.add(Reply(text="Hello."), Reply(text="Streamed."))
    base = server.url("azure")
    async with api.client(config(), environ={}) as client:
        assert await client.generate("Hi", model="azure/dep", base_url=base) == "Hello."
        stream = client.stream("Hi", model="azure/dep", base_url=base)
        async with stream:
            chunks = await collect(stream)
    assert "".join(c.text for c in chunks) == "Streamed."
    expected = f"api-version={AZURE_API_VERSION}"
    assert deployment_requests(server, "dep", "chat/completions") == [expected, expected]
    assert all(r.headers["api-key"] == KEY for r in server.requests)


async def test_the_configured_version_applies_to_a_per_call_base_url(
    api: Api, server: MockServer
) -> None:
    env = {"OPENAI_API_VERSION": "2025-01-01-preview"}
    base = server.url("azure")
    async with api.client(config(), environ=env) as client:
        await client.generate("Hi", model="azure/dep", base_url=base)
    async with api.client(config(azure_api_version="2024-06-01"), environ=env) as client:
        await client.generate("Hi", model="azure/dep", base_url=base)
        # A per-call URL that names its own version keeps it.
        await client.generate("Hi", model="azure/dep", base_url=base + "?api-version=2024-02-01")
        # Another query parameter stays, the version is added beside it.
        await client.generate("Hi", model="azure/dep", base_url=base + "/?trace=1")
    assert deployment_requests(server, "dep", "chat/completions") == [
        "api-version=2025-01-01-preview",
        "api-version=2024-06-01",
        "api-version=2024-02-01",
        "trace=1&api-version=2024-06-01",
    ]


async def test_a_per_call_v1_url_takes_no_version(api: Api, server: MockServer) -> None:
    async with api.client(config(), environ={}) as client:
        await client.generate(
            "Hi", model="azure/gpt-4o", base_url=server.url("azure") + "/openai/v1"
        )
    (request,) = server.requests
    assert (request.path, request.query) == ("/openai/v1/chat/completions", "")


async def test_complete_re_asks_go_to_the_same_deployment(api: Api, server: MockServer) -> None:
    class City(msgspec.Struct):
        name: str
        population: int

    server.add(Reply(text='{"name": "Tokyo", "population": "many"}'))
    server.add(Reply(text='{"name": "Tokyo", "population": 14000000}'))
    async with api.client(config(), environ={}) as client:
        options = dict(model="azure/dep", base_url=server.url("azure"), schema=City)
        if api.sync:
            r = client.raw.complete("City?", schema_retries=1, **options)
        else:
            r = await client.raw.complete("City?", schema_retries=1, **options)
    assert r.parsed == City("Tokyo", 14000000)
    expected = f"api-version={AZURE_API_VERSION}"
    assert deployment_requests(server, "dep", "chat/completions") == [expected, expected]


async def test_a_fallback_keeps_the_per_call_base_url_and_its_version(
    api: Api, server: MockServer
) -> None:
    server.add(Reply(status=500), Reply(text="From the fallback."))
    async with api.client(config(), environ={}) as client:
        text = await client.generate(
            "Hi", model="azure/first", base_url=server.url("azure"), fallbacks=["azure/second"]
        )
    assert text == "From the fallback."
    expected = f"api-version={AZURE_API_VERSION}"
    assert deployment_requests(server, "first", "chat/completions") == [expected]
    assert deployment_requests(server, "second", "chat/completions") == [expected]


async def test_embeddings_with_a_per_call_base_url(api: Api, server: MockServer) -> None:
    async with api.client(config(azure_api_version="2024-10-21"), environ={}) as client:
        options = dict(model="azure/embedder", base_url=server.url("azure"), batch_size=1)
        if api.sync:
            e = client.raw.embed(["a", "b"], **options)
        else:
            e = await client.raw.embed(["a", "b"], **options)
    assert len(e) == 2
    assert deployment_requests(server, "embedder", "embeddings") == [
        "api-version=2024-10-21",
        "api-version=2024-10-21",
    ]


async def test_a_per_call_key_alone_keeps_the_configured_endpoint(
    api: Api, server: MockServer
) -> None:
    cfg = mal.MALConfig(base_urls={"azure": server.url("azure")}, max_retries=0)
    async with api.client(cfg, environ={}) as client:
        await client.generate("Hi", model="azure/dep", api_key=KEY)
    (request,) = server.requests
    assert request.query == f"api-version={AZURE_API_VERSION}"
    assert request.headers["api-key"] == KEY
