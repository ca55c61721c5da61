"""What a decoder hands back when a body fails part-way: every chunk decoded
before the failure comes first (on the error, as ``exc.chunks``, when the
failure is in the same piece), then the error, whose ``partial_text`` is
exactly the text of those chunks; and which error it is.

Each body is fed whole, one byte at a time, cut at the failure's boundary, and
cut at every single offset: the caller must see the same thing every time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

import mal
from mal.protocols import get_protocol
from mal.protocols._base import ResponseDecoder


def drive(decoder: ResponseDecoder, pieces: list[bytes]) -> tuple[list[mal.Chunk], Exception]:
    """Feed ``pieces`` as a driver does: the chunks of each piece, then, when a
    piece fails, the chunks the error carries, and the error."""
    seen: list[mal.Chunk] = []
    try:
        for piece in pieces:
            seen.extend(decoder.feed(piece))
        seen.extend(decoder.flush())
    except mal.StreamError as exc:
        seen.extend(exc.chunks)
        return seen, exc
    raise AssertionError("the body did not fail")


def splits(body: bytes, boundary: bytes) -> Iterator[list[bytes]]:
    yield [body]
    yield [body[i : i + 1] for i in range(len(body))]
    at = body.index(boundary)
    yield [body[:at], body[at:]]
    yield [body[: at + 1], body[at + 1 :]]
    for i in range(1, len(body)):
        yield [body[:i], body[i:]]


def sse(*datas: str, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return b"".join(f"{head}data: {d}\n\n".encode() for d in datas)


def anthropic_delta(text: str) -> bytes:
    delta = {"type": "text_delta", "text": text}
    delta = {"type": "content_block_delta", "index": 0, "delta": delta}
    return sse(json.dumps(delta), event="content_block_delta")


ANTHROPIC_START = sse(
    '{"type":"message_start","message":{"id":"m","usage":{"input_tokens":3,"output_tokens":1}}}',
    event="message_start",
) + sse(
    '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
    event="content_block_start",
)
ANTHROPIC_ERROR = sse(
    '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', event="error"
)


def openai_delta(text: str) -> bytes:
    return sse(json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}))


def ollama_line(text: str) -> bytes:
    return b'{"model":"x","response":"%s","done":false}\n' % text.encode()


OLLAMA_DONE = b'{"model":"x","response":"","done":true,"done_reason":"stop"}\n'

TEXTS = ["Hel", "lo", " wor", "ld"]

CASES = {
    # In-stream errors after text.
    "anthropic-error-event": (
        "anthropic",
        ANTHROPIC_START + b"".join(anthropic_delta(t) for t in TEXTS) + ANTHROPIC_ERROR,
        b"event: error",
        mal.StreamError,
        "overloaded_error",
    ),
    "openai-error-data": (
        "openai",
        b"".join(openai_delta(t) for t in TEXTS)
        + sse('{"error":{"message":"The server had an error","type":"server_error"}}'),
        b'data: {"error"',
        mal.StreamError,
        "server_error",
    ),
    "ollama-error-line": (
        "ollama",
        b"".join(ollama_line(t) for t in TEXTS) + b'{"error":"model runner crashed"}\n',
        b'{"error"',
        mal.StreamError,
        None,
    ),
    # A complete line or event that is not valid JSON, with more after it.
    "ollama-truncated-line": (
        "ollama",
        b"".join(ollama_line(t) for t in TEXTS)
        + b'{"model":"x","response":"oops"\n'
        + ollama_line("more")
        + OLLAMA_DONE,
        b'"oops"',
        mal.DecodeError,
        None,
    ),
    "openai-invalid-event": (
        "openai",
        b"".join(openai_delta(t) for t in TEXTS)
        + sse('{"choices":[{"index":0,"delta":{"content":"x"')
        + openai_delta("more")
        + b"data: [DONE]\n\n",
        b'"x"',
        mal.DecodeError,
        None,
    ),
    "anthropic-invalid-event": (
        "anthropic",
        ANTHROPIC_START
        + b"".join(anthropic_delta(t) for t in TEXTS)
        + sse('{"type":"content_block_delta","index":0,"delta":{"type":"text_del', event="ping")
        + sse('{"type":"content_block_delta","delta":{"text":', event="content_block_delta")
        + anthropic_delta("more"),
        b'{"text":',
        mal.DecodeError,
        None,
    ),
    # Bytes that are not UTF-8 after text.
    "ollama-bad-utf8": (
        "ollama",
        b"".join(ollama_line(t) for t in TEXTS) + b'{"response":"\xff"}\n',
        b"\xff",
        mal.DecodeError,
        None,
    ),
    "openai-bad-utf8": (
        "openai",
        b"".join(openai_delta(t) for t in TEXTS) + b"data: \xfe\n\n",
        b"\xfe",
        mal.DecodeError,
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_chunks_before_a_failure_come_first(case: str) -> None:
    provider, body, boundary, error_type, provider_error = CASES[case]
    # The error name inside the stream is the provider's.
    outcomes = set()
    for pieces in splits(body, boundary):
        decoder = get_protocol(provider).decoder(True)
        seen, error = drive(decoder, pieces)
        assert type(error) is error_type, (pieces, error)
        assert isinstance(error, mal.StreamError)
        text = "".join(chunk.text for chunk in seen)
        # What the caller saw is exactly partial_text, and it is all the text
        # before the failure, whatever the cut.
        assert text == error.partial_text == "".join(TEXTS), pieces
        assert error.error_type == provider_error
        outcomes.add((type(error), str(error)))
    assert len(outcomes) == 1, outcomes


def test_a_malformed_complete_line_is_not_retryable() -> None:
    _, body, _, _, _ = CASES["ollama-truncated-line"]
    _, error = drive(get_protocol("ollama").decoder(True), [body])
    assert isinstance(error, mal.DecodeError)
    assert not error.retryable
    # The message names the line.
    assert "in the line" in str(error) and '"oops"' in str(error)


def test_a_malformed_event_names_its_data() -> None:
    _, body, _, _, _ = CASES["openai-invalid-event"]
    _, error = drive(get_protocol("openai").decoder(True), [body])
    assert isinstance(error, mal.DecodeError)
    assert "in the event data" in str(error)


@pytest.mark.parametrize("cut", [1, 10, 30])
def test_a_body_cut_inside_its_last_line_is_incomplete(cut: int) -> None:
    # No line end after the last JSON: the body ended early, which a retry may mend.
    last = b'{"model":"x","response":"tail","done":false}'
    body = b"".join(ollama_line(t) for t in TEXTS) + last[:cut]
    for pieces in ([body], [body[i : i + 1] for i in range(len(body))]):
        seen, error = drive(get_protocol("ollama").decoder(True), pieces)
        assert type(error) is mal.IncompleteStreamError
        assert error.retryable
        assert "".join(c.text for c in seen) == error.partial_text == "".join(TEXTS)


def test_a_last_line_that_decodes_but_has_no_done_keeps_its_chunk() -> None:
    # The chunks that flush decodes reach the caller before IncompleteStreamError.
    body = b"".join(ollama_line(t) for t in TEXTS) + ollama_line("end").rstrip(b"\n")
    seen, error = drive(get_protocol("ollama").decoder(True), [body])
    assert type(error) is mal.IncompleteStreamError
    assert "".join(c.text for c in seen) == error.partial_text == "".join(TEXTS) + "end"


def test_a_whole_body_cut_short_is_incomplete() -> None:
    decoder = get_protocol("openai").decoder(False)
    decoder.feed(b'{"choices":[{"index":0,"message":{"content":"Hi')
    with pytest.raises(mal.IncompleteStreamError):
        decoder.flush()


@pytest.mark.parametrize(
    ("provider", "content_type", "stream", "kind"),
    [
        ("openai", "text/event-stream; charset=utf-8", True, True),
        ("openai", "application/json", True, False),
        ("anthropic", "application/json; charset=utf-8", True, False),
        ("anthropic", "text/event-stream", False, True),
        ("ollama", "application/x-ndjson", True, True),
        ("ollama", "application/json; charset=utf-8", True, False),
        ("openai", "", True, True),
        ("openai", "text/plain", False, False),
        ("openai", "text/html; charset=utf-8", True, None),
        ("anthropic", "application/xml", False, None),
        ("ollama", "text/event-stream", True, None),
        ("openai", "application/problem+json", True, False),
    ],
)
def test_body_kind(provider: str, content_type: str, stream: bool, kind: bool | None) -> None:
    assert get_protocol(provider).body_kind(content_type, stream) is kind
