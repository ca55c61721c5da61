"""A sync stream with every clock set starts no thread: each clock is a
deadline on the read in progress (mal's transport), not a watchdog."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

import mal
from mal.testing import MockServer, Reply


@pytest.fixture
def watch_threads(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[threading.Thread]]:
    """Start watching: the returned function gives the threads this (the
    test's) thread has started since; the server starts its own elsewhere."""
    me = threading.get_ident()
    started: list[threading.Thread] = []
    start = threading.Thread.start

    def watched(thread: threading.Thread, *args: Any, **kwargs: Any) -> None:
        if threading.get_ident() == me:
            started.append(thread)
        start(thread, *args, **kwargs)

    monkeypatch.setattr(threading.Thread, "start", watched)
    return lambda: list(started)


def test_a_sync_stream_with_every_clock_starts_no_thread(
    watch_threads: Callable[[], list[threading.Thread]],
) -> None:
    with MockServer() as server:
        server.add(Reply(text="one two three four", chunk_delay=0.01))
        config = mal.MALConfig(
            base_urls={"openai": server.url("openai")},
            api_keys={"openai": "k"},
            first_token_timeout=5.0,
            idle_timeout=5.0,
            total_timeout=10.0,
            read_timeout=5.0,
        )
        with mal.Client(config) as client:
            before = watch_threads()
            with client.stream("Hi", model="openai/gpt-4o-mini") as stream:
                text = "".join(chunk.text for chunk in stream)
            during = watch_threads()[len(before) :]
    assert text == "one two three four"
    assert during == []


def test_the_watch_sees_a_thread_started_here(
    watch_threads: Callable[[], list[threading.Thread]],
) -> None:
    # The check above can fail: a thread the reading thread starts is seen.
    worker = threading.Thread(target=lambda: None)
    worker.start()
    worker.join()
    assert watch_threads() == [worker]
