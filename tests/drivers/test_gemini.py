"""Gemini through the drivers (sync, asyncio and trio), against the strict
built-in server: text, reasoning, a two-step tool loop that sends the signed
turn back, schema=, images, a non-streamed call, and a request the API would
refuse; each request checked field by field."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import Api, collect

pytestmark = pytest.mark.anyio

MODEL = "gemini/gemini-2.5-flash"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def client_for(api: Api, server: MockServer, **config: Any) -> Any:
    return api.client_for(server, base_urls={"gemini": server.url("gemini")}, **config)


async def complete(api: Api, client: Any, prompt: Any, **options: Any) -> mal.Response:
    if api.sync:
        return client.raw.complete(prompt, **options)  # type: ignore[no-any-return]
    return await client.raw.complete(prompt, **options)  # type: ignore[no-any-return]


async def test_text_streams_with_usage(api: Api, server: MockServer) -> None:
    server.add(Reply(tokens=["Hel", "lo", "!"], input_tokens=9, output_tokens=3))
    async with client_for(api, server) as client:
        stream = client.stream("Hi", model=MODEL, system="Be brief.", temperature=0.5)
        async with stream:
            chunks = await collect(stream)
        assert [c.text for c in chunks if c.text] == ["Hel", "lo", "!"]
        assert stream.finish_reason == "stop" and stream.raw_finish_reason == "STOP"
        assert stream.usage == mal.Usage(input_tokens=9, output_tokens=3)
        assert stream.provider == "gemini" and stream.model == "gemini-2.5-flash"
    (request,) = server.requests
    assert request.provider == "gemini" and request.violation is None
    assert request.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert request.query == "alt=sse"
    assert request.json == {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.5},
    }


async def test_reasoning_and_thinking_tokens(api: Api, server: MockServer) -> None:
    server.add(Reply(reasoning_tokens=["Let me ", "think."], text="42", output_tokens=5))
    async with client_for(api, server) as client:
        r = await complete(
            api,
            client,
            "The answer?",
            model=MODEL,
            extra_body={"generationConfig": {"thinkingConfig": {"includeThoughts": True}}},
        )
    assert r.reasoning == "Let me think." and r.text == "42"
    assert r.usage is not None
    assert r.usage.output_tokens == 5 and r.usage.reasoning_tokens == 2
    (request,) = server.requests
    assert request.json["generationConfig"] == {"thinkingConfig": {"includeThoughts": True}}


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"18C in {city}"


async def test_two_step_tool_loop_sends_the_signed_turn_back(api: Api, server: MockServer) -> None:
    server.add(
        Reply(
            tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
            signature="c2lnbmVk",
        ),
        Reply(text="Mild in Paris."),
    )
    async with client_for(api, server) as client:
        r = await complete(
            api, client, "Weather in Paris?", model=MODEL, tools=[get_weather], tool_rounds=1
        )
    assert r.text == "Mild in Paris." and r.finish_reason == "stop"
    first, second = server.requests
    assert first.violation is None and second.violation is None
    declaration = first.json["tools"][0]["functionDeclarations"][0]
    assert declaration["name"] == "get_weather"
    assert declaration["description"] == "Current weather in a city."
    assert declaration["parametersJsonSchema"]["required"] == ["city"]
    assert second.json["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "c2lnbmVk",
                }
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "get_weather",
                        "response": {"output": "18C in Paris"},
                    }
                }
            ],
        },
    ]


class City(msgspec.Struct):
    name: str
    population: int


async def test_schema_asks_for_json_and_parses(api: Api, server: MockServer) -> None:
    server.add(Reply(text='{"name": "Paris", "population": 2100000}'))
    async with client_for(api, server) as client:
        r = await complete(api, client, "Paris?", model=MODEL, schema=City)
    assert r.parsed == City("Paris", 2100000)
    (request,) = server.requests
    config = request.json["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"]["required"] == ["name", "population"]
    assert request.violation is None


async def test_an_image_is_inline_data(api: Api, server: MockServer) -> None:
    server.add(Reply(text="A cat."))
    prompt = [mal.Message("user", ["What is this?", mal.Image.from_bytes(PNG)])]
    async with client_for(api, server) as client:
        assert await client.generate(prompt, model=MODEL) == "A cat."
    (request,) = server.requests
    assert request.json["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}},
    ]


async def test_non_streamed_call(api: Api, server: MockServer) -> None:
    server.add(Reply(text="Bonjour", input_tokens=4, output_tokens=1))
    async with client_for(api, server, use_streaming=False) as client:
        r = await complete(api, client, "Hi", model=MODEL, max_tokens=20, stop=["x"], seed=3)
    assert r.text == "Bonjour" and r.usage == mal.Usage(input_tokens=4, output_tokens=1)
    (request,) = server.requests
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.json["generationConfig"] == {
        "maxOutputTokens": 20,
        "stopSequences": ["x"],
        "seed": 3,
    }


async def test_an_unknown_field_is_googles_400(api: Api, server: MockServer) -> None:
    server.add(Reply(text="never sent"))
    async with client_for(api, server) as client:
        with pytest.raises(mal.APIStatusError) as info:
            await client.generate("Hi", model=MODEL, extra_body={"temprature": 1})
    error = info.value
    assert error.status_code == 400
    assert error.body == {
        "error": {
            "code": 400,
            "message": 'Invalid JSON payload received. Unknown name "temprature": '
            "Cannot find field.",
            "status": "INVALID_ARGUMENT",
        }
    }
    assert "(INVALID_ARGUMENT)" in str(error)
    assert server.pending == 1  # the queued reply waits for a request the API takes


async def test_an_in_stream_error_is_typed(api: Api, server: MockServer) -> None:
    server.add(Reply(tokens=["a", "b"], error_after=1, error_type="UNAVAILABLE"))
    async with client_for(api, server) as client:
        texts: list[str] = []
        with pytest.raises(mal.StreamError) as info:
            async with client.stream("Hi", model=MODEL) as stream:
                async for chunk in stream:
                    texts.append(chunk.text)
    assert info.value.error_type == "UNAVAILABLE" and info.value.retryable is True
    assert "".join(texts) == info.value.partial_text == "a"
