"""Azure OpenAI through the drivers (sync, asyncio and trio) against the
built-in server: deployment URLs with their api-version, the api-key
header, the v1 API, the environment variables, embeddings, and keys kept out
of every message."""

from __future__ import annotations

import pytest

import mal
from mal.protocols.openai import AZURE_API_VERSION, azure_url
from mal.testing import MockServer, Reply

from ..support.adapters import Api, collect

pytestmark = pytest.mark.anyio

KEY = "azure-key-0123456789abcdef"


def config(server: MockServer, **fields: object) -> mal.MALConfig:
    base = fields.pop("base_url", server.url("azure"))
    return mal.MALConfig(
        base_urls={"azure": base},  # type: ignore[dict-item]
        api_keys={"azure": KEY},
        max_retries=0,
        **fields,  # type: ignore[arg-type]
    )


async def test_generate_and_stream_go_to_the_deployment(api: Api, server: MockServer) -> None:
    server.add(Reply(text="Hello from Azure."), Reply(text="Streamed."))
    async with api.client(config(server), environ={}) as client:
        assert await client.generate("Hi", model="azure/my-gpt-4o") == "Hello from Azure."
        stream = client.stream("Hi", model="azure/my-gpt-4o")
        async with stream:
            chunks = await collect(stream)
    assert "".join(c.text for c in chunks) == "Streamed."
    for request in server.requests:
        assert request.path == "/openai/deployments/my-gpt-4o/chat/completions"
        assert request.query == f"api-version={AZURE_API_VERSION}"
        assert request.headers["api-key"] == KEY
        assert "authorization" not in request.headers
        assert request.json["model"] == "my-gpt-4o"
        assert request.json["messages"] == [{"role": "user", "content": "Hi"}]
    assert server.requests[1].json["stream"] is True


async def test_the_api_version_from_the_config_or_the_environment(
    api: Api, server: MockServer
) -> None:
    env = {"OPENAI_API_VERSION": "2025-01-01-preview"}
    async with api.client(config(server), environ=env) as client:
        await client.generate("Hi", model="azure/d")
    async with api.client(config(server, azure_api_version="2024-06-01"), environ=env) as client:
        await client.generate("Hi", model="azure/d")
    assert [r.query for r in server.requests] == [
        "api-version=2025-01-01-preview",
        "api-version=2024-06-01",
    ]


async def test_the_endpoint_and_key_from_the_environment(api: Api, server: MockServer) -> None:
    env = {"AZURE_OPENAI_ENDPOINT": server.url("azure"), "AZURE_OPENAI_API_KEY": KEY}
    async with api.client(mal.MALConfig(max_retries=0), environ=env) as client:
        await client.generate("Hi", model="azure/d")
    (request,) = server.requests
    assert request.path == "/openai/deployments/d/chat/completions"
    assert request.headers["api-key"] == KEY


async def test_the_v1_api_and_whole_deployment_urls(api: Api, server: MockServer) -> None:
    v1 = config(server, base_url=server.url("azure") + "/openai/v1")
    whole = config(server, base_url=server.url("azure") + "/openai/deployments/prod-4o")
    async with api.client(v1, environ={}) as client:
        await client.generate("Hi", model="azure/gpt-4o")
    async with api.client(whole, environ={}) as client:
        await client.generate("Hi", model="azure/ignored")
    first, second = server.requests
    assert (first.path, first.query) == ("/openai/v1/chat/completions", "")
    assert first.json["model"] == "gpt-4o"
    assert second.path == "/openai/deployments/prod-4o/chat/completions"
    assert second.query == f"api-version={AZURE_API_VERSION}"


async def test_embeddings(api: Api, server: MockServer) -> None:
    async with api.client(config(server), environ={}) as client:
        if api.sync:
            e = client.raw.embed(["a", "b"], model="azure/embedder")
        else:
            e = await client.raw.embed(["a", "b"], model="azure/embedder")
    assert len(e) == 2 and e.provider == "azure"
    (request,) = server.requests
    assert request.path == "/openai/deployments/embedder/embeddings"
    assert request.headers["api-key"] == KEY
    assert request.json == {"model": "embedder", "input": ["a", "b"], "encoding_format": "float"}


async def test_no_endpoint_is_a_config_error_and_keys_stay_out(
    api: Api, server: MockServer
) -> None:
    async with api.client(mal.MALConfig(api_keys={"azure": KEY}), environ={}) as client:
        with pytest.raises(mal.ConfigError, match="AZURE_OPENAI_ENDPOINT"):
            await client.generate("Hi", model="azure/d")
    server.add(Reply(status=401))
    async with api.client(config(server), environ={}) as client:
        with pytest.raises(mal.AuthenticationError) as info:
            await client.generate("Hi", model="azure/d")
        assert KEY not in repr(client.raw) and KEY not in str(info.value)
    assert "AZURE_OPENAI_API_KEY" in str(info.value)


def test_azure_urls() -> None:
    q = "?api-version=2024-10-21"
    assert azure_url("https://r.openai.azure.com" + q, "d", "/chat/completions") == (
        "https://r.openai.azure.com/openai/deployments/d/chat/completions" + q
    )
    assert azure_url("https://r.openai.azure.com/" + q, "a b", "/embeddings") == (
        "https://r.openai.azure.com/openai/deployments/a%20b/embeddings" + q
    )
    assert azure_url("https://r.openai.azure.com/openai/v1" + q, "d", "/chat/completions") == (
        "https://r.openai.azure.com/openai/v1/chat/completions"
    )
    with pytest.raises(mal.ConfigError, match="AZURE_OPENAI_ENDPOINT"):
        azure_url("", "d", "/chat/completions")
