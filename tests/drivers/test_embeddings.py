"""Embeddings through the drivers (sync, asyncio and trio) against the built-in
server: the request each provider is sent, field by field, batches, the
vectors and usage, and the errors, all through the shared lifecycle."""

from __future__ import annotations

from typing import Any

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import Api, make_config

pytestmark = pytest.mark.anyio

MODELS = {"openai": "openai/text-embedding-3-small", "ollama": "ollama/nomic-embed-text"}


async def embed(api: Api, client: Any, texts: Any, **options: Any) -> mal.Embeddings:
    if api.sync:
        return client.raw.embed(texts, **options)  # type: ignore[no-any-return]
    return await client.raw.embed(texts, **options)  # type: ignore[no-any-return]


@pytest.mark.parametrize("provider", ["openai", "ollama"])
async def test_the_request_and_the_vectors(api: Api, server: MockServer, provider: str) -> None:
    config = make_config(server, api_keys={provider: "sk-test"}, max_retries=0)
    async with api.client(config) as client:
        e = await embed(api, client, ["Hello", "world"], model=MODELS[provider], dimensions=4)
    assert isinstance(e, mal.Embeddings)
    assert len(e) == 2 and [len(v) for v in e] == [4, 4]
    assert e.provider == provider and e.model == MODELS[provider].split("/", 1)[1]
    assert e.usage is not None and e.usage.input_tokens == 2
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == ("/v1/embeddings" if provider == "openai" else "/api/embed")
    body = request.json
    expected: dict[str, Any] = {
        "model": MODELS[provider].split("/", 1)[1],
        "input": ["Hello", "world"],
    }
    if provider == "openai":
        expected["encoding_format"] = "float"
    expected["dimensions"] = 4
    assert body == expected
    assert request.headers["authorization"] == "Bearer sk-test"


@pytest.mark.parametrize("provider", ["openai", "ollama"])
async def test_batches_keep_the_order(api: Api, server: MockServer, provider: str) -> None:
    texts = [f"text number {i}" for i in range(5)]
    async with api.client_for(server) as client:
        whole = await embed(api, client, texts, model=MODELS[provider])
        server.reset()
        batched = await embed(api, client, texts, model=MODELS[provider], batch_size=2)
    assert [r.json["input"] for r in server.requests] == [texts[0:2], texts[2:4], texts[4:]]
    assert batched.vectors == whole.vectors
    assert batched.usage is not None and whole.usage is not None
    assert batched.usage.input_tokens == whole.usage.input_tokens


async def test_one_string_is_one_text_and_none_sends_nothing(api: Api, server: MockServer) -> None:
    async with api.client_for(server) as client:
        one = await embed(api, client, "Hello", model=MODELS["ollama"])
        none = await embed(api, client, [], model=MODELS["ollama"])
    assert len(one) == 1 and len(none) == 0
    assert [r.json["input"] for r in server.requests] == [["Hello"]]


async def test_errors_go_through_the_lifecycle(api: Api, server: MockServer) -> None:
    seen: list[int] = []
    hooks = mal.Hooks(on_request=lambda info: seen.append(info.attempt))
    server.add(Reply(status=429, headers={"retry-after": "0"}), Reply(), Reply(status=401))
    async with api.client(make_config(server, max_retries=1), hooks=hooks) as client:
        e = await embed(api, client, ["a"], model=MODELS["openai"])
        assert len(e) == 1 and seen == [0, 1]  # retried once, like a generation
        with pytest.raises(mal.AuthenticationError):
            await embed(api, client, ["a"], model=MODELS["openai"])


async def test_a_body_with_the_wrong_number_of_vectors(api: Api, server: MockServer) -> None:
    body = b'{"model":"m","embeddings":[[0.1,0.2]]}'
    server.add(Reply(raw=body, content_type="application/json"))
    async with api.client_for(server) as client:
        with pytest.raises(mal.DecodeError, match="1 vectors for 2 texts"):
            await embed(api, client, ["a", "b"], model=MODELS["ollama"])


@pytest.mark.parametrize(
    ("texts", "options", "message"),
    [
        (["a"], {"model": "anthropic/claude-x"}, "anthropic has no embeddings API"),
        (["a", 3], {"model": MODELS["openai"]}, r"texts\[1\] must be a str"),
        (42, {"model": MODELS["openai"]}, "texts must be a str or a list"),
        (["a"], {"model": MODELS["openai"], "batch_size": 0}, "batch_size"),
        (["a"], {"model": MODELS["openai"], "dimensions": -1}, "dimensions"),
        (["a"], {"model": MODELS["openai"], "dimension": 8}, "did you mean 'dimensions'"),
    ],
)
async def test_bad_input_is_a_config_error_before_anything_is_sent(
    api: Api, server: MockServer, texts: Any, options: dict[str, Any], message: str
) -> None:
    async with api.client_for(server) as client:
        with pytest.raises(mal.ConfigError, match=message):
            await embed(api, client, texts, **options)
    assert server.requests == []
