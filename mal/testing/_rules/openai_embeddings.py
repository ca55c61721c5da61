"""Rules of OpenAI's Embeddings API (``POST /v1/embeddings``).

The shape is openapi ``CreateEmbeddingRequest`` (``additionalProperties:
false``): ``model`` and ``input`` required; ``input`` a string, an array of
strings, an array of tokens or an array of token arrays, at most 2048 of them
and no empty string; ``encoding_format`` float or base64; ``dimensions`` at
least 1. This endpoint still answers in the older validator's words, with
param and code null ("-1 is less than the minimum of 1 - 'dimensions'":
envoyproxy/ai-gateway cassette tests/internal/testopenai/cassettes/
embeddings-bad-request.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import Request, Violation
from .openai_common import is_integer

__all__ = ["check"]

FIELDS = ("input", "model", "encoding_format", "dimensions", "user")

#: The answer to an input the schema refuses, or an empty string in it: "'$.input'
#: is invalid. Please check the API reference:
#: https://platform.openai.com/docs/api-reference." (openai-php/client#171; the
#: guard in several clients names an empty string as the cause).
BAD_INPUT = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)


def check(request: Request) -> Violation | None:
    body = request.body
    if body.get("model") is None and not _azure_deployment(request):
        # The same sentence as Chat Completions: "you must provide a model parameter".
        return Violation("you must provide a model parameter")
    if body.get("input") is None:
        # "'input' is a required property" (a capture reported by clients that sent
        # an empty batch; the older validator's sentence for a missing field).
        return Violation("'input' is a required property")
    unknown = [key for key in body if key not in FIELDS]
    if unknown:
        # Unknown fields are refused as on Chat Completions: "Unrecognized request
        # argument supplied: X" (xlinx/sd-webui-decadetw-auto-prompt-llm#29).
        if len(unknown) == 1:
            return Violation(f"Unrecognized request argument supplied: {unknown[0]}")
        return Violation(f"Unrecognized request arguments supplied: {', '.join(sorted(unknown))}")
    return _input(body["input"]) or _options(body)


def _azure_deployment(request: Request) -> bool:
    return request.azure and request.path.startswith("/openai/deployments/")


def _input(value: Any) -> Violation | None:
    if isinstance(value, str):
        return None if value else Violation(BAD_INPUT)
    if not isinstance(value, list) or not value or len(value) > 2048:
        # CreateEmbeddingRequest.input: minItems 1, maxItems 2048 (an over-long batch
        # gets the same sentence: reported against Azure OpenAI with 7000 inputs).
        return Violation(BAD_INPUT)
    if all(isinstance(item, str) for item in value):
        return None if all(value) else Violation(BAD_INPUT)
    if all(is_integer(item) for item in value):
        return None
    if all(
        isinstance(item, list) and item and all(is_integer(token) for token in item)
        for item in value
    ):
        return None
    return Violation(BAD_INPUT)


def _options(body: Mapping[str, Any]) -> Violation | None:
    form = body.get("encoding_format")
    if form is not None and form not in ("float", "base64"):
        # CreateEmbeddingRequest.encoding_format enum; the older validator's enum
        # sentence ("'X' is not one of [...] - 'field'", the jsonschema form the
        # dimensions answer above shares).
        return Violation(f"{form!r} is not one of ['float', 'base64'] - 'encoding_format'")
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if not is_integer(dimensions):
            return Violation(f"{dimensions!r} is not of type 'integer' - 'dimensions'")
        if dimensions < 1:
            # "-1 is less than the minimum of 1 - 'dimensions'" (cassette above)
            return Violation(f"{dimensions!r} is less than the minimum of 1 - 'dimensions'")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        return Violation(f"{user!r} is not of type 'string' - 'user'")
    return None
