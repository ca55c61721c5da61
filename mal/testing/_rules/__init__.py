"""The providers' published request rules, as the strict built-in server checks them.

Each provider module exposes ``check(request) -> Violation | None``: the
first rule the request breaks, or None.  A rule is a plain function over the
decoded JSON body (and the URL and headers where the rule is about them); the
comment beside it names the source it was taken from.  Nothing here does I/O;
the server turns a `Violation` into the provider's own error response.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Request", "Violation", "check"]


@dataclass(frozen=True)
class Request:
    """What a rule may look at: the request as it arrived."""

    kind: str
    """The endpoint: "generate", "chat", "embed" (Ollama), "openai" (chat
    completions), "responses", "embeddings" (OpenAI), "anthropic", "gemini",
    "gemini_embed" and "gemini_embeds" (Gemini's embedContent, batchEmbedContents)."""
    path: str
    query: str
    headers: Mapping[str, str]
    """Lower-case names."""
    body: Any
    """The decoded JSON body (a dict for every request a rule sees)."""
    azure: bool = False
    """The URL is Azure OpenAI's (``/openai/deployments/...`` or ``/openai/v1/...``)."""


@dataclass(frozen=True)
class Violation:
    """A rule the request breaks, and how the provider answers it."""

    message: str
    """The provider's own wording where it is known; it names the field."""
    param: str | None = None
    """The offending field as a path (``messages[1].content``), or None."""
    status: int = 400
    error_type: str = "invalid_request_error"
    code: str | None = None
    body: Any = None
    """The whole error body, for an answer in a shape of its own (Azure's
    gateway answers a deployment URL without ``api-version`` before the
    OpenAI service sees it); None: the provider's usual error body."""


def check(request: Request) -> Violation | None:
    """The first rule `request` breaks, or None when the real API would accept it."""
    from . import anthropic, gemini, ollama, openai

    if request.kind in ("generate", "chat", "embed"):
        return ollama.check(request)
    if request.kind == "anthropic":
        return anthropic.check(request)
    if request.kind in ("gemini", "gemini_embed", "gemini_embeds"):
        return gemini.check(request)
    return openai.check(request)
