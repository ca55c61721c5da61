"""Images through the drivers (sync, asyncio and trio): the parts the built-in
server records, for each provider, and a URL image refused for Ollama before
anything is sent."""

from __future__ import annotations

import base64

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, PROVIDERS, Api

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_image_reaches_the_server(api: Api, server: MockServer, provider: str) -> None:
    server.add(Reply(text="A cat."))
    image = mal.Image.from_bytes(PNG)
    prompt = [mal.Message(role="user", content=["What is this?", image])]
    async with api.client_for(server) as client:
        assert await client.generate(prompt, model=MODELS[provider]) == "A cat."
    (request,) = server.requests
    (message,) = request.json["messages"]
    b64 = base64.b64encode(PNG).decode()
    if provider == "openai":
        assert message["content"][1] == {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64," + b64},
        }
    elif provider == "anthropic":
        assert message["content"][1]["source"] == {
            "type": "base64",
            "media_type": "image/png",
            "data": b64,
        }
    else:
        assert message["content"] == "What is this?"
        assert message["images"] == [b64]


async def test_a_url_image_for_ollama_is_refused_before_sending(
    api: Api, server: MockServer
) -> None:
    prompt = [{"role": "user", "content": ["Hi", mal.Image.from_url("https://e.com/a.png")]}]
    async with api.client_for(server) as client:
        with pytest.raises(mal.ConfigError, match="Ollama takes no image URLs"):
            await client.generate(prompt, model=MODELS["ollama"])
    assert server.requests == []
