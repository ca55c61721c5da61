"""The named OpenAI-compatible services through the drivers (sync, asyncio and
trio) against the strict built-in server's OpenAI wire: the URL, headers and
body each service is sent, its key from its own variable, the config's and a
call's overrides, reasoning, embeddings; and the hint of a model whose prefix
is not a known provider, when the call cannot connect."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import mal
from mal.protocols import PROTOCOLS
from mal.testing import MockServer, Reply

from ..support.adapters import Api, collect

pytestmark = pytest.mark.anyio

SERVICES = {
    "groq": ("GROQ_API_KEY", "max_completion_tokens"),
    "openrouter": ("OPENROUTER_API_KEY", "max_tokens"),
    "deepseek": ("DEEPSEEK_API_KEY", "max_tokens"),
    "together": ("TOGETHER_API_KEY", "max_tokens"),
    "fireworks": ("FIREWORKS_API_KEY", "max_tokens"),
    "mistral": ("MISTRAL_API_KEY", "max_tokens"),
    "xai": ("XAI_API_KEY", "max_tokens"),
    "cerebras": ("CEREBRAS_API_KEY", "max_completion_tokens"),
}
NAMES = sorted(SERVICES)


def config(server: MockServer, name: str, **fields: Any) -> mal.MALConfig:
    return mal.MALConfig(base_urls={name: server.url("openai")}, max_retries=0, **fields)


@pytest.mark.parametrize("name", NAMES)
async def test_generate_and_stream_with_the_key_from_the_environment(
    api: Api, server: MockServer, name: str
) -> None:
    server.add(Reply(text="Whole."), Reply(text="Streamed."))
    env = {SERVICES[name][0]: f"{name}-key", "OPENAI_API_KEY": "sk-not-this-one"}
    model = f"{name}/org/model-1"
    async with api.client(config(server, name), environ=env) as client:
        text = await client.generate("Hi", model=model, stream=False, max_tokens=32)
        stream = client.stream("Hi", model=model, max_tokens=32)
        async with stream:
            chunks = await collect(stream)
    assert text == "Whole."
    assert "".join(c.text for c in chunks) == "Streamed."
    assert len(server.requests) == 2
    for request, streamed in zip(server.requests, (False, True), strict=True):
        assert request.method == "POST"
        assert request.path == "/v1/chat/completions"
        assert request.headers["authorization"] == f"Bearer {name}-key"
        body = dict(request.json)
        assert body.pop("model") == "org/model-1"
        assert body.pop("messages") == [{"role": "user", "content": "Hi"}]
        assert body.pop(SERVICES[name][1]) == 32
        if streamed:
            assert body.pop("stream") is True
            assert body.pop("stream_options") == {"include_usage": True}
        assert body == {}


@pytest.mark.parametrize("name", ["groq", "mistral"])
async def test_the_config_key_wins_and_a_call_overrides_both(
    api: Api, server: MockServer, fresh_server: MockServer, name: str
) -> None:
    env = {SERVICES[name][0]: "env-key"}
    cfg = config(server, name, api_keys={name: "config-key"})
    async with api.client(cfg, environ=env) as client:
        await client.generate("Hi", model=f"{name}/m", stream=False)
        await client.generate(
            "Hi",
            model=f"{name}/m",
            stream=False,
            base_url=fresh_server.url("openai"),
            api_key="call-key",
        )
    (first,) = server.requests
    (second,) = fresh_server.requests
    assert first.headers["authorization"] == "Bearer config-key"
    assert second.headers["authorization"] == "Bearer call-key"
    assert second.path == "/v1/chat/completions"


async def test_no_key_sends_no_authorization(api: Api, server: MockServer) -> None:
    async with api.client(config(server, "deepseek"), environ={}) as client:
        await client.generate("Hi", model="deepseek/deepseek-chat", stream=False)
    (request,) = server.requests
    assert "authorization" not in request.headers


@pytest.mark.parametrize("name", ["deepseek", "openrouter"])
async def test_reasoning_comes_through(api: Api, server: MockServer, name: str) -> None:
    server.add(Reply(text="42.", reasoning="Six times seven."))
    async with api.client(config(server, name), environ={}) as client:
        stream = client.stream("Why?", model=f"{name}/r1")
        async with stream:
            chunks = await collect(stream)
            reasoning = stream.raw.reasoning
    assert "".join(c.text for c in chunks) == "42."
    assert "".join(c.reasoning for c in chunks) == "Six times seven." == reasoning


async def test_a_status_error_names_the_service_and_its_variable(
    api: Api, server: MockServer
) -> None:
    server.add(Reply(status=401, error_message="Invalid API Key"))
    async with api.client(config(server, "groq"), environ={}) as client:
        with pytest.raises(mal.AuthenticationError) as info:
            await client.generate("Hi", model="groq/m", stream=False)
    assert info.value.provider == "groq"
    assert "GROQ_API_KEY" in str(info.value)


async def embed(api: Api, client: Any, texts: Any, **options: Any) -> mal.Embeddings:
    if api.sync:
        return client.raw.embed(texts, **options)  # type: ignore[no-any-return]
    return await client.raw.embed(texts, **options)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["together", "fireworks", "mistral"])
async def test_embeddings(api: Api, server: MockServer, name: str) -> None:
    env = {SERVICES[name][0]: "k"}
    async with api.client(config(server, name), environ=env) as client:
        result = await embed(api, client, ["a", "b"], model=f"{name}/embed-1")
    assert len(result) == 2 and result.provider == name and result.model == "embed-1"
    (request,) = server.requests
    assert request.path == "/v1/embeddings"
    assert request.headers["authorization"] == "Bearer k"
    assert request.json == {"model": "embed-1", "input": ["a", "b"]}


async def test_embeddings_of_a_service_without_them(api: Api, server: MockServer) -> None:
    async with api.client(config(server, "groq"), environ={}) as client:
        with pytest.raises(mal.ConfigError, match="groq has no embeddings API"):
            await embed(api, client, ["a"], model="groq/m")
    assert server.requests == []


# The unknown-prefix hint ------------------------------------------------------------


def refused(port: int) -> mal.MALConfig:
    return mal.MALConfig(base_urls={"ollama": f"http://127.0.0.1:{port}"}, max_retries=0)


@pytest.mark.parametrize("model", ["vertex/gemini-2.0-flash", "openai:gpt-4o", "foo/bar"])
@pytest.mark.parametrize("streamed", [True, False])
async def test_an_unknown_prefix_is_named_when_the_call_cannot_connect(
    api: Api, closed_port: int, model: str, streamed: bool
) -> None:
    async with api.client(refused(closed_port), environ={}) as client:
        with pytest.raises(mal.APIConnectionError) as info:
            if streamed:
                stream = client.stream("Hi", model=model)
                async with stream:
                    await collect(stream)
            else:
                await client.generate("Hi", model=model, stream=False)
    error = info.value
    message = str(error)
    assert message.startswith(f"cannot connect to http://127.0.0.1:{closed_port}/api/")
    assert f"the model {model!r} went to the default provider, ollama" in message
    assert "known providers: " + ", ".join(sorted(PROTOCOLS)) in message
    assert error.message == message
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert error.retryable is True


async def test_the_hint_comes_once_after_retries(api: Api, closed_port: int) -> None:
    cfg = mal.MALConfig(
        base_urls={"ollama": f"http://127.0.0.1:{closed_port}"},
        max_retries=2,
        max_retry_after=0.0,
    )
    async with api.client(cfg, environ={}, random=lambda: 0.0) as client:
        with pytest.raises(mal.APIConnectionError) as info:
            await client.generate("Hi", model="vertex/flash", stream=False)
    assert str(info.value).count("known providers") == 1


async def test_an_unknown_prefix_of_embed_is_named_too(api: Api, closed_port: int) -> None:
    async with api.client(refused(closed_port), environ={}) as client:
        with pytest.raises(mal.APIConnectionError, match="'vertex' is not a known provider"):
            await embed(api, client, ["a"], model="vertex/text-embedding-004")


@pytest.mark.parametrize("model", ["qwen2.5-coder:7b", "ollama/library/qwen:7b"])
async def test_no_hint_for_an_ollama_name(api: Api, closed_port: int, model: str) -> None:
    async with api.client(refused(closed_port), environ={}) as client:
        with pytest.raises(mal.APIConnectionError) as info:
            await client.generate("Hi", model=model, stream=False)
    assert "known providers" not in str(info.value)


async def test_no_hint_when_the_server_answers(api: Api, server: MockServer) -> None:
    # A status error is the server's word: the prefix may be a model of its own.
    server.add(Reply(status=404, error_message="model 'foo/bar' not found"))
    cfg = mal.MALConfig(base_urls={"ollama": server.url("ollama")}, max_retries=0)
    async with api.client(cfg, environ={}) as client:
        with pytest.raises(mal.NotFoundError) as info:
            await client.generate("Hi", model="foo/bar", stream=False)
    assert "known providers" not in str(info.value)
