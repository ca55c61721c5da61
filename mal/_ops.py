"""The op protocol: what the lifecycle generators ask their driver to do.

:func:`mal._lifecycle.run_call` (and :func:`mal._complete.run_loop` around
it) is a generator written once for the sync and the async driver, with no
networking code at all (psycopg's generators and httpx's ``auth_flow`` have
the same shape). Its type is :data:`CallGenerator`,
``Generator[Op | Chunk, Any, None]``:

**What it yields**, and **what the driver sends back** for each:

* ``Send(request, timeouts, clock)``: send the request; the driver sends back
  the response's :class:`ResponseHead` (status and headers), its body still
  unread. ``clock``, when set, is a :class:`Receive`: the head must have come
  within ``clock.timeout`` seconds, else the send fails with ``clock.expired()``.
  When the send fails, the driver also sets ``reused`` and ``unanswered`` on
  the op before it throws the error (see :class:`Send`);
* ``RECEIVE``: the driver sends back the next bytes of the body, ``b""`` at its end;
* ``Receive(timeout, phase)``: the same, but a read that has not returned after
  ``timeout`` seconds must fail with ``APITimeoutError(phase=phase)``
  (``Receive.expired()``): this is how the first-token, idle and total clocks
  reach a blocked read;
* ``READ_ERROR_BODY``: the driver sends back the rest of the body, at most
  :data:`MAX_ERROR_BODY` bytes;
* ``Sleep(seconds)``: the driver sleeps (a back-off before a retry) and sends
  back ``None``; a close of the stream from another task or thread ends the
  sleep, and the stream, at once;
* ``Await(awaitable)``: the driver awaits it and sends back ``None`` (what an
  async ``progress_callback`` returned; only the async driver meets it: a sync
  client refuses an async callback before anything is sent);
* a :class:`mal.Chunk`: the driver hands it to the caller and resumes the
  generator with ``None`` when the caller asks for the next one;
* a :class:`Handoff`: the driver hands its ``chunk`` to the caller and, when
  the caller asks for the next one, does what ``RECEIVE`` asks and sends back
  the bytes. Once text flows with no clock or hook to run, the last chunk of
  each piece comes so: one resumption of the generator per token instead of two.

**When an op fails**, the driver throws the :class:`mal.MALError` it maps
the failure to into the generator, which adds what it knows (``partial_text``)
and decides what happens next: a retry, a fallback model, or the error for
the caller, raised out of the generator.

**What it returns**: nothing (``StopIteration`` with ``None``) when the call
has ended well; what the call produced is in its ``CallState`` (texts, usage,
finish reason, stats). ``run_loop`` yields one more op, ``RunTools``, and
returns the loop's :class:`mal.Response` (see :mod:`mal._complete`).

Whatever happens, the driver closes the response when the generator ends or
sends a new request: a body read to its end leaves its connection in the
pool, and one cut short drops it, which is the only way to stop a server
(Ollama above all) from generating on.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any, Final

import msgspec

from .errors import APITimeoutError
from .protocols import HTTPRequest
from .types import Chunk

__all__ = [
    "MAX_ERROR_BODY",
    "READ_ERROR_BODY",
    "RECEIVE",
    "Await",
    "CallGenerator",
    "Handoff",
    "Op",
    "Receive",
    "ResponseHead",
    "Send",
    "Sleep",
]

#: How much of an error response's body is read to build its error.
MAX_ERROR_BODY = 64 * 1024


class Receive(msgspec.Struct, gc=False):
    #: Seconds the read may take before it fails with ``expired()``.
    timeout: float
    #: The clock that runs out then: "first_token", "idle" or "total".
    phase: str

    def expired(self) -> APITimeoutError:
        return APITimeoutError(_CLOCK_MESSAGES[self.phase], phase=self.phase)


_CLOCK_MESSAGES = {
    "first_token": "no text arrived within MALConfig.first_token_timeout",
    "idle": "no new text arrived within MALConfig.idle_timeout",
    "total": "the call ran past MALConfig.total_timeout",
}


class Send(msgspec.Struct):
    request: HTTPRequest
    #: httpx's (connect, read, write, pool) seconds, None for no limit.
    timeouts: tuple[float | None, ...]
    #: The first-token or total clock, if one runs while the head is awaited.
    clock: Receive | None = None
    #: Set by the driver when the send fails: whether the request went out on
    #: a kept-alive connection reused from the pool (False when unknown)...
    reused: bool = False
    #: ...and whether the server closed or reset the connection before any
    #: byte of a response came (not a timeout). Both: see :func:`_attempt`.
    unanswered: bool = False

    def head_timeouts(self) -> tuple[float | None, ...]:
        """The timeouts shortened to what the clock leaves, for a driver that
        cannot cancel a blocked send (a sync one): its httpx timeouts then end
        the wait, and the driver reports ``clock.expired()``."""
        if self.clock is None:
            return self.timeouts
        left = max(self.clock.timeout, 1e-3)
        return tuple(left if t is None else min(t, left) for t in self.timeouts)


class Sleep(msgspec.Struct):
    seconds: float


class Await:
    """An awaitable for the driver to await before it resumes the generator."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Any) -> None:
        self.awaitable = awaitable


class _Op:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


RECEIVE: Final = _Op("RECEIVE")


class Handoff:
    """A chunk for the caller, then ``RECEIVE``: one op of each attempt,
    reused for every hand-off (the driver reads ``chunk`` before anything
    else can run)."""

    __slots__ = ("chunk",)

    def __init__(self) -> None:
        self.chunk = Chunk()

    def __repr__(self) -> str:
        return f"Handoff({self.chunk!r})"


READ_ERROR_BODY: Final = _Op("READ_ERROR_BODY")

Op = Send | Receive | Sleep | Handoff | Await | _Op
#: What :func:`run_call` yields, is sent and returns.
CallGenerator = Generator["Op | Chunk", Any, None]


class ResponseHead(msgspec.Struct):
    status: int
    headers: Mapping[str, str]
