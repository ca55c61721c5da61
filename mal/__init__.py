"""mal: one small, fast, typed SDK for streaming text from Ollama, OpenAI
(and OpenAI-compatible servers) and Anthropic, in sync and async code.

The clients and the module-level calls are loaded on first use, so that
importing the sans-I/O core (``mal.framing``, ``mal.protocols``...) brings in
neither httpx nor anyio, and ``import mal`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .config import MALConfig
from .embeddings import Embeddings
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConflictError,
    DecodeError,
    IncompleteStreamError,
    InternalServerError,
    MALError,
    NotFoundError,
    OutputValidationError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    RefusalError,
    RunawayError,
    StreamError,
    ToolError,
    UnprocessableEntityError,
)
from .hooks import CallStats, ClientMetrics, Hooks, RequestInfo
from .images import Image
from .limits import RateLimit
from .tools import Tool
from .types import Chunk, Message, Response, ToolCall, ToolCallDelta, ToolResult, Usage

if TYPE_CHECKING:
    from ._api import acomplete, aembed, agenerate, astream, complete, embed, generate, stream
    from ._async import AsyncClient, AsyncStream
    from ._sync import Client, Stream

_LAZY = {
    "complete": "._api",
    "acomplete": "._api",
    "generate": "._api",
    "stream": "._api",
    "agenerate": "._api",
    "astream": "._api",
    "embed": "._api",
    "aembed": "._api",
    "Client": "._sync",
    "Stream": "._sync",
    "AsyncClient": "._async",
    "AsyncStream": "._async",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "complete",
    "acomplete",
    "generate",
    "stream",
    "agenerate",
    "astream",
    "Client",
    "AsyncClient",
    "Stream",
    "AsyncStream",
    "MALConfig",
    "RateLimit",
    "Chunk",
    "Message",
    "Usage",
    "MALError",
    "ConfigError",
    "APIConnectionError",
    "APITimeoutError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "OverloadedError",
    "StreamError",
    "RunawayError",
    "Hooks",
    "CallStats",
    "ClientMetrics",
    "RequestInfo",
    "IncompleteStreamError",
    "DecodeError",
    "OutputValidationError",
    "RefusalError",
    "ToolError",
    "Response",
    "Image",
    "ToolCall",
    "ToolCallDelta",
    "ToolResult",
    "Tool",
    "embed",
    "aembed",
    "Embeddings",
]
