"""Helpers for the driver tests only; the adapter over the sync and the async API
is ``tests.support.adapters``."""

from __future__ import annotations

import functools

import httpx
import msgspec

from mal.testing import RecordedRequest

from ..support import adapters

#: ``server.wait_for_disconnect`` without blocking the event loop, waiting one second.
wait_disconnect = functools.partial(adapters.wait_disconnect, timeout=1.0)


def was_streamed(request: RecordedRequest | httpx.Request) -> bool:
    """Whether a request asked for a streamed response, by each provider's default
    (Ollama streams unless told not to; OpenAI and Anthropic only when asked)."""
    if isinstance(request, httpx.Request):
        body = msgspec.json.decode(request.content)
        ollama = request.url.path.startswith("/api/")
    else:
        body = request.json
        ollama = request.provider == "ollama"
    flag = body.get("stream")
    if ollama:
        assert isinstance(flag, bool), "mal should always say whether Ollama streams"
        return flag
    assert flag in (None, True, False)
    return bool(flag)
