"""Fixtures for the reliability tests: one test body, run against the sync API
and the async API (the latter under asyncio and under trio).

Each test is an ``async def`` marked ``anyio`` that takes the ``api`` fixture, an
adapter with the same async-shaped methods over both APIs (see ``_support``).
The ``flavour`` parameter is "sync", "asyncio" or "trio"; the sync flavour runs
once, under asyncio (``anyio_backend`` follows ``flavour``), its calls blocking
the loop, which is fine: the servers run in threads of their own.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from mal.testing import MockServer

from ._support import Api

#: Environment variables mal (and httpx) read; cleared for every test so that
#: the machine's environment never leaks into a test.
_ENV_VARS = (
    "OLLAMA_HOST",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["sync", "asyncio", "trio"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def anyio_backend(flavour: str) -> str:
    return "asyncio" if flavour == "sync" else flavour


@pytest.fixture
def api(flavour: str) -> Api:
    return Api(flavour)


@pytest.fixture
def server() -> Iterator[MockServer]:
    """A local server of the test's own: its counters (requests, connections,
    disconnects) see only this test's clients."""
    with MockServer() as srv:
        yield srv


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
