"""What is the Redis store's own: its keys and their expiry, one limit shared by
processes, one client per event loop, and the fallback while Redis cannot be
reached, is slow, or answers with an error."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import mal
from mal import _redis
from mal._redis import RedisStore, redact
from mal.limits import Acquire, Command, Cooling, Correct, Pause, RateLimit, Release, Report

from ..support.redis_server import RedisServer, free_port
from ._support import Do, RecordingStore, RefusingStore, through, unique_provider

WORKER = Path(__file__).with_name("store_worker.py")

#: The longest a command may take when Redis fails: a connection and an
#: answer, each within the timeout, and room for a busy machine.
BOUND = 2 * _redis.TIMEOUT + 1.0


def acquire(limits: tuple[tuple[str, RateLimit], ...], window: float = 1.0) -> Acquire:
    return Acquire(limits, cost=1, lease=unique_provider(), lease_ttl=5.0, window=window)


def warnings_of(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "mal" and r.levelno == level]


# -------------------------------------------------------------------- keys


def test_every_key_of_a_limit_has_its_providers_hash_tag_and_an_expiry(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    p = unique_provider()
    store = RedisStore(redis_server.url, fallback=RefusingStore())
    everything = RateLimit(requests_per_minute=10, tokens_per_minute=100, concurrent=2)
    limits = ((p, everything), (f"{p}/m", everything))
    command = Acquire(limits, cost=7, lease="one", lease_ttl=4.0, window=2.0)
    assert store.execute(command) == (0.0, "")
    store.execute(Pause((p,), 3.0))
    store.execute(Report(f"{p}/m", ok=False, failures=5, cooldown=1.0))
    store.execute(Report(f"{p}/n", ok=False, failures=1, cooldown=6.0))
    keys = sorted(redis_client.keys(f"*{{{p}}}*"))
    expected = sorted(
        [f"mal:rl:{{{p}}}:{n}:{part}" for n in (p, f"{p}/m") for part in ("req", "tok", "cost")]
        + [f"mal:rl:{{{p}}}:{n}:lease" for n in (p, f"{p}/m")]
        + [f"mal:rl:{{{p}}}:{p}:pause", f"mal:cd:{{{p}}}:{p}/m:fails"]
        + [f"mal:cd:{{{p}}}:{p}/n:cool"]
    )
    assert keys == expected
    ttl = {k: redis_client.pttl(k) / 1000 for k in keys}
    margin = _redis.MARGIN
    for key, seconds in ttl.items():
        if key.endswith((":req", ":tok", ":cost")):
            assert 2.0 < seconds <= 2.0 + margin, key
        elif key.endswith(":lease"):
            assert 4.0 < seconds <= 4.0 + margin, key
        elif key.endswith(":pause"):
            assert 2.0 < seconds <= 3.0, key
        elif key.endswith(":fails"):
            assert _redis.FAILURES_TTL - 5 < seconds <= _redis.FAILURES_TTL, key
        else:
            assert 5.0 < seconds <= 6.0, key
    # The cost of the entry is the estimate, and the total; the score is Redis's own time.
    assert redis_client.hgetall(f"mal:rl:{{{p}}}:{p}:cost") == {"l:one": "7", "sum": "7"}
    seconds, micros = redis_client.time()
    score = redis_client.zscore(f"mal:rl:{{{p}}}:{p}:req", "one")
    assert score is not None and 0 <= seconds * 1_000_000 + micros - score < 5_000_000
    store.close()


def test_keys_are_gone_once_nothing_in_them_counts(
    redis_server: RedisServer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_redis, "MARGIN", 0.1)
    p = unique_provider()
    store = RedisStore(redis_server.url, fallback=RefusingStore())
    limits = ((p, RateLimit(requests_per_minute=10, tokens_per_minute=100, concurrent=2)),)
    store.execute(Acquire(limits, cost=7, lease="one", lease_ttl=0.3, window=0.3))
    store.execute(Release((p,), "one"))
    store.execute(Pause((p,), 0.3))
    store.execute(Report(f"{p}/m", ok=False, failures=1, cooldown=0.3))
    assert redis_client.keys(f"*{{{p}}}*")
    time.sleep(0.5)
    assert redis_client.keys(f"*{{{p}}}*") == []
    store.close()


def test_the_token_total_stays_the_sum_of_its_entries(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    # A grant reads the total rather than every entry: entries leaving the
    # window (more than one slice of the script's deletions) and corrections
    # must keep it right.
    p = unique_provider()
    store = RedisStore(redis_server.url, fallback=RefusingStore())
    limits = ((p, RateLimit(tokens_per_minute=10**9)),)
    cost_key = f"mal:rl:{{{p}}}:{p}:cost"
    with redis_client.pipeline(transaction=False) as pipe:
        for i in range(2500):
            pipe.evalsha(
                store._sync.scripts["acquire"].sha,
                *_acquire_call(
                    Acquire(limits, cost=i % 7, lease=f"old{i}", lease_ttl=5, window=0.6)
                ),
            )
        store.execute(acquire(limits))  # loads the script
        pipe.execute()
    store.execute(Correct(limits, lease="old3", cost=100, window=0.6))
    costs = redis_client.hgetall(cost_key)
    entries = {k: int(v) for k, v in costs.items() if k.startswith("l:")}
    assert int(costs["sum"]) == sum(entries.values()) and len(entries) == 2501
    time.sleep(0.7)
    store.execute(Acquire(limits, cost=5, lease="new", lease_ttl=5, window=0.6))
    assert redis_client.hgetall(cost_key) == {"l:new": "5", "sum": "5"}
    assert redis_client.zcard(f"mal:rl:{{{p}}}:{p}:tok") == 1
    store.close()


def _acquire_call(command: Acquire) -> list[object]:
    _, keys, args = _redis._call(command)
    return [len(keys), *keys, *args]


def _script_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))


def test_a_release_with_no_slot_to_free_asks_redis_nothing(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    p = unique_provider()
    store = RedisStore(redis_server.url, fallback=RefusingStore())
    rpm = ((p, RateLimit(requests_per_minute=10)),)
    both = ((p, RateLimit(requests_per_minute=10)), (f"{p}/m", RateLimit(concurrent=1)))
    store.execute(Acquire(rpm, cost=1, lease="a", lease_ttl=5))
    before = _script_calls(redis_client)
    store.execute(Release((p,), "a"))
    assert _script_calls(redis_client) == before
    # Once a slot was granted under a limit, a Release frees it there.
    store.execute(Acquire(both, cost=1, lease="b", lease_ttl=5))
    assert store.execute(Acquire(both, cost=1, lease="c", lease_ttl=5))[1] == f"{p}/m"
    store.execute(Release((p, f"{p}/m"), "b"))
    assert store.execute(Acquire(both, cost=1, lease="c", lease_ttl=5)) == (0.0, "")
    store.close()


def test_release_and_correct_reach_the_fallback_too(redis_server: RedisServer) -> None:
    # A request granted by the fallback while Redis failed holds its slot
    # there: its Release, after Redis is back, must free it there as well.
    p = unique_provider()
    fallback = RecordingStore()
    store = RedisStore(redis_server.url, fallback=fallback)
    limits = ((p, RateLimit(tokens_per_minute=100, concurrent=1)),)
    assert store.execute(Acquire(limits, cost=1, lease="x", lease_ttl=5)) == (0.0, "")
    release, correct = Release((p,), "x"), Correct(limits, lease="x", cost=5)
    store.execute(release)
    store.execute(correct)
    assert fallback.commands == [release, correct]
    store.close()


# --------------------------------------------------------------- processes


@pytest.mark.parametrize("flavours", [("sync", "sync", "asyncio", "trio")])
def test_processes_share_one_limit(redis_server: RedisServer, flavours: tuple[str, ...]) -> None:
    name, limit = unique_provider(), 30
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), redis_server.url, name, str(limit), "20", "1.5", flavour],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flavour in flavours
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
    # They ask for 1.5 s, together; the window is longer, so no entry leaves
    # it: exactly the limit is granted, whoever asked.
    for worker in workers:  # all at once: communicate() waits for the process to end
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    granted = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        granted.append(int(out))
    assert sum(granted) == limit, granted


# ------------------------------------------------------------ event loops


def test_each_asyncio_event_loop_gets_its_own_client(redis_server: RedisServer) -> None:
    # A client made on one loop must not serve another: redis-py's asyncio
    # connections belong to the loop that opened them. (The fallback fails
    # the test if it is used.)
    store = RedisStore(redis_server.url, fallback=RefusingStore())
    p = unique_provider()
    limits = ((p, RateLimit(requests_per_minute=4)),)

    async def grant() -> tuple[float, str]:
        result: tuple[float, str] = await store.aexecute(acquire(limits, window=30))
        await store.aclose()
        return result

    # One loop after another ...
    assert asyncio.run(grant()) == (0.0, "")
    assert asyncio.run(grant()) == (0.0, "")
    # ... and loops running at once in two threads.
    results: list[tuple[float, str]] = []

    def in_thread() -> None:
        results.append(asyncio.run(grant()))

    threads = [threading.Thread(target=in_thread) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [(0.0, ""), (0.0, "")]
    # All four were recorded on Redis: the fifth waits.
    assert store.execute(acquire(limits, window=30))[1] == p
    store.close()


# ---------------------------------------------------------------- fallback


@pytest.fixture
def quick_retry(monkeypatch: pytest.MonkeyPatch) -> float:
    """Redis is tried again 0.3 s after it failed, not 5 s."""
    monkeypatch.setattr(_redis, "RETRY_INTERVAL", 0.3)
    return 0.3


def _commands(p: str) -> list[Command]:
    limits = ((p, RateLimit(requests_per_minute=1)),)
    return [
        acquire(limits),
        acquire(limits),
        Release((p,), "x"),
        Pause((p,), 1.0),
        Report(f"{p}/m", ok=False, failures=1, cooldown=1.0),
        Cooling((f"{p}/m",)),
    ]


@pytest.mark.parametrize("flavour", ["sync", "asyncio", "trio"])
def test_nothing_listening_every_command_goes_to_the_fallback_with_one_warning(
    flavour: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    fallback = RecordingStore()
    secret = "s3cr3t-pass"
    url = f"redis://user:{secret}@127.0.0.1:{port}/0"
    store = RedisStore(url, fallback=fallback)
    commands = _commands(unique_provider())
    durations: list[float] = []

    async def body(do: Do) -> list[object]:
        results = []
        for command in commands:
            begun = time.monotonic()
            results.append(await do(command))
            durations.append(time.monotonic() - begun)
        return results

    with caplog.at_level(logging.INFO, logger="mal"):
        results = through(store, flavour, body)
    # The fallback's answers (it grants everything), to every command.
    assert results == [(0.0, ""), (0.0, ""), None, None, None, (False,)]
    assert fallback.commands == commands
    if flavour != "sync":
        assert fallback.async_commands == commands
    warned = warnings_of(caplog)
    assert len(warned) == 1, warned
    assert f"redis://user:***@127.0.0.1:{port}/0" in warned[0]
    assert max(durations) < BOUND, durations
    assert secret not in caplog.text and secret not in repr(store)
    assert repr(store) == f"RedisStore('redis://user:***@127.0.0.1:{port}/0')"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port where connections are accepted and never answered."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join()
    for sock in held:
        sock.close()
    listener.close()


@pytest.mark.parametrize("flavour", ["sync", "asyncio", "trio"])
def test_a_server_that_does_not_answer_costs_one_timeout_then_nothing(
    flavour: str, silent_server: int, caplog: pytest.LogCaptureFixture
) -> None:
    fallback = RecordingStore()
    store = RedisStore(f"redis://127.0.0.1:{silent_server}/0", fallback=fallback)
    p = unique_provider()
    durations: list[float] = []

    async def body(do: Do) -> None:
        for _ in range(5):
            begun = time.monotonic()
            await do(Cooling((f"{p}/m",)))
            durations.append(time.monotonic() - begun)

    with caplog.at_level(logging.WARNING, logger="mal"):
        through(store, flavour, body)
    assert len(fallback) == 5
    assert len(warnings_of(caplog)) == 1
    # The first waited for the answer until the timeout; the others, within
    # the retry interval, went to the fallback at once.
    assert _redis.TIMEOUT * 0.9 <= durations[0] < BOUND, durations
    assert max(durations[1:]) < _redis.TIMEOUT / 2, durations


def test_an_error_from_redis_goes_to_the_fallback(
    redis_server: RedisServer, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    p = unique_provider()
    # Another program's key where the request log goes: WRONGTYPE in the script.
    redis_client.set(f"mal:rl:{{{p}}}:{p}:req", "not a sorted set")
    fallback = RecordingStore()
    store = RedisStore(redis_server.url, fallback=fallback)
    with caplog.at_level(logging.WARNING, logger="mal"):
        assert store.execute(acquire(((p, RateLimit(requests_per_minute=1)),))) == (0.0, "")
    assert len(fallback) == 1
    (warning,) = warnings_of(caplog)
    assert "ResponseError" in warning and "WRONGTYPE" in warning
    store.close()


@pytest.mark.parametrize("flavour", ["sync", "asyncio", "trio"])
def test_redis_killed_then_restarted_falls_back_then_comes_back(
    flavour: str,
    own_redis_server: RedisServer,
    quick_retry: float,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fallback = RecordingStore()
    store = RedisStore(own_redis_server.url, fallback=fallback)
    p = unique_provider()
    limits = ((p, RateLimit(requests_per_minute=2)),)

    async def body(do: Do) -> None:
        assert await do(acquire(limits, window=30)) == (0.0, "")
        assert await do(acquire(limits, window=30)) == (0.0, "")
        assert (await do(acquire(limits, window=30)))[1] == p
        assert len(fallback) == 0
        own_redis_server.kill()
        # The fallback grants everything.
        assert await do(acquire(limits, window=30)) == (0.0, "")
        assert len(fallback) == 1
        own_redis_server.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            before = len(fallback)
            result = await do(acquire(limits, window=30))
            if len(fallback) == before:
                break
            await asyncio_or_trio_sleep(0.05)
        # Back on Redis: a new server, empty, so the limit starts again.
        assert result == (0.0, "")
        assert await do(acquire(limits, window=30)) == (0.0, "")
        assert (await do(acquire(limits, window=30)))[1] == p

    with caplog.at_level(logging.INFO, logger="mal"):
        through(store, flavour, body)
    assert len(warnings_of(caplog)) == 1
    back = warnings_of(caplog, logging.INFO)
    assert len(back) == 1 and "answers again" in back[0]
    store.close()


async def asyncio_or_trio_sleep(seconds: float) -> None:
    import anyio

    await anyio.sleep(seconds)


# ------------------------------------------------------------------ config


def test_a_url_that_is_not_redis_is_a_config_error_without_its_password() -> None:
    with pytest.raises(mal.ConfigError, match="is not a Redis URL") as raised:
        RedisStore("http://user:hunter2@example.com/0", fallback=RecordingStore())
    assert "hunter2" not in str(raised.value)


def test_without_the_redis_package_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(mal.ConfigError, match=r"pip install 'mal-llm\[redis\]'"):
        RedisStore("redis://127.0.0.1:1/0", fallback=RecordingStore())


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@host:1/0", "redis://:***@host:1/0"),
        ("rediss://user:p%40ss@host/2", "rediss://user:***@host/2"),
        ("redis://user:p@ss@host/0", "redis://user:***@host/0"),
        ("redis://user@host/0", "redis://user@host/0"),
        ("unix:///run/redis.sock?db=1&password=pw", "unix:///run/redis.sock?db=1&password=***"),
    ],
)
def test_redact_hides_every_password(url: str, public: str) -> None:
    assert redact(url) == public


def test_a_process_falling_back_counts_what_redis_granted_it(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The requests Redis granted are recorded in the process's own store too:
    # once Redis is gone, the process's limit is already taken for the window,
    # and a fleet falling back goes no higher than one limit per process.
    from mal._limits import LocalStore

    local = LocalStore()
    store = RedisStore(own_redis_server.url, fallback=local)
    p = unique_provider()
    limits = ((p, RateLimit(requests_per_minute=2)),)
    assert store.execute(acquire(limits, window=30)) == (0.0, "")
    assert store.execute(acquire(limits, window=30)) == (0.0, "")
    own_redis_server.kill()
    with caplog.at_level(logging.WARNING, logger="mal"):
        wait, name = store.execute(acquire(limits, window=30))
    assert name == p and 29 < wait <= 30
    assert len(warnings_of(caplog)) == 1
    store.close()
