"""Fixtures for the reliability tests: one test body, run against the sync API
and the async API (the latter under asyncio and under trio); see
``tests.support``.

Here back-off never sleeps (unless a test gives its own ``random``), and the
``server`` is a test's own.
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
from ._support import zero


@pytest.fixture
def client_defaults() -> dict[str, Any]:
    """Back-off never sleeps, unless a test gives its own ``random``."""
    return {"random": zero}


@pytest.fixture
def server() -> Iterator[MockServer]:
    """A local server of the test's own: its counters (requests, connections,
    disconnects) see only this test's clients."""
    with MockServer() as srv:
        yield srv
