"""Structured output through the drivers (sync, asyncio and trio), for each
provider, against the built-in server: the request each provider is sent,
the decoded object, re-asks, and what a failure keeps."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, PROVIDERS, Api

pytestmark = pytest.mark.anyio


class City(msgspec.Struct):
    name: str
    population: int


GOOD = '{"name": "Tokyo", "population": 14000000}'
BAD = '{"name": "Tokyo", "population": "a lot"}'


def sent_schema(provider: str, body: dict[str, Any]) -> dict[str, Any]:
    """The schema a request carries, checked to be in the provider's own field."""
    if provider == "openai":
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema"
        spec = fmt["json_schema"]
        assert spec["name"] == "City" and spec["strict"] is True
        schema: dict[str, Any] = spec["schema"]
        assert schema["additionalProperties"] is False
        return schema
    if provider == "anthropic":
        fmt = body["output_config"]["format"]
        assert fmt["type"] == "json_schema"
        return dict(fmt["schema"])
    return dict(body["format"])


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_generate_with_a_schema_returns_the_object(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(Reply(text=GOOD))
    async with api.client_for(server) as client:
        city = await client.generate("Largest city in Japan?", model=MODELS[provider], schema=City)
    assert city == City("Tokyo", 14000000)
    (request,) = server.requests
    schema = sent_schema(provider, request.json)
    assert schema["type"] == "object"
    assert schema["required"] == ["name", "population"]
    assert schema["properties"]["population"] == {"type": "integer"}
    # The prompt is sent as usual.
    assert "Largest city in Japan?" in request.body.decode()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_complete_puts_the_object_in_parsed(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(Reply(text=GOOD))
    async with api.client_for(server) as client:
        r = await complete(api, client, "City?", model=MODELS[provider], schema=City)
    assert isinstance(r, mal.Response)
    assert r.parsed == City("Tokyo", 14000000)
    assert r.text == GOOD
    assert r.finish_reason == "stop"
    assert r.steps == [r] and r.messages == [r.message]
    assert r.message.role == "assistant" and r.message.content == GOOD
    assert r.provider == provider and r.stats is not None


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_failure_then_success_with_one_retry(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(Reply(text=BAD), Reply(text=GOOD))
    seen: list[tuple[int, str]] = []
    hooks = mal.Hooks(on_schema_retry=lambda n, exc: seen.append((n, str(exc))))
    async with api.client(client_config(server), hooks=hooks) as client:
        r = await complete(
            api, client, "City?", model=MODELS[provider], schema=City, schema_retries=1
        )
    assert r.parsed == City("Tokyo", 14000000)
    assert len(r.steps) == 2 and r.steps[0].text == BAD
    assert r.stats is not None and r.stats.schema_retries == 1
    assert [n for n, _ in seen] == [1] and "$.population" in seen[0][1]
    first, second = server.requests
    # (Ollama sends a string prompt to /api/generate, the conversation to /api/chat.)
    assert len(first.json.get("messages", [first.json.get("prompt")])) == 1
    # The re-ask sends the model its output and the validation message.
    messages = second.json["messages"]
    assert messages[-2]["role"] == "assistant"
    assert BAD in str(messages[-2]["content"])
    assert messages[-1]["role"] == "user" and "$.population" in str(messages[-1]["content"])
    assert [m.role for m in r.messages] == ["assistant", "user", "assistant"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_failure_without_retries_keeps_the_raw_text(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(Reply(text=BAD))
    async with api.client_for(server) as client:
        with pytest.raises(mal.OutputValidationError) as info:
            await client.generate("City?", model=MODELS[provider], schema=City)
    assert info.value.raw_text == BAD
    assert "$.population" in str(info.value)
    assert len(server.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_retries_used_up(api: Api, server: MockServer, provider: str) -> None:
    server.add(Reply(text=BAD), Reply(text="not json at all"))
    async with api.client_for(server) as client:
        with pytest.raises(mal.OutputValidationError) as info:
            await client.generate("City?", model=MODELS[provider], schema=City, schema_retries=1)
    assert info.value.raw_text == "not json at all"
    assert len(server.requests) == 2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stream_has_parsed_once_it_ended(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(Reply(text=GOOD, chunk_delay=0.001))
    async with api.client_for(server) as client:
        stream = client.stream("City?", model=MODELS[provider], schema=City)
        texts: list[str] = []
        async with stream:
            async for chunk in stream:
                if not texts:
                    assert stream.raw.parsed is None  # not ended yet
                texts.append(chunk.text)
                partial = stream.raw.partial()
                assert partial is None or isinstance(partial, dict)
        assert "".join(texts) == GOOD
        assert stream.raw.parsed == City("Tokyo", 14000000)
        assert stream.raw.partial() == {"name": "Tokyo", "population": 14000000}
        assert stream.raw.response().parsed == City("Tokyo", 14000000)


async def test_a_refusal_is_a_refusal_error(api: Api, server: MockServer) -> None:
    # Anthropic says so in its stop reason; OpenAI sends refusal text instead of content.
    refusal = (
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":null,"refusal":""}}]}'
        b'\n\ndata: {"choices":[{"index":0,"delta":{"refusal":"I can\'t help."}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    )
    server.add(
        Reply(text="I won't.", finish_reason="refusal"),
        Reply(raw=refusal, content_type="text/event-stream"),
    )
    async with api.client_for(server) as client:
        with pytest.raises(mal.RefusalError) as info:
            await client.generate("?", model=MODELS["anthropic"], schema=City)
        assert info.value.refusal == "I won't."
        with pytest.raises(mal.RefusalError) as info:
            await client.generate("?", model=MODELS["openai"], schema=City)
        assert info.value.refusal == "I can't help."
        # Without a schema, the refusal is a field of the response.
        server.add(Reply(raw=refusal, content_type="text/event-stream"))
        r = await complete(api, client, "?", model=MODELS["openai"])
        assert r.refusal == "I can't help." and r.text == ""


async def test_a_dict_schema_gives_plain_json(api: Api, server: MockServer) -> None:
    server.add(Reply(text='{"answer": 42}'))
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    async with api.client_for(server) as client:
        value = await client.generate("?", model=MODELS["openai"], schema=schema)
    assert value == {"answer": 42}
    sent = server.requests[0].json["response_format"]["json_schema"]
    assert sent["name"] == "output" and sent["strict"] is True


async def test_bad_options(api: Api, server: MockServer) -> None:
    async with api.client_for(server) as client:
        with pytest.raises(mal.ConfigError, match="schema_retries needs a schema"):
            await client.generate("?", model=MODELS["openai"], schema_retries=1)
        with pytest.raises(mal.ConfigError, match="schema_retries"):
            await client.generate("?", model=MODELS["openai"], schema=City, schema_retries=-1)
        with pytest.raises(mal.ConfigError, match="schema"):
            await client.generate("?", model=MODELS["openai"], schema="City")
        with pytest.raises(mal.ConfigError, match="not of stream"):
            client.stream("?", model=MODELS["openai"], schema=City, stream=True)
        with pytest.raises(mal.ConfigError, match="schema_retries needs a schema"):
            client.stream("?", model=MODELS["openai"], schema_retries=1)
    assert server.requests == []


def client_config(server: MockServer) -> mal.MALConfig:
    from ..support.adapters import make_config

    return make_config(server, max_retries=0)


async def complete(api: Api, client: Any, prompt: Any, **options: Any) -> mal.Response:
    if api.sync:
        return client.raw.complete(prompt, **options)  # type: ignore[no-any-return]
    return await client.raw.complete(prompt, **options)  # type: ignore[no-any-return]


# Anthropic without structured outputs: the answer through a forced tool ---------------------


def answer_call(arguments: Any) -> Reply:
    return Reply(tool_calls=[{"name": "City", "arguments": arguments}])


@pytest.mark.parametrize("stream", [True, False])
async def test_anthropic_answers_through_a_forced_tool(
    api: Api, server: MockServer, stream: bool
) -> None:
    server.add(answer_call({"name": "Tokyo", "population": "many"}))
    server.add(answer_call({"name": "Tokyo", "population": 14000000}))
    config = mal.MALConfig(
        base_urls={"anthropic": server.url("anthropic")}, anthropic_schema="tool", max_retries=0
    )
    async with api.client(config) as client:
        r = await complete(
            api,
            client,
            "City?",
            model=MODELS["anthropic"],
            schema=City,
            schema_retries=1,
            stream=stream,
        )
    assert r.parsed == City("Tokyo", 14000000)
    assert r.text == '{"name":"Tokyo","population":14000000}'
    assert r.finish_reason == "stop" and r.raw_finish_reason == "tool_use"
    assert r.tool_calls == [] and len(r.steps) == 2
    first, second = (request.json for request in server.requests)
    for body in (first, second):
        assert "output_config" not in body
        (tool,) = body["tools"]
        assert tool["name"] == "City" and tool["input_schema"]["required"] == [
            "name",
            "population",
        ]
        assert body["tool_choice"] == {"type": "tool", "name": "City"}
    # The re-ask sends the answer back as the assistant's text, then the message.
    assert second["messages"][1] == {
        "role": "assistant",
        "content": '{"name":"Tokyo","population":"many"}',
    }
    assert "$.population" in second["messages"][2]["content"]


async def test_claude_3_models_get_the_tool_by_default(api: Api, server: MockServer) -> None:
    server.add(answer_call({"name": "Oslo", "population": 700000}), Reply(text=GOOD))
    async with api.client_for(server) as client:
        old = await client.generate("?", model="anthropic/claude-3-5-haiku-latest", schema=City)
        new = await client.generate("?", model=MODELS["anthropic"], schema=City)
    assert old == City("Oslo", 700000) and new == City("Tokyo", 14000000)
    first, second = (request.json for request in server.requests)
    assert first["tool_choice"] == {"type": "tool", "name": "City"}
    assert "output_config" in second and "tools" not in second
