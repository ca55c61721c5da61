"""The embedding endpoints' bodies: OpenAI's ``/v1/embeddings``, Ollama's
``/api/embed`` and Gemini's ``:embedContent`` and ``:batchEmbedContents``, with
deterministic vectors."""

from __future__ import annotations

import base64
import hashlib
import random
import struct
import time
from typing import Any, cast

from mal.testing._script import split_tokens
from mal.testing._wire import _enc


def _embedding(text: str, dim: int) -> list[float]:
    """A deterministic unit vector for `text`, in float32 as the providers compute them.

    The same text always gives the same vector, different texts (nearly always)
    different ones, so tests can check that the right input got the right vector.
    """
    rng = random.Random(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    packed = struct.pack(f"<{dim}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{dim}f", packed))


def _embedding_inputs(value: Any) -> list[str] | None:
    """The texts of an ``input`` field: a string or a list of strings.

    OpenAI also takes token arrays (a list of ints, or of lists of ints); each
    array stands for one input, embedded from its JSON text.  None when the
    field has none of these shapes.
    """
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [_enc(value).decode()]
    out: list[str] = []
    for item in value:
        if isinstance(item, str):
            out.append(item)
        elif (
            isinstance(item, list)
            and item
            and all(isinstance(v, int) and not isinstance(v, bool) for v in item)
        ):
            out.append(_enc(item).decode())
        else:
            return None
    return out


def _embeddings_body(
    kind: str, request: dict[str, Any], model: str, texts: list[str], dim: int, t0: float
) -> bytes:
    """The body of an embedding response: OpenAI's list of ``embedding``
    objects (`kind` "embeddings") or Ollama's ``embeddings`` array ("embed"),
    one `dim`-long vector per text; `t0` is when the request arrived."""
    vectors = [_embedding(text, dim) for text in texts]
    tokens = sum(max(len(split_tokens(text)), 1) for text in texts)
    obj: dict[str, Any]
    if kind == "embeddings":
        # openai-python asks for "base64" by default: little-endian float32.
        b64 = request.get("encoding_format") == "base64"
        data_items = [
            {
                "object": "embedding",
                "index": i,
                "embedding": (
                    base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode() if b64 else vector
                ),
            }
            for i, vector in enumerate(vectors)
        ]
        obj = {
            "object": "list",
            "data": data_items,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    else:
        total = max(int((time.monotonic() - t0) * 1e9), 1)
        obj = {
            "model": model,
            "embeddings": vectors,
            "total_duration": total,
            "load_duration": min(total // 10, 1_234_567),
            "prompt_eval_count": tokens,
        }
    return _enc(obj)


def _gemini_text(request: Any) -> tuple[str, int | None] | None:
    """The text of one ``EmbedContentRequest`` (its parts' texts, joined) and the
    ``outputDimensionality`` it asks for; None when it has no such shape."""
    if not isinstance(request, dict):
        return None
    content = request.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        return None
    texts = [part.get("text") for part in parts if isinstance(part, dict)]
    if len(texts) != len(parts) or not all(isinstance(text, str) for text in texts):
        return None
    dims = request.get("outputDimensionality", request.get("output_dimensionality"))
    ok = isinstance(dims, int) and not isinstance(dims, bool) and dims > 0
    return " ".join(cast("list[str]", texts)), dims if ok else None


def _gemini_inputs(kind: str, request: dict[str, Any]) -> list[tuple[str, int | None]] | None:
    """The texts of an ``embedContent`` (kind "gemini_embed") or
    ``batchEmbedContents`` ("gemini_embeds") body, each with its dimensions."""
    if kind == "gemini_embed":
        one = _gemini_text(request)
        return None if one is None else [one]
    requests = request.get("requests")
    if not isinstance(requests, list) or not requests:
        return None
    out = [_gemini_text(item) for item in requests]
    return None if any(item is None for item in out) else cast("list[tuple[str, int | None]]", out)


def _gemini_embeddings_body(kind: str, inputs: list[tuple[str, int | None]], dim: int) -> bytes:
    """``EmbedContentResponse`` ``{"embedding": {"values"}}`` or
    ``BatchEmbedContentsResponse`` ``{"embeddings": [{"values"}]}``
    (https://ai.google.dev/api/embeddings): vectors only, no usage."""
    vectors = [{"values": _embedding(text, dims or dim)} for text, dims in inputs]
    if kind == "gemini_embed":
        return _enc({"embedding": vectors[0]})
    return _enc({"embeddings": vectors})
