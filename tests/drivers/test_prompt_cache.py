"""Prompt-cache breakpoints end to end (sync, asyncio and trio) against the
strict built-in server: the requests Anthropic receives, field by field, the
cached token counts that come back, a tool loop that keeps its breakpoints on
every step, a fifth breakpoint refused before anything is sent, and the other
providers, which are sent nothing new."""

from __future__ import annotations

from typing import Any

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, Api, collect

pytestmark = pytest.mark.anyio

EPHEMERAL = {"type": "ephemeral"}
DOCUMENT = "A long document. " * 20


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


async def complete(api: Api, client: Any, prompt: Any, **options: Any) -> mal.Response:
    if api.sync:
        return client.raw.complete(prompt, **options)  # type: ignore[no-any-return]
    return await client.raw.complete(prompt, **options)  # type: ignore[no-any-return]


def prompt() -> list[Any]:
    return [
        mal.Message("user", DOCUMENT, cache=True),
        mal.Message("assistant", "I have read it."),
        {"role": "user", "content": "What is it about?"},
    ]


async def test_a_streamed_call_sends_the_breakpoints(api: Api, server: MockServer) -> None:
    server.add(
        Reply(text="Documents.", input_tokens=400, cache_read_tokens=0, cache_write_tokens=380)
    )
    async with (
        api.client_for(server) as client,
        client.stream(
            prompt(),
            model=MODELS["anthropic"],
            system="Be brief.",
            tools=[get_weather],
            cache_system=True,
            cache_tools=True,
        ) as stream,
    ):
        chunks = await collect(stream)
    assert "".join(chunk.text for chunk in chunks) == "Documents."
    assert stream.usage is not None
    assert stream.usage.input_tokens == 400
    assert stream.usage.cache_read_tokens == 0
    assert stream.usage.cache_write_tokens == 380
    (request,) = server.requests
    assert request.violation is None
    body = request.json
    assert body["system"] == [{"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}]
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city.",
            "input_schema": body["tools"][0]["input_schema"],
            "cache_control": EPHEMERAL,
        }
    ]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": DOCUMENT, "cache_control": EPHEMERAL}],
        },
        {"role": "assistant", "content": "I have read it."},
        {"role": "user", "content": "What is it about?"},
    ]
    assert body["stream"] is True


@pytest.mark.parametrize("stream", [True, False])
async def test_complete_reports_the_cache_reads(api: Api, server: MockServer, stream: bool) -> None:
    server.add(Reply(text="Again.", input_tokens=400, cache_read_tokens=380))
    async with api.client_for(server) as client:
        r = await complete(api, client, prompt(), model=MODELS["anthropic"], stream=stream)
    assert r.text == "Again."
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.cache_read_tokens, r.usage.cache_write_tokens) == (
        400,
        380,
        0,
    )
    assert r.stats is not None and r.stats.cache_read_tokens == 380
    (request,) = server.requests
    assert request.violation is None
    assert request.json["messages"][0]["content"][0]["cache_control"] == EPHEMERAL


async def test_a_tool_loop_keeps_its_breakpoints_on_every_step(
    api: Api, server: MockServer
) -> None:
    server.add(
        Reply(
            tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
            cache_write_tokens=5,
        ),
        Reply(text="Sunny.", cache_read_tokens=5),
    )
    async with api.client_for(server) as client:
        r = await complete(
            api,
            client,
            [mal.Message("user", "Weather in Paris?", cache=True)],
            model=MODELS["anthropic"],
            tools=[get_weather],
            tool_rounds=1,
            cache_tools=True,
        )
    assert r.text == "Sunny."
    first, second = server.requests
    for request in (first, second):
        assert request.violation is None
        assert request.json["tools"][-1]["cache_control"] == EPHEMERAL
        assert request.json["messages"][0] == {
            "role": "user",
            "content": [{"type": "text", "text": "Weather in Paris?", "cache_control": EPHEMERAL}],
        }
    # The turns the loop added carry no breakpoint of their own.
    assert [m["role"] for m in second.json["messages"]] == ["user", "assistant", "user"]
    assert "cache_control" not in str(second.json["messages"][1:])
    # Each step's own counts.
    assert [step.usage.cache_write_tokens for step in r.steps if step.usage] == [5, 0]
    assert [step.usage.cache_read_tokens for step in r.steps if step.usage] == [0, 5]
    # Sending the conversation back with the result marked moves the breakpoint on.
    server.add(Reply(text="Still sunny."))
    history = [mal.Message("user", "Weather in Paris?"), *r.messages[:-1]]
    history[-1] = mal.Message(
        "tool", history[-1].content, tool_call_id=history[-1].tool_call_id, cache=True
    )
    async with api.client_for(server) as client:
        await complete(api, client, history, model=MODELS["anthropic"], tools=[get_weather])
    third = server.requests[-1]
    assert third.violation is None
    (result,) = third.json["messages"][-1]["content"]
    assert result["type"] == "tool_result" and result["cache_control"] == EPHEMERAL


async def test_a_fifth_breakpoint_is_refused_before_anything_is_sent(
    api: Api, server: MockServer
) -> None:
    marked = [mal.Message("user", f"Part {i}.", cache=True) for i in range(4)]
    async with api.client_for(server) as client:
        with pytest.raises(mal.ConfigError, match=r"^5 prompt-cache breakpoints, but Anthropic"):
            await complete(
                api, client, marked, model=MODELS["anthropic"], system="S.", cache_system=True
            )
        with pytest.raises(mal.ConfigError, match="at most 4"):
            async with client.stream(
                marked, model=MODELS["anthropic"], tools=[get_weather], cache_tools=True
            ) as stream:
                await collect(stream)
    assert server.requests == []


@pytest.mark.parametrize("provider", ["openai", "ollama", "openai-responses"])
async def test_other_providers_are_sent_nothing_new(
    api: Api, server: MockServer, provider: str
) -> None:
    model = "openai-responses/o4-mini" if provider == "openai-responses" else MODELS[provider]
    server.add(
        Reply(text="Cached by itself.", cache_read_tokens=3),
        Reply(text="Cached by itself.", cache_read_tokens=3),
    )
    async with api.client_for(server, api_keys={"openai": "sk-x"}) as client:
        r = await complete(
            api,
            client,
            prompt(),
            model=model,
            system="Be brief.",
            tools=[get_weather],
            cache_system=True,
            cache_tools=True,
        )
        plain = [
            mal.Message("user", DOCUMENT),
            mal.Message("assistant", "I have read it."),
            {"role": "user", "content": "What is it about?"},
        ]
        await complete(api, client, plain, model=model, system="Be brief.", tools=[get_weather])
    assert r.text == "Cached by itself."
    cached, uncached = server.requests
    assert cached.violation is None
    assert cached.json == uncached.json
    assert "cache" not in cached.body.decode()
