"""Fixtures of the fleet tests: a ``redis-server`` of the tests' own on
127.0.0.1 (skipped, saying why, when the binary is missing), and the stores
under test, each a factory the conformance tests are parametrized over."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from mal._limits import LocalStore
from mal._redis import RedisStore
from mal.limits import Store

from ..support.redis_server import RedisServer, redis_server_binary
from ._support import RefusingStore


def _binary() -> str:
    binary = redis_server_binary()
    if binary is None:
        pytest.skip(
            "redis-server is not installed: install it (Debian: apt-get install redis-server) "
            "to run the tests of the Redis store"
        )
    return binary


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One server for the session; tests keep apart by their limit names."""
    with RedisServer(_binary()) as server:
        yield server


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A server of the test's own, which it may kill and restart."""
    with RedisServer(_binary()) as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client, to look at the keys a store left."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


def _redis_store(request: pytest.FixtureRequest) -> Callable[[], Store]:
    server: RedisServer = request.getfixturevalue("redis_server")
    made: list[RedisStore] = []

    def make() -> Store:
        store = RedisStore(server.url, fallback=RefusingStore())
        made.append(store)
        return store

    request.addfinalizer(lambda: [s.close() for s in made])
    return make


#: The stores every conformance test runs against, by name.
STORES: dict[str, Callable[[pytest.FixtureRequest], Callable[[], Store]]] = {
    "redis": _redis_store,
    "local": lambda request: LocalStore,
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest) -> Store:
    """A store of each kind: the conformance tests run against every one."""
    return STORES[request.param](request)()
