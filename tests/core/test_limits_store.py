"""The in-process store of limits, driven by a fake clock: each command of
``mal.limits`` as its docstring states it, the edges of the window, the token
caps, concurrency leases and their expiry, pauses, cool-downs, and several
threads taking turns under one limit."""

from __future__ import annotations

import sys
import threading
import types

import pytest

import mal
from mal._limits import LocalStore, make_store
from mal.limits import Acquire, Cooling, Correct, Pause, RateLimit, Release, Report


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> LocalStore:
    return LocalStore(clock=clock)


def acquire(
    *limits: tuple[str, RateLimit],
    cost: int = 1,
    lease: str = "l",
    ttl: float = 600.0,
    window: float = 60.0,
) -> Acquire:
    return Acquire(limits, cost, lease, ttl, window)


RPM2 = ("openai", RateLimit(requests_per_minute=2))


# Requests per window -----------------------------------------------------------------


def test_requests_are_granted_up_to_the_limit_then_wait_for_the_oldest(
    store: LocalStore, clock: Clock
) -> None:
    assert store.execute(acquire(RPM2, lease="a")) == (0.0, "")
    clock.now += 10.0
    assert store.execute(acquire(RPM2, lease="b")) == (0.0, "")
    clock.now += 5.0
    # The first grant leaves the window 60 s after it was made: 45 s from now.
    assert store.execute(acquire(RPM2, lease="c")) == (pytest.approx(45.0), "openai")


def test_a_request_counts_until_exactly_one_window_after_its_grant(
    store: LocalStore, clock: Clock
) -> None:
    one = ("openai", RateLimit(requests_per_minute=1))
    assert store.execute(acquire(one, lease="a")) == (0.0, "")
    clock.now += 59.999
    wait, name = store.execute(acquire(one, lease="b"))
    assert wait == pytest.approx(0.001)
    assert name == "openai"
    clock.now += 0.001  # the grant is one window old: it has left
    assert store.execute(acquire(one, lease="b")) == (0.0, "")


def test_a_refused_request_records_nothing(store: LocalStore, clock: Clock) -> None:
    one = ("openai", RateLimit(requests_per_minute=1))
    assert store.execute(acquire(one, lease="a")) == (0.0, "")
    for _ in range(5):  # asking again and again does not push the turn back
        assert store.execute(acquire(one, lease="b"))[0] == pytest.approx(60.0)
    clock.now += 60.0
    assert store.execute(acquire(one, lease="b")) == (0.0, "")


def test_the_window_is_the_commands_own(store: LocalStore, clock: Clock) -> None:
    assert store.execute(acquire(RPM2, lease="a", window=0.5)) == (0.0, "")
    assert store.execute(acquire(RPM2, lease="b", window=0.5)) == (0.0, "")
    assert store.execute(acquire(RPM2, lease="c", window=0.5))[0] == pytest.approx(0.5)
    clock.now += 0.5
    assert store.execute(acquire(RPM2, lease="c", window=0.5)) == (0.0, "")


def test_limits_of_other_names_do_not_interfere(store: LocalStore) -> None:
    other = ("anthropic", RateLimit(requests_per_minute=2))
    for lease in "ab":
        assert store.execute(acquire(RPM2, lease=lease)) == (0.0, "")
    assert store.execute(acquire(other, lease="c")) == (0.0, "")


def test_all_or_none_under_several_limits(store: LocalStore, clock: Clock) -> None:
    model = ("openai/gpt", RateLimit(requests_per_minute=1))
    assert store.execute(acquire(RPM2, model, lease="a")) == (0.0, "")
    clock.now += 1.0
    # The model's limit is full: the provider's must not count this refusal.
    assert store.execute(acquire(RPM2, model, lease="b")) == (pytest.approx(59.0), "openai/gpt")
    assert store.execute(acquire(RPM2, lease="c")) == (0.0, "")
    assert store.execute(acquire(RPM2, lease="d"))[0] == pytest.approx(59.0)


def test_the_longest_wait_names_its_limit(store: LocalStore, clock: Clock) -> None:
    short = ("openai", RateLimit(requests_per_minute=1))
    long = ("openai/gpt", RateLimit(requests_per_minute=1))
    assert store.execute(acquire(long, lease="a")) == (0.0, "")
    clock.now += 30.0
    assert store.execute(acquire(short, lease="b")) == (0.0, "")
    clock.now += 10.0
    # short frees in 50 s, long in 20 s: the wait is the longer one.
    assert store.execute(acquire(short, long, lease="c")) == (pytest.approx(50.0), "openai")


# Tokens per window -------------------------------------------------------------------


def test_tokens_wait_until_enough_have_left_the_window(store: LocalStore, clock: Clock) -> None:
    tpm = ("openai", RateLimit(tokens_per_minute=100))
    assert store.execute(acquire(tpm, cost=40, lease="a")) == (0.0, "")
    clock.now += 10.0
    assert store.execute(acquire(tpm, cost=40, lease="b")) == (0.0, "")
    clock.now += 10.0
    # 80 in the window; 30 more need the first 40 to leave (at 60 s after it).
    assert store.execute(acquire(tpm, cost=30, lease="c")) == (pytest.approx(40.0), "openai")
    # 20 fit now.
    assert store.execute(acquire(tpm, cost=20, lease="d")) == (0.0, "")
    # 100 in the window: 70 more need both of the first two to leave.
    assert store.execute(acquire(tpm, cost=70, lease="e"))[0] == pytest.approx(50.0)


def test_a_cost_above_the_limit_is_capped_so_that_it_can_pass(
    store: LocalStore, clock: Clock
) -> None:
    tpm = ("openai", RateLimit(tokens_per_minute=100))
    assert store.execute(acquire(tpm, cost=5000, lease="a")) == (0.0, "")
    clock.now += 1.0
    # Capped at 100: it fills the window, nothing more.
    assert store.execute(acquire(tpm, cost=1, lease="b"))[0] == pytest.approx(59.0)
    clock.now += 59.0
    assert store.execute(acquire(tpm, cost=5000, lease="b")) == (0.0, "")


def test_correct_replaces_the_estimate_with_the_usage(store: LocalStore, clock: Clock) -> None:
    tpm = ("openai", RateLimit(tokens_per_minute=100))
    assert store.execute(acquire(tpm, cost=90, lease="a")) == (0.0, "")
    assert store.execute(acquire(tpm, cost=20, lease="b"))[0] == pytest.approx(60.0)
    assert store.execute(Correct((tpm,), "a", 30)) is None
    assert store.execute(acquire(tpm, cost=20, lease="b")) == (0.0, "")
    # Correcting upwards is capped at the limit too.
    store.execute(Correct((tpm,), "b", 10_000))
    assert store.execute(acquire(tpm, cost=1, lease="c"))[0] == pytest.approx(60.0)


def test_correct_of_an_entry_that_left_the_window_does_nothing(
    store: LocalStore, clock: Clock
) -> None:
    tpm = ("openai", RateLimit(tokens_per_minute=100))
    assert store.execute(acquire(tpm, cost=10, lease="a")) == (0.0, "")
    clock.now += 60.0
    store.execute(Correct((tpm,), "a", 100))
    assert store.execute(acquire(tpm, cost=100, lease="b")) == (0.0, "")
    store.execute(Correct((tpm,), "unknown", 100))  # never granted: nothing


def test_requests_and_tokens_together(store: LocalStore, clock: Clock) -> None:
    both = ("openai", RateLimit(requests_per_minute=3, tokens_per_minute=100))
    assert store.execute(acquire(both, cost=60, lease="a")) == (0.0, "")
    clock.now += 1.0
    assert store.execute(acquire(both, cost=60, lease="b"))[0] == pytest.approx(59.0)
    assert store.execute(acquire(both, cost=10, lease="c")) == (0.0, "")


# Concurrency -------------------------------------------------------------------------


def test_concurrency_slots_are_held_until_released(store: LocalStore) -> None:
    two = ("openai", RateLimit(concurrent=2))
    assert store.execute(acquire(two, lease="a")) == (0.0, "")
    assert store.execute(acquire(two, lease="b")) == (0.0, "")
    wait, name = store.execute(acquire(two, lease="c"))
    assert 0 < wait <= 0.1  # a short poll: nothing says when a slot frees
    assert name == "openai"
    assert store.execute(Release(("openai",), "a")) is None
    assert store.execute(acquire(two, lease="c")) == (0.0, "")
    store.execute(Release(("openai",), "a"))  # twice: nothing more
    assert store.execute(acquire(two, lease="d"))[0] > 0


def test_a_slot_never_released_expires_after_its_ttl(store: LocalStore, clock: Clock) -> None:
    one = ("openai", RateLimit(concurrent=1))
    assert store.execute(acquire(one, lease="a", ttl=30.0)) == (0.0, "")
    clock.now += 29.99
    wait, _ = store.execute(acquire(one, lease="b", ttl=30.0))
    # The poll is no longer than the time left to the expiry.
    assert 0 < wait <= 0.01 + 1e-9
    clock.now += 0.01
    assert store.execute(acquire(one, lease="b", ttl=30.0)) == (0.0, "")


def test_a_concurrency_limit_counts_no_window(store: LocalStore, clock: Clock) -> None:
    one = ("openai", RateLimit(concurrent=1))
    for lease in "abcdef":
        assert store.execute(acquire(one, lease=lease)) == (0.0, "")
        store.execute(Release(("openai",), lease))


# Pauses ------------------------------------------------------------------------------


def test_a_pause_grants_nothing_until_it_ends(store: LocalStore, clock: Clock) -> None:
    limit = ("openai", RateLimit(requests_per_minute=100))
    assert store.execute(Pause(("openai",), 7.0)) is None
    assert store.execute(acquire(limit, lease="a")) == (pytest.approx(7.0), "openai")
    clock.now += 7.0
    assert store.execute(acquire(limit, lease="a")) == (0.0, "")


def test_a_shorter_pause_leaves_a_longer_one(store: LocalStore, clock: Clock) -> None:
    limit = ("openai", RateLimit(concurrent=5))
    store.execute(Pause(("openai",), 10.0))
    clock.now += 1.0
    store.execute(Pause(("openai",), 2.0))
    assert store.execute(acquire(limit, lease="a"))[0] == pytest.approx(9.0)
    store.execute(Pause(("openai",), 20.0))
    assert store.execute(acquire(limit, lease="a"))[0] == pytest.approx(20.0)


def test_a_pause_of_one_name_leaves_the_others(store: LocalStore) -> None:
    store.execute(Pause(("openai/gpt",), 10.0))
    limit = ("openai", RateLimit(requests_per_minute=5))
    assert store.execute(acquire(limit)) == (0.0, "")


# Cool-downs --------------------------------------------------------------------------


def test_a_model_cools_down_after_failures_in_a_row(store: LocalStore, clock: Clock) -> None:
    models = ("openai/a", "openai/b")
    assert store.execute(Cooling(models)) == (False, False)
    store.execute(Report("openai/a", False, 2, 30.0))
    assert store.execute(Cooling(models)) == (False, False)
    store.execute(Report("openai/a", False, 2, 30.0))
    assert store.execute(Cooling(models)) == (True, False)
    clock.now += 29.9
    assert store.execute(Cooling(models)) == (True, False)
    clock.now += 0.1
    assert store.execute(Cooling(models)) == (False, False)


def test_a_success_resets_the_count_and_ends_a_cool_down(store: LocalStore) -> None:
    store.execute(Report("openai/a", False, 2, 30.0))
    store.execute(Report("openai/a", True, 2, 30.0))
    store.execute(Report("openai/a", False, 2, 30.0))
    assert store.execute(Cooling(("openai/a",))) == (False,)  # one in a row, not two
    store.execute(Report("openai/a", False, 2, 30.0))
    assert store.execute(Cooling(("openai/a",))) == (True,)
    store.execute(Report("openai/a", True, 2, 30.0))
    assert store.execute(Cooling(("openai/a",))) == (False,)


def test_the_count_starts_again_after_a_cool_down(store: LocalStore, clock: Clock) -> None:
    store.execute(Report("m/a", False, 2, 10.0))
    store.execute(Report("m/a", False, 2, 10.0))
    clock.now += 10.0
    store.execute(Report("m/a", False, 2, 10.0))
    assert store.execute(Cooling(("m/a",))) == (False,)
    store.execute(Report("m/a", False, 2, 10.0))
    assert store.execute(Cooling(("m/a",))) == (True,)


# Memory, threads, the process's store ------------------------------------------------


def test_entries_that_left_the_window_are_dropped(store: LocalStore, clock: Clock) -> None:
    limit = ("openai", RateLimit(requests_per_minute=1000, concurrent=1000))
    for i in range(500):
        store.execute(acquire(limit, lease=str(i), window=1.0))
        store.execute(Release(("openai",), str(i)))
        clock.now += 0.1
    assert store.size() <= 11  # the grants of the last second, no more
    store.execute(Report("m/a", True, 3, 1.0))
    store.execute(Report("m/b", False, 1, 1.0))
    clock.now += 1.0
    store.execute(Cooling(("m/b",)))
    assert store.size() <= 11


def test_threads_never_take_more_turns_than_the_limit(store: LocalStore, clock: Clock) -> None:
    limit = ("openai", RateLimit(requests_per_minute=7, tokens_per_minute=50, concurrent=3))
    granted: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        start.wait()
        for i in range(200):
            lease = f"{n}-{i}"
            if store.execute(acquire(limit, cost=5, lease=lease)) == (0.0, ""):
                with lock:
                    granted.append(lease)
                store.execute(Release(("openai",), lease))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often: a race would show
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    # The clock never moved: one window, so exactly the limit was granted.
    assert len(granted) == 7


def test_the_process_has_one_store() -> None:
    assert make_store(None) is make_store(None)
    assert isinstance(make_store(None), LocalStore)


@pytest.mark.parametrize("url", ["http://localhost:6379", "redis:/x", "memcached://h", ""])
def test_an_unknown_shared_state_is_a_config_error(url: str) -> None:
    with pytest.raises(mal.ConfigError, match="shared_state"):
        make_store(url)


def test_a_redis_url_without_the_redis_store_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "mal._redis", None)  # as if not installed
    with pytest.raises(mal.ConfigError, match=r"pip install 'mal-llm\[redis\]'"):
        make_store("redis://127.0.0.1:6379/0")


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://h:6380", "unix:///run/redis.sock"]
)
def test_a_redis_url_makes_a_redis_store_falling_back_on_the_process_store(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    made: list[tuple[str, object]] = []

    class RedisStore:
        def __init__(self, url: str, *, fallback: object) -> None:
            made.append((url, fallback))

    module = types.ModuleType("mal._redis")
    module.RedisStore = RedisStore  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mal._redis", module)
    assert isinstance(make_store(url), RedisStore)
    assert made == [(url, make_store(None))]
