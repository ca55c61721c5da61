"""What every store of limits does, whichever it is (``conftest.STORES``): the
results and effects of each command of ``mal.limits``, and a limit kept under
threads hammering it. Windows are a second or two, so that a test waits for
one to pass instead of a minute."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest

from mal.limits import (
    Acquire,
    Command,
    Cooling,
    Correct,
    Pause,
    RateLimit,
    Release,
    Report,
    Store,
)

from ._support import Do, through, unique_provider

#: The window of the tests, in seconds.
W = 1.0

_leases = itertools.count()

Limits = tuple[tuple[str, RateLimit], ...]


def acquire(
    limits: Limits, *, cost: int = 1, lease: str | None = None, ttl: float = 30.0, window: float = W
) -> Acquire:
    return Acquire(
        limits, cost=cost, lease=lease or f"lease-{next(_leases)}", lease_ttl=ttl, window=window
    )


GRANTED = (0.0, "")


# ---------------------------------------------------------------- requests


def test_requests_are_granted_up_to_the_limit_then_wait_for_the_oldest(store: Store) -> None:
    p = unique_provider()
    limits = ((p, RateLimit(requests_per_minute=3)),)
    window = 2.0
    assert store.execute(acquire(limits, window=window)) == GRANTED
    time.sleep(0.4)
    assert [store.execute(acquire(limits, window=window)) for _ in range(2)] == [GRANTED] * 2
    wait, name = store.execute(acquire(limits, window=window))
    assert name == p
    # Until the oldest of the three leaves the window: most of a window.
    assert window / 2 < wait <= window - 0.4
    time.sleep(wait)
    # The oldest has left, the two others have not.
    assert store.execute(acquire(limits, window=window)) == GRANTED
    wait, _ = store.execute(acquire(limits, window=window))
    assert 0 < wait < window / 2


def test_a_refused_acquire_records_nothing_under_any_limit(store: Store) -> None:
    p = unique_provider()
    a, b = (p, RateLimit(requests_per_minute=2)), (f"{p}/m", RateLimit(requests_per_minute=1))
    assert store.execute(acquire((a, b))) == GRANTED
    wait, name = store.execute(acquire((a, b)))
    assert (wait > 0, name) == (True, f"{p}/m")
    # a holds one request, not two: one more fits, then it is full.
    assert store.execute(acquire((a,))) == GRANTED
    assert store.execute(acquire((a,)))[1] == p


def test_the_longest_wait_names_its_limit(store: Store) -> None:
    p = unique_provider()
    full = (p, RateLimit(requests_per_minute=1))
    paused = (f"{p}/m", RateLimit(requests_per_minute=100))
    assert store.execute(acquire((full,))) == GRANTED
    store.execute(Pause((f"{p}/m",), 3 * W))
    wait, name = store.execute(acquire((full, paused)))
    assert name == f"{p}/m" and 2 * W < wait <= 3 * W
    wait, name = store.execute(acquire((paused, full)))
    assert name == f"{p}/m"


def test_a_limit_with_nothing_set_grants_everything(store: Store) -> None:
    limits = ((unique_provider(), RateLimit()),)
    assert [store.execute(acquire(limits)) for _ in range(20)] == [GRANTED] * 20
    assert store.execute(acquire(())) == GRANTED


# ------------------------------------------------------------------ tokens


def test_tokens_per_window_and_a_corrected_cost(store: Store) -> None:
    p = unique_provider()
    limits = ((p, RateLimit(tokens_per_minute=100)),)
    assert store.execute(acquire(limits, cost=60, lease="first")) == GRANTED
    wait, name = store.execute(acquire(limits, cost=60))
    assert wait > 0 and name == p
    # The response used 10 tokens, not the 60 estimated: 50 more fit now.
    store.execute(Correct(limits, lease="first", cost=10, window=W))
    assert store.execute(acquire(limits, cost=60)) == GRANTED
    assert store.execute(acquire(limits, cost=40))[0] > 0
    assert store.execute(acquire(limits, cost=30)) == GRANTED


def test_a_cost_above_the_limit_is_capped_to_it(store: Store) -> None:
    p = unique_provider()
    limits = ((p, RateLimit(tokens_per_minute=100)),)
    assert store.execute(acquire(limits, cost=500)) == GRANTED
    wait, _ = store.execute(acquire(limits, cost=1))
    assert 0 < wait <= W
    time.sleep(wait)
    assert store.execute(acquire(limits, cost=500)) == GRANTED


def test_correct_caps_the_reported_cost(store: Store) -> None:
    p = unique_provider()
    limits = ((p, RateLimit(tokens_per_minute=100)),)
    assert store.execute(acquire(limits, cost=1, lease="x")) == GRANTED
    store.execute(Correct(limits, lease="x", cost=10_000, window=W))
    # Capped at 100: the window is full, but not by 10,000 (which would make
    # no difference here) -- and it empties when that one entry leaves.
    wait, _ = store.execute(acquire(limits, cost=1))
    assert 0 < wait <= W
    time.sleep(wait)
    assert store.execute(acquire(limits, cost=100)) == GRANTED


def test_a_token_wait_lasts_until_enough_tokens_have_left(store: Store) -> None:
    p = unique_provider()
    window = 2.0
    limits = ((p, RateLimit(tokens_per_minute=100)),)
    assert store.execute(acquire(limits, cost=50, window=window)) == GRANTED
    time.sleep(0.6)
    assert store.execute(acquire(limits, cost=50, window=window)) == GRANTED
    # 40 tokens fit once the first entry leaves; 60 only once both have.
    small, _ = store.execute(acquire(limits, cost=40, window=window))
    large, _ = store.execute(acquire(limits, cost=60, window=window))
    assert 0 < small < large <= window
    assert large - small > 0.3


def test_a_correct_after_the_window_changes_nothing(store: Store) -> None:
    p = unique_provider()
    limits = ((p, RateLimit(tokens_per_minute=100)),)
    assert store.execute(acquire(limits, cost=100, lease="old")) == GRANTED
    time.sleep(W + 0.05)
    store.execute(Correct(limits, lease="old", cost=90, window=W))
    assert store.execute(acquire(limits, cost=100)) == GRANTED
    store.execute(Correct(limits, lease="never-granted", cost=50, window=W))
    assert store.execute(acquire(limits, cost=1))[0] > 0


# ------------------------------------------------------------- concurrency


def test_concurrency_slots_are_freed_by_release(store: Store) -> None:
    p = unique_provider()
    limits = ((p, RateLimit(concurrent=2)),)
    assert store.execute(acquire(limits, lease="a")) == GRANTED
    assert store.execute(acquire(limits, lease="b")) == GRANTED
    wait, name = store.execute(acquire(limits, lease="c"))
    # A short poll: nothing announces a release.
    assert name == p and 0 < wait <= 0.5
    store.execute(Release((p,), "a"))
    assert store.execute(acquire(limits, lease="c")) == GRANTED
    assert store.execute(acquire(limits, lease="d"))[0] > 0
    store.execute(Release((p,), "never-held"))
    assert store.execute(acquire(limits, lease="d"))[0] > 0


def test_a_release_carries_its_requests_correction(store: Store) -> None:
    p = unique_provider()
    limits = ((p, RateLimit(tokens_per_minute=100, concurrent=1)),)
    assert store.execute(acquire(limits, cost=90, lease="a")) == GRANTED
    assert store.execute(acquire(limits, cost=20, lease="b"))[0] > 0  # slot and tokens
    store.execute(Release((p,), "a", Correct(limits, lease="a", cost=10, window=W)))
    # The slot is free and the entry costs 10: 90 more tokens fit.
    assert store.execute(acquire(limits, cost=90, lease="b")) == GRANTED


def test_a_slot_never_released_is_freed_after_its_lease(store: Store) -> None:
    p = unique_provider()
    limits = ((p, RateLimit(concurrent=1)),)
    assert store.execute(acquire(limits, lease="dead", ttl=0.4)) == GRANTED
    wait, _ = store.execute(acquire(limits, ttl=0.4))
    assert 0 < wait <= 0.4
    time.sleep(0.45)
    assert store.execute(acquire(limits, ttl=0.4)) == GRANTED


# ------------------------------------------------------------------- pause


def test_a_pause_holds_every_grant_and_a_shorter_one_does_not_shorten_it(store: Store) -> None:
    p = unique_provider()
    limits = ((p, RateLimit()),)
    store.execute(Pause((p,), 1.0))
    wait, name = store.execute(acquire(limits))
    assert name == p and 0.5 < wait <= 1.0
    store.execute(Pause((p,), 0.1))
    assert store.execute(acquire(limits))[0] > 0.5
    store.execute(Pause((p,), 1.5))
    wait, _ = store.execute(acquire(limits))
    assert 1.0 < wait <= 1.5
    time.sleep(wait)
    assert store.execute(acquire(limits)) == GRANTED


def test_a_pause_of_one_limit_leaves_the_others(store: Store) -> None:
    p = unique_provider()
    store.execute(Pause((f"{p}/a",), 5.0))
    assert store.execute(acquire(((f"{p}/b", RateLimit()),))) == GRANTED
    assert store.execute(acquire(((f"{p}/a", RateLimit()),)))[1] == f"{p}/a"


# -------------------------------------------------------------- cool-downs


def test_failures_in_a_row_start_a_cool_down_and_a_success_ends_it(store: Store) -> None:
    p = unique_provider()
    model, other = f"{p}/m", f"{p}/n"

    def fail() -> None:
        store.execute(Report(model, ok=False, failures=3, cooldown=30.0))

    fail()
    fail()
    assert store.execute(Cooling((model, other))) == (False, False)
    fail()
    assert store.execute(Cooling((model, other))) == (True, False)
    assert store.execute(Cooling((other, model))) == (False, True)
    store.execute(Report(model, ok=True, failures=3, cooldown=30.0))
    assert store.execute(Cooling((model,))) == (False,)
    # The success set the count back to 0: two failures are not three.
    fail()
    store.execute(Report(model, ok=True, failures=3, cooldown=30.0))
    fail()
    fail()
    assert store.execute(Cooling((model,))) == (False,)
    assert store.execute(Cooling(())) == ()


def test_a_cool_down_ends_by_itself_and_the_count_starts_again(store: Store) -> None:
    model = f"{unique_provider()}/m"
    for _ in range(2):
        store.execute(Report(model, ok=False, failures=2, cooldown=0.4))
    assert store.execute(Cooling((model,))) == (True,)
    time.sleep(0.45)
    assert store.execute(Cooling((model,))) == (False,)
    store.execute(Report(model, ok=False, failures=2, cooldown=0.4))
    assert store.execute(Cooling((model,))) == (False,)


# --------------------------------------------------- every entry point alike


@pytest.mark.parametrize("flavour", ["sync", "asyncio", "trio"])
def test_each_command_through_each_entry_point(store: Store, flavour: str) -> None:
    p = unique_provider()
    limits = ((p, RateLimit(requests_per_minute=1, tokens_per_minute=10, concurrent=1)),)
    model = f"{p}/m"

    async def body(do: Do) -> list[Any]:
        commands: list[Command] = [
            acquire(limits, cost=5, lease="a"),
            acquire(limits, cost=5, lease="b"),
            Correct(limits, lease="a", cost=3, window=W),
            Release((p,), "a"),
            Pause((p,), 5.0),
            Report(model, ok=False, failures=1, cooldown=5.0),
            Cooling((model, f"{p}/other")),
        ]
        return [await do(c) for c in commands]

    granted, refused, corrected, released, paused, reported, cooling = through(store, flavour, body)
    assert granted == GRANTED
    assert refused[0] > 0 and refused[1] == p
    assert (corrected, released, paused, reported) == (None, None, None, None)
    assert cooling == (True, False)


# ----------------------------------------------------------------- threads


def _hammer(store: Store, limits: Limits, window: float, seconds: float, threads: int) -> list:
    """Threads asking for turns for ``seconds``, each sleeping the wait it is
    given; the (before, after) times of every grant."""
    grants: list[tuple[float, float]] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        end = time.monotonic() + seconds
        while (before := time.monotonic()) < end:
            wait, _ = store.execute(acquire(limits, window=window))
            if wait == 0:
                with lock:
                    grants.append((before, time.monotonic()))
            else:
                time.sleep(min(wait, max(0.0, end - time.monotonic())))

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return grants


def test_threads_get_exactly_the_limit_in_one_window(store: Store) -> None:
    limits = ((unique_provider(), RateLimit(requests_per_minute=20)),)
    # The run is shorter than the window: no entry leaves it, so exactly 20.
    grants = _hammer(store, limits, window=5.0, seconds=1.0, threads=8)
    assert len(grants) == 20


def test_threads_never_get_more_than_the_limit_in_any_window(store: Store) -> None:
    limit, window = 5, 0.5
    limits = ((unique_provider(), RateLimit(requests_per_minute=limit)),)
    grants = sorted(_hammer(store, limits, window=window, seconds=2.2, threads=6))
    # A grant happened between its (before, after); those that surely
    # happened inside [x, x + window) are at most the limit.
    for x, _ in grants:
        inside = [g for g in grants if g[0] >= x and g[1] < x + window]
        assert len(inside) <= limit, inside
    # And the limit is used, window after window: four windows in 2.2 s.
    assert len(grants) >= 3 * limit
