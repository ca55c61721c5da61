"""Mapping an error response (status, headers, body) to the APIStatusError tree."""

from __future__ import annotations

import email.utils
import json
from typing import Any

import pytest

import mal
from mal.protocols import get_protocol, parse_retry_after, status_error

PROVIDERS = ["ollama", "openai", "anthropic"]

# The real error bodies of each provider: (error type or None, message).
MESSAGES: dict[int, tuple[str | None, str]] = {
    400: ("invalid_request_error", "messages: at least one message is required"),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "model: claude-sonnet-9"),
    408: ("timeout_error", "Request timed out while waiting for the request body."),
    409: ("conflict_error", "A request with this idempotency key is already in progress."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    529: ("overloaded_error", "Overloaded"),
}

OPENAI: dict[int, tuple[str | None, str, str | None]] = {
    400: ("invalid_request_error", "Invalid value for 'temperature': must be at most 2.", None),
    401: (
        "invalid_request_error",
        "Incorrect API key provided: sk-proj-****abcd. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_api_key",
    ),
    403: ("invalid_request_error", "Project `proj_abc` does not have access to model `o3`", None),
    404: (
        "invalid_request_error",
        "The model `gpt-9` does not exist or you do not have access to it.",
        "model_not_found",
    ),
    408: ("timeout", "Request timed out.", None),
    409: ("conflict", "Another request is modifying this resource.", None),
    429: (
        "requests",
        "Rate limit reached for gpt-4o-mini in organization org-abc on requests per min "
        "(RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.",
        "rate_limit_exceeded",
    ),
    500: (
        "server_error",
        "The server had an error while processing your request. Sorry about that!",
        None,
    ),
    503: ("server_error", "The engine is currently overloaded, please try again later", None),
    529: ("server_error", "Overloaded", None),
}

OLLAMA: dict[int, str] = {
    400: "invalid options: foo",
    401: "unauthorized",
    403: "forbidden",
    404: 'model "llama9" not found, try pulling it first',
    408: "request timeout",
    409: "a model with that name is being created",
    429: "too many requests",
    500: "llama runner process has terminated: exit status 2",
    503: "server busy, please try again.  maximum pending requests exceeded",
    529: "overloaded",
}


def body_of(provider: str, status: int) -> tuple[bytes, str, str | None]:
    """The provider's real error body, its message text, and its error type."""
    if provider == "anthropic":
        etype, message = MESSAGES[status]
        body = {
            "type": "error",
            "error": {"type": etype, "message": message},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
        }
        return json.dumps(body).encode(), message, etype
    if provider == "openai":
        etype, message, code = OPENAI[status]
        body = {"error": {"message": message, "type": etype, "param": None, "code": code}}
        return json.dumps(body).encode(), message, etype
    message = OLLAMA[status]
    return json.dumps({"error": message}).encode(), message, None


CLASSES: dict[int, type[mal.APIStatusError]] = {
    400: mal.BadRequestError,
    401: mal.AuthenticationError,
    403: mal.PermissionDeniedError,
    404: mal.NotFoundError,
    408: mal.APIStatusError,
    409: mal.ConflictError,
    429: mal.RateLimitError,
    500: mal.InternalServerError,
    502: mal.InternalServerError,
    503: mal.InternalServerError,
    529: mal.OverloadedError,
}
RETRYABLE = {
    400: False,
    401: False,
    403: False,
    404: False,
    408: True,
    409: True,
    429: True,
    500: True,
    502: True,
    503: True,
    529: True,
}

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n"
    + "".join(
        f"<!-- a padding to disable MSIE and Chrome friendly error page {i} -->\r\n"
        for i in range(20)
    )
    + "</body>\r\n</html>\r\n"
)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", sorted(set(CLASSES) - {502}))
def test_status_maps_to_class(provider: str, status: int) -> None:
    body, message, _ = body_of(provider, status)
    err = get_protocol(provider).status_error(status, {"content-type": "application/json"}, body)
    assert type(err) is CLASSES[status]
    assert isinstance(err, mal.APIStatusError)
    assert isinstance(err, mal.MALError)
    assert err.status_code == status
    assert err.provider == provider
    assert err.body == json.loads(body)
    assert err.retryable is RETRYABLE[status]
    assert message in str(err)
    assert str(status) in str(err)
    assert err.partial_text == ""


@pytest.mark.parametrize("provider", PROVIDERS)
def test_502_html_from_a_proxy(provider: str) -> None:
    assert len(HTML_502) > 1000
    err = get_protocol(provider).status_error(502, {"Content-Type": "text/html"}, HTML_502.encode())
    assert type(err) is mal.InternalServerError
    assert err.status_code == 502
    assert err.provider == provider
    assert err.retryable is True
    assert isinstance(err.body, str)
    assert len(err.body) == 1000
    assert err.body == HTML_502.strip()[:1000]
    assert "502 Bad Gateway" in str(err)


def test_subclasses_follow_the_tree() -> None:
    assert issubclass(mal.OverloadedError, mal.InternalServerError)
    for cls in (
        mal.AuthenticationError,
        mal.PermissionDeniedError,
        mal.NotFoundError,
        mal.RateLimitError,
        mal.InternalServerError,
    ):
        assert issubclass(cls, mal.APIStatusError)
    assert issubclass(mal.ConfigError, ValueError)
    assert issubclass(mal.IncompleteStreamError, mal.StreamError)
    assert issubclass(mal.DecodeError, mal.StreamError)
    assert issubclass(mal.APITimeoutError, mal.APIConnectionError)


@pytest.mark.parametrize(
    ("provider", "env"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")]
)
def test_401_names_the_env_var(provider: str, env: str) -> None:
    body, message, _ = body_of(provider, 401)
    err = get_protocol(provider).status_error(401, {}, body)
    assert isinstance(err, mal.AuthenticationError)
    assert env in str(err)
    assert message in str(err)


@pytest.mark.parametrize(
    ("provider", "env"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")]
)
def test_401_without_a_body_names_the_env_var(provider: str, env: str) -> None:
    err = get_protocol(provider).status_error(401, {}, b"")
    assert isinstance(err, mal.AuthenticationError)
    assert env in str(err)
    assert err.body is None


def test_error_type_in_message() -> None:
    body, _, _ = body_of("anthropic", 529)
    err = get_protocol("anthropic").status_error(529, {}, body)
    assert "overloaded_error" in str(err)


def test_headers_kept_lower_case() -> None:
    err = get_protocol("openai").status_error(
        500, {"X-Request-ID": "req_1", "Content-Type": "application/json"}, b"{}"
    )
    assert err.headers["x-request-id"] == "req_1"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_empty_and_odd_bodies(provider: str) -> None:
    protocol = get_protocol(provider)
    err = protocol.status_error(500, {}, b"")
    assert type(err) is mal.InternalServerError
    assert err.body is None
    err = protocol.status_error(500, {}, b"upstream connect error or disconnect/reset")
    assert err.body == "upstream connect error or disconnect/reset"
    assert "upstream connect error" in str(err)
    err = protocol.status_error(400, {}, b"[1, 2]")
    assert err.body == [1, 2]
    assert type(err) is mal.BadRequestError
    err = protocol.status_error(503, {}, b"\xff\xfe not utf-8")
    assert isinstance(err.body, str)
    assert err.retryable is True


def test_other_4xx_and_5xx() -> None:
    protocol = get_protocol("openai")
    err = protocol.status_error(422, {}, b'{"error":{"message":"bad","type":"invalid"}}')
    assert type(err) is mal.UnprocessableEntityError
    assert err.retryable is False
    err = protocol.status_error(504, {}, b"")
    assert type(err) is mal.InternalServerError
    assert err.retryable is True
    # 501 Not Implemented: the server lacks the endpoint; sending it again
    # cannot help (llama.cpp's not_supported_error).
    body = b'{"error":{"code":501,"message":"not supported","type":"not_supported_error"}}'
    err = protocol.status_error(501, {}, body)
    assert type(err) is mal.InternalServerError
    assert err.retryable is False
    assert mal.InternalServerError("x", status_code=501).retryable is False
    assert mal.InternalServerError("x", status_code=599).retryable is True


# Retry-After ------------------------------------------------------------------------


def rate_limited(headers: dict[str, str], now: float | None = None) -> mal.RateLimitError:
    body, _, _ = body_of("anthropic", 429)
    err = status_error(429, headers, body, provider="anthropic", now=now)
    assert isinstance(err, mal.RateLimitError)
    return err


@pytest.mark.parametrize("provider", PROVIDERS)
def test_retry_after_seconds(provider: str) -> None:
    body, _, _ = body_of(provider, 429)
    err = get_protocol(provider).status_error(429, {"Retry-After": "7"}, body)
    assert isinstance(err, mal.RateLimitError)
    assert err.retry_after == 7.0


def test_retry_after_absent() -> None:
    assert rate_limited({}).retry_after is None


@pytest.mark.parametrize("name", ["retry-after", "Retry-After", "RETRY-AFTER"])
def test_retry_after_any_case(name: str) -> None:
    assert rate_limited({name: "12"}).retry_after == 12.0


def test_retry_after_http_date() -> None:
    now = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert email.utils.formatdate(now, usegmt=True) == "Wed, 21 Oct 2015 07:28:00 GMT"
    err = rate_limited({"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}, now=now)
    assert err.retry_after == pytest.approx(30.0)


def test_retry_after_http_date_in_the_past() -> None:
    err = rate_limited({"Retry-After": "Wed, 21 Oct 2015 07:27:00 GMT"}, now=1_445_412_480.0)
    assert err.retry_after == 0.0


def test_retry_after_ms() -> None:
    assert rate_limited({"retry-after-ms": "1500"}).retry_after == pytest.approx(1.5)


def test_retry_after_ms_wins_over_retry_after() -> None:
    err = rate_limited({"retry-after-ms": "250", "retry-after": "3"})
    assert err.retry_after == pytest.approx(0.25)


def test_retry_after_unreadable() -> None:
    assert rate_limited({"Retry-After": "soon"}).retry_after is None
    assert rate_limited({"retry-after-ms": "x", "retry-after": "4"}).retry_after == 4.0


def test_retry_after_real_anthropic_headers() -> None:
    headers: dict[str, Any] = {
        "date": "Wed, 21 Oct 2015 07:28:00 GMT",
        "content-type": "application/json",
        "retry-after": "18",
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2015-10-21T07:28:18Z",
        "request-id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }
    err = rate_limited(headers)
    assert err.retry_after == 18.0
    assert err.headers["request-id"] == "req_011CSHoEeqs5C35K2UUqR7Fy"


def test_parse_retry_after_directly() -> None:
    assert parse_retry_after({"retry-after": "0"}) == 0.0
    assert parse_retry_after({"retry-after": "2.5"}) == 2.5
    assert parse_retry_after({}) is None
    assert parse_retry_after(
        {"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1_445_412_480.0
    ) == pytest.approx(10.0)


def test_retry_after_on_a_503_is_kept_in_headers() -> None:
    # Retry-After on a 503 keeps the header; the class is still InternalServerError.
    err = get_protocol("openai").status_error(503, {"Retry-After": "5"}, b"")
    assert type(err) is mal.InternalServerError
    assert err.headers["retry-after"] == "5"
