"""The in-process store of limits (:class:`LocalStore`), and the store a
config asks for (:func:`make_store`).

One :class:`LocalStore` serves every client of the process, so that two
clients (or a client and its ``with_options`` copies, or the module-level
calls) share their limits. It carries out the commands of
:mod:`mal.limits` exactly as that module states them, under one lock, with
no I/O: its ``aexecute`` is its ``execute``.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .config import SHARED_STATE_SCHEMES, hide_password
from .errors import ConfigError
from .limits import Acquire, Command, Cooling, Correct, Pause, RateLimit, Release, Report, Store

__all__ = [
    "LEASE_TTL",
    "POLL",
    "PROCESS_STORE",
    "SLACK",
    "WINDOW",
    "LocalStore",
    "counted_window",
    "make_store",
]

#: Seconds a request counts against a limit: the limits are per minute.
#: The lifecycle reads it at each request (tests shorten it).
WINDOW = 60.0
#: The part of a window added for the way to the provider: a turn is granted
#: before the request is sent, and its connection, or a busy machine, comes
#: between the two, so requests granted a minute apart may arrive a little
#: less than a minute apart, and the provider counts arrivals. Counting each
#: request for 1/120 of a window longer (half a second a minute) keeps any
#: minute of arrivals within the limit, at a cost of under 1% of the rate.
SLACK = 1 / 120


def counted_window() -> float:
    """Seconds a request granted now counts against its limits."""
    return WINDOW * (1 + SLACK)


#: Seconds a request waits for a concurrency slot before it asks again:
#: nothing says when a slot frees, so a full concurrency limit is polled.
POLL = 0.05
#: Seconds a concurrency slot is held at most when never released, for a
#: call without ``total_timeout`` (with one, the slot is held no longer than
#: the call may last).
LEASE_TTL = 600.0
#: The shortest wait a refusal returns: a refusal always waits a little.
_MIN_WAIT = 1e-6


class _Entry:
    """One granted request in a limit's window."""

    __slots__ = ("at", "cost", "lease")

    def __init__(self, at: float, lease: str, cost: int) -> None:
        self.at = at
        self.lease = lease
        self.cost = cost


class _Limit:
    """What one limit name holds: the sliding log of its grants (each a
    request and its tokens), its concurrency slots, its pause."""

    __slots__ = ("by_lease", "log", "paused_until", "slots", "tokens")

    def __init__(self) -> None:
        self.log: deque[_Entry] = deque()
        self.by_lease: dict[str, _Entry] = {}
        #: The tokens of the entries in the log.
        self.tokens = 0
        #: Lease -> when its slot expires.
        self.slots: dict[str, float] = {}
        self.paused_until = float("-inf")

    def prune(self, now: float, window: float) -> None:
        """Drop the grants that left the window and the slots that expired."""
        log = self.log
        edge = now - window
        while log and log[0].at <= edge:
            entry = log.popleft()
            self.tokens -= entry.cost
            if self.by_lease.get(entry.lease) is entry:
                del self.by_lease[entry.lease]
        if self.slots:
            for lease in [lease for lease, ends in self.slots.items() if ends <= now]:
                del self.slots[lease]

    def wait(self, limit: RateLimit, cost: int, now: float, window: float) -> float:
        """Seconds until a request of ``cost`` tokens fits; 0 when it does now."""
        wait = self.paused_until - now
        log = self.log
        rpm = limit.requests_per_minute
        if rpm is not None and len(log) >= rpm:
            # The grant that must leave so that one more fits.
            wait = max(wait, log[len(log) - rpm].at + window - now)
        tpm = limit.tokens_per_minute
        if tpm is not None:
            excess = self.tokens + cost - tpm
            if excess > 0:
                for entry in log:
                    excess -= entry.cost
                    if excess <= 0:
                        wait = max(wait, entry.at + window - now)
                        break
        concurrent = limit.concurrent
        if concurrent is not None and len(self.slots) >= concurrent:
            wait = max(wait, min(POLL, min(self.slots.values()) - now))
        return max(wait, _MIN_WAIT) if wait > 0 else 0.0

    def grant(self, limit: RateLimit, cost: int, lease: str, now: float, ttl: float) -> None:
        entry = _Entry(now, lease, cost)
        self.log.append(entry)
        self.by_lease[lease] = entry
        self.tokens += cost
        if limit.concurrent is not None:
            self.slots[lease] = now + ttl


def _capped(cost: int, limit: RateLimit) -> int:
    """A request's tokens as recorded under ``limit``: at most the limit, so
    that a request larger than it can still pass, alone in the window."""
    cost = max(cost, 0)
    tpm = limit.tokens_per_minute
    return cost if tpm is None else min(cost, tpm)


class LocalStore:
    """The commands of :mod:`mal.limits`, carried out in this process.

    Thread-safe (one lock around each command); ``clock`` is its time, the
    process's monotonic clock unless a test gives its own.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        #: Limit name -> its state: as many as the names configured in the
        #: process, each holding no more than one window of grants.
        self._limits: dict[str, _Limit] = {}
        #: "provider/model" -> [failures in a row, cooling until].
        self._health: dict[str, list[float]] = {}

    def execute(self, command: Command) -> Any:
        with self._lock:
            now = self._clock()
            if isinstance(command, Acquire):
                return self._acquire(command, now)
            if isinstance(command, Release):
                self._release(command)
                if command.correct is not None:
                    self._correct(command.correct, now)
                return None
            if isinstance(command, Correct):
                return self._correct(command, now)
            if isinstance(command, Pause):
                return self._pause(command, now)
            if isinstance(command, Report):
                return self._report(command, now)
            if isinstance(command, Cooling):
                return self._cooling(command, now)
            raise TypeError(f"not a command of mal.limits: {command!r}")

    async def aexecute(self, command: Command) -> Any:
        return self.execute(command)

    def size(self) -> int:
        """The entries held (grants, slots, health records): what the memory
        of the store grows with."""
        with self._lock:
            held = sum(len(state.log) + len(state.slots) for state in self._limits.values())
            return held + len(self._health)

    def _state(self, name: str) -> _Limit:
        state = self._limits.get(name)
        if state is None:
            state = self._limits[name] = _Limit()
        return state

    def record(self, command: Acquire) -> None:
        """Record a request granted elsewhere (by the shared store) as if
        granted here, whatever the limits say: when the shared store fails,
        this process's own limits then count what it already took in the
        window, so that a fleet that falls back goes no higher than one limit
        per process."""
        with self._lock:
            now = self._clock()
            for name, limit in command.limits:
                self._state(name).prune(now, command.window)
                self._limits[name].grant(
                    limit, _capped(command.cost, limit), command.lease, now, command.lease_ttl
                )

    def _acquire(self, command: Acquire, now: float) -> tuple[float, str]:
        window = command.window
        longest, longest_name = 0.0, ""
        for name, limit in command.limits:
            state = self._state(name)
            state.prune(now, window)
            wait = state.wait(limit, _capped(command.cost, limit), now, window)
            if wait > longest:
                longest, longest_name = wait, name
        if longest > 0:
            return longest, longest_name
        for name, limit in command.limits:
            self._limits[name].grant(
                limit, _capped(command.cost, limit), command.lease, now, command.lease_ttl
            )
        return 0.0, ""

    def _release(self, command: Release) -> None:
        for name in command.names:
            state = self._limits.get(name)
            if state is not None:
                state.slots.pop(command.lease, None)

    def _correct(self, command: Correct, now: float) -> None:
        for name, limit in command.limits:
            state = self._limits.get(name)
            if state is None:
                continue
            state.prune(now, command.window)
            entry = state.by_lease.get(command.lease)
            if entry is not None:
                cost = _capped(command.cost, limit)
                state.tokens += cost - entry.cost
                entry.cost = cost

    def _pause(self, command: Pause, now: float) -> None:
        for name in command.names:
            state = self._state(name)
            state.paused_until = max(state.paused_until, now + command.seconds)

    def _report(self, command: Report, now: float) -> None:
        health = self._health
        if command.ok:
            health.pop(command.model, None)
            return
        record = health.get(command.model)
        if record is None:
            record = health[command.model] = [0, float("-inf")]
        record[0] += 1
        if record[0] >= command.failures:
            record[0] = 0
            record[1] = now + command.cooldown

    def _cooling(self, command: Cooling, now: float) -> tuple[bool, ...]:
        health = self._health
        cooling = []
        for model in command.models:
            record = health.get(model)
            if record is None:
                cooling.append(False)
                continue
            if record[1] <= now and not record[0]:
                del health[model]  # a cool-down that ended, and no failures since
            cooling.append(record[1] > now)
        return tuple(cooling)


#: The store of every client of this process whose config shares no state.
PROCESS_STORE = LocalStore()


def make_store(shared_state: str | None) -> Store:
    """The store of a config's ``shared_state``: this process's own for
    None, a Redis store (with this process's as its fallback) for a Redis URL."""
    if shared_state is None:
        return PROCESS_STORE
    if isinstance(shared_state, str) and shared_state.startswith(SHARED_STATE_SCHEMES):
        try:
            redis_store = importlib.import_module("mal._redis")
        except ModuleNotFoundError as exc:
            if exc.name not in ("mal._redis", "redis") and not (exc.name or "").startswith(
                "redis."
            ):
                raise
            raise ConfigError(
                "shared_state needs the redis extra: pip install 'mal-llm[redis]'"
            ) from None
        store: Store = redis_store.RedisStore(shared_state, fallback=PROCESS_STORE)
        return store
    raise ConfigError(
        "shared_state must be None or a redis://, rediss:// or unix:// URL, "
        f"not {hide_password(shared_state)!r}"
    )
