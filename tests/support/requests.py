"""Requests each provider's API accepts, for the tests that talk to the built-in
server in raw HTTP.

The built-in server is strict: it answers a request the real API would reject
with that API's own error, so a test about the server's answers sends a valid
request. Each builder gives the smallest body its endpoint accepts, with the
fields a test adds or replaces as keyword arguments; `ANTHROPIC_HEADERS` are
the headers every Messages API request needs; `png` makes a real image.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

#: The Messages API's one required header: "When making API requests, you must
#: send an anthropic-version request header" (platform.claude.com/docs/en/api/
#: versioning). Spelled with dashes: `Conn.send` and http.client take it so.
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}


def _user() -> list[dict[str, Any]]:
    # A new list for each body, so that a test that changes one changes no other.
    return [{"role": "user", "content": "hi"}]


def openai_chat(model: str = "m", **fields: Any) -> dict[str, Any]:
    """A Chat Completions body: ``model`` and ``messages``, the two fields
    openapi ``CreateChatCompletionRequest`` requires (``messages`` with at least
    one message), then `fields`."""
    return {"model": model, "messages": _user(), **fields}


def anthropic_messages(model: str = "m", **fields: Any) -> dict[str, Any]:
    """A Messages API body: ``model``, ``max_tokens`` and ``messages``, the
    three fields anthropic-sdk-python's ``MessageCreateParamsBase`` requires
    (``messages`` with at least one message), then `fields`."""
    return {"model": model, "max_tokens": 64, "messages": _user(), **fields}


def ollama_chat(model: str = "m", **fields: Any) -> dict[str, Any]:
    """An Ollama ``/api/chat`` body: a model (``ChatHandler`` answers "model is
    required" without one) and a message (without any, the handler only loads
    the model and generates nothing), then `fields`."""
    return {"model": model, "messages": _user(), **fields}


def ollama_generate(model: str = "m", **fields: Any) -> dict[str, Any]:
    """An Ollama ``/api/generate`` body: a model (``GenerateHandler`` answers
    404 without one) and a prompt (with an empty one, the handler only loads
    the model), then `fields`."""
    return {"model": model, "prompt": "hi", **fields}


def png(width: int, height: int) -> bytes:
    """A real PNG image of `width` x `height` RGB pixels (a gradient), stored
    without compression so that it weighs about ``3 * width * height`` bytes.
    The providers decode the images they are sent: a test that needs a big
    image sends a real one, not bytes that only look like one."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        # PNG specification, 5.3 "Chunk layout": length, type, data, CRC of type and data.
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    # 11.2.2 IHDR: width, height, bit depth 8, colour type 2 (truecolour), then
    # compression, filter and interlace methods 0.
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + bytes(i % 251 for i in range(3 * width))  # filter type 0 (None)
    pixels = zlib.compress(row * height, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
