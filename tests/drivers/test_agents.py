"""Agents through the drivers (sync, asyncio and trio), for every provider,
against the strict built-in server: the usage of a call of several steps, the
progress callback over the steps, and the tool loop streamed."""

from __future__ import annotations

import json
from typing import Any

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import Api, make_config

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


# The loop, streamed ---------------------------------------------------------------------


def sent_turns(provider: str, body: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The conversation a request carries, on each wire, as ("user", text),
    ("assistant", text), ("call", id, name, arguments) and ("result", id,
    content, is_error) (Gemini pairs a result with its call by name)."""
    out: list[tuple[Any, ...]] = []
    if provider == "openai-responses":
        for item in body["input"]:
            kind = item.get("type", "message")
            if kind == "message":
                content = item["content"]
                if isinstance(content, list):
                    content = "".join(part["text"] for part in content)
                out.append((item["role"], content))
            elif kind == "function_call":
                args = json.loads(item["arguments"])
                out.append(("call", item["call_id"], item["name"], args))
            elif kind == "function_call_output":
                out.append(("result", item["call_id"], item["output"], False))
        return out
    if provider == "gemini":
        for content in body["contents"]:
            role = "assistant" if content["role"] == "model" else content["role"]
            for part in content["parts"]:
                if part.get("text"):  # (an empty text part is left out here)
                    out.append((role, part["text"]))
                elif "functionCall" in part:
                    call = part["functionCall"]
                    out.append(("call", call["name"], call["name"], call["args"]))
                elif "functionResponse" in part:
                    response = part["functionResponse"]
                    output = response["response"]
                    text = output.get("output", output.get("error"))
                    out.append(("result", response["name"], text, "error" in output))
        return out
    for message in body["messages"]:
        role, content = message["role"], message["content"]
        if provider == "anthropic":
            if isinstance(content, str):
                out.append((role, content))
                continue
            for block in content:
                if block["type"] == "text":
                    out.append((role, block["text"]))
                elif block["type"] == "tool_use":
                    out.append(("call", block["id"], block["name"], block["input"]))
                elif block["type"] == "tool_result":
                    is_error = block.get("is_error", False)
                    out.append(("result", block["tool_use_id"], block["content"], is_error))
            continue
        if role == "tool":
            out.append(("result", message["tool_call_id"], content, False))
            continue
        if content:
            out.append((role, content))
        for call in message.get("tool_calls", []):
            args = call["function"]["arguments"]
            if provider == "openai":
                args = json.loads(args)  # JSON text for OpenAI
            out.append(("call", call["id"], call["function"]["name"], args))
    return out


def call_key(provider: str, call: mal.ToolCall) -> str:
    return call.name if provider == "gemini" else call.id


@pytest.mark.parametrize("provider", list(LOOP_MODELS))
async def test_a_two_step_loop_streams(api: Api, server: MockServer, provider: str) -> None:
    server.add(
        Reply(
            tokens=["Let me ", "check."],
            tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
            input_tokens=100,
            output_tokens=12,
        ),
        Reply(tokens=["Paris ", "is mild."], input_tokens=130, output_tokens=4),
    )
    async with (
        client_for(api, server) as client,
        client.stream(
            "Weather in Paris?", model=LOOP_MODELS[provider], tools=[get_weather], tool_rounds=2
        ) as stream,
    ):
        chunks = [chunk async for chunk in stream]
        assert stream.text == "Paris is mild."
        r = stream.raw.response()
    # Step 0's chunks, then the results chunk, then step 1's.
    steps = [chunk.step for chunk in chunks]
    results = [i for i, chunk in enumerate(chunks) if chunk.tool_results]
    assert len(results) == 1
    (at,) = results
    assert steps == sorted(steps) and set(steps[: at + 1]) == {0} and set(steps[at + 1 :]) == {1}
    marker = chunks[at]
    assert (marker.text, marker.tool_calls, marker.usage) == ("", (), None)
    assert "".join(c.text for c in chunks[:at]) == "Let me check."
    assert "".join(c.text for c in chunks[at + 1 :]) == "Paris is mild."
    assert any(c.tool_calls for c in chunks[:at]) and not any(c.tool_calls for c in chunks[at:])
    # The whole call.
    assert r.text == "Paris is mild." and r.finish_reason == "stop" and len(r.steps) == 2
    first, last = r.steps
    (call,) = first.tool_calls
    assert (call.name, call.arguments) == ("get_weather", {"city": "Paris"})
    assert marker.tool_results == (mal.ToolResult(call, "18 C in Paris", False),)
    assert [m.role for m in r.messages] == ["assistant", "tool", "assistant"]
    assert first.text == "Let me check." and last.text == "Paris is mild."
    assert r.usage is not None and first.usage is not None and last.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens) == (230, 16)
    assert (first.usage.input_tokens, last.usage.input_tokens) == (100, 130)
    assert RAN == ["Paris"]
    # What each request carried, field by field.
    one, two = server.requests
    assert one.violation is None and two.violation is None
    assert one.json.get("stream", True) and two.json.get("stream", True)
    key = call_key(provider, call)
    assert sent_turns(provider, one.json) == [("user", "Weather in Paris?")]
    assert sent_turns(provider, two.json) == [
        ("user", "Weather in Paris?"),
        ("assistant", "Let me check."),
        ("call", key, "get_weather", {"city": "Paris"}),
        ("result", key, "18 C in Paris", False),
    ]


@pytest.mark.parametrize("provider", list(LOOP_MODELS))
async def test_stream_and_complete_send_the_same_requests(
    api: Api, server: MockServer, provider: str
) -> None:
    replies = (
        weather_call(),
        Reply(text="Mild."),
    )
    server.add(*replies)
    options: dict[str, Any] = {
        "model": LOOP_MODELS[provider],
        "tools": [get_weather],
        "tool_rounds": 1,
    }
    async with client_for(api, server) as client:
        async with client.stream("Paris?", **options) as stream:
            streamed = [chunk async for chunk in stream]
        server.add(*replies)
        r = await complete(api, client, "Paris?", stream=True, **options)
    assert [c.text for c in streamed if c.step == 1] and r.text == "Mild."
    a, b, c, d = server.requests

    def without_ids(body: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [
            t[:1] + t[2:] if t[0] in ("call", "result") else t for t in sent_turns(provider, body)
        ]

    assert without_ids(a.json) == without_ids(c.json)
    assert without_ids(b.json) == without_ids(d.json)
    assert {k: v for k, v in b.json.items() if k not in ("messages", "input", "contents")} == {
        k: v for k, v in d.json.items() if k not in ("messages", "input", "contents")
    }


def broken(city: str) -> str:
    """A tool that fails."""
    RAN.append(city)
    raise RuntimeError(f"no data for {city}")


@pytest.mark.parametrize("provider", list(LOOP_MODELS))
async def test_a_tool_that_raises_ends_the_streamed_loop(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(
        Reply(
            tokens=["Let me ", "check."],
            tool_calls=[{"name": "broken", "arguments": {"city": "Paris"}}],
        ),
        Reply(text="never sent"),
    )
    chunks: list[mal.Chunk] = []
    async with (
        client_for(api, server) as client,
        client.stream(
            "Paris?", model=LOOP_MODELS[provider], tools=[broken], tool_rounds=2
        ) as stream,
    ):
        with pytest.raises(mal.ToolError, match="RuntimeError: no data for Paris") as caught:
            async for chunk in stream:
                chunks.append(chunk)
    error = caught.value
    assert isinstance(error.__cause__, RuntimeError) and error.tool_call.name == "broken"
    assert error.partial_text == "Let me check."
    assert [s.text for s in error.steps] == ["Let me check."]
    assert error.response.text == "Let me check." and len(error.response.steps) == 1
    assert {c.step for c in chunks} == {0} and not any(c.tool_results for c in chunks)
    assert RAN == ["Paris"] and len(server.requests) == 1


@pytest.mark.parametrize("provider", list(LOOP_MODELS))
async def test_a_tool_error_sent_back_streams_on(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(
        Reply(tool_calls=[{"name": "broken", "arguments": {"city": "Paris"}}]),
        Reply(text="No data."),
    )
    async with (
        client_for(api, server) as client,
        client.stream(
            "Paris?", model=LOOP_MODELS[provider], tools=[broken], tool_rounds=2, tool_errors="send"
        ) as stream,
    ):
        chunks = [chunk async for chunk in stream]
        r = stream.raw.response()
    (marker,) = [c for c in chunks if c.tool_results]
    (call,) = r.steps[0].tool_calls
    content = "RuntimeError: no data for Paris"
    assert marker.tool_results == (mal.ToolResult(call, content, True),)
    assert r.text == "No data." and stream.text == "No data."
    key = call_key(provider, call)
    _, second = server.requests
    (result,) = [t for t in sent_turns(provider, second.json) if t[0] == "result"]
    # Anthropic and Gemini say that it is an error; the others send the text alone.
    assert result[:3] == ("result", key, content)
    assert result[3] is (provider in ("anthropic", "gemini"))


async def test_an_error_in_a_later_step_keeps_what_arrived(api: Api, server: MockServer) -> None:
    server.add(
        weather_call(),
        Reply(tokens=["Par", "is ", "is"], error_after=2),
    )
    chunks: list[mal.Chunk] = []
    async with (
        client_for(api, server) as client,
        client.stream(
            "Paris?", model="anthropic/claude-mock", tools=[get_weather], tool_rounds=1
        ) as stream,
    ):
        with pytest.raises(mal.StreamError) as caught:
            async for chunk in stream:
                chunks.append(chunk)
        partial = stream.raw.response()
    error = caught.value
    assert (
        error.partial_text == "Paris "
        and "".join(c.text for c in chunks if c.step == 1) == "Paris "
    )
    assert len(error.steps) == 1 and error.steps[0].tool_calls[0].name == "get_weather"
    assert [s.text for s in partial.steps] == ["", "Paris "]


@pytest.mark.parametrize("after_results", [False, True])
async def test_a_break_between_steps_sends_nothing_more(
    api: Api, server: MockServer, after_results: bool
) -> None:
    server.add(weather_call(), Reply(text="never sent"))
    async with (
        client_for(api, server) as client,
        client.stream(
            "Paris?", model="openai/gpt-mock", tools=[get_weather], tool_rounds=1
        ) as stream,
    ):
        async for chunk in stream:
            if after_results and chunk.tool_results:
                break
            if not after_results and chunk.finish_reason is not None:
                break  # the last chunk of step 0: its tools have not run
    assert len(server.requests) == 1
    assert (["Paris"] if after_results else []) == RAN


async def test_the_async_client_runs_a_steps_calls_concurrently(
    api: Api, server: MockServer
) -> None:
    import anyio

    events = {"a": anyio.Event(), "b": anyio.Event()}

    async def meet(name: str) -> str:
        """Wait for the other call of the step."""
        events[name].set()
        with anyio.fail_after(5):
            await events["b" if name == "a" else "a"].wait()
        return name

    server.add(
        Reply(
            tool_calls=[
                {"name": "meet", "arguments": {"name": "a"}},
                {"name": "meet", "arguments": {"name": "b"}},
            ]
        ),
        Reply(text="Met."),
    )
    async with client_for(api, server) as client:
        if api.sync:  # it runs sync functions only, one after another
            stream = client.raw.stream("?", model="openai/gpt-mock", tools=[meet], tool_rounds=1)
            with stream, pytest.raises(mal.ConfigError, match="async function"):
                for _ in stream:
                    pass
            return
        async with client.stream("?", model="openai/gpt-mock", tools=[meet], tool_rounds=1) as s:
            chunks = [chunk async for chunk in s]
    (marker,) = [c for c in chunks if c.tool_results]
    assert [(r.content, r.is_error) for r in marker.tool_results] == [("a", False), ("b", False)]
    assert s.text == "Met."


async def test_schema_reasks_stream_too(api: Api, server: MockServer) -> None:
    server.add(Reply(text='{"city": 1}'), Reply(text='{"city": "Paris"}'))
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    async with (
        client_for(
            api,
            server,
        ) as client,
        client.stream("City?", model="openai/gpt-mock", schema=schema, schema_retries=1) as stream,
    ):
        chunks = [chunk async for chunk in stream]
        r = stream.raw.response()
    assert {c.step for c in chunks} == {0, 1} and not any(c.tool_results for c in chunks)
    assert "".join(c.text for c in chunks if c.step == 1) == '{"city": "Paris"}'
    assert r.parsed == {"city": "Paris"} and len(r.steps) == 2


async def test_hooks_and_stats_hold_per_step(api: Api, server: MockServer) -> None:
    server.add(weather_call(), Reply(text="Mild."))
    ended: list[mal.CallStats] = []
    requests: list[mal.RequestInfo] = []
    hooks = mal.Hooks(on_complete=ended.append, on_request=requests.append)
    client = api.client(make_config(server, max_retries=0), hooks=hooks)
    async with (
        client,
        client.stream(
            "Paris?", model="openai/gpt-mock", tools=[get_weather], tool_rounds=1
        ) as stream,
    ):
        async for _ in stream:
            pass
        r = stream.raw.response()
    assert len(ended) == 2 and len(requests) == 2
    assert requests[0].call_id != requests[1].call_id
    assert [s.finish_reason for s in ended] == ["tool_calls", "stop"]
    assert r.stats is not None and r.stats.finish_reason == "stop"
    assert client.metrics.requests == 2


def test_a_close_from_another_thread_while_tools_run_sends_nothing_more(
    fresh_server: MockServer,
) -> None:
    import threading

    fresh_server.add(weather_call(), Reply(text="never sent"))
    holder: list[mal.Stream] = []

    def closing_tool(city: str) -> str:
        """Closes the stream from another thread, as a caller's watchdog would."""
        closer = threading.Thread(target=holder[0].close)
        closer.start()
        closer.join()
        return city

    closing_tool.__name__ = "get_weather"
    config = make_config(fresh_server, max_retries=0)
    with mal.Client(config) as client:
        stream = client.stream(
            "Paris?", model="openai/gpt-mock", tools=[closing_tool], tool_rounds=1
        )
        holder.append(stream)
        with stream:
            chunks = list(stream)
    assert len(fresh_server.requests) == 1
    assert not any(c.tool_results for c in chunks)
