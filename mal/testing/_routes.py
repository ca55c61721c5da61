"""Which endpoint a request is for: the paths of the three providers (and
Azure OpenAI's), the method each takes, and the wire format that answers it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from mal.testing._anthropic import _Anthropic
from mal.testing._ollama import _Ollama
from mal.testing._openai import _OpenAI
from mal.testing._responses import _Responses
from mal.testing._wire import _Job, _Wire


@dataclass(frozen=True)
class _Route:
    provider: str
    method: str
    kind: str


#: Azure OpenAI's URLs: a deployment's (with ``?api-version=``, which the strict
#: rules require) and the v1 API's.
_AZURE: Final = re.compile(r"\A/openai/(?:deployments/[^/]+|v1)/(chat/completions|embeddings)\Z")


def _azure_route(path: str) -> _Route | None:
    match = _AZURE.match(path)
    if match is None:
        return None
    kind = "openai" if match.group(1) == "chat/completions" else "embeddings"
    return _Route("openai", "POST", kind)


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
}

#: Every endpoint whose requests the strict server checks against the provider's
#: rules, with the wire format that answers a rejected one.
_CHECKED: Final[dict[str, Callable[[_Job], _Wire]]] = {
    **_WIRES,
    "embeddings": _OpenAI,
    "embed": lambda job: _Ollama(job, chat=False),
}


def _guess_provider(path: str, headers: dict[str, str]) -> str:
    if path.startswith("/api/"):
        return "ollama"
    if "anthropic-version" in headers or path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1/"):
        return "openai"
    return ""
