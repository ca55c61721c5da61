"""Which endpoint a request is for: the paths of the three providers (and
Azure OpenAI's), the method each takes, and the wire format that answers it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from mal.testing._anthropic import _Anthropic
from mal.testing._gemini import _Gemini
from mal.testing._ollama import _Ollama
from mal.testing._openai import _OpenAI
from mal.testing._responses import _Responses
from mal.testing._wire import _Job, _Wire


@dataclass(frozen=True)
class _Route:
    provider: str
    method: str
    kind: str
    #: The model named by the path (Gemini's), else "" (the body names it).
    model: str = ""
    #: Whether the path asks for a stream (Gemini's), else None (the body says).
    stream: bool | None = None


#: Azure OpenAI's URLs: a deployment's (with ``?api-version=``, which the strict
#: rules require) and the v1 API's.
_AZURE: Final = re.compile(r"\A/openai/(?:deployments/[^/]+|v1)/(chat/completions|embeddings)\Z")


def _azure_route(path: str) -> _Route | None:
    match = _AZURE.match(path)
    if match is None:
        return None
    kind = "openai" if match.group(1) == "chat/completions" else "embeddings"
    return _Route("openai", "POST", kind)


#: Gemini's methods, on a model named in the path
#: (https://ai.google.dev/api/generate-content: ``v1beta/{model=models/*}:generateContent``).
_GEMINI: Final = re.compile(r"\A/v1beta/((?:models|tunedModels)/[^/:]+):(\w+)\Z")


def _gemini_route(path: str) -> _Route | None:
    match = _GEMINI.match(path)
    if match is None:
        return None
    model, method = match.group(1), match.group(2)
    if method == "generateContent":
        return _Route("gemini", "POST", "gemini", model.partition("/")[2], False)
    if method == "streamGenerateContent":
        return _Route("gemini", "POST", "gemini", model.partition("/")[2], True)
    # https://ai.google.dev/api/embeddings: ``v1beta/{model=models/*}:embedContent``
    # and ``:batchEmbedContents``.
    if method == "embedContent":
        return _Route("gemini", "POST", "gemini_embed", model.partition("/")[2])
    if method == "batchEmbedContents":
        return _Route("gemini", "POST", "gemini_embeds", model.partition("/")[2])
    return None


_ROUTES: Final[dict[str, _Route]] = {
    "/api/generate": _Route("ollama", "POST", "generate"),
    "/api/chat": _Route("ollama", "POST", "chat"),
    "/v1/chat/completions": _Route("openai", "POST", "openai"),
    "/chat/completions": _Route("openai", "POST", "openai"),
    "/v1/messages": _Route("anthropic", "POST", "anthropic"),
    "/v1/responses": _Route("openai", "POST", "responses"),
    "/responses": _Route("openai", "POST", "responses"),
    "/v1/embeddings": _Route("openai", "POST", "embeddings"),
    "/embeddings": _Route("openai", "POST", "embeddings"),
    "/api/embed": _Route("ollama", "POST", "embed"),
    "/": _Route("ollama", "GET", "root"),
    "/api/version": _Route("ollama", "GET", "version"),
    "/api/tags": _Route("ollama", "GET", "tags"),
    "/v1/models": _Route("openai", "GET", "models"),
}

_WIRES: Final[dict[str, Callable[[_Job], _Wire]]] = {
    "generate": lambda job: _Ollama(job, chat=False),
    "chat": lambda job: _Ollama(job, chat=True),
    "openai": _OpenAI,
    "anthropic": _Anthropic,
    "responses": _Responses,
    "gemini": _Gemini,
}

#: Every endpoint whose requests the strict server checks against the provider's
#: rules, with the wire format that answers a rejected one.
_CHECKED: Final[dict[str, Callable[[_Job], _Wire]]] = {
    **_WIRES,
    "embeddings": _OpenAI,
    "embed": lambda job: _Ollama(job, chat=False),
    "gemini": _Gemini,
    "gemini_embed": _Gemini,
    "gemini_embeds": _Gemini,
}

#: The embedding endpoints.
_EMBEDDINGS: Final = frozenset({"embeddings", "embed", "gemini_embed", "gemini_embeds"})


def _guess_provider(path: str, headers: dict[str, str]) -> str:
    if path.startswith("/api/"):
        return "ollama"
    if path.startswith("/v1beta/"):
        return "gemini"
    if "anthropic-version" in headers or path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1/"):
        return "openai"
    return ""
