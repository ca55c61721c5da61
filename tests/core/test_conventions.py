"""The official SDKs' conventions, without I/O: the error classes of 400, 409
and 422, the request id an error carries, ``extra_query`` in the URL and
``httpx.Timeout`` in the config."""

from __future__ import annotations

import httpx
import msgspec
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


def test_with_query_merges_into_the_url() -> None:
    from mal.protocols._base import with_query

    url = "https://x.example/openai/deployments/d/chat/completions?api-version=2024-10-21"
    assert with_query(url, {"api-version": "2025-01-01-preview"}).endswith(
        "?api-version=2025-01-01-preview"
    )
    assert with_query(url, {"a": 1}).endswith("?api-version=2024-10-21&a=1")
    assert with_query(url, {"api-version": None}).endswith("/chat/completions")
    assert (
        with_query("http://h/v1/x", {"q": "é/&", "f": False})
        == "http://h/v1/x?q=%C3%A9%2F%26&f=false"
    )
    # A name written encoded in the URL is still the name given.
    assert with_query("http://h/x?api%2Dversion=1&b=2", {"api-version": "3"}) == (
        "http://h/x?b=2&api-version=3"
    )
    with pytest.raises(mal.ConfigError, match="extra_query"):
        with_query("http://h/x", {"a": {"b": 1}})


def test_extra_query_reaches_every_protocols_request() -> None:
    from mal.protocols import GenerateParams, get_protocol

    params = GenerateParams(model="m", prompt="Hi", extra_query={"a": "1"})
    for provider in ("ollama", "openai", "anthropic", "azure", "openai-responses"):
        request = get_protocol(provider).build_request(params, base_url="http://h", api_key="k")
        assert request.url.split("?", 1)[1].split("&")[-1] == "a=1", provider


# --------------------------------------------------------------------------- timeouts


def test_an_httpx_timeout_in_the_config_sets_the_four_timeouts() -> None:
    config = mal.MALConfig(timeout=httpx.Timeout(5.0, connect=2.0))
    assert config.timeouts() == (2.0, 5.0, 5.0, 5.0)
    assert (config.connect_timeout, config.read_timeout) == (2.0, 5.0)
    assert config.timeout is None  # the config holds plain numbers
    config = mal.MALConfig(timeout=httpx.Timeout(None, read=30.0))
    assert config.timeouts() == (None, 30.0, None, None)
    # Still plain data for msgspec.
    data = msgspec.to_builtins(mal.MALConfig(timeout=httpx.Timeout(1.0)))
    assert msgspec.convert(data, mal.MALConfig).timeouts() == (1.0, 1.0, 1.0, 1.0)


def test_a_per_call_timeout_may_be_an_httpx_timeout() -> None:
    config = mal.MALConfig(timeout=9.0)
    assert config.timeouts(httpx.Timeout(5.0, connect=2.0, pool=1.0)) == (2.0, 5.0, 5.0, 1.0)
    assert config.timeouts(3.0) == (3.0, 3.0, 3.0, 3.0)
    assert config.timeouts() == (9.0, 9.0, 9.0, 9.0)


@pytest.mark.parametrize("bad", ["5", object(), httpx.Timeout(5.0, read=-1.0)])
def test_a_bad_timeout_is_a_config_error(bad: object) -> None:
    with pytest.raises(mal.ConfigError, match="timeout"):
        mal.MALConfig(timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(mal.ConfigError, match="timeout"):
        mal.MALConfig().timeouts(bad)  # type: ignore[arg-type]
