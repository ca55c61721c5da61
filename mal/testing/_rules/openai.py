"""Rules of the openai API checked by the strict built-in server."""

from __future__ import annotations

from . import Request, Violation


def check(request: Request) -> Violation | None:
    return None
