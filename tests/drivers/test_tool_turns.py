"""The assistant turn that ``complete`` sends back in a tool round, through the
drivers (sync, asyncio and trio): Anthropic's blocks in the order they came,
and every function_call of a Responses turn whose server reuses an
``output_index`` (Ollama's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, Api

pytestmark = pytest.mark.anyio

DATA = Path(__file__).resolve().parent.parent / "data"

#: An Anthropic turn without thinking whose text and calls alternate.
INTERLEAVED_BLOCKS: list[dict[str, Any]] = [
    {"type": "text", "text": "First Paris."},
    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    {"type": "text", "text": "Then Zürich."},
    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Zürich"}},
]


def interleaved_stream() -> bytes:
    """The turn streamed as Anthropic streams it: each block's start, its
    text or input in a delta, its stop."""
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}}
    ]
    for index, block in enumerate(INTERLEAVED_BLOCKS):
        if block["type"] == "text":
            start, delta = (
                {"type": "text", "text": ""},
                {"type": "text_delta", "text": block["text"]},
            )
        else:
            start = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            {"type": "content_block_start", "index": index, "content_block": start},
            {"type": "content_block_delta", "index": index, "delta": delta},
            {"type": "content_block_stop", "index": index},
        ]
    events += [
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 30},
        },
        {"type": "message_stop"},
    ]
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def interleaved_body() -> bytes:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-mock",
        "content": INTERLEAVED_BLOCKS,
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 30},
    }
    return json.dumps(message).encode()


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"18 C in {city}"


async def complete(api: Api, client: Any, prompt: Any, **options: Any) -> mal.Response:
    if api.sync:
        return client.raw.complete(prompt, **options)  # type: ignore[no-any-return]
    return await client.raw.complete(prompt, **options)  # type: ignore[no-any-return]


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
async def test_anthropic_tool_round_sends_the_turn_block_by_block(
    api: Api, server: MockServer, stream: bool
) -> None:
    if stream:
        first = Reply(raw=interleaved_stream(), content_type="text/event-stream")
    else:
        first = Reply(raw=interleaved_body(), content_type="application/json")
    server.add(first, Reply(text="Mild in both."))
    async with api.client_for(server) as client:
        r = await complete(
            api, client, "Weather?", model=MODELS["anthropic"], tools=[get_weather], tool_rounds=1
        )
    assert r.text == "Mild in both."
    messages = server.requests[1].json["messages"]
    assert messages[1] == {"role": "assistant", "content": INTERLEAVED_BLOCKS}
    assert [(b["type"], b["tool_use_id"]) for b in messages[2]["content"]] == [
        ("tool_result", "toolu_1"),
        ("tool_result", "toolu_2"),
    ]
    assert r.messages[0].blocks == INTERLEAVED_BLOCKS


async def test_responses_tool_round_sends_every_call_of_a_reused_output_index(
    api: Api, server: MockServer
) -> None:
    body = (DATA / "openai-responses" / "tools_reused_output_index.sse").read_bytes()
    server.add(Reply(raw=body, content_type="text/event-stream"), Reply(text="Mild in both."))
    async with api.client_for(server) as client:
        r = await complete(
            api,
            client,
            "Weather in Paris and Zürich?",
            model="openai-responses/qwen3:8b",
            tools=[get_weather],
            tool_rounds=1,
        )
    assert r.text == "Mild in both."
    items = server.requests[1].json["input"]
    assert [(item.get("type"), item.get("call_id")) for item in items[1:]] == [
        ("reasoning", None),
        ("function_call", "call_k3x9q2mz"),
        ("function_call", "call_7fh2lw0a"),
        ("function_call_output", "call_k3x9q2mz"),
        ("function_call_output", "call_7fh2lw0a"),
    ]
    assert [item["output"] for item in items[4:]] == ["18 C in Paris", "18 C in Zürich"]
