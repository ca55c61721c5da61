"""mal's log, through the drivers (sync, asyncio and trio): a DEBUG line per
request, retries and fallbacks at INFO, and never an API key, nor a prompt
unless ``MALConfig.log_prompts`` asks for it."""

from __future__ import annotations

import logging

import pytest

import mal
from mal._log import public_url
from mal.testing import MockServer, Reply

from ..support.adapters import Api, collect, make_config

pytestmark = pytest.mark.anyio

KEY = "sk-secret-key-0123456789"
PROMPT = "my private prompt"


def mal_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "mal"]


def everything(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


async def test_a_debug_line_per_request(
    api: Api, server: MockServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mal")
    server.add(Reply(text="Hello there, friend."))
    config = make_config(server, api_keys={"openai": KEY}, max_retries=0)
    async with api.client(config) as client:
        stream = client.stream(PROMPT, model="openai/gpt-x")
        async with stream:
            chunks = await collect(stream)
    (record,) = mal_records(caplog)
    assert record.levelno == logging.DEBUG
    line = record.getMessage()
    url = server.url("openai") + "/chat/completions"
    assert line.startswith(f"POST {url} -> 200 in ")
    assert f"{len(chunks)} chunks" in line and "openai/gpt-x, attempt 1" in line
    assert "head 0." in line and "first token 0." in line
    assert len(server.requests) == 1
    assert KEY not in everything(caplog) and PROMPT not in everything(caplog)


async def test_retries_and_fallbacks_at_info(
    api: Api, server: MockServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mal")
    server.add(
        Reply(status=429, headers={"retry-after": "0"}),
        Reply(status=500),
        Reply(text="From the fallback."),
    )
    config = make_config(
        server, api_keys={"openai": KEY}, max_retries=1, fallbacks=["ollama/llama"]
    )
    async with api.client(config) as client:
        assert await client.generate(PROMPT, model="openai/gpt-x") == "From the fallback."
    lines = [r.getMessage() for r in mal_records(caplog)]
    assert all(r.levelno == logging.INFO for r in mal_records(caplog))  # no DEBUG lines
    assert lines == [
        "retrying openai/gpt-x in 0.00 s after RateLimitError 429 (retry 1 of 1)",
        "falling back from openai/gpt-x to ollama/llama after InternalServerError 500",
    ]


async def test_failures_and_early_closes_say_how_the_request_ended(
    api: Api, server: MockServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mal")
    server.add(Reply(status=401), Reply(text="one two three four five six", chunk_delay=0.01))
    async with api.client_for(server) as client:
        with pytest.raises(mal.AuthenticationError):
            await client.generate("?", model="anthropic/claude-x")
        stream = client.stream("?", model="anthropic/claude-x")
        async with stream:
            async for _ in stream:
                break
    first, second = (r.getMessage() for r in mal_records(caplog))
    assert "-> 401 in" in first and first.endswith("ended by AuthenticationError 401")
    assert "-> 200 in" in second and second.endswith("closed early by the caller")


async def test_prompts_are_logged_only_when_asked(
    api: Api, server: MockServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mal")
    config = make_config(server, api_keys={"openai": KEY}, max_retries=0, log_prompts=True)
    async with api.client(config) as client:
        await client.generate(PROMPT, model="openai/gpt-x")
    body, line = (r.getMessage() for r in mal_records(caplog))
    assert body.startswith("request body to ") and PROMPT in body
    assert line.startswith("POST ")
    assert KEY not in everything(caplog)


async def test_nothing_is_logged_below_the_level(
    api: Api, server: MockServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mal")
    async with api.client_for(server) as client:
        await client.generate("?", model="ollama/llama")
    assert mal_records(caplog) == []


def test_urls_lose_their_query() -> None:
    assert public_url("https://gw.example/v1/chat?key=abc&x=1") == "https://gw.example/v1/chat?…"
    assert public_url("http://localhost:11434/api/chat") == "http://localhost:11434/api/chat"


def test_log_prompts_is_checked() -> None:
    with pytest.raises(mal.ConfigError, match="log_prompts"):
        mal.MALConfig(log_prompts="yes")  # type: ignore[arg-type]
