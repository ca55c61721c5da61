"""The official SDKs' conventions through the drivers (sync, asyncio and
trio) against the strict built-in server: the error classes and request ids,
``extra_query``, the environment variables, the constructor's keywords,
``with_options`` and ``httpx.Timeout``."""

from __future__ import annotations

from typing import Any

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, PROVIDERS, Api, collect

pytestmark = pytest.mark.anyio


async def run(client: Any, model: str, *, streamed: bool, **options: Any) -> str:
    """One call, streamed or not."""
    if streamed:
        stream = client.stream("Hi", model=model, **options)
        async with stream:
            return "".join(chunk.text for chunk in await collect(stream))
    return str(await client.generate("Hi", model=model, stream=False, **options))


# --------------------------------------------------------------------------- errors


async def test_a_rejected_request_is_a_bad_request_error_with_its_request_id(
    api: Api, server: MockServer
) -> None:
    # The strict server answers as Anthropic does a field it does not take.
    async with api.client_for(server) as client:
        with pytest.raises(mal.BadRequestError) as info:
            await client.generate("Hi", model=MODELS["anthropic"], extra_body={"bogus": 1})
    error = info.value
    assert error.status_code == 400 and not error.retryable
    assert error.request_id is not None and error.request_id.startswith("req_")
    assert error.request_id == error.headers["request-id"]


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, mal.BadRequestError), (409, mal.ConflictError), (422, mal.UnprocessableEntityError)],
)
async def test_the_three_classes_and_request_ids(
    api: Api, server: MockServer, status: int, cls: type[mal.APIStatusError]
) -> None:
    header = {"ollama": None, "openai": "x-request-id", "anthropic": "request-id"}
    async with api.client_for(server) as client:
        for provider in PROVIDERS:
            for streamed in (True, False):
                where = f"{provider}, {'stream' if streamed else 'generate'}"
                name = header[provider]
                given = f"req_{provider}_{status}_{streamed}"
                server.add(Reply(status=status, headers={name: given} if name else {}))
                with pytest.raises(mal.APIStatusError) as info:
                    await run(client, MODELS[provider], streamed=streamed)
                error = info.value
                assert type(error) is cls, where
                # Ollama sends no request id.
                assert error.request_id == (given if name else None), where


async def test_a_conflict_is_retried(api: Api, server: MockServer) -> None:
    server.add(Reply(status=409, headers={"retry-after": "0"}), Reply(text="After the conflict."))
    async with api.client_for(server, max_retries=1) as client:
        assert await client.generate("Hi", model=MODELS["openai"]) == "After the conflict."
    assert len(server.requests) == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_an_error_in_the_stream_carries_the_request_id(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(Reply(tokens=["Half", " an", " answer"], error_after=2))
    async with api.client_for(server) as client:
        stream = client.stream("Hi", model=MODELS[provider])
        with pytest.raises(mal.StreamError) as info:
            async with stream:
                await collect(stream)
    error = info.value
    assert error.partial_text == "Half an"
    assert error.request_id is not None and error.request_id.startswith("req_")


async def test_an_error_in_an_ollama_stream_has_no_request_id(api: Api, server: MockServer) -> None:
    server.add(Reply(tokens=["Half", " an", " answer"], error_after=2))
    async with api.client_for(server) as client:
        stream = client.stream("Hi", model=MODELS["ollama"])
        with pytest.raises(mal.StreamError) as info:
            async with stream:
                await collect(stream)
    assert info.value.request_id is None
