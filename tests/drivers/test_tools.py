"""Tool calls through the drivers (sync, asyncio and trio), for each provider,
against the built-in server: the calls a response makes, a stream's deltas,
the tool rounds that ``complete`` runs, and what each provider is sent back,
field by field."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, PROVIDERS, Api, collect

pytestmark = pytest.mark.anyio

RAN: list[tuple[str, dict[str, Any]]] = []


def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
    """Current weather in a city."""
    RAN.append(("get_weather", {"city": city, "unit": unit}))
    return f"18 {unit} in {city}"


def get_time(city: str) -> dict[str, Any]:
    """Local time in a city."""
    RAN.append(("get_time", {"city": city}))
    return {"city": city, "time": "12:00"}


def broken(city: str) -> str:
    """A tool that fails."""
    raise RuntimeError(f"no data for {city}")


@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    RAN.clear()


async def complete(api: Api, client: Any, prompt: Any, **options: Any) -> mal.Response:
    if api.sync:
        return client.raw.complete(prompt, **options)  # type: ignore[no-any-return]
    return await client.raw.complete(prompt, **options)  # type: ignore[no-any-return]


def calls(*specs: tuple[str, dict[str, Any]]) -> Reply:
    return Reply(tool_calls=[{"name": name, "arguments": args} for name, args in specs])


# What each provider is sent -----------------------------------------------------------


def sent_tools(provider: str, body: dict[str, Any]) -> list[str]:
    if provider == "anthropic":
        return [tool["name"] for tool in body["tools"]]
    assert all(tool["type"] == "function" for tool in body["tools"])
    return [tool["function"]["name"] for tool in body["tools"]]


def sent_calls(provider: str, body: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every earlier call in the conversation: (id, name, arguments)."""
    out = []
    for message in body["messages"]:
        if message["role"] != "assistant":
            continue
        if provider == "anthropic":
            content = message["content"]
            if isinstance(content, list):
                out += [
                    (b["id"], b["name"], b["input"]) for b in content if b["type"] == "tool_use"
                ]
        elif provider == "openai":
            for call in message.get("tool_calls", []):
                assert call["type"] == "function"
                arguments = json.loads(call["function"]["arguments"])  # JSON text for OpenAI
                out.append((call["id"], call["function"]["name"], arguments))
        else:
            for call in message.get("tool_calls", []):
                out.append((call["id"], call["function"]["name"], call["function"]["arguments"]))
    return out


def sent_results(provider: str, body: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Every tool result in the conversation: (call id, content, is_error)."""
    out = []
    for message in body["messages"]:
        if provider == "anthropic":
            content = message["content"]
            if message["role"] == "user" and isinstance(content, list):
                for block in content:
                    if block["type"] == "tool_result":
                        assert block.get("is_error", True) is True  # only sent when true
                        out.append((block["tool_use_id"], block["content"], "is_error" in block))
        elif message["role"] == "tool":
            if provider == "ollama":
                assert message["tool_name"]
            out.append((message["tool_call_id"], message["content"], False))
    return out


def check_turns(provider: str, body: dict[str, Any]) -> None:
    """Roles alternate as each provider wants: Anthropic has one user turn of
    all the results after each assistant turn; the others one tool message
    per result."""
    roles = [m["role"] for m in body["messages"]]
    if provider == "anthropic":
        assert all(a != b for a, b in itertools.pairwise(roles)), roles
        assert set(roles) == {"user", "assistant"}
    else:
        assert "tool" in roles


# A response's calls, handed to the caller -------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_complete_returns_the_calls(api: Api, server: MockServer, provider: str) -> None:
    server.add(calls(("get_weather", {"city": "Paris"}), ("get_time", {"city": "Oslo"})))
    async with api.client_for(server) as client:
        r = await complete(
            api, client, "Weather?", model=MODELS[provider], tools=[get_weather, get_time]
        )
    assert r.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in r.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"city": "Oslo"}),
    ]
    assert all(c.complete for c in r.tool_calls)
    assert len({c.id for c in r.tool_calls}) == 2
    assert r.message.role == "assistant" and r.message.tool_calls == r.tool_calls
    assert RAN == []  # tool_rounds is 0: nothing runs
    (request,) = server.requests
    assert sent_tools(provider, request.json) == ["get_weather", "get_time"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_sending_the_results_back_by_hand(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(calls(("get_weather", {"city": "Paris"})), Reply(text="Mild."))
    messages: list[Any] = [mal.Message("user", "Weather in Paris?")]
    async with api.client_for(server) as client:
        r = await complete(api, client, messages, model=MODELS[provider], tools=[get_weather])
        (call,) = r.tool_calls
        messages += [r.message, mal.Message("tool", "18 C", tool_call_id=call.id)]
        final = await complete(api, client, messages, model=MODELS[provider], tools=[get_weather])
    assert final.text == "Mild." and final.tool_calls == []
    body = server.requests[1].json
    assert sent_calls(provider, body) == [(call.id, "get_weather", {"city": "Paris"})]
    assert sent_results(provider, body) == [(call.id, "18 C", False)]
    check_turns(provider, body)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stream_carries_deltas_and_ends_with_the_calls(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(
        Reply(
            text="Checking.",
            tool_calls=[
                {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "f"}},
                {"name": "get_time", "arguments": {"city": "東京"}},
            ],
        )
    )
    async with api.client_for(server) as client:
        stream = client.stream("Weather?", model=MODELS[provider], tools=[get_weather, get_time])
        async with stream:
            chunks = await collect(stream)
            s = stream.raw
    assert "".join(c.text for c in chunks) == "Checking."
    deltas = [d for c in chunks for d in c.tool_calls]
    assert {d.index for d in deltas} == {0, 1}
    assert s.tool_calls and len(s.tool_calls) == 2
    for index, call in enumerate(s.tool_calls):
        mine = [d for d in deltas if d.index == index]
        assert "".join(d.arguments for d in mine) == call.arguments_json
        assert [d.id for d in mine if d.id] == [call.id]
        assert [d.name for d in mine if d.name] == [call.name]
    assert [c.arguments for c in s.tool_calls] == [
        {"city": "Zürich", "unit": "f"},
        {"city": "東京"},
    ]
    assert stream.finish_reason == "tool_calls"
    assert s.message.content == "Checking." and s.message.tool_calls == s.tool_calls


# Tool rounds ----------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_two_rounds_of_two_parallel_calls(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(
        calls(("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo", "unit": "f"})),
        calls(("get_time", {"city": "Paris"}), ("get_time", {"city": "Oslo"})),
        Reply(text="Paris is mild at noon; Oslo too."),
    )
    async with api.client_for(server) as client:
        r = await complete(
            api,
            client,
            "Weather and time in Paris and Oslo?",
            model=MODELS[provider],
            tools=[get_weather, get_time],
            tool_rounds=2,
        )
    assert r.text == "Paris is mild at noon; Oslo too."
    assert r.finish_reason == "stop" and r.tool_calls == []
    assert len(r.steps) == 3 and r.steps[-1].message is r.message
    first, second, _ = r.steps
    assert sorted(RAN, key=repr) == sorted(
        [
            ("get_weather", {"city": "Paris", "unit": "c"}),
            ("get_weather", {"city": "Oslo", "unit": "f"}),
            ("get_time", {"city": "Paris"}),
            ("get_time", {"city": "Oslo"}),
        ],
        key=repr,
    )
    # r.messages: each round's assistant turn and its results, then the answer.
    assert [m.role for m in r.messages] == ["assistant", "tool", "tool"] * 2 + ["assistant"]
    assert r.messages[0] is first.message and r.messages[3] is second.message

    requests = server.requests
    assert len(requests) == 3
    for request in requests:
        assert sent_tools(provider, request.json) == ["get_weather", "get_time"]
    # Round 2 is sent round 1's calls and results, paired in order.
    c1, c2 = first.tool_calls
    assert sent_calls(provider, requests[1].json) == [
        (c1.id, "get_weather", {"city": "Paris"}),
        (c2.id, "get_weather", {"city": "Oslo", "unit": "f"}),
    ]
    assert sent_results(provider, requests[1].json) == [
        (c1.id, "18 c in Paris", False),
        (c2.id, "18 f in Oslo", False),
    ]
    # Round 3 is sent the whole conversation; a dict result goes as JSON.
    c3, c4 = second.tool_calls
    assert [c[0] for c in sent_calls(provider, requests[2].json)] == [c1.id, c2.id, c3.id, c4.id]
    results = sent_results(provider, requests[2].json)
    assert results[2:] == [
        (c3.id, '{"city":"Paris","time":"12:00"}', False),
        (c4.id, '{"city":"Oslo","time":"12:00"}', False),
    ]
    check_turns(provider, requests[2].json)
    assert r.stats is not None


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rounds_used_up_hand_the_calls_back(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(calls(("get_time", {"city": "Rome"})), calls(("get_time", {"city": "Bern"})))
    async with api.client_for(server) as client:
        r = await complete(
            api, client, "Time?", model=MODELS[provider], tools=[get_time], tool_rounds=1
        )
    assert RAN == [("get_time", {"city": "Rome"})]
    assert [c.arguments for c in r.tool_calls] == [{"city": "Bern"}]
    assert r.finish_reason == "tool_calls" and len(r.steps) == 2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_tool_without_a_function_ends_the_loop(
    api: Api, server: MockServer, provider: str
) -> None:
    search = mal.Tool("search", "Search the web.", {"properties": {"q": {"type": "string"}}})
    server.add(calls(("search", {"q": "mal"}), ("get_time", {"city": "Rome"})))
    async with api.client_for(server) as client:
        r = await complete(
            api, client, "?", model=MODELS[provider], tools=[search, get_time], tool_rounds=3
        )
    # The caller runs it: nothing of that turn runs, and its calls come back.
    assert RAN == [] and [c.name for c in r.tool_calls] == ["search", "get_time"]
    assert len(server.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_tool_that_raises_is_a_tool_error(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(
        Reply(text="Let me see.", tool_calls=[{"name": "broken", "arguments": {"city": "X"}}])
    )
    async with api.client_for(server) as client:
        with pytest.raises(
            mal.ToolError, match="'broken' raised RuntimeError: no data for X"
        ) as info:
            await complete(api, client, "?", model=MODELS[provider], tools=[broken], tool_rounds=2)
    error = info.value
    assert isinstance(error.__cause__, RuntimeError)
    assert error.tool_call.name == "broken" and error.partial_text == "Let me see."
    assert error.response.text == "Let me see." and len(error.response.steps) == 1
    assert not error.retryable
    assert len(server.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_errors_sent_to_the_model(api: Api, server: MockServer, provider: str) -> None:
    server.add(
        calls(
            ("broken", {"city": "X"}),
            ("nowhere", {}),
            ("get_time", {"town": "Rome"}),
            ("get_time", {"city": "Rome"}),
        ),
        Reply(text="Sorry."),
    )
    async with api.client_for(server) as client:
        r = await complete(
            api,
            client,
            "?",
            model=MODELS[provider],
            tools=[broken, get_time],
            tool_rounds=1,
            tool_errors="send",
        )
    assert r.text == "Sorry."
    assert RAN == [("get_time", {"city": "Rome"})]
    results = sent_results(provider, server.requests[1].json)
    assert [content for _, content, _ in results] == [
        "RuntimeError: no data for X",
        "the model called 'nowhere', which is not one of the tools ('broken', 'get_time')",
        results[2][1],
        '{"city":"Rome","time":"12:00"}',
    ]
    assert "do not fit its parameters" in results[2][1] and "`city`" in results[2][1]
    errors = [is_error for _, _, is_error in results]
    # Anthropic has a field for it; the others get the message as the content.
    assert errors == ([True, True, True, False] if provider == "anthropic" else [False] * 4)
    tool_messages = [m for m in r.messages if m.role == "tool"]
    assert [m.is_error for m in tool_messages] == [True, True, True, False]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unknown_tool_is_a_tool_error(api: Api, server: MockServer, provider: str) -> None:
    server.add(calls(("delete_everything", {})))
    async with api.client_for(server) as client:
        with pytest.raises(mal.ToolError, match="'delete_everything', which is not one of"):
            await complete(
                api, client, "?", model=MODELS[provider], tools=[get_time], tool_rounds=1
            )
    assert RAN == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_bad_arguments_are_a_tool_error(api: Api, server: MockServer, provider: str) -> None:
    server.add(calls(("get_weather", {"city": "Paris", "unit": "kelvin"})))
    async with api.client_for(server) as client:
        with pytest.raises(mal.ToolError, match=r"do not fit.*\$\.unit"):
            await complete(
                api, client, "?", model=MODELS[provider], tools=[get_weather], tool_rounds=1
            )
    assert RAN == []


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_forced_choice_is_for_the_first_round_only(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(calls(("get_time", {"city": "Rome"})), Reply(text="Noon."))
    async with api.client_for(server) as client:
        r = await complete(
            api,
            client,
            "?",
            model=MODELS[provider],
            tools=[get_time],
            tool_choice="get_time",
            tool_rounds=1,
        )
    assert r.text == "Noon."
    first, second = (request.json["tool_choice"] for request in server.requests)
    if provider == "openai":
        assert first == {"type": "function", "function": {"name": "get_time"}}
        assert second == "auto"
    else:
        assert first == {"type": "tool", "name": "get_time"}
        assert second == {"type": "auto"}


async def test_generate_runs_the_tools_and_returns_the_text(api: Api, server: MockServer) -> None:
    server.add(calls(("get_time", {"city": "Rome"})), Reply(text="It is noon in Rome."))
    async with api.client_for(server) as client:
        text = await client.generate(
            "Time in Rome?", model=MODELS["openai"], tools=[get_time], tool_rounds=1
        )
    assert text == "It is noon in Rome."


async def test_async_tools(api: Api, server: MockServer) -> None:
    async def lookup(city: str) -> str:
        """Look a city up."""
        await anyio.sleep(0)
        return f"{city}: found"

    server.add(calls(("lookup", {"city": "Rome"})), Reply(text="Found."))
    async with api.client_for(server) as client:
        if api.sync:
            with pytest.raises(
                mal.ConfigError, match=r"async function: run it with mal\.AsyncClient"
            ):
                await complete(
                    api, client, "?", model=MODELS["openai"], tools=[lookup], tool_rounds=1
                )
            return
        r = await complete(api, client, "?", model=MODELS["openai"], tools=[lookup], tool_rounds=1)
    assert r.text == "Found."
    assert sent_results("openai", server.requests[1].json)[0][1] == "Rome: found"


async def test_how_a_rounds_calls_are_run(api: Api, server: MockServer) -> None:
    if api.sync:
        # The sync client runs a round's calls one after the other, in order.
        server.add(calls(("get_time", {"city": "A"}), ("get_weather", {"city": "B"})), Reply())
        async with api.client_for(server) as client:
            await complete(
                api,
                client,
                "?",
                model=MODELS["openai"],
                tools=[get_weather, get_time],
                tool_rounds=1,
            )
        assert RAN == [("get_time", {"city": "A"}), ("get_weather", {"city": "B", "unit": "c"})]
        return
    # Each tool waits for the other one to have started: run in turn, they
    # would time out.
    started = {"a": anyio.Event(), "b": anyio.Event()}

    async def wait_a(x: int) -> str:
        started["a"].set()
        with anyio.fail_after(5):
            await started["b"].wait()
        return "a"

    async def wait_b(x: int) -> str:
        started["b"].set()
        with anyio.fail_after(5):
            await started["a"].wait()
        return "b"

    gate = threading.Barrier(2, timeout=5)

    def thread_c(x: int) -> str:
        gate.wait()
        return "c"

    def thread_d(x: int) -> str:
        gate.wait()
        return "d"

    server.add(
        calls(
            ("wait_a", {"x": 1}),
            ("wait_b", {"x": 2}),
            ("thread_c", {"x": 3}),
            ("thread_d", {"x": 4}),
        ),
        Reply(text="Done."),
    )
    async with api.client_for(server) as client:
        r = await complete(
            api,
            client,
            "?",
            model=MODELS["anthropic"],
            tools=[wait_a, wait_b, thread_c, thread_d],
            tool_rounds=1,
        )
    assert r.text == "Done."
    results = sent_results("anthropic", server.requests[1].json)
    assert [content for _, content, _ in results] == ["a", "b", "c", "d"]


async def test_thinking_blocks_go_back_with_the_results(api: Api, server: MockServer) -> None:
    server.add(
        Reply(
            reasoning="Need the time.",
            tool_calls=[{"name": "get_time", "arguments": {"city": "Rome"}}],
        ),
        Reply(text="Noon."),
    )
    async with api.client_for(server) as client:
        r = await complete(
            api, client, "?", model=MODELS["anthropic"], tools=[get_time], tool_rounds=1
        )
    assert r.text == "Noon."
    turn = server.requests[1].json["messages"][1]
    assert turn["role"] == "assistant"
    thinking, tool_use = turn["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"] == "Need the time."
    assert thinking["signature"]  # sent back as it came
    assert tool_use["type"] == "tool_use" and tool_use["input"] == {"city": "Rome"}


# Bad options ------------------------------------------------------------------------------


async def test_bad_tool_options(api: Api, server: MockServer) -> None:
    m = MODELS["openai"]
    async with api.client_for(server) as client:
        with pytest.raises(mal.ConfigError, match="tool_rounds needs tools"):
            await complete(api, client, "?", model=m, tool_rounds=1)
        with pytest.raises(mal.ConfigError, match="tool_rounds must be"):
            await complete(api, client, "?", model=m, tools=[get_time], tool_rounds=-1)
        with pytest.raises(mal.ConfigError, match="tool_errors"):
            await complete(api, client, "?", model=m, tools=[get_time], tool_errors="ignore")
        with pytest.raises(mal.ConfigError, match="tool_choice"):
            await complete(api, client, "?", model=m, tool_choice="auto")
        with pytest.raises(mal.ConfigError, match="tool_choice"):
            await complete(api, client, "?", model=m, tools=[get_time], tool_choice="get_weather")
        with pytest.raises(mal.ConfigError, match="parallel_tool_calls"):
            await complete(api, client, "?", model=m, tools=[get_time], parallel_tool_calls="no")
        with pytest.raises(mal.ConfigError, match="tool_rounds needs tools"):
            client.stream("?", model=m, tool_rounds=1)
        with pytest.raises(mal.ConfigError, match="tool_rounds must be"):
            client.stream("?", model=m, tools=[get_time], tool_rounds=-1)
        with pytest.raises(mal.ConfigError, match="no type annotation"):
            await complete(api, client, "?", model=m, tools=[lambda city: city])
        with pytest.raises(mal.ConfigError, match="tool_choice"):
            await complete(
                api, client, "?", model=MODELS["ollama"], tools=[get_time], tool_choice="required"
            )
    assert server.requests == []


# Recorded tool streams, through the drivers -------------------------------------------------

DATA = Path(__file__).resolve().parent.parent / "data"
RECORDED = sorted(
    path.relative_to(DATA).as_posix()
    for path in DATA.glob("*/tools_*")
    if not path.name.endswith(".expected.json")
)
CONTENT_TYPES = {".sse": "text/event-stream", ".ndjson": "application/x-ndjson"}


#: The model of each provider whose recorded streams are replayed.
RECORDED_MODELS = {**MODELS, "openai-responses": "openai-responses/o4-mini"}


def test_the_recorded_tool_streams_are_there() -> None:
    assert {name.split("/")[0] for name in RECORDED} == set(RECORDED_MODELS)


@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_tool_streams(api: Api, server: MockServer, name: str) -> None:
    path = DATA / name
    expected = json.loads(path.with_name(path.stem + ".expected.json").read_text("utf-8"))
    provider = name.split("/")[0]
    reply = Reply(raw=path.read_bytes(), content_type=CONTENT_TYPES[path.suffix])
    server.add(reply, reply)
    async with api.client_for(server) as client:
        stream = client.stream("?", model=RECORDED_MODELS[provider], tools=[get_weather])
        async with stream:
            chunks = await collect(stream)
        r = await complete(api, client, "?", model=RECORDED_MODELS[provider], tools=[get_weather])
    for calls_, message in ((stream.raw.tool_calls, stream.raw.message), (r.tool_calls, r.message)):
        assert [(c.name, c.arguments, c.arguments_json, c.complete) for c in calls_] == [
            (c["name"], c["arguments"], c["arguments_json"], c["complete"])
            for c in expected["tool_calls"]
        ]
        for call, want in zip(calls_, expected["tool_calls"], strict=True):
            assert call.id == want["id"] or want["id"] is None
        assert message.tool_calls == calls_
        assert message.blocks == expected.get("blocks")
    assert r.finish_reason == stream.finish_reason == expected["finish_reason"]
    assert "".join(c.text for c in chunks) == r.text == expected["text"]
    joined: dict[int, str] = {}
    for chunk in chunks:
        for delta in chunk.tool_calls:
            joined[delta.index] = joined.get(delta.index, "") + delta.arguments
    assert [joined[i] for i in range(len(r.tool_calls))] == [c.arguments_json for c in r.tool_calls]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_argument_pieces_keep_the_idle_clock_alive(
    api: Api, server: MockServer, provider: str
) -> None:
    # No text at all, only pieces of a long argument, 0.1 s apart: the
    # stream lasts longer than idle_timeout, yet never idles that long.
    long_text = " ".join(["word"] * 12)
    server.add(
        Reply(
            tool_calls=[{"name": "get_weather", "arguments": {"city": long_text}}],
            chunk_delay=0.1,
        )
    )
    async with api.client_for(server, idle_timeout=0.6) as client:
        start = time.monotonic()
        stream = client.stream("?", model=MODELS[provider], tools=[get_weather])
        async with stream:
            chunks = await collect(stream)
        elapsed = time.monotonic() - start
    assert sum(len(c.tool_calls) for c in chunks) > 6
    assert stream.raw.tool_calls[0].arguments == {"city": long_text}
    assert elapsed > 0.6  # the case is meaningful: longer than the idle clock


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_generate_with_a_schema_that_gets_tool_calls_is_an_error(
    api: Api, server: MockServer, provider: str
) -> None:
    import msgspec

    class When(msgspec.Struct):
        time: str

    server.add(calls(("get_time", {"city": "Rome"})))
    async with api.client_for(server) as client:
        with pytest.raises(mal.OutputValidationError, match=r"called tools \(get_time\)"):
            await client.generate("?", model=MODELS[provider], tools=[get_time], schema=When)
    assert RAN == []
