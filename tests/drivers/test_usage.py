"""Usage under prompt caching and reasoning through the drivers (sync, asyncio
and trio): recorded bodies, sent as they are, give the same ``usage`` on the
stream, on the response of ``complete`` and in the call's stats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import Api, collect, make_config

pytestmark = pytest.mark.anyio

DATA = Path(__file__).resolve().parent.parent / "data"

#: (model, recorded body, its usage); streamed bodies are .sse or .ndjson.
CASES = {
    "anthropic-cache-read": (
        "anthropic/claude-mock",
        "anthropic/stream_cache_read.sse",
        mal.Usage(39, 12, 38, 0),
    ),
    "anthropic-cache-write-thinking": (
        "anthropic/claude-mock",
        "anthropic/stream_cache_write_thinking.sse",
        mal.Usage(1842, 96, 0, 1830, 71),
    ),
    "anthropic-whole": (
        "anthropic/claude-mock",
        "anthropic/nonstream_cached.json",
        mal.Usage(2051, 57, 2048, 0, 30),
    ),
    "openai": (
        "openai/gpt-mock",
        "openai/stream_cached_reasoning.sse",
        mal.Usage(1136, 267, 1024, None, 192),
    ),
    "openai-deepseek": (
        "openai/gpt-mock",
        "openai/stream_deepseek_cache.sse",
        mal.Usage(76, 52, 64, None, 40),
    ),
    "openai-whole": (
        "openai/gpt-mock",
        "openai/nonstream_cache_write.json",
        mal.Usage(1530, 210, 0, 1408, 128),
    ),
    "responses": (
        "openai-responses/o4-mini",
        "openai-responses/stream_cached_reasoning.sse",
        mal.Usage(1900, 310, 1792, 0, 256),
    ),
    "ollama": ("ollama/mock-model", "ollama/chat_cached.ndjson", mal.Usage(21, 9, 16)),
}

CONTENT_TYPES = {
    "sse": "text/event-stream",
    "ndjson": "application/x-ndjson",
    "json": "application/json",
}


def reply(name: str) -> Reply:
    kind = name.rsplit(".", 1)[1]
    return Reply(raw=(DATA / name).read_bytes(), content_type=CONTENT_TYPES[kind])


def stats_usage(stats: mal.CallStats) -> mal.Usage:
    return mal.Usage(
        stats.input_tokens,
        stats.output_tokens,
        stats.cache_read_tokens,
        stats.cache_write_tokens,
        stats.reasoning_tokens,
    )


async def complete(api: Api, client: Any, prompt: str, **options: Any) -> mal.Response:
    if api.sync:
        return client.raw.complete(prompt, **options)  # type: ignore[no-any-return]
    return await client.raw.complete(prompt, **options)  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", sorted(CASES))
async def test_usage_of_a_stream(api: Api, server: MockServer, case: str) -> None:
    model, name, expected = CASES[case]
    # A whole JSON body answers a streamed request too.
    server.add(reply(name))
    completed: list[mal.CallStats] = []
    hooks = mal.Hooks(on_complete=completed.append)
    config = make_config(server, api_keys={"openai": "sk-x"})
    async with (
        api.client(config, hooks=hooks) as client,
        client.stream("Hi", model=model) as stream,
    ):
        chunks = await collect(stream)
    assert stream.usage == expected
    assert stats_usage(stream.stats) == expected
    assert completed == [stream.stats]
    # The usage of the chunks, field by field, is the stream's.
    merged: dict[str, int] = {}
    for chunk in chunks:
        if chunk.usage is not None:
            for field in mal.Usage.__struct_fields__:
                if getattr(chunk.usage, field) is not None:
                    merged[field] = getattr(chunk.usage, field)
    assert mal.Usage(**merged) == expected


@pytest.mark.parametrize("case", sorted(CASES))
async def test_usage_of_complete(api: Api, server: MockServer, case: str) -> None:
    model, name, expected = CASES[case]
    server.add(reply(name))
    async with api.client_for(server, api_keys={"openai": "sk-x"}) as client:
        response = await complete(api, client, "Hi", model=model, stream=name.endswith(".sse"))
    assert response.usage == expected
    assert response.stats is not None
    assert stats_usage(response.stats) == expected
