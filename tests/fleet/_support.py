"""Helpers of the fleet tests: a store that records what it was asked (the
fallback whose use the tests check), the stores under test, and a way to
run a test body through a store's sync or async entry point."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from mal.limits import Acquire, Command, Cooling, Correct, Release, Store

__all__ = ["Do", "RecordingStore", "RefusingStore", "through", "unique_provider"]

#: Carries out one command and gives its result, whatever the entry point.
Do = Callable[[Command], Awaitable[Any]]


class RecordingStore:
    """A store that grants everything and records each command it got."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.async_commands: list[Command] = []
        self._lock = threading.Lock()

    def execute(self, command: Command) -> Any:
        with self._lock:
            self.commands.append(command)
        if isinstance(command, Acquire):
            return (0.0, "")
        if isinstance(command, Cooling):
            return tuple(False for _ in command.models)
        return None

    async def aexecute(self, command: Command) -> Any:
        with self._lock:
            self.async_commands.append(command)
        return self.execute(command)

    def __len__(self) -> int:
        return len(self.commands)


class RefusingStore(RecordingStore):
    """A fallback that must not be used: the test fails if it is. (A Redis
    store also gives its fallback every Release and Correct, for the requests
    the fallback granted; those are taken.)"""

    def execute(self, command: Command) -> Any:
        if isinstance(command, (Release, Correct)):
            return super().execute(command)
        raise AssertionError(f"the fallback was used for {command!r}: the store failed")


def unique_provider() -> str:
    """A provider name no other test uses, so that tests sharing one server
    (or one process's state) never see each other's entries."""
    return f"p{uuid.uuid4().hex[:12]}"


def through(store: Store, flavour: str, body: Callable[[Do], Awaitable[Any]]) -> Any:
    """Run ``body(do)`` where ``do`` goes through ``store.execute`` ("sync",
    under asyncio, blocking the loop) or ``store.aexecute`` under asyncio or
    trio; the async client of the loop is closed at the end."""

    async def main() -> Any:
        if flavour == "sync":

            async def do(command: Command) -> Any:
                return store.execute(command)

        else:
            do = store.aexecute
        try:
            return await body(do)
        finally:
            aclose = getattr(store, "aclose", None)
            if aclose is not None and flavour == "asyncio":
                await aclose()

    return anyio.run(main, backend="trio" if flavour == "trio" else "asyncio")


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.01)
