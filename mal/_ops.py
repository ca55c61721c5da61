"""The op protocol: what the lifecycle generators ask their driver to do.

:func:`mal._lifecycle.run_call` (and :func:`mal._complete.run_loop` around
it) is a generator written once for the sync and the async driver, with no
networking code at all (psycopg's generators and httpx's ``auth_flow`` have
the same shape). Its type is :data:`CallGenerator`,
``Generator[Op | Chunk, Any, None]``:

**What it yields**, and **what the driver sends back** for each:

* ``Send(request, timeouts, clock, release)``: send the request; the driver
  sends back the response's :class:`ResponseHead` (status and headers), its
  body still unread. ``clock``, when set, is a :class:`Receive`: the head must
  have come within ``clock.timeout`` seconds, else the send fails with
  ``clock.expired()`` (the drivers pass it to mal's transport as the
  ``mal.head_timeout`` request extension). When the send fails, the driver
  also sets ``reused`` and ``unanswered`` on the op before it throws the error
  (see :class:`Send`). ``release``, when set, is a :class:`Shared` op (it
  frees the concurrency slot the request holds) that the driver runs when it
  lets the response go (see below), a send that failed included;
* ``RECEIVE``: the driver sends back the next bytes of the body, ``b""`` at its end;
* ``Receive(timeout, phase)``: the same, but a read that has not returned after
  ``timeout`` seconds must fail with ``APITimeoutError(phase=phase)``
  (``Receive.expired()``): this is how the first-token, idle and total clocks
  reach a blocked read (the driver gives the read that deadline:
  ``body.read(timeout)``);
* ``READ_ERROR_BODY``: the driver sends back the rest of the body, at most
  :data:`MAX_ERROR_BODY` bytes;
* ``Sleep(seconds)``: the driver sleeps (a back-off before a retry, a wait for
  a turn under a rate limit) and sends back ``None``; a close of the stream
  from another task or thread ends the sleep, and the stream, at once;
* ``Shared(store, command)``: a command of :mod:`mal.limits` for a store of
  limits; the driver sends back ``op.store.execute(op.command)``, or in the
  async driver ``await op.store.aexecute(op.command)`` (a store never raises);
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
asks for anything but the response's body (``Send``, ``Sleep``, ``Shared``,
``RunTools``), and then runs the ``release`` of the last ``Send``, whether
its send failed or not: a retry, a wait or a fallback never holds the slot
of the attempt before. A body read to its end leaves its connection in the
pool, and one cut short drops it, which is the only way to stop a server
(Ollama above all) from generating on.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any, Final

import msgspec

from .errors import APITimeoutError
from .limits import Command, Store
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
    "Shared",
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


class Shared:
    """A command for a store of limits, and the store."""

    __slots__ = ("command", "store")

    def __init__(self, store: Store, command: Command) -> None:
        self.store = store
        self.command = command

    def __repr__(self) -> str:
        return f"Shared({self.command!r})"


class Send(msgspec.Struct):
    request: HTTPRequest
    #: httpx's (connect, read, write, pool) seconds, None for no limit.
    timeouts: tuple[float | None, ...]
    #: The first-token or total clock, if one runs while the head is awaited.
    clock: Receive | None = None
    #: What frees the request's concurrency slot under the rate limits, run by
    #: the driver when it lets the response go (or the send fails).
    release: Shared | None = None
    #: Set by the driver when the send fails: whether the request went out on
    #: a kept-alive connection reused from the pool (False when unknown)...
    reused: bool = False
    #: ...and whether the server closed or reset the connection before any
    #: byte of a response came (not a timeout). Both: see :func:`_attempt`.
    unanswered: bool = False


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

Op = Send | Receive | Sleep | Shared | Handoff | Await | _Op
#: What :func:`run_call` yields, is sent and returns.
CallGenerator = Generator["Op | Chunk", Any, None]


class ResponseHead(msgspec.Struct):
    status: int
    headers: Mapping[str, str]
