"""The decoders' one-frame fast paths keep everything a frame carries.

The recorded corpus (``test_recorded.py``) checks that every split of a body
gives the same chunks; these check frames whose shape is close to the hot
path's but that carry one thing more, which the fast path must not drop.
"""

from __future__ import annotations

import json

import pytest

import mal
from mal.protocols import get_protocol
from mal.protocols._base import ResponseDecoder
from mal.protocols.gemini import GeminiStreamDecoder


def openai_event(delta: dict[str, object]) -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


OPENAI_END = (
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
)


def feed(provider: str, pieces: list[bytes]) -> list[mal.Chunk]:
    decoder = get_protocol(provider).decoder(True)
    chunks: list[mal.Chunk] = []
    for piece in pieces:
        chunks += decoder.feed(piece)
    return chunks + decoder.flush()


@pytest.mark.parametrize("whole", [False, True], ids=["event per piece", "whole body"])
def test_openai_text_beside_a_refusal_keeps_both(whole: bool) -> None:
    pieces = [
        openai_event({"content": "I can't"}),
        openai_event({"content": " do", "refusal": "No."}),
    ]
    pieces.append(OPENAI_END)
    chunks = feed("openai", [b"".join(pieces)] if whole else pieces)
    assert "".join(c.text for c in chunks) == "I can't do"
    assert "".join(c.refusal for c in chunks) == "No."


# Gemini: after a plain text part, a response of one more plain text part
# takes a fast path, both when a piece is one whole event (a paced stream) and
# when the framing object cuts the events out of a bigger piece. Each case below
# follows such a part with responses that carry one thing more, fed one event
# per piece and as one body, and must give the same chunks and the same turn
# as the general path alone.


def gemini_event(parts: list[dict[str, object]], **more: object) -> bytes:
    candidate: dict[str, object] = {"content": {"role": "model", "parts": parts}}
    finish = more.pop("finish", None)
    if finish is not None:
        candidate["finishReason"] = finish
    body: dict[str, object] = {"candidates": [candidate], **more}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def gemini_text(text: str, **more: object) -> bytes:
    return gemini_event([{"text": text}], **more)


GEMINI_END = gemini_event(
    [{"text": ""}],
    finish="STOP",
    usageMetadata={"promptTokenCount": 3, "candidatesTokenCount": 5, "totalTokenCount": 8},
)

GEMINI_CASES = {
    "a signature closes the run": [
        gemini_text("Hel"),
        gemini_text("lo", usageMetadata={"trafficType": "ON_DEMAND"}),
        gemini_event([{"text": "!", "thoughtSignature": "c2ln"}]),
        gemini_text(" More"),
        gemini_text(" text"),
        GEMINI_END,
    ],
    "a signature on an empty last piece": [
        gemini_text("Hel"),
        gemini_text("lo"),
        gemini_event([{"text": "", "thoughtSignature": "c2ln"}], finish="STOP"),
    ],
    "a thought after text": [
        gemini_text("A"),
        gemini_text("B"),
        gemini_event([{"text": "hmm", "thought": True}]),
        gemini_text("C"),
        GEMINI_END,
    ],
    "two parts in one response": [
        gemini_text("A"),
        gemini_text("B"),
        gemini_event([{"text": "C", "thoughtSignature": "c2ln"}, {"text": "D"}]),
        gemini_text("E"),
        GEMINI_END,
    ],
    "text then a call in one response": [
        gemini_text("A"),
        gemini_text("B"),
        gemini_event([{"text": "C"}, {"functionCall": {"id": "c1", "name": "f", "args": {}}}]),
        gemini_text("D"),
        GEMINI_END,
    ],
    "text then a signed part in one response": [
        gemini_text("A"),
        gemini_text("B"),
        gemini_event([{"text": "C"}, {"text": "D", "thoughtSignature": "c2ln"}]),
        gemini_text("E"),
        GEMINI_END,
    ],
    "a call beside text in one part": [
        gemini_text("A"),
        gemini_text("B"),
        gemini_event([{"text": "C", "functionCall": {"id": "c2", "name": "f", "args": {}}}]),
        gemini_text("D"),
        GEMINI_END,
    ],
    "a call with its own id after text": [
        gemini_text("Looking"),
        gemini_text(" it up"),
        gemini_event([{"functionCall": {"id": "c1", "name": "f", "args": {"q": 1}}}]),
        gemini_text("Done"),
        gemini_event([], finish="STOP"),
    ],
    "the finish reason on a text piece": [
        gemini_text("A"),
        gemini_text("B"),
        gemini_text(
            "C",
            finish="MAX_TOKENS",
            usageMetadata={"promptTokenCount": 2, "candidatesTokenCount": 3},
        ),
        gemini_text("after the end"),
    ],
    "blank events between": [
        gemini_text("A"),
        b"data: \n\n",
        gemini_text("B"),
        b"data:\n\n",
        b"data:  \t\n\n",
        gemini_text("C"),
        GEMINI_END,
    ],
    "running usage, the last one counts": [
        gemini_text("A", usageMetadata={"promptTokenCount": 2}),
        gemini_text("B", usageMetadata={"promptTokenCount": 2, "candidatesTokenCount": 2}),
        gemini_text(
            "C",
            finish="STOP",
            usageMetadata={"promptTokenCount": 2, "candidatesTokenCount": 3},
        ),
    ],
}


class GeneralGeminiDecoder(GeminiStreamDecoder):
    """The general path alone: the framing object cuts every piece, and every
    response goes through the general decoding (there is never an open text
    run to add to)."""

    def feed(self, data: bytes) -> list[mal.Chunk]:
        return ResponseDecoder.feed(self, data)

    @property  # type: ignore[override]
    def _run(self) -> None:
        return None

    @_run.setter
    def _run(self, value: object) -> None:
        pass


def gemini_outcome(pieces: list[bytes], general: bool = False) -> tuple[object, ...]:
    decoder = GeneralGeminiDecoder() if general else get_protocol("gemini").decoder(True)
    chunks: list[mal.Chunk] = []
    for piece in pieces:
        chunks += decoder.feed(piece)
    chunks += decoder.flush()
    message = decoder.message()
    return (
        chunks,
        decoder.text,
        decoder.reasoning,
        decoder.finish_reason,
        decoder.usage,
        decoder.tool_calls,
        message.blocks,
    )


@pytest.mark.parametrize("case", list(GEMINI_CASES))
def test_gemini_fast_path_agrees_with_the_general_one(case: str) -> None:
    events = GEMINI_CASES[case]
    general = gemini_outcome(events, general=True)
    assert gemini_outcome(events) == general
    assert gemini_outcome([b"".join(events)]) == general


def test_gemini_fast_path_keeps_the_signatures_of_the_turn() -> None:
    _, text, _, _, usage, _, blocks = gemini_outcome(GEMINI_CASES["a signature closes the run"])
    assert text == "Hello! More text"
    assert blocks == [
        {"text": "Hello!", "thoughtSignature": "c2ln"},
        {"text": " More text"},
    ]
    assert usage == mal.Usage(input_tokens=3, output_tokens=5)


def test_gemini_fast_path_keeps_a_call_after_text() -> None:
    _, text, _, finish, _, calls, blocks = gemini_outcome(
        GEMINI_CASES["a call with its own id after text"]
    )
    assert text == "Looking it upDone"
    assert finish == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in calls] == [("c1", "f", {"q": 1})]
    assert blocks == [
        {"text": "Looking it up"},
        {"functionCall": {"id": "c1", "name": "f", "args": {"q": 1}}},
        {"text": "Done"},
    ]


def test_gemini_fast_path_stops_at_the_finish_reason() -> None:
    chunks, text, _, finish, usage, _, _ = gemini_outcome(
        GEMINI_CASES["the finish reason on a text piece"]
    )
    assert text == "ABC"
    assert finish == "length"
    assert chunks[-1].usage == usage == mal.Usage(input_tokens=2, output_tokens=3)


@pytest.mark.parametrize("whole", [False, True], ids=["event per piece", "whole body"])
def test_gemini_error_after_text_keeps_the_partial_text(whole: bool) -> None:
    error = {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}
    pieces = [
        gemini_text("A"),
        gemini_text("B"),
        b"data: " + json.dumps(error).encode() + b"\n\n",
    ]
    with pytest.raises(mal.StreamError) as caught:
        feed("gemini", [b"".join(pieces)] if whole else pieces)
    assert caught.value.partial_text == "AB"
    assert caught.value.retryable


@pytest.mark.parametrize("whole", [False, True], ids=["event per piece", "whole body"])
def test_gemini_events_after_the_end_are_counted_once(whole: bool) -> None:
    # Nothing counts after the finishing response, but the bytes are still
    # counted once: a broken byte after them is reported where it is.
    pieces = [gemini_text("A"), gemini_text("B", finish="STOP"), gemini_text("C")]
    decoder = get_protocol("gemini").decoder(True)
    chunks: list[mal.Chunk] = []
    for piece in [b"".join(pieces)] if whole else pieces:
        chunks += decoder.feed(piece)
    assert "".join(c.text for c in chunks) == "AB"
    offset = len(b"".join(pieces))
    with pytest.raises(mal.DecodeError, match=f"byte {offset + 6} of the response body"):
        decoder.feed(b"data: \xff\n\n")
