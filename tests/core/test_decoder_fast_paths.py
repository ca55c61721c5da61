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
