"""Fault injection against the local server, for each provider and API: a
connection dropped at every byte offset, garbage, oversized events, invalid
UTF-8, an HTML page, and transient failures that retries must hide."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, PROVIDERS, Api, make_config
from ._support import SHORT_TEXT, SHORT_TOKENS, Outcome, for_each, raw_body, run

pytestmark = pytest.mark.anyio

#: Three tokens: a short stream, so that a loop over every byte offset is quick.
DROP_TOKENS = ["The", " sky", " blue."]
DROP_TEXT = "".join(DROP_TOKENS)
#: Ollama's timings (nanoseconds) make its body length vary by a few bytes
#: from one response to the next.
LENGTH_SLACK = {"ollama": 12, "openai": 0, "anthropic": 0}
#: Requests in flight at once in the byte-offset loops.
WORKERS = 4


def check_prefix_outcome(outcome: Outcome, full: str, where: str) -> None:
    """Either the full text, or an error carrying a prefix of it; never a wrong
    text, and the caller saw no more than the error carries."""
    stream = outcome.stream
    assert stream.text == outcome.text, where
    error = outcome.error
    if error is None:
        assert outcome.text == full, f"{where}: wrong text {outcome.text!r}"
        assert stream.raw.finish_reason == "stop", where
        return
    assert full.startswith(error.partial_text), f"{where}: {error.partial_text!r} {error!r}"
    assert error.partial_text.startswith(outcome.text), f"{where}: {outcome.text!r} {error!r}"


# --------------------------------------------------------------------------- (a) drops


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_drop_at_every_byte_offset(api: Api, server: MockServer, provider: str) -> None:
    config = make_config(server, max_retries=0, read_timeout=2.0)
    model = MODELS[provider]
    slack = LENGTH_SLACK[provider]
    async with api.client(config) as client:
        server.add(Reply(tokens=DROP_TOKENS))
        clean = await run(client, model)
        assert clean.error is None, clean.error
        assert clean.text == DROP_TEXT
        length = clean.stream.stats.bytes
        assert length > 100
        last = length + slack
        results: dict[int, str] = {}
        with contextlib.ExitStack() as stack:
            # One server per worker, each with its own queue of replies: the
            # offsets run a few at a time, each on one request of one client.
            servers = [server] + [stack.enter_context(MockServer()) for _ in range(WORKERS - 1)]
            server.reset()

            async def one(worker: int, offset: int) -> None:
                where = f"drop_after={offset} of {length}"
                target = servers[worker]
                target.add(Reply(tokens=DROP_TOKENS, drop_after=offset))
                start = time.monotonic()
                # Anything but a mal.MALError fails the test here.
                outcome = await run(client, model, base_url=target.url(provider))
                assert time.monotonic() - start < 1.5, f"{where}: took too long"
                check_prefix_outcome(outcome, DROP_TEXT, where)
                error = outcome.error
                if offset < length - 1 - slack:
                    # The end marker cannot have come whole: the body was cut.
                    assert error is not None, f"{where}: a cut body passed for a whole one"
                if error is not None:
                    assert isinstance(error, mal.IncompleteStreamError), f"{where}: {error!r}"
                    assert error.retryable
                results[offset] = type(error).__name__ if error is not None else "ok"

            await for_each(api, range(last + 1), one, workers=WORKERS)
            assert sum(len(s.requests) for s in servers) == last + 1
            assert all(s.pending == 0 for s in servers)
        assert sorted(results) == list(range(last + 1))
        errors = [name for name in results.values() if name != "ok"]
        assert len(errors) >= length - 1 - slack
        assert client.metrics.requests == last + 2


async def test_drop_at_every_byte_offset_of_a_non_streamed_body(
    api: Api, server: MockServer
) -> None:
    config = make_config(server, max_retries=0, read_timeout=2.0)
    async with api.client(config) as client:
        for provider in PROVIDERS:
            model = MODELS[provider]
            body = raw_body(server, provider, Reply(tokens=DROP_TOKENS), stream=False)
            for offset in range(0, len(body) - LENGTH_SLACK[provider], 5):
                where = f"{provider}: drop_after={offset} of {len(body)}"
                server.add(Reply(tokens=DROP_TOKENS, drop_after=offset))
                try:
                    text = await client.generate("Hi", model=model, stream=False)
                except mal.MALError as exc:
                    assert isinstance(exc, mal.IncompleteStreamError), f"{where}: {exc!r}"
                    assert exc.partial_text == "", where
                else:
                    raise AssertionError(f"{where}: a cut body gave {text!r}")
            server.add(Reply(tokens=DROP_TOKENS))
            assert await client.generate("Hi", model=model, stream=False) == DROP_TEXT


# --------------------------------------------------------------------------- (b) bad bodies


async def test_garbage_bytes(api: Api, server: MockServer) -> None:
    async with api.client(make_config(server, max_retries=0)) as client:
        for provider in PROVIDERS:
            server.add(Reply(raw=b"\x00\xffnot json\n"))
            outcome = await run(client, MODELS[provider])
            assert isinstance(outcome.error, mal.DecodeError), f"{provider}: {outcome.error!r}"
            assert outcome.error.partial_text == "", provider
            assert not outcome.error.retryable, provider
            assert outcome.chunks == [], provider


async def test_oversized_event(api: Api, server: MockServer) -> None:
    config = make_config(server, max_retries=0, max_event_size=1000)
    async with api.client(config) as client:
        for provider in PROVIDERS:
            server.add(Reply(tokens=["ok", " " + "x" * 2000, " more"], chunk_delay=0.01))
            outcome = await run(client, MODELS[provider])
            assert isinstance(outcome.error, mal.DecodeError), f"{provider}: {outcome.error!r}"
            assert "1000" in str(outcome.error), provider
            assert outcome.error.partial_text == "ok", provider
            assert outcome.text == "ok", provider
            # The same client reads normal events.
            server.add(Reply(tokens=SHORT_TOKENS))
            assert (await run(client, MODELS[provider])).text == SHORT_TEXT, provider


def _invalid_utf8_body(server: MockServer, provider: str) -> bytes:
    body = raw_body(server, provider, Reply(tokens=["Fine", " Zebra", " end"]))
    assert body.count(b"Zebra") == 1
    return body.replace(b"Zebra", b"Ze\xff\xfera")


async def test_invalid_utf8_in_a_token_event_by_event(api: Api, server: MockServer) -> None:
    async with api.client(make_config(server, max_retries=0)) as client:
        for provider in PROVIDERS:
            body = _invalid_utf8_body(server, provider)
            separator = b"\n" if provider == "ollama" else b"\n\n"
            frames = [frame + separator for frame in body.split(separator) if frame]
            bad = next(i for i, frame in enumerate(frames) if b"\xff" in frame)
            # The bad event comes 0.1 s after the others, in a read of its own.
            server.add(Reply(raw_chunks=frames, stall_after=bad, stall=0.1))
            outcome = await run(client, MODELS[provider])
            assert isinstance(outcome.error, mal.DecodeError), f"{provider}: {outcome.error!r}"
            assert "UTF-8" in str(outcome.error), provider
            assert outcome.error.partial_text == "Fine", provider
            assert outcome.text == "Fine", provider


async def test_invalid_utf8_in_a_token_in_one_read(api: Api, server: MockServer) -> None:
    # The same bytes in one piece: the events before the bad bytes are whole
    # and valid, so their text must not be lost either (nor depend on how the
    # bytes happened to be split into reads).
    async with api.client(make_config(server, max_retries=0)) as client:
        for provider in ("ollama", "openai"):  # the ndjson and the SSE parser
            server.add(Reply(raw=_invalid_utf8_body(server, provider)))
            outcome = await run(client, MODELS[provider])
            assert isinstance(outcome.error, mal.DecodeError), f"{provider}: {outcome.error!r}"
            assert outcome.error.partial_text == "Fine", provider
            assert outcome.stream.text == outcome.text, provider


async def test_html_page_with_status_200(api: Api, server: MockServer) -> None:
    page = b"<html>\n<head><title>Bad gateway</title></head>\n<body>Try later</body>\n</html>\n"
    async with api.client(make_config(server, max_retries=0)) as client:
        for provider in PROVIDERS:
            server.add(Reply(raw=page, content_type="text/html"))
            outcome = await run(client, MODELS[provider])
            error = outcome.error
            # Ollama's ndjson cannot read it; an SSE parser skips lines that are
            # not fields (WHATWG), and then the end marker is missing.
            expected: Any = mal.DecodeError
            if provider != "ollama":
                expected = (mal.DecodeError, mal.IncompleteStreamError)
            assert isinstance(error, expected), f"{provider}: {error!r}"
            assert error.partial_text == "", provider
            assert outcome.chunks == [], provider

            server.add(Reply(raw=page, content_type="text/html"))
            with pytest.raises(mal.DecodeError) as info:
                await client.generate("Hi", model=MODELS[provider], stream=False)
            assert info.value.partial_text == "", provider


# --------------------------------------------------------------------------- (c) transient failures


IN_BAND = {
    "ollama": Reply(status=529),  # Ollama has no transient in-band error: a 529 instead
    "openai": Reply(tokens=SHORT_TOKENS, error_after=0, error_type="server_error"),
    "anthropic": Reply(tokens=SHORT_TOKENS, error_after=0, error_type="overloaded_error"),
}


async def test_transient_failures_give_the_clean_text(api: Api, server: MockServer) -> None:
    async with api.client(make_config(server)) as client:
        for provider in PROVIDERS:
            model = MODELS[provider]
            server.add(Reply(tokens=SHORT_TOKENS))
            clean = await run(client, model)
            assert clean.error is None, f"{provider}: {clean.error!r}"
            assert clean.text == SHORT_TEXT
            faults = {
                "rate limit": [Reply(status=429, headers={"Retry-After": "0"})],
                "503 twice": [Reply(status=503), Reply(status=503)],
                "in-band": [IN_BAND[provider]],
            }
            for name, replies in faults.items():
                where = f"{provider}, {name}"
                server.reset()
                server.add(*replies, Reply(tokens=SHORT_TOKENS))
                outcome = await run(client, model)
                assert outcome.error is None, f"{where}: {outcome.error!r}"
                assert outcome.text == clean.text, where
                assert [c.text for c in outcome.chunks] == [c.text for c in clean.chunks], where
                assert outcome.stream.stats.retries == len(replies), where
                assert len(server.requests) == 1 + len(replies), where
        assert client.metrics.retries == 4 * len(PROVIDERS)
