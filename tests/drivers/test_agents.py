"""Agents through the drivers (sync, asyncio and trio), for every provider,
against the strict built-in server: the usage of a call of several steps, the
progress callback over the steps, and the tool loop streamed."""

from __future__ import annotations

from typing import Any

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import Api

pytestmark = pytest.mark.anyio

#: Every wire, as a user names a model of it.
LOOP_MODELS = {
    "ollama": "ollama/mock-model",
    "openai": "openai/gpt-mock",
    "openai-responses": "openai-responses/gpt-mock",
    "anthropic": "anthropic/claude-mock",
    "gemini": "gemini/gemini-2.5-flash",
}

RAN: list[str] = []


def get_weather(city: str) -> str:
    """Current weather in a city."""
    RAN.append(city)
    return f"18 C in {city}"


@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    RAN.clear()


def client_for(api: Api, server: MockServer, **config: Any) -> Any:
    return api.client_for(server, base_urls={"gemini": server.url("gemini")}, **config)


async def complete(api: Api, client: Any, prompt: Any, **options: Any) -> mal.Response:
    if api.sync:
        return client.raw.complete(prompt, **options)  # type: ignore[no-any-return]
    return await client.raw.complete(prompt, **options)  # type: ignore[no-any-return]


def weather_call(city: str = "Paris", **usage: int) -> Reply:
    return Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": city}}], **usage)


# Accounting -----------------------------------------------------------------------------


@pytest.mark.parametrize("provider", list(LOOP_MODELS))
async def test_usage_of_a_tool_loop_is_the_sum_of_its_steps(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(
        weather_call(input_tokens=100, output_tokens=7, cache_read_tokens=0),
        Reply(text="Mild.", input_tokens=130, output_tokens=3, cache_read_tokens=96),
    )
    async with client_for(api, server) as client:
        r = await complete(
            api, client, "Paris?", model=LOOP_MODELS[provider], tools=[get_weather], tool_rounds=1
        )
    assert r.text == "Mild." and len(r.steps) == 2
    first, last = r.steps
    assert first.usage is not None and last.usage is not None and r.usage is not None
    assert (first.usage.input_tokens, first.usage.output_tokens) == (100, 7)
    assert (last.usage.input_tokens, last.usage.output_tokens) == (130, 3)
    assert (r.usage.input_tokens, r.usage.output_tokens) == (230, 10)
    # A field some step reports is summed over those that report it.
    if provider == "ollama":  # Ollama reports no cached tokens
        assert r.usage.cache_read_tokens is None
    else:
        assert last.usage.cache_read_tokens == 96
        assert r.usage.cache_read_tokens == (first.usage.cache_read_tokens or 0) + 96
    # What no step reports stays None.
    if last.usage.cache_write_tokens is None and first.usage.cache_write_tokens is None:
        assert r.usage.cache_write_tokens is None
    # The stats of the whole call carry the sums; each step's its own.
    assert r.stats is not None and first.stats is not None and last.stats is not None
    assert (r.stats.input_tokens, r.stats.output_tokens) == (230, 10)
    assert r.stats.cache_read_tokens == r.usage.cache_read_tokens
    assert (first.stats.input_tokens, last.stats.input_tokens) == (100, 130)


async def test_usage_of_schema_reasks_is_summed(api: Api, server: MockServer) -> None:
    server.add(
        Reply(text='{"city": 1}', input_tokens=20, output_tokens=4),
        Reply(text='{"city": "Paris"}', input_tokens=40, output_tokens=5),
    )
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    async with client_for(api, server) as client:
        r = await complete(
            api, client, "City?", model="openai/gpt-mock", schema=schema, schema_retries=1
        )
    assert r.parsed == {"city": "Paris"} and len(r.steps) == 2
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens) == (60, 9)
    assert [s.usage.input_tokens for s in r.steps if s.usage] == [20, 40]
    assert r.stats is not None and r.stats.schema_retries == 1


def test_add_usage_rules() -> None:
    from mal._complete import add_usage

    steps = [
        mal.Response(usage=mal.Usage(input_tokens=1, reasoning_tokens=None)),
        mal.Response(usage=None),
        mal.Response(usage=mal.Usage(input_tokens=2, output_tokens=3, reasoning_tokens=4)),
    ]
    assert add_usage(steps) == mal.Usage(input_tokens=3, output_tokens=3, reasoning_tokens=4)
    assert add_usage([mal.Response(), mal.Response()]) is None


# Progress callbacks ---------------------------------------------------------------------


async def test_an_async_callback_is_awaited_for_each_delta_of_every_step(
    api: Api, server: MockServer
) -> None:
    import anyio

    server.add(
        Reply(
            tokens=["Let me ", "look."],
            tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}],
        ),
        Reply(tokens=["It is ", "mild."]),
    )
    seen: list[str] = []

    async def on_text(text: str) -> None:
        await anyio.sleep(0)  # it really is awaited: a yield to the loop between deltas
        seen.append(text)

    def on_text_sync(text: str) -> None:
        seen.append(text)

    async with client_for(api, server) as client:
        if api.sync:
            with pytest.raises(mal.ConfigError, match="async"):
                client.raw.complete("Oslo?", model="openai/gpt-mock", progress_callback=on_text)
            with pytest.raises(mal.ConfigError, match="async"):
                client.raw.stream("Oslo?", model="openai/gpt-mock", progress_callback=on_text)
            assert server.requests == []
            callback: Any = on_text_sync
        else:
            callback = on_text
        r = await complete(
            api,
            client,
            "Oslo?",
            model="openai/gpt-mock",
            tools=[get_weather],
            tool_rounds=1,
            progress_callback=callback,
        )
    # Every step's text, in order; nothing marks where a step ends.
    assert seen == ["Let me ", "look.", "It is ", "mild."]
    assert r.text == "It is mild." and r.steps[0].text == "Let me look."


async def test_a_sync_callback_still_works_in_async_calls(api: Api, server: MockServer) -> None:
    server.add(Reply(tokens=["a", "b"]))
    seen: list[str] = []
    async with client_for(api, server) as client:
        r = await complete(
            api, client, "Hi", model="anthropic/claude-mock", progress_callback=seen.append
        )
    assert seen == ["a", "b"] and r.text == "ab"


async def test_an_async_callable_object_is_awaited(api: Api, server: MockServer) -> None:
    class Printer:
        def __init__(self) -> None:
            self.seen: list[str] = []

        async def __call__(self, text: str) -> None:
            self.seen.append(text)

    printer = Printer()
    server.add(Reply(tokens=["x", "y"]))
    async with client_for(api, server) as client:
        if api.sync:
            with pytest.raises(mal.ConfigError):
                await complete(
                    api, client, "Hi", model="ollama/mock-model", progress_callback=printer
                )
            return
        await complete(api, client, "Hi", model="ollama/mock-model", progress_callback=printer)
    assert printer.seen == ["x", "y"]
