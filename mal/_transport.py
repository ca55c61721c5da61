"""What the sync and async drivers share about httpx: timeouts, and the mapping
of httpx's exceptions to mal's, at this one boundary."""

from __future__ import annotations

import httpx

from .errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigError,
    DecodeError,
    IncompleteStreamError,
    MALError,
)

__all__ = ["USER_AGENT", "make_limits", "make_timeout", "map_error"]

from . import __version__

USER_AGENT = f"mal/{__version__}"

_TIMEOUT_PHASES: dict[type[Exception], str] = {
    httpx.ConnectTimeout: "connect",
    httpx.ReadTimeout: "read",
    httpx.WriteTimeout: "write",
    httpx.PoolTimeout: "pool",
}


def make_timeout(timeouts: tuple[float | None, ...]) -> httpx.Timeout:
    connect, read, write, pool = timeouts
    return httpx.Timeout(connect=connect, read=read, write=write, pool=pool)


def make_limits() -> httpx.Limits:
    # Streams are long-lived: many may be open at once, and each holds its
    # connection for the whole generation.
    return httpx.Limits(max_connections=1000, max_keepalive_connections=100)


def map_error(exc: Exception, url: str, *, in_body: bool) -> MALError:
    """The mal error for an httpx exception, with the exception as ``__cause__``.

    ``in_body``: whether the response body had begun; a transport failure
    there means the body was cut short.
    """
    error: MALError
    phase = _TIMEOUT_PHASES.get(type(exc))
    if phase is not None:
        where = "reading the response body" if in_body else "waiting"
        error = APITimeoutError(
            f"{phase} timeout from {url} while {where}", phase=phase
        )
    elif isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        error = ConfigError(f"cannot send a request to {url!r}: {exc}")
    elif isinstance(exc, httpx.DecodingError):
        error = DecodeError(f"cannot decode the response body from {url}: {exc}")
    elif in_body:
        error = IncompleteStreamError(
            f"the connection to {url} broke before the response ended: {exc or type(exc).__name__}"
        )
    elif isinstance(exc, httpx.ConnectError):
        error = APIConnectionError(f"cannot connect to {url}: {exc or type(exc).__name__}")
    else:
        error = APIConnectionError(
            f"the request to {url} failed: {exc or type(exc).__name__}"
        )
    error.__cause__ = exc
    return error
