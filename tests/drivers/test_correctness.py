"""What the caller sees when a body fails part-way, a whole JSON body answering
a streamed request, a body that is not the provider's, and the endpoint of a
fallback: through the real drivers (sync, asyncio and trio) against the local
server, with the body sent whole, one byte per HTTP chunk, and cut at the
failure's boundary."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import mal
from mal.testing import MockServer, Reply

from ..core.test_failures import CASES, TEXTS
from ..support.adapters import MODELS, PROVIDERS, Api, make_config

pytestmark = pytest.mark.anyio

#: How a body is cut into HTTP chunks.
CUTS = ("whole", "bytes", "boundary")


def pieces(body: bytes, boundary: bytes, cut: str) -> list[bytes]:
    if cut == "whole":
        return [body]
    if cut == "bytes":
        return [body[i : i + 1] for i in range(len(body))]
    at = body.index(boundary)
    return [body[:at], body[at:]]


CONTENT_TYPES = {
    "ollama": "application/x-ndjson",
    "openai": "text/event-stream",
    "anthropic": "text/event-stream",
}


async def read(api: Api, server: MockServer, model: str, **options: Any) -> tuple[str, Any]:
    """Stream, keeping what the caller saw and the error."""
    seen: list[str] = []
    async with api.client_for(server) as client:
        stream = client.stream("Hi", model=model, **options)
        try:
            async with stream:
                async for chunk in stream:
                    seen.append(chunk.text)
        except mal.MALError as exc:
            return "".join(seen), exc
    return "".join(seen), None


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_caller_sees_every_chunk_before_the_error(
    api: Api, server: MockServer, case: str, cut: str
) -> None:
    provider, body, boundary, error_type, _ = CASES[case]
    server.add(Reply(raw_chunks=pieces(body, boundary, cut), content_type=CONTENT_TYPES[provider]))
    seen, error = await read(api, server, MODELS[provider])
    assert type(error) is error_type, error
    assert seen == error.partial_text == "".join(TEXTS)
    # Something had reached the caller: never retried, even when retryable.
    assert len(server.requests) == 1


@pytest.mark.parametrize("cut", ("whole", "bytes"))
async def test_a_malformed_line_followed_by_more_is_a_decode_error(
    api: Api, server: MockServer, cut: str
) -> None:
    body = b'{"model":"x","response":"oops"\n{"model":"x","response":"","done":true}\n'
    server.add(Reply(raw_chunks=pieces(body, b"", cut), content_type="application/x-ndjson"))
    async with api.client_for(server, max_retries=2) as client:
        with pytest.raises(mal.DecodeError) as info:
            await client.generate("Hi", model=MODELS["ollama"], stream=True)
    assert not info.value.retryable
    assert len(server.requests) == 1  # not retried


# --------------------------------------------------------------------------- JSON bodies

BODIES = {
    "openai": {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-mock",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "The whole answer."},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
    },
    "anthropic": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-mock",
        "content": [{"type": "text", "text": "The whole answer."}],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 4},
    },
    "ollama": {
        "model": "mock-model",
        "created_at": "2026-01-01T00:00:00Z",
        "response": "The whole answer.",
        "done": True,
        "done_reason": "length",
        "prompt_eval_count": 5,
        "eval_count": 4,
    },
}


@pytest.mark.parametrize("cut", ("whole", "bytes"))
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_streamed_request_answered_with_a_json_body(
    api: Api, server: MockServer, provider: str, cut: str
) -> None:
    body = msgspec.json.encode(BODIES[provider])
    server.add(
        Reply(raw_chunks=pieces(body, b"", cut), content_type="application/json; charset=utf-8")
    )
    async with api.client_for(server) as client:
        async with client.stream("Hi", model=MODELS[provider]) as stream:
            chunks = [chunk async for chunk in stream]
        assert [c.text for c in chunks] == ["The whole answer."]
        assert chunks[0].finish_reason == "length"
        assert chunks[0].usage == mal.Usage(5, 4)
        assert stream.text == "The whole answer."
        assert stream.finish_reason == "length"
        assert stream.usage == mal.Usage(5, 4)
        # generate() with stream=True too.
        server.add(Reply(raw=body, content_type="application/json"))
        assert await client.generate("Hi", model=MODELS[provider], stream=True) == (
            "The whole answer."
        )


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html; charset=utf-8", b"<html><body>Gateway login</body></html>"),
        ("application/xml", b"<?xml version='1.0'?><error>no</error>"),
    ],
)
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_body_that_is_not_the_providers_is_a_decode_error(
    api: Api, server: MockServer, provider: str, stream: bool, content_type: str, body: bytes
) -> None:
    server.add(Reply(raw=body, content_type=content_type))
    async with api.client_for(server, max_retries=2) as client:
        with pytest.raises(mal.DecodeError) as info:
            await client.generate("Hi", model=MODELS[provider], stream=stream)
    message = str(info.value)
    assert content_type in message  # names the content type
    assert body[:12].decode() in message  # and the first bytes
    assert len(server.requests) == 1


# --------------------------------------------------------------------------- fallbacks


async def test_a_fallback_of_the_same_provider_keeps_base_url_and_api_key(
    api: Api, server: MockServer
) -> None:
    with MockServer() as default:
        # The client's own OpenAI URL is `default`; the call goes to `server`.
        server.add(Reply(status=500), Reply(text="from b"))
        async with api.client(make_config(default, max_retries=0)) as client:
            text = await client.generate(
                "Hi",
                model="openai/a",
                base_url=server.url("openai"),
                api_key="sk-call",
                fallbacks=["openai/b"],
            )
        assert text == "from b"
        assert default.requests == []
        first, second = server.requests
        assert (first.json["model"], second.json["model"]) == ("a", "b")
        assert (
            first.headers["authorization"] == second.headers["authorization"] == ("Bearer sk-call")
        )


async def test_a_fallback_of_another_provider_uses_the_clients_settings(
    api: Api, server: MockServer
) -> None:
    with MockServer() as default:
        server.add(Reply(status=500))
        default.add(Reply(text="from anthropic"))
        config = make_config(default, max_retries=0, api_keys={"anthropic": "sk-ant-client"})
        async with api.client(config) as client:
            text = await client.generate(
                "Hi",
                model="openai/a",
                base_url=server.url("openai"),
                api_key="sk-call",
                fallbacks=["anthropic/c"],
            )
        assert text == "from anthropic"
        (request,) = default.requests
        assert request.provider == "anthropic" and request.json["model"] == "c"
        assert request.headers["x-api-key"] == "sk-ant-client"
        assert len(server.requests) == 1
