"""Recorded response bodies replayed through the provider decoders.

Each file under ``tests/data/<provider>/`` is a body as the provider sends it;
``<stem>.expected.json`` next to it says what the decoder must make of it.
Every body is replayed the ways h11's tests replay theirs: whole, one byte at
a time, and cut at random points (plus cuts forced inside a multi-byte UTF-8
character, a CRLF pair, a ``\\uXXXX`` escape and a surrogate pair). Every way
must give the same chunks, the same error and the same decoder end state.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mal
from mal.protocols import get_protocol

DATA = Path(__file__).resolve().parent.parent / "data"
BODY_SUFFIXES = (".ndjson", ".sse", ".json")

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _bodies() -> list[str]:
    names = []
    for path in sorted(DATA.rglob("*")):
        is_body = path.is_file() and path.suffix in BODY_SUFFIXES
        if is_body and not path.name.endswith(".expected.json"):
            names.append(path.relative_to(DATA).as_posix())
    return names


CASES = _bodies()


@dataclass(frozen=True)
class Case:
    name: str
    provider: str
    body: bytes
    expected: dict[str, Any]


@functools.cache
def load(name: str) -> Case:
    path = DATA / name
    stem = path.name.rsplit(".", 1)[0]
    expected = json.loads(path.with_name(stem + ".expected.json").read_text("utf-8"))
    return Case(name, path.parent.name, path.read_bytes(), expected)


@dataclass
class Replay:
    chunks: list[mal.Chunk]
    error: mal.MALError | None
    raised_in: str | None  # "feed" or "flush"
    state: tuple[Any, ...]


def replay(case: Case, pieces: list[bytes]) -> Replay:
    decoder = get_protocol(case.provider).decoder(case.expected["stream"])
    chunks: list[mal.Chunk] = []
    error: mal.MALError | None = None
    raised_in = None
    try:
        raised_in = "feed"
        for piece in pieces:
            chunks.extend(decoder.feed(piece))
        raised_in = "flush"
        chunks.extend(decoder.flush())
        raised_in = None
    except mal.MALError as exc:
        error = exc
    chunks, tool_calls = same_ids(case.body, chunks, decoder.tool_calls)
    state = (
        decoder.done,
        decoder.finish_reason,
        decoder.raw_finish_reason,
        decoder.usage,
        decoder.text,
        tuple(tool_calls),
        decoder.message().blocks if error is None else None,
    )
    return Replay(chunks, error, raised_in, state)


def same_ids(
    body: bytes, chunks: list[mal.Chunk], calls: list[mal.ToolCall]
) -> tuple[list[mal.Chunk], list[mal.ToolCall]]:
    """Put a stand-in for each id mal made up (a random ``call_`` + 24 hex).

    The ids a body carries stay as they are; each synthesized one becomes
    ``synthesized-N`` so that two replays of one body compare equal.
    """
    names: dict[str, str] = {}

    def name(call_id: str) -> str:
        if call_id.encode() in body:
            return call_id
        assert re.fullmatch(r"call_[0-9a-f]{24}", call_id), call_id
        return names.setdefault(call_id, f"synthesized-{len(names)}")

    def delta(d: mal.ToolCallDelta) -> mal.ToolCallDelta:
        return d if d.id is None else msgspec.structs.replace(d, id=name(d.id))

    chunks = [
        msgspec.structs.replace(c, tool_calls=tuple(delta(d) for d in c.tool_calls))
        if c.tool_calls
        else c
        for c in chunks
    ]
    calls = [msgspec.structs.replace(c, id=name(c.id)) for c in calls]
    return chunks, calls


def error_key(exc: mal.MALError | None) -> tuple[Any, ...] | None:
    if exc is None:
        return None
    return (
        type(exc),
        str(exc),
        getattr(exc, "error_type", None),
        exc.retryable,
        exc.partial_text,
    )


def pieces_at(body: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(points)]


def bytewise(body: bytes) -> list[bytes]:
    return [body[i : i + 1] for i in range(len(body))]


@functools.cache
def reference(name: str) -> Replay:
    """One byte at a time: every chunk is handed out before a later failure."""
    case = load(name)
    return replay(case, bytewise(case.body))


def assert_same(case: Case, got: Replay) -> None:
    ref = reference(case.name)
    assert error_key(got.error) == error_key(ref.error)
    assert got.raised_in == ref.raised_in
    assert got.state == ref.state
    if got.raised_in == "feed":
        # Chunks completed by the feed that raised are not returned (their text
        # is in partial_text): a failing feed may hand out fewer chunks.
        assert got.chunks == ref.chunks[: len(got.chunks)]
        assert ref.error is not None
        assert ref.error.partial_text.startswith("".join(c.text for c in got.chunks))
    else:
        assert got.chunks == ref.chunks


# Forced cut points ---------------------------------------------------------


def utf8_cuts(body: bytes) -> list[int]:
    """Every point inside a multi-byte UTF-8 character."""
    return [i for i, byte in enumerate(body) if 0x80 <= byte <= 0xBF]


def crlf_cuts(body: bytes) -> list[int]:
    return [m.start() + 1 for m in re.finditer(rb"\r\n", body)]


def escape_cuts(body: bytes) -> list[int]:
    """Every point inside a ``\\uXXXX`` escape (after the backslash)."""
    return [m.start() + k for m in re.finditer(rb"\\u[0-9a-fA-F]{4}", body) for k in range(1, 6)]


def surrogate_cuts(body: bytes) -> list[int]:
    """Between the two halves of an escaped surrogate pair, and inside each."""
    pattern = rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    return [m.start() + k for m in re.finditer(pattern, body) for k in range(1, 12)]


FORCED = {
    "utf8": utf8_cuts,
    "crlf": crlf_cuts,
    "escape": escape_cuts,
    "surrogate": surrogate_cuts,
}


def all_forced(body: bytes) -> list[int]:
    return sorted({i for cuts in FORCED.values() for i in cuts(body)})


FORCED_CASES = [
    (name, kind) for name in CASES for kind, cuts in FORCED.items() if cuts(load(name).body)
]


# The corpus ----------------------------------------------------------------

REQUIRED = [
    "ollama/generate.ndjson",
    "ollama/chat.ndjson",
    "ollama/chat_thinking.ndjson",
    "ollama/generate_crlf.ndjson",
    "ollama/error_midstream.ndjson",
    "ollama/truncated.ndjson",
    "ollama/nonstream.json",
    "openai/stream.sse",
    "openai/stream_reasoning_content.sse",
    "openai/stream_reasoning.sse",
    "openai/stream_crlf.sse",
    "openai/stream_length.sse",
    "openai/error_inband.sse",
    "openai/truncated.sse",
    "openai/nonstream.json",
    "anthropic/stream.sse",
    "anthropic/stream_thinking.sse",
    "anthropic/stream_tool_use.sse",
    "anthropic/error_overloaded.sse",
    "anthropic/truncated.sse",
    "anthropic/nonstream.json",
    "anthropic/unknown_event.sse",
    "gemini/stream_thinking.sse",
    "gemini/stream_signature.sse",
    "gemini/stream_tool_call.sse",
    "gemini/error_inband.sse",
    "gemini/truncated.sse",
    "gemini/nonstream.json",
    "gemini/nonstream_tool_call.json",
    "gemini/prompt_blocked.json",
]


def test_corpus_has_every_case() -> None:
    assert set(REQUIRED) <= set(CASES)
    for name in CASES:
        expected = load(name).expected
        assert (
            {
                "text",
                "reasoning",
                "finish_reason",
                "raw_finish_reason",
                "usage",
                "stream",
                "error",
            }
            <= set(expected)
            <= {
                "text",
                "reasoning",
                "finish_reason",
                "raw_finish_reason",
                "usage",
                "stream",
                "error",
                "source",
                "tool_calls",
                "blocks",
            }
        ), name


def test_corpus_exercises_every_forced_cut() -> None:
    kinds = {kind for _, kind in FORCED_CASES}
    assert kinds == set(FORCED)


def test_corpus_is_byte_exact() -> None:
    # SSE events end with a blank line; the CRLF cases use CRLF and nothing else.
    for name in CASES:
        body = load(name).body
        if "crlf" in name:
            assert b"\r\n" in body
            assert body.replace(b"\r\n", b"").count(b"\n") == 0, name
            assert body.replace(b"\r\n", b"").count(b"\r") == 0, name
        else:
            assert b"\r" not in body, name
        if name.endswith(".sse") and "truncated" not in name:
            assert body.endswith(b"\r\n\r\n" if "crlf" in name else b"\n\n"), name


# Replays -------------------------------------------------------------------


def check_tool_calls(got: Replay, expected: list[dict[str, Any]]) -> None:
    """The assembled calls, and the deltas that streamed them.

    Each call's deltas share mal's ordinal ``index`` (0, 1, 2... in order of
    first appearance); ``id`` and ``name`` come once, on the call's first
    delta; the argument pieces join to the call's ``arguments_json``.
    """
    calls = list(got.state[5])
    assert len(calls) == len(expected)
    deltas: dict[int, list[mal.ToolCallDelta]] = {}
    for chunk in got.chunks:
        for delta in chunk.tool_calls:
            deltas.setdefault(delta.index, []).append(delta)
    if got.chunks and got.state[0]:
        assert sorted(deltas) == list(range(len(expected)))
    for index, (call, want) in enumerate(zip(calls, expected, strict=True)):
        assert call.id == (want["id"] or f"synthesized-{index}")
        assert call.name == want["name"]
        assert call.arguments == want["arguments"]
        assert call.arguments_json == want["arguments_json"]
        assert call.complete is want["complete"]
        pieces = deltas.get(index, [])
        if not pieces:
            continue
        assert [d.id for d in pieces if d.id is not None] == [call.id]
        assert [d.name for d in pieces if d.name is not None] == [call.name]
        assert pieces[0].name == call.name
        joined = "".join(d.arguments for d in pieces)
        assert joined == call.arguments_json
    assert len({call.id for call in calls}) == len(calls)


@pytest.mark.parametrize("name", CASES)
def test_bytewise_gives_expected_result(name: str) -> None:
    case = load(name)
    expected = case.expected
    got = reference(name)

    texts = "".join(c.text for c in got.chunks)
    assert texts == expected["text"]
    assert "".join(c.reasoning for c in got.chunks) == expected["reasoning"]
    done, finish, raw_finish, usage, text, _calls, blocks = got.state
    assert text == expected["text"]
    assert finish == expected["finish_reason"]
    assert raw_finish == expected["raw_finish_reason"]
    if expected["usage"] is None:
        assert usage is None
    else:
        assert usage == mal.Usage(**expected["usage"])

    # The stream's usage is the latest value reported for each field.
    merged: dict[str, int] = {}
    for chunk in got.chunks:
        if chunk.usage is not None:
            for field in mal.Usage.__struct_fields__:
                value = getattr(chunk.usage, field)
                if value is not None:
                    merged[field] = value
    assert (merged or None) == expected["usage"]

    # finish_reason is on exactly one chunk: the one carrying the stop reason.
    finishes = [c.finish_reason for c in got.chunks if c.finish_reason is not None]
    if expected["finish_reason"] is None:
        assert finishes == []
    else:
        assert finishes == [expected["finish_reason"]]

    check_tool_calls(got, expected.get("tool_calls", []))
    assert blocks == expected.get("blocks")

    error = expected["error"]
    if error is None:
        assert got.error is None
        assert done is True
    else:
        assert got.error is not None
        assert type(got.error).__name__ == error["class"]
        assert isinstance(got.error, mal.StreamError)
        assert got.error.error_type == error["error_type"]
        assert got.error.retryable is error["retryable"]
        assert got.error.partial_text == error["partial_text"]
        assert done is False


@pytest.mark.parametrize("name", CASES)
def test_whole_body_matches_bytewise(name: str) -> None:
    case = load(name)
    assert_same(case, replay(case, [case.body]))


@pytest.mark.parametrize("name", CASES)
def test_whole_body_then_empty_feeds(name: str) -> None:
    case = load(name)
    assert_same(case, replay(case, [b"", case.body, b"", b""]))


@pytest.mark.parametrize(("name", "kind"), FORCED_CASES)
def test_forced_cuts_one_at_a_time(name: str, kind: str) -> None:
    case = load(name)
    cuts = FORCED[kind](case.body)
    assert cuts
    for cut in cuts:
        assert_same(case, replay(case, pieces_at(case.body, [cut])))


@pytest.mark.parametrize("name", CASES)
def test_forced_cuts_all_at_once(name: str) -> None:
    case = load(name)
    cuts = all_forced(case.body)
    assert_same(case, replay(case, pieces_at(case.body, cuts)))


def event_ends(body: bytes) -> list[int]:
    """Where each SSE event or ndjson line ends: the pieces of a paced stream."""
    end = next((end for end in (b"\r\n\r\n", b"\n\n") if end in body), b"\n")
    return [m.end() for m in re.finditer(re.escape(end), body)]


@pytest.mark.parametrize("name", CASES)
def test_one_event_per_piece(name: str) -> None:
    # The shape the decoders' one-frame fast paths take.
    case = load(name)
    assert_same(case, replay(case, pieces_at(case.body, event_ends(case.body))))


@pytest.mark.parametrize("name", CASES)
def test_two_events_per_piece(name: str) -> None:
    case = load(name)
    for start in (0, 1):
        cuts = event_ends(case.body)[start::2]
        assert_same(case, replay(case, pieces_at(case.body, cuts)))


@pytest.mark.parametrize("name", CASES)
def test_every_two_byte_piece(name: str) -> None:
    # Pieces of 2 bytes, starting at both parities: every pair of neighbours
    # is together in one feed and apart in the other.
    case = load(name)
    body = case.body
    for start in (1, 2):
        cuts = list(range(start, len(body), 2))
        assert_same(case, replay(case, pieces_at(body, cuts)))


@pytest.mark.parametrize("name", CASES)
def test_every_two_piece_cut(name: str) -> None:
    # The body cut in two at every offset: each cut falls once inside every
    # event, escape, character and line end.
    case = load(name)
    body = case.body
    for cut in range(1, len(body)):
        assert_same(case, replay(case, [body[:cut], body[cut:]]))


@pytest.mark.parametrize("name", CASES)
@SETTINGS
@given(data=st.data())
def test_random_cuts(name: str, data: st.DataObject) -> None:
    case = load(name)
    body = case.body
    special = all_forced(body)
    point = st.integers(0, len(body))
    if special:
        point = st.one_of(point, st.sampled_from(special))
    cuts = data.draw(st.lists(point, max_size=40), label="cuts")
    assert_same(case, replay(case, pieces_at(body, cuts)))


# End markers ---------------------------------------------------------------

TRAILERS = {
    "ollama": b'{"model":"x","created_at":"2025-01-01T00:00:00Z","response":"LATE","done":false}\n',
    "openai": b'data: {"choices":[{"index":0,"delta":{"content":"LATE"}}]}\n\n',
    "openai-responses": b"event: response.output_text.delta\n"
    b'data: {"type":"response.output_text.delta","output_index":0,"delta":"LATE"}\n\n',
    "anthropic": b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"LATE"}}\n\n',
    "gemini": b'data: {"candidates": [{"content": {"parts": [{"text": "LATE"}],'
    b'"role": "model"},"index": 0}]}\n\n',
}

COMPLETE_STREAMS = [
    name for name in CASES if load(name).expected["error"] is None and load(name).expected["stream"]
]


@pytest.mark.parametrize("name", COMPLETE_STREAMS)
def test_nothing_counts_after_the_end_marker(name: str) -> None:
    case = load(name)
    trailer = TRAILERS[case.provider]
    if case.body.endswith(b"\r\n"):
        trailer = trailer.replace(b"\n", b"\r\n")
    for pieces in ([case.body + trailer], [case.body, trailer], bytewise(case.body + trailer)):
        got = replay(case, pieces)
        ref = reference(name)
        assert got.error is None
        assert got.chunks == ref.chunks
        assert got.state == ref.state
        assert "LATE" not in got.state[4]


@pytest.mark.parametrize("name", COMPLETE_STREAMS)
def test_body_cut_anywhere_before_the_end_marker_is_incomplete(name: str) -> None:
    # Cut just before the end marker's line: the decoder must say so.
    case = load(name)
    marker = {
        "ollama": b'"done":true',
        "openai": b"data: [DONE]",
        "anthropic": b"event: message_stop",
        # The Responses API ends with one of its terminal events.
        "openai-responses": b"event: response.",
        # Gemini has no end marker: the event with finishReason is the last.
        "gemini": b'"finishReason"',
    }[case.provider]
    cut = case.body.rfind(marker)
    if cut < 0:  # the shapes without "event:" lines or the space after "data:"
        alternative = {"openai": b"data:[DONE]", "anthropic": b'data: {"type":"message_stop"'}
        cut = case.body.rfind(alternative.get(case.provider, marker))
    assert cut > 0
    if case.provider == "ollama":
        cut = case.body.rfind(b"\n", 0, cut) + 1
    got = replay(case, [case.body[:cut]])
    assert isinstance(got.error, mal.IncompleteStreamError)
    assert got.error.retryable is True
    assert got.raised_in == "flush"
    assert got.error.partial_text == got.state[4]
    assert got.error.partial_text == "".join(c.text for c in got.chunks)
    assert case.expected["text"].startswith(got.error.partial_text)
    assert got.state[0] is False


@pytest.mark.parametrize("name", [n for n in CASES if not load(n).expected["stream"]])
def test_empty_non_streamed_body_is_incomplete(name: str) -> None:
    case = load(name)
    got = replay(case, [b""])
    assert isinstance(got.error, mal.IncompleteStreamError)
    assert got.chunks == []
