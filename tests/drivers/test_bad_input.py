"""Bad input raises ``mal.ConfigError`` (also a ``ValueError``) with a useful
message, and nothing is sent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import Api, ClientAdapter, collect

pytestmark = pytest.mark.anyio

Call = Callable[..., Awaitable[object]]


def calls(api: Api, client: ClientAdapter) -> dict[str, Call]:
    """Every way to make a call: the client's and the module-level ones, each
    as ``generate`` and as a stream read to its end (the error may come when
    the stream is made or when it is first iterated)."""

    async def client_stream(prompt: Any, **options: Any) -> object:
        return await collect(client.stream(prompt, **options))

    async def module_stream(prompt: Any, **options: Any) -> object:
        return await collect(api.stream(prompt, **options))

    return {
        "client.generate": client.generate,
        "client.stream": client_stream,
        "module generate": api.generate,
        "module stream": module_stream,
    }


async def expect_config_error(call: Call, *args: Any, **options: Any) -> mal.ConfigError:
    with pytest.raises(mal.ConfigError) as info:
        await call(*args, **options)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, mal.MALError)
    return info.value


async def test_unknown_option_suggests_the_right_one(api: Api, server: MockServer) -> None:
    base_url = server.url("ollama")
    async with api.client_for(server) as client:
        for name, call in calls(api, client).items():
            error = await expect_config_error(
                call, "Hi", model="ollama/m", base_url=base_url, temprature=0.5
            )
            assert "temprature" in str(error), name
            assert "temperature" in str(error).replace("temprature", ""), name
    assert server.requests == []


async def test_bad_model(api: Api, server: MockServer) -> None:
    base_url = server.url("ollama")
    async with api.client_for(server) as client:
        for model in ("", "   ", "openai/", "anthropic/", None, 42):
            for call in calls(api, client).values():
                await expect_config_error(call, "Hi", model=model, base_url=base_url)
    assert server.requests == []


async def test_stream_option_is_for_generate_only(api: Api, server: MockServer) -> None:
    base_url = server.url("ollama")
    async with api.client_for(server) as client:
        for name, call in calls(api, client).items():
            if "stream" not in name:
                continue
            for value in (True, False, None):
                error = await expect_config_error(
                    call, "Hi", model="ollama/m", base_url=base_url, stream=value
                )
                assert "stream" in str(error)
    assert server.requests == []


async def test_base_url_without_scheme(api: Api, server: MockServer) -> None:
    async with api.client_for(server) as client:
        for base_url in ("localhost:11434", "127.0.0.1:8000/v1", "ftp://example.com"):
            for call in calls(api, client).values():
                error = await expect_config_error(call, "Hi", model="openai/m", base_url=base_url)
                assert base_url in str(error)
    assert server.requests == []


async def test_base_url_without_scheme_in_config(api: Api, server: MockServer) -> None:
    with pytest.raises(mal.ConfigError):
        async with api.client(mal.MALConfig(base_urls={"openai": "api.example.com/v1"})) as c:
            await c.generate("Hi", model="openai/m")


async def test_bad_per_call_timeout(api: Api, server: MockServer) -> None:
    base_url = server.url("ollama")
    async with api.client_for(server) as client:
        for timeout in (-1, -0.5, 0, float("nan"), "3", True):
            for call in calls(api, client).values():
                error = await expect_config_error(
                    call, "Hi", model="ollama/m", base_url=base_url, timeout=timeout
                )
                assert "timeout" in str(error), timeout
    assert server.requests == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("connect_timeout", -1),
        ("read_timeout", -1.0),
        ("write_timeout", -5),
        ("pool_timeout", -0.1),
        ("timeout", -7),
        ("streaming_threshold", -1),
        ("default_provider", "nope"),
    ],
)
def test_bad_config_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(mal.ConfigError) as info:
        mal.MALConfig(**{field: value})
    assert field in str(info.value)


async def test_bad_prompt(api: Api, server: MockServer) -> None:
    base_url = server.url("ollama")
    async with api.client_for(server) as client:
        for call in calls(api, client).values():
            for prompt in (None, 42, [], [{"content": "no role"}], [{"role": "user"}]):
                await expect_config_error(call, prompt, model="ollama/m", base_url=base_url)
    assert server.requests == []


@pytest.mark.parametrize("where", ["config", "per-call"])
async def test_infinite_timeout_is_no_limit_or_a_config_error(
    api: Api, server: MockServer, where: str
) -> None:
    """``inf`` seconds is either refused up front or means "no limit"; it must
    not escape as a bare ``OverflowError`` or ``ValueError`` from the I/O layer."""
    options: dict[str, Any] = {}
    try:
        if where == "config":
            client = api.client_for(server, read_timeout=float("inf"))
        else:
            client = api.client_for(server)
            options["timeout"] = float("inf")
    except mal.ConfigError:
        return
    async with client:
        try:
            text = await client.generate("Hi", model="ollama/m", stream=True, **options)
        except mal.ConfigError:
            return
    assert text == Reply().text
