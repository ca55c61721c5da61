"""Rate limits and cool-downs, kept per process or shared through a store.

:class:`RateLimit` is what a user configures (``MALConfig.rate_limits``).
What the lifecycle asks of the state that holds the limits is a small set of
commands (:data:`Command`), each a plain value: a :class:`Store` carries
them out, in process (:class:`mal._limits.LocalStore`) or on Redis
(``MALConfig.shared_state="redis://..."``). The commands are the whole
contract between the two, so both keep the same rules:

* **The window.** A request counts against a limit for ``window`` seconds
  (60: the limits are per minute) from the moment it was granted: a
  sliding log, so that no span of ``window`` seconds ever holds more
  requests, or more tokens, than the limit allows.
* **Concurrency.** A granted request holds a slot, named by its lease, until
  it is released, or until ``lease_ttl`` seconds have passed (a process that
  died holding it).
* **Time** is the store's own clock: the process's monotonic clock in
  process, Redis's ``TIME`` on Redis, so that hosts with skewed clocks agree.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from .errors import ConfigError

__all__ = [
    "Acquire",
    "Command",
    "Cooling",
    "Correct",
    "Pause",
    "RateLimit",
    "Release",
    "Report",
    "Store",
]


class RateLimit(msgspec.Struct, frozen=True):
    """A limit that every call of a provider, or of one ``provider/model``,
    waits its turn under: requests and tokens per minute, and requests in
    flight at once. ``None`` leaves that dimension unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent: int | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute", "concurrent"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ConfigError(f"RateLimit.{name} must be a positive int or None, not {value!r}")


class Acquire(msgspec.Struct, frozen=True):
    """Take one request's turn under every limit in ``limits``, all or none.

    Result: ``(seconds, name)``. ``(0.0, "")``: granted and recorded under
    every limit (a request entry, a token entry of ``cost``, a concurrency
    slot held by ``lease``). Otherwise nothing is recorded: ``seconds`` is how
    long to wait before asking again (for a full window, until enough of it
    has expired; for a full concurrency limit, a short poll), and ``name`` is
    the limit that made it wait (the longest wait when several do).
    A limit paused (:class:`Pause`) waits until the pause ends.
    """

    #: ``(name, limit)`` pairs: name is a provider ("openai") or "provider/model".
    limits: tuple[tuple[str, RateLimit], ...]
    #: Estimated tokens of the request (prompt and the output asked for), at
    #: most each limit's ``tokens_per_minute`` (the store caps it).
    cost: int
    #: A unique id of this request: its entries and its concurrency slot.
    lease: str
    #: Seconds a concurrency slot is held at most, if never released.
    lease_ttl: float
    #: Seconds a request counts against a per-minute limit.
    window: float = 60.0


class Correct(msgspec.Struct, frozen=True):
    """Replace the token cost recorded for ``lease`` (the estimate) by what the
    response's usage reported, capped at each limit's ``tokens_per_minute``;
    nothing when the entry has left the window. Result: None."""

    limits: tuple[tuple[str, RateLimit], ...]
    lease: str
    cost: int
    window: float = 60.0


class Release(msgspec.Struct, frozen=True):
    """Free the concurrency slot ``lease`` holds under these limits, and carry
    out ``correct`` too when given (a request's real cost, known when its
    response ended, goes with the release: one round trip to a shared store
    instead of two). Result: None."""

    names: tuple[str, ...]
    lease: str
    correct: Correct | None = None


class Pause(msgspec.Struct, frozen=True):
    """Grant nothing under these limits for ``seconds`` (a provider's 429 with
    Retry-After); a longer pause already set stays. Result: None."""

    names: tuple[str, ...]
    seconds: float


class Report(msgspec.Struct, frozen=True):
    """The outcome of one request to ``model`` ("provider/model"), for cool-downs.

    ``ok``: the count of failures in a row goes back to 0 and a cool-down in
    progress ends. Not ok (a retryable failure): the count goes up by one; at
    ``failures`` the model cools down for ``cooldown`` seconds and the count
    starts again from 0. Result: None.
    """

    model: str
    ok: bool
    failures: int
    cooldown: float


class Cooling(msgspec.Struct, frozen=True):
    """Which of ``models`` are cooling down now. Result: ``tuple[bool, ...]``,
    one per model, in order."""

    models: tuple[str, ...]


Command = Acquire | Release | Correct | Pause | Report | Cooling


class Store(Protocol):
    """Carries out commands; a sync driver calls :meth:`execute`, an async one
    :meth:`aexecute`. A store never raises for its own failures (a store
    that cannot be reached falls back to per-process state and logs a
    warning once) and never blocks for long."""

    def execute(self, command: Command) -> Any: ...

    async def aexecute(self, command: Command) -> Any: ...
