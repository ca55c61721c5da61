"""mal's log lines: a DEBUG line per request, INFO lines for retries and fallbacks."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._prepare import Call
    from .protocols import HTTPRequest

__all__ = ["describe", "log_attempt", "logger", "public_url"]

#: mal's log: DEBUG, a line per request (and its body, with
#: ``MALConfig.log_prompts``); INFO, retries and fallbacks. Never an API key:
#: they travel in headers, which are not logged, and URLs lose their query.
logger = logging.getLogger("mal")


def public_url(url: str) -> str:
    """A URL fit for a log: without its query (where some gateways put keys)."""
    base, sep, _ = url.partition("?")
    return f"{base}?…" if sep else base


def describe(exc: BaseException | None) -> str:
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    return f"{name} {status}" if status is not None else name


def _ending(outcome: BaseException) -> str:
    if isinstance(outcome, GeneratorExit):
        return "closed early by the caller"
    return f"ended by {describe(outcome)}"


def log_attempt(
    call: Call,
    request: HTTPRequest,
    attempt: int,
    status: int | None,
    seconds: float,
    head: float | None,
    first_token: float | None,
    received: int,
    handed: int,
    outcome: BaseException | None,
    with_body: bool,
) -> None:
    """The DEBUG line of one request, when it ended."""
    url = public_url(request.url)
    if with_body:
        logger.debug("request body to %s: %s", url, request.body.decode("utf-8", "replace"))
    logger.debug(
        "%s %s -> %s in %.3f s (head %s, first token %s), %d bytes, %d chunks, %s/%s, attempt %d%s",
        request.method,
        url,
        status if status is not None else "-",
        seconds,
        f"{head:.3f} s" if head is not None else "-",
        f"{first_token:.3f} s" if first_token is not None else "-",
        received,
        handed,
        call.provider,
        call.model,
        attempt + 1,
        "" if outcome is None else f", {_ending(outcome)}",
    )
