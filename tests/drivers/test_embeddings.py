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


# Gemini: batchEmbedContents, one EmbedContentRequest per text ------------------------

GEMINI = "gemini/gemini-embedding-001"


def gemini_client(api: Api, server: MockServer, **config: Any) -> Any:
    return api.client(make_config(server, base_urls={"gemini": server.url("gemini")}, **config))


def gemini_item(text: str, **fields: Any) -> dict[str, Any]:
    return {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": text}]},
        **fields,
    }


async def test_gemini_the_request_and_the_vectors(api: Api, server: MockServer) -> None:
    from mal.testing._embeddings import _embedding

    async with gemini_client(api, server, api_keys={"gemini": "g-key"}) as client:
        e = await embed(api, client, ["Hello", "world"], model=GEMINI)
    assert e.provider == "gemini" and e.model == "gemini-embedding-001"
    # The server's vectors, in order; Gemini reports no usage for embeddings.
    assert e.vectors == [_embedding("Hello", 8), _embedding("world", 8)]
    assert e.usage is None
    (request,) = server.requests
    assert request.violation is None and request.provider == "gemini"
    assert request.method == "POST" and request.query == ""
    assert request.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert request.json == {"requests": [gemini_item("Hello"), gemini_item("world")]}
    assert request.headers["x-goog-api-key"] == "g-key"
    assert "authorization" not in request.headers


async def test_gemini_dimensions_and_extra_body_go_into_each_request(
    api: Api, server: MockServer
) -> None:
    async with gemini_client(api, server) as client:
        e = await embed(
            api,
            client,
            "one text",
            model=GEMINI,
            dimensions=5,
            extra_body={"taskType": "RETRIEVAL_DOCUMENT", "title": "Doc"},
        )
    assert [len(v) for v in e] == [5]
    (request,) = server.requests
    assert request.violation is None
    assert request.json == {
        "requests": [
            gemini_item(
                "one text", outputDimensionality=5, taskType="RETRIEVAL_DOCUMENT", title="Doc"
            )
        ]
    }


async def test_gemini_batches_of_100_by_default_in_order(api: Api, server: MockServer) -> None:
    texts = [f"text {i}" for i in range(230)]
    async with gemini_client(api, server) as client:
        whole = await embed(api, client, texts, model=GEMINI)
        assert [len(r.json["requests"]) for r in server.requests] == [100, 100, 30]
        server.reset()
        batched = await embed(api, client, texts[:5], model=GEMINI, batch_size=2)
    assert len(whole) == 230 and whole.vectors[:5] == batched.vectors
    sent = [
        [item["content"]["parts"][0]["text"] for item in r.json["requests"]]
        for r in server.requests
    ]
    assert sent == [texts[0:2], texts[2:4], texts[4:5]]
    assert all(r.violation is None for r in server.requests)


async def test_gemini_a_batch_over_100_is_refused_by_the_strict_server(
    api: Api, server: MockServer
) -> None:
    async with gemini_client(api, server, max_retries=0) as client:
        with pytest.raises(mal.APIStatusError, match="at most 100 requests") as info:
            await embed(api, client, ["x"] * 101, model=GEMINI, batch_size=101)
    assert info.value.status_code == 400
    (request,) = server.requests
    assert request.violation is not None and request.violation.param == "requests"


async def test_gemini_status_errors_are_typed_and_retried(api: Api, server: MockServer) -> None:
    server.add(
        Reply(status=503),
        Reply(),
        Reply(status=403, error_message="Method doesn't allow unregistered callers."),
    )
    async with gemini_client(api, server, max_retries=1) as client:
        e = await embed(api, client, ["a"], model=GEMINI)
        assert len(e) == 1 and len(server.requests) == 2  # the 503 was retried
        with pytest.raises(mal.PermissionDeniedError, match="unregistered callers") as info:
            await embed(api, client, ["a"], model=GEMINI)
    assert info.value.status_code == 403 and info.value.provider == "gemini"


async def test_gemini_a_body_with_the_wrong_number_of_vectors(api: Api, server: MockServer) -> None:
    server.add(Reply(raw=b'{"embeddings":[{"values":[0.5]}]}', content_type="application/json"))
    async with gemini_client(api, server) as client:
        with pytest.raises(mal.DecodeError, match="1 vectors for 2 texts"):
            await embed(api, client, ["a", "b"], model=GEMINI)


async def test_gemini_an_empty_text_is_a_config_error(api: Api, server: MockServer) -> None:
    async with gemini_client(api, server) as client:
        with pytest.raises(mal.ConfigError, match=r"texts\[1\] is empty: Gemini's"):
            await embed(api, client, ["a", ""], model=GEMINI)
    assert server.requests == []
