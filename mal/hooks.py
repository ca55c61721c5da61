"""Hooks, per-call stats and per-client counters. This module does no I/O.

Hooks are plain callables given to a client (``mal.Client(hooks=mal.Hooks(...))``);
each one left as None costs nothing on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from .errors import MALError, OutputValidationError
    from .types import Chunk

__all__ = ["CallStats", "ClientMetrics", "Hooks", "RequestInfo"]


class RequestInfo(msgspec.Struct, frozen=True):
    """What a hook learns about a request about to be sent (never its headers,
    which carry the API key)."""

    provider: str
    model: str
    url: str
    streamed: bool
    #: 0 for the first try, then 1, 2... for retries of the same model.
    attempt: int
    #: The call this request belongs to (its ``CallStats.call_id``).
    call_id: int = 0


class CallStats(msgspec.Struct):
    """What one call did, given to ``on_complete`` and kept as ``stream.stats``."""

    provider: str
    model: str
    streamed: bool
    #: Seconds from the start of the call to the first text or reasoning delta.
    time_to_first_token: float | None = None
    #: Seconds from the start of the call to its end (retries included).
    duration: float = 0.0
    #: Chunks handed to the caller (counted at the end of each attempt).
    chunks: int = 0
    #: Body bytes received over every attempt (counted at the end of each).
    bytes: int = 0
    #: The call's ``usage`` (see :class:`mal.Usage`): every input token,
    #: cached ones included, and every output token, reasoning included.
    input_tokens: int | None = None
    output_tokens: int | None = None
    #: The parts of ``input_tokens`` read from and written to the prompt cache,
    #: and the part of ``output_tokens`` spent on reasoning.
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    #: Output tokens per second of generation (after the first token).
    tokens_per_second: float | None = None
    retries: int = 0
    fallbacks: int = 0
    #: The error class name when the call failed, else None.
    error: str | None = None
    #: The normalised finish reason, once known.
    finish_reason: str | None = None
    #: Numbers the calls of one client, to match ``RequestInfo.call_id``.
    call_id: int = 0
    #: ``complete``: the times it re-asked for output that did not match the
    #: schema (set on the last call's stats).
    schema_retries: int = 0
    #: Seconds the call waited for its turns under ``MALConfig.rate_limits``.
    limit_wait: float = 0.0
    #: The models of the call's chain (its model and fallbacks, as
    #: "provider/model") that were cooling down when it started, and so were
    #: tried after the others (``MALConfig.cooldown_failures``).
    cooling: tuple[str, ...] = ()


class ClientMetrics(msgspec.Struct):
    """Counters over every call of one client."""

    requests: int = 0
    streamed: int = 0
    non_streamed: int = 0
    retries: int = 0
    fallbacks: int = 0
    #: Timeouts by phase ("connect", "read", "first_token", "idle", "total", ...).
    timeouts: dict[str, int] = {}
    #: Failed calls by error class name.
    errors: dict[str, int] = {}


class Hooks(msgspec.Struct, kw_only=True):
    """Callbacks into the life of every call of a client."""

    #: Before each request is sent (retries and fallbacks included).
    on_request: Callable[[RequestInfo], object] | None = None
    #: At the first text or reasoning delta of a call, with the seconds it took.
    on_first_token: Callable[[float], object] | None = None
    #: For every chunk handed to the caller.
    on_chunk: Callable[[Chunk], object] | None = None
    #: Before sleeping for a retry: the retry's number (1, 2...), the delay, the error.
    on_retry: Callable[[int, float, MALError], object] | None = None
    #: When a fallback model takes over: the model that failed, the next one, the error.
    on_fallback: Callable[[str, str, MALError], object] | None = None
    #: When a call ends, well or not.
    on_complete: Callable[[CallStats], object] | None = None
    #: Before ``complete`` re-asks for output that did not match the schema:
    #: the re-ask's number (1, 2...) and the validation error.
    on_schema_retry: Callable[[int, OutputValidationError], object] | None = None
