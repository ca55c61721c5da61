"""mal: one small, fast, typed SDK for streaming text from Ollama, OpenAI
(and OpenAI-compatible servers) and Anthropic, in sync and async code."""

from __future__ import annotations

__version__ = "0.1.0"

from ._api import agenerate, astream, generate, stream
from ._async import AsyncClient, AsyncStream
from ._sync import Client, Stream
from .config import MALConfig
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConfigError,
    DecodeError,
    IncompleteStreamError,
    InternalServerError,
    MALError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    RunawayError,
    StreamError,
)
from .hooks import CallStats, ClientMetrics, Hooks, RequestInfo
from .types import Chunk, Message, Usage

__all__ = [
    "generate",
    "stream",
    "agenerate",
    "astream",
    "Client",
    "AsyncClient",
    "Stream",
    "AsyncStream",
    "MALConfig",
    "Chunk",
    "Message",
    "Usage",
    "MALError",
    "ConfigError",
    "APIConnectionError",
    "APITimeoutError",
    "APIStatusError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
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
]
