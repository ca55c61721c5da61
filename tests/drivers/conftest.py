"""Fixtures for the driver tests: one test body, run against the sync API and the
async API (the latter under asyncio and under trio); see ``tests.support``.

Here the ``server`` is one per module, reset around each test; ``fresh_server``
is a test's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mal.testing import MockServer

# Fixtures: pytest finds them in this module's namespace.
from ..support.fixtures import (  # noqa: F401
    _clean_environment,
    anyio_backend,
    api,
    closed_port,
    flavour,
)


@pytest.fixture
def client_defaults() -> dict[str, Any]:
    """Clients are made as a user makes them."""
    return {}


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def _module_server() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


@pytest.fixture
def server(_module_server: MockServer) -> Iterator[MockServer]:
    """The module's local server, with no requests, replies or counters left
    from earlier tests."""
    _module_server.reset()
    yield _module_server
    _module_server.reset()


@pytest.fixture
def fresh_server() -> Iterator[MockServer]:
    """A server of the test's own: no client can hold a pooled connection to it."""
    with MockServer() as srv:
        yield srv
