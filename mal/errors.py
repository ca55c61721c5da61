"""The errors mal raises. This module does no I/O.

Every error is a :class:`MALError`::

    MALError                          .partial_text, .retryable
    ├── ConfigError (also ValueError) a bad option, model name or config value
    ├── APIConnectionError            could not reach the server or send the request
    │   └── APITimeoutError           .phase: "connect", "read", "write", "pool",
    │                                 "first_token", "idle" or "total"
    ├── APIStatusError                .status_code, .body, .provider, .headers,
    │   │                             .retry_after, .request_id
    │   ├── BadRequestError           400 (a field the API rejects)
    │   ├── AuthenticationError       401
    │   ├── PermissionDeniedError     403
    │   ├── NotFoundError             404 (unknown model)
    │   ├── ConflictError             409 (retried)
    │   ├── UnprocessableEntityError  422
    │   ├── RateLimitError            429, .retry_after (seconds or None)
    │   └── InternalServerError       >= 500
    │       └── OverloadedError       529
    ├── StreamError                   the provider reported an error inside the stream;
    │   │                             .error_type: the provider's own name for it,
    │   │                             .request_id (when the response head came)
    │   ├── IncompleteStreamError     the body ended before the provider's end marker
    │   └── DecodeError               bytes that are not valid framing, JSON or UTF-8
    ├── OutputValidationError         the output does not match ``schema``; .raw_text
    ├── RefusalError                  the model refused; .refusal
    └── ToolError                     a tool run by ``tool_rounds`` raised, or the model
                                      called a tool that was not given; .tool_call

``partial_text`` holds every character of text decoded before the failure, so
nothing that arrived is lost; ``retryable`` says whether sending the same
request again may succeed. ``request_id`` is the provider's id of the request
(OpenAI's ``x-request-id`` header, Anthropic's ``request-id``), to quote to its
support; None when the server sent none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
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
    "IncompleteStreamError",
    "DecodeError",
    "RunawayError",
    "OutputValidationError",
    "RefusalError",
    "ToolError",
]


class MALError(Exception):
    """Base class of every error mal raises."""

    #: Whether the same request may succeed if sent again.
    retryable: bool = False

    def __init__(
        self, message: str, *, partial_text: str = "", retryable: bool | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        #: All text decoded before the failure ("" when none had arrived).
        self.partial_text = partial_text
        #: A call of several steps (``tool_rounds``, ``schema_retries``): the
        #: :class:`mal.Response` of each step that ended before the failure.
        self.steps: list[Any] = []
        if retryable is not None:
            self.retryable = retryable


class ConfigError(MALError, ValueError):
    """A bad option, model name or configuration value; the message names it."""


class APIConnectionError(MALError):
    """The server could not be reached, or the request could not be sent."""

    retryable = True


class APITimeoutError(APIConnectionError):
    """A timeout expired; ``phase`` says which one."""

    def __init__(
        self,
        message: str,
        *,
        phase: str,
        partial_text: str = "",
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message, partial_text=partial_text, retryable=retryable)
        #: "connect", "read", "write", "pool", "first_token", "idle" or "total".
        self.phase = phase


#: Statuses below 500 worth sending the same request again for: 408 Request
#: Timeout, 409 Conflict, 429 Too Many Requests. Of 5xx, all but 501 Not
#: Implemented: "the server does not support the functionality required to
#: fulfill the request" (RFC 9110, section 15.6.2), which no retry changes
#: (llama.cpp's server answers so, as ``not_supported_error``, for what it was
#: not started with: its tools/server sources, ``format_error_response``).
_RETRYABLE_STATUS = frozenset({408, 409, 429})


class APIStatusError(MALError):
    """The server answered with an error status (4xx or 5xx)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: object = None,
        provider: str = "",
        headers: dict[str, str] | None = None,
        partial_text: str = "",
        retryable: bool | None = None,
    ) -> None:
        if retryable is None:
            retryable = status_code in _RETRYABLE_STATUS or (
                status_code >= 500 and status_code != 501
            )
        super().__init__(message, partial_text=partial_text, retryable=retryable)
        #: Seconds the server asked us to wait (``retry-after-ms`` or ``Retry-After``).
        self.retry_after: float | None = None
        self.status_code = status_code
        #: The decoded JSON error body, or the body's text when it is not JSON.
        self.body = body
        self.provider = provider
        self.headers: dict[str, str] = headers or {}
        #: The provider's id of the request, None when the server sent none.
        self.request_id: str | None = request_id_of(self.headers)


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The request id among response headers (lower-case names): OpenAI's
    ``x-request-id`` (openai-python, ``APIResponse.request_id`` in
    ``_response.py``), Anthropic's ``request-id`` (anthropic-python, the same
    property); None when neither came."""
    return headers.get("x-request-id") or headers.get("request-id") or None


class BadRequestError(APIStatusError):
    """400: the request was rejected; the message names the field where the
    provider says which."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing or wrong."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this model or endpoint."""


class NotFoundError(APIStatusError):
    """404: most often an unknown model."""


class ConflictError(APIStatusError):
    """409: the request conflicts with the state of a resource; retried, as
    the official SDKs do (``_should_retry`` in openai-python's and
    anthropic-python's ``_base_client.py`` retries 409, a lock timeout)."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was well-formed but cannot be processed."""


class RateLimitError(APIStatusError):
    """429: too many requests; ``retry_after`` is the server's advice in seconds."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int = 429,
        body: object = None,
        provider: str = "",
        headers: dict[str, str] | None = None,
        partial_text: str = "",
        retryable: bool | None = None,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            body=body,
            provider=provider,
            headers=headers,
            partial_text=partial_text,
            retryable=retryable,
        )
        self.retry_after = retry_after


class InternalServerError(APIStatusError):
    """A 5xx status."""


class OverloadedError(InternalServerError):
    """529: the provider is overloaded (Anthropic)."""


class StreamError(MALError):
    """The provider reported an error inside a response body.

    ``error_type`` is the provider's own name for it (Anthropic ``error.type``,
    OpenAI ``error.type`` or else ``error.code``, None for Ollama).
    """

    def __init__(
        self,
        message: str,
        *,
        error_type: str | None = None,
        partial_text: str = "",
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message, partial_text=partial_text, retryable=retryable)
        self.error_type = error_type

    #: The provider's id of the request (see :class:`APIStatusError`), set
    #: when the error came after the response head; None otherwise.
    request_id: str | None = None

    #: For the sans-I/O decoders: the chunks that the piece being decoded gave
    #: before the failure. A driver hands them to the caller before it raises the
    #: error, so that what the caller saw is exactly ``partial_text``.
    chunks: Sequence[Any] = ()


class IncompleteStreamError(StreamError):
    """The body ended, cleanly or by a dropped connection, before the end marker."""

    retryable = True


class DecodeError(StreamError):
    """Bytes that are not valid framing, JSON or UTF-8."""

    #: For the framing layer: what the piece completed before its bad bytes
    #: (lines or events), and how many of its bytes came before them.
    frames: Sequence[Any] = ()
    valid: int = 0
    #: For a tool call whose arguments are not a JSON object: the arguments'
    #: text exactly as received.
    raw_text: str = ""


class RunawayError(StreamError):
    """The runaway guard stopped a stream: ``reason`` is "max_output_chars" or
    "repeated_deltas". The connection was closed, which stops the model."""

    def __init__(self, message: str, *, reason: str, partial_text: str = "") -> None:
        super().__init__(message, error_type=None, partial_text=partial_text, retryable=False)
        self.reason = reason


class OutputValidationError(MALError):
    """The output does not decode into, or validate against, the call's ``schema``
    (after ``schema_retries`` re-asks). ``raw_text`` is the output as received;
    ``str()`` is the validation message, naming the path (``$.population``)."""

    def __init__(self, message: str, *, raw_text: str, partial_text: str = "") -> None:
        super().__init__(message, partial_text=partial_text or raw_text, retryable=False)
        self.raw_text = raw_text


class RefusalError(MALError):
    """The model refused to answer (OpenAI ``refusal``, Anthropic ``refusal`` stop
    reason) where an object of the call's ``schema`` was expected; ``refusal``
    is the model's refusal text ("" when the provider sends none)."""

    def __init__(self, message: str, *, refusal: str = "", partial_text: str = "") -> None:
        super().__init__(message, partial_text=partial_text, retryable=False)
        self.refusal = refusal


class ToolError(MALError):
    """A tool run by ``tool_rounds`` raised (the original is ``__cause__``), or
    the model called a tool that was not given. ``tool_call`` is the call;
    ``response`` the :class:`mal.Response` of the turn that made it, with the
    ``steps`` and ``messages`` of the rounds before, so nothing is lost."""

    def __init__(
        self,
        message: str,
        *,
        tool_call: Any = None,
        partial_text: str = "",
        response: Any = None,
    ) -> None:
        super().__init__(message, partial_text=partial_text, retryable=False)
        self.tool_call = tool_call
        self.response = response
