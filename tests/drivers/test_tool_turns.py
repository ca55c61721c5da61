"""The assistant turn that ``complete`` sends back in a tool round, through the
drivers (sync, asyncio and trio): every function_call of a Responses turn
whose server reuses an ``output_index`` (Ollama's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import Api

pytestmark = pytest.mark.anyio

DATA = Path(__file__).resolve().parent.parent / "data"


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"18 C in {city}"


async def complete(api: Api, client: Any, prompt: Any, **options: Any) -> mal.Response:
    if api.sync:
        return client.raw.complete(prompt, **options)  # type: ignore[no-any-return]
    return await client.raw.complete(prompt, **options)  # type: ignore[no-any-return]


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
