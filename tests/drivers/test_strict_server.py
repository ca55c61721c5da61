"""The strict built-in server, seen through mal as a user sees a hosted API:
a request the real API rejects comes back as that provider's 400, which mal
raises as an `APIStatusError` naming the field, with nothing retried and the
queued reply left for the next request. `extra_body` is how a user sends such
a request through mal, so it is how these tests do."""

from __future__ import annotations

from typing import Any

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import Api

pytestmark = pytest.mark.anyio

CASES = [
    # OpenAI's reasoning models refuse max_tokens (an extra_body naming it wins over mal's choice).
    ("openai/o3-mini", {"max_tokens": 5}, "max_tokens", "max_completion_tokens"),
    # Anthropic takes no unknown top-level field.
    ("anthropic/claude-sonnet-4-5", {"bogus": 1}, "bogus", "Extra inputs are not permitted"),
    # Ollama refuses raw mode with a system prompt.
    ("ollama/m", {"raw": True, "system": "Be terse."}, "raw", "raw mode"),
]


@pytest.mark.parametrize(("model", "extra", "field", "words"), CASES)
async def test_a_request_the_real_api_rejects_is_a_400_naming_the_field(
    api: Api, server: MockServer, model: str, extra: dict[str, Any], field: str, words: str
) -> None:
    server.add(Reply(text="Kept for the next request."))
    async with api.client_for(server, max_retries=2) as client:
        with pytest.raises(mal.APIStatusError) as info:
            await client.generate("Hi", model=model, extra_body=extra)
        assert info.value.status_code == 400
        assert not info.value.retryable
        assert words in str(info.value) and field in str(info.value)
        violation = server.requests[-1].violation
        assert violation is not None and words in violation.message
        assert len(server.requests) == 1  # a 400 is not retried
        # The reply was not taken: the same call without the bad field gets it.
        assert await client.generate("Hi", model=model) == "Kept for the next request."
    assert server.requests[-1].violation is None


async def test_strict_false_accepts_what_the_real_api_rejects(api: Api) -> None:
    # The point of this test is the switch itself: the rules are off.
    with MockServer(strict=False) as lax:
        lax.add(Reply(text="Anything goes."))
        async with api.client_for(lax) as client:
            text = await client.generate("Hi", model="openai/o3-mini", extra_body={"max_tokens": 5})
        assert text == "Anything goes."
        assert lax.requests[-1].violation is None
