"""Fixtures shared by the driver and the reliability tests: one test body, run
against the sync API and the async API (the latter under asyncio and trio).

Each test is an ``async def`` marked ``anyio`` that takes the ``api`` fixture:
an ``Api`` (see ``adapters``) of the ``flavour``, whose clients are made with the
``client_defaults`` that each directory's conftest gives. The ``flavour``
parameter is "sync", "asyncio" or "trio"; the sync flavour runs once, under
asyncio (``anyio_backend`` follows ``flavour``), its calls blocking the loop.

A conftest uses these fixtures by importing them: pytest finds fixtures in a
conftest's namespace.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from .adapters import FLAVOURS, Api

#: Environment variables mal (and httpx) read; cleared for every test so that
#: the machine's environment never leaks into a test.
ENV_VARS = (
    "OLLAMA_HOST",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
)  # proxy variables: cleared for every test by tests/conftest.py


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def anyio_backend(flavour: str) -> str:
    return "asyncio" if flavour == "sync" else flavour


@pytest.fixture
def api(flavour: str, client_defaults: dict[str, Any]) -> Api:
    return Api(flavour, **client_defaults)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
