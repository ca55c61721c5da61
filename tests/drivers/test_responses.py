"""The OpenAI Responses API through the drivers (sync, asyncio and trio)
against the built-in server: text, reasoning summaries sent back with their
items, tool rounds, structured output, incomplete responses and in-stream
errors, with each request checked field by field."""

from __future__ import annotations

import json
from typing import Any

import httpx
import msgspec
import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import Api, collect, make_config

pytestmark = pytest.mark.anyio

MODEL = "openai-responses/o4-mini"


async def complete(api: Api, client: Any, prompt: Any, **options: Any) -> mal.Response:
    if api.sync:
        return client.raw.complete(prompt, **options)  # type: ignore[no-any-return]
    return await client.raw.complete(prompt, **options)  # type: ignore[no-any-return]


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"18 C in {city}"


async def test_text_streamed_and_not(api: Api, server: MockServer) -> None:
    server.add(Reply(text="Streamed text."), Reply(text="Whole text."))
    async with api.client(
        make_config(server, api_keys={"openai": "sk-x"}, max_retries=0)
    ) as client:
        stream = client.stream("Hi", model=MODEL, system="Be brief.", max_tokens=40)
        async with stream:
            chunks = await collect(stream)
        r = await complete(api, client, "Hi", model=MODEL, stream=False)
    assert "".join(c.text for c in chunks) == "Streamed text."
    assert stream.finish_reason == "stop" and stream.raw_finish_reason == "completed"
    assert stream.usage is not None and stream.usage.input_tokens == 11
    assert r.text == "Whole text." and r.finish_reason == "stop"
    first, second = server.requests
    assert first.path == "/v1/responses" and first.headers["authorization"] == "Bearer sk-x"
    assert first.json == {
        "model": "o4-mini",
        "input": [{"role": "user", "content": "Hi"}],
        "instructions": "Be brief.",
        "stream": True,
        "max_output_tokens": 40,
    }
    assert "stream" not in second.json


async def test_reasoning_summaries_and_their_items_go_back(api: Api, server: MockServer) -> None:
    server.add(Reply(reasoning="Think it through.", text="42."), Reply(text="Yes."))
    async with api.client_for(server) as client:
        first = await complete(api, client, "Answer?", model=MODEL, stream=True)
        conversation = [mal.Message("user", "Answer?"), first.message, mal.Message("user", "Sure?")]
        second = await complete(api, client, conversation, model=MODEL)
    assert first.reasoning == "Think it through." and first.text == "42."
    assert second.text == "Yes."
    blocks = first.message.blocks
    assert blocks is not None and [b["type"] for b in blocks] == ["reasoning", "message"]
    assert blocks[0]["encrypted_content"].startswith("gAAAAB")
    sent = server.requests[1].json["input"]
    assert sent[0] == {"role": "user", "content": "Answer?"}
    assert sent[1:3] == blocks  # the reasoning item directly followed by its message
    assert sent[3] == {"role": "user", "content": "Sure?"}


async def test_two_rounds_of_two_parallel_calls(api: Api, server: MockServer) -> None:
    calls = [{"name": "get_weather", "arguments": {"city": c}} for c in ("Paris", "Oslo")]
    server.add(
        Reply(tool_calls=calls),
        Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}] * 2),
        Reply(text="All mild."),
    )
    async with api.client_for(server) as client:
        r = await complete(api, client, "Weather?", model=MODEL, tools=[get_weather], tool_rounds=2)
    assert r.text == "All mild." and len(r.steps) == 3
    (c1, c2), (c3, c4) = r.steps[0].tool_calls, r.steps[1].tool_calls
    assert [c.arguments for c in (c1, c2)] == [{"city": "Paris"}, {"city": "Oslo"}]
    first, second, third = (request.json for request in server.requests)
    assert first["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
            "strict": False,
        }
    ]
    assert second["input"] == [
        {"role": "user", "content": "Weather?"},
        {
            "type": "function_call",
            "call_id": c1.id,
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {
            "type": "function_call",
            "call_id": c2.id,
            "name": "get_weather",
            "arguments": '{"city":"Oslo"}',
        },
        {"type": "function_call_output", "call_id": c1.id, "output": "18 C in Paris"},
        {"type": "function_call_output", "call_id": c2.id, "output": "18 C in Oslo"},
    ]
    outputs = [i for i in third["input"] if i.get("type") == "function_call_output"]
    assert [o["call_id"] for o in outputs] == [c1.id, c2.id, c3.id, c4.id]


class City(msgspec.Struct):
    name: str
    population: int


async def test_structured_output(api: Api, server: MockServer) -> None:
    server.add(Reply(json={"name": "Tokyo", "population": 14000000}))
    async with api.client_for(server) as client:
        city = await client.generate("Largest city?", model=MODEL, schema=City)
    assert city == City("Tokyo", 14000000)
    fmt = server.requests[0].json["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["name"] == "City" and fmt["strict"] is True


async def test_incomplete_and_errors(api: Api, server: MockServer) -> None:
    server.add(
        Reply(text="Cut short here", finish_reason="length"),
        Reply(text="Half of it and more", error_after=3, error_type="server_error"),
        Reply(status=429, headers={"retry-after": "0"}),
        Reply(text="After the retry."),
    )
    async with api.client_for(server, max_retries=1) as client:
        stream = client.stream("?", model=MODEL)
        async with stream:
            await collect(stream)
        assert stream.finish_reason == "length" and stream.raw_finish_reason == "max_output_tokens"
        texts: list[str] = []
        with pytest.raises(mal.StreamError) as info:
            stream = client.stream("?", model=MODEL)
            async with stream:
                async for chunk in stream:
                    texts.append(chunk.text)
        assert info.value.error_type == "server_error"
        assert info.value.partial_text == "".join(texts) == "Half of it"
        assert await client.generate("?", model=MODEL) == "After the retry."


def test_the_wire_events(server: MockServer) -> None:
    # The built-in server's Responses stream, as the API sends it.
    server.add(Reply(reasoning="Hm.", text="Hi", tool_calls=[{"name": "f", "arguments": {}}]))
    body = {"model": "o4-mini", "input": "x", "stream": True}
    response = httpx.post(server.url("openai") + "/responses", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [
        json.loads(block.split("\ndata: ", 1)[1])
        for block in response.text.split("\n\n")
        if block.startswith("event: ")
    ]
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    added = [e["item"]["type"] for e in events if e["type"] == "response.output_item.added"]
    done = [e["item"]["type"] for e in events if e["type"] == "response.output_item.done"]
    assert added == done == ["reasoning", "message", "function_call"]
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message", "function_call"]
    assert final["usage"]["input_tokens"] == 11


async def test_a_refusal(api: Api, server: MockServer) -> None:
    server.add(Reply(refusal="I can't help with that."), Reply(refusal="No."))
    async with api.client_for(server) as client:
        r = await complete(api, client, "?", model=MODEL)
        assert r.refusal == "I can't help with that." and r.text == ""
        with pytest.raises(mal.RefusalError) as info:
            await client.generate("?", model=MODEL, schema=City)
    assert info.value.refusal == "No."
