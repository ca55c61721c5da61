"""The official SDKs' conventions, without I/O: the error classes of 400, 409
and 422, and the request id an error carries."""

from __future__ import annotations

import pytest

import mal
from mal.protocols import status_error


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, mal.BadRequestError, False),
        (409, mal.ConflictError, True),
        (422, mal.UnprocessableEntityError, False),
    ],
)
@pytest.mark.parametrize("provider", ["ollama", "openai", "anthropic"])
def test_the_three_classes_of_the_official_sdks(
    provider: str, status: int, cls: type[mal.APIStatusError], retryable: bool
) -> None:
    error = status_error(status, {}, b'{"error": "no"}', provider=provider)
    assert type(error) is cls
    assert isinstance(error, mal.APIStatusError)
    assert error.status_code == status
    assert error.retryable is retryable


def test_the_classes_are_exported() -> None:
    for name in ("BadRequestError", "ConflictError", "UnprocessableEntityError"):
        assert name in mal.__all__
        assert issubclass(getattr(mal, name), mal.APIStatusError)
    assert mal.BadRequestError.__doc__ is not None
    assert mal.errors.__doc__ is not None
    for name in ("BadRequestError", "ConflictError", "UnprocessableEntityError", "request_id"):
        assert name in mal.errors.__doc__


def test_other_statuses_keep_their_classes() -> None:
    assert type(status_error(418, {}, b"", provider="openai")) is mal.APIStatusError
    assert type(status_error(401, {}, b"", provider="openai")) is mal.AuthenticationError
    assert type(status_error(429, {}, b"", provider="openai")) is mal.RateLimitError


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-request-id": "req_abc"}, "req_abc"),  # OpenAI
        ({"request-id": "req_011CXYZ"}, "req_011CXYZ"),  # Anthropic
        ({"X-Request-ID": "req_upper"}, "req_upper"),  # names are case-insensitive
        ({}, None),  # Ollama sends none
        ({"x-request-id": ""}, None),
    ],
)
def test_request_id_from_the_headers(headers: dict[str, str], expected: str | None) -> None:
    for status in (400, 401, 429, 500):
        assert status_error(status, headers, b"", provider="openai").request_id == expected


def test_request_id_of_an_error_made_by_hand() -> None:
    assert mal.APIStatusError("x", status_code=400).request_id is None
    error = mal.RateLimitError("x", headers={"request-id": "req_1"})
    assert error.request_id == "req_1"
    assert mal.StreamError("x").request_id is None
