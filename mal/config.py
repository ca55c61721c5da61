"""Configuration: :class:`MALConfig`, and where base URLs and API keys come from.

This module does no I/O: the environment is passed in as a mapping.
"""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlsplit

import msgspec

from .errors import ConfigError
from .framing import DEFAULT_MAX_EVENT_SIZE
from .limits import RateLimit
from .protocols import PROTOCOLS, Protocol, split_model
from .protocols.ollama import normalize_host
from .protocols.openai import AZURE_API_VERSION


class Timeout(typing.Protocol):
    """What an ``httpx.Timeout`` is to the config (this module imports no httpx)."""

    @property
    def connect(self) -> float | None: ...
    @property
    def read(self) -> float | None: ...
    @property
    def write(self) -> float | None: ...
    @property
    def pool(self) -> float | None: ...


__all__ = ["MALConfig", "Endpoint", "resolve_endpoint", "with_api_version"]

_TIMEOUTS = ("connect_timeout", "read_timeout", "write_timeout", "pool_timeout", "timeout")
_CLOCKS = ("first_token_timeout", "idle_timeout", "total_timeout")


class MALConfig(msgspec.Struct, kw_only=True):
    """Settings shared by every call of a client.

    Timeouts are in seconds; ``None`` means no limit. ``timeout``, the legacy
    single value, replaces each of the four granular ones when set; an
    ``httpx.Timeout`` there sets the four from its ``connect``, ``read``,
    ``write`` and ``pool`` (and ``timeout`` is then None: the config holds
    plain numbers only).
    """

    connect_timeout: float | None = 10.0
    read_timeout: float | None = 600.0
    write_timeout: float | None = 30.0
    pool_timeout: float | None = 10.0
    if TYPE_CHECKING:
        timeout: float | Timeout | None = None
    else:
        # What msgspec sees: the config stays convertible from plain data.
        timeout: float | None = None
    use_streaming: bool = True
    streaming_threshold: int = 5000
    default_provider: str = "ollama"
    max_retries: int = 2
    max_retry_after: float = 60.0
    first_token_timeout: float | None = None
    idle_timeout: float | None = None
    total_timeout: float | None = None
    fallbacks: list[str] = []
    #: The runaway guard: stop a stream whose text passes this many characters.
    max_output_chars: int | None = None
    #: The runaway guard: stop a stream after this many identical text deltas in a row.
    max_repeated_deltas: int | None = None
    #: The most bytes one line, event or non-streamed body may hold.
    max_event_size: int = DEFAULT_MAX_EVENT_SIZE
    #: Base URL per provider (``{"openai": "http://localhost:8000/v1"}``),
    #: before the environment variables and the defaults.
    base_urls: dict[str, str] = {}
    #: API key per provider, before the environment variables.
    api_keys: dict[str, str] = {}
    #: How ``schema=`` is asked of Anthropic: "output_config" (its structured
    #: outputs), "tool" (a forced tool whose input is the answer, for models
    #: and platforms without them), or "auto": the tool for the Claude 2 and 3
    #: models, output_config for the rest.
    anthropic_schema: str = "auto"
    #: Azure OpenAI's ``api-version`` (else ``OPENAI_API_VERSION``, else the
    #: latest generally available one).
    azure_api_version: str | None = None
    #: Also log each request's body (the prompt) at DEBUG on the ``mal``
    #: logger; off by default: prompts stay out of logs unless asked for.
    log_prompts: bool = False
    #: Limits every call waits its turn under (see :class:`mal.RateLimit`),
    #: by provider (``"openai"``) or by model (``"anthropic/claude-sonnet-4-5"``):
    #: a call waits under both of its own, if set.
    rate_limits: dict[str, RateLimit] = {}
    #: Where the limits and cool-downs are kept: None, in this process (every
    #: client of the process shares them); ``"redis://host:port/db"``
    #: (``rediss://``, ``unix://``), on a Redis server shared by every process
    #: that points at it (``pip install 'mal-llm[redis]'``).
    shared_state: str | None = None
    #: Cool-downs: a model that failed this many times in a row (retryable
    #: failures: timeouts, 429, 5xx...) is tried after the other models of a
    #: call's chain (its model and fallbacks) for ``cooldown_seconds``.
    #: None (the default): no cool-downs.
    cooldown_failures: int | None = None
    cooldown_seconds: float = 60.0

    def __post_init__(self) -> None:
        parts = timeout_parts("timeout", self.timeout)
        if parts is not None:
            self.connect_timeout, self.read_timeout, self.write_timeout, self.pool_timeout = parts
            self.timeout = None
        for name in _TIMEOUTS + _CLOCKS:
            check_seconds(name, getattr(self, name), allow_none=True)
        check_seconds("max_retry_after", self.max_retry_after, allow_none=False, zero=True)
        for name in ("streaming_threshold", "max_retries"):
            _check_int(name, getattr(self, name), minimum=0)
        _check_int("max_event_size", self.max_event_size, minimum=1)
        for name in ("max_output_chars", "max_repeated_deltas"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum=1)
        if not isinstance(self.log_prompts, bool):
            raise ConfigError(f"log_prompts must be True or False, not {self.log_prompts!r}")
        if not isinstance(self.use_streaming, bool):
            raise ConfigError(f"use_streaming must be True or False, not {self.use_streaming!r}")
        if self.default_provider not in PROTOCOLS:
            known = ", ".join(sorted(PROTOCOLS))
            raise ConfigError(
                f"default_provider: unknown provider {self.default_provider!r}; known: {known}"
            )
        if self.anthropic_schema not in ("auto", "output_config", "tool"):
            raise ConfigError(
                "anthropic_schema must be 'auto', 'output_config' or 'tool', "
                f"not {self.anthropic_schema!r}"
            )
        if not isinstance(self.fallbacks, list):
            raise ConfigError("fallbacks must be a list of model names")
        for model in self.fallbacks:
            try:
                split_model(model, self.default_provider)
            except ConfigError as exc:
                raise ConfigError(f"fallbacks: {exc}") from None
        for field in ("base_urls", "api_keys"):
            for provider in getattr(self, field):
                if provider not in PROTOCOLS:
                    raise ConfigError(f"{field}: unknown provider {provider!r}")
        _check_rate_limits(self.rate_limits)
        if self.shared_state is not None and (
            not isinstance(self.shared_state, str)
            or not self.shared_state.startswith(SHARED_STATE_SCHEMES)
        ):
            raise ConfigError(
                "shared_state must be None or a redis://, rediss:// or unix:// URL, "
                f"not {hide_password(self.shared_state)!r}"
            )
        if self.cooldown_failures is not None:
            _check_int("cooldown_failures", self.cooldown_failures, minimum=1)
        check_seconds("cooldown_seconds", self.cooldown_seconds, allow_none=False)

    def __repr__(self) -> str:
        # Written out so that API keys never reach a log line.
        fields = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name == "api_keys":
                value = {provider: "***" for provider in value}
            elif name == "shared_state":
                value = hide_password(value)
            fields.append(f"{name}={value!r}")
        return f"MALConfig({', '.join(fields)})"

    __str__ = __repr__

    def timeouts(self, timeout: float | Timeout | None = None) -> tuple[float | None, ...]:
        """The (connect, read, write, pool) timeouts in force; ``timeout``, a
        per-call value (seconds for all four, or an ``httpx.Timeout``), or
        else the config's own single value, replaces them."""
        single = timeout if timeout is not None else self.timeout
        parts = timeout_parts("timeout", single)
        if parts is not None:
            return parts
        if isinstance(single, (int, float)):
            return (single, single, single, single)
        return (self.connect_timeout, self.read_timeout, self.write_timeout, self.pool_timeout)


def timeout_parts(name: str, value: object) -> tuple[float | None, ...] | None:
    """The (connect, read, write, pool) seconds of an ``httpx.Timeout`` (read
    by its attributes: this module imports no httpx), checked; None for a
    number of seconds or None, which are checked too."""
    if value is None or isinstance(value, (int, float)):
        check_seconds(name, value, allow_none=True)
        return None
    try:
        parts = tuple(getattr(value, part) for part in ("connect", "read", "write", "pool"))
    except AttributeError:
        raise ConfigError(
            f"{name} must be a number of seconds or an httpx.Timeout, not {value!r}"
        ) from None
    for part, seconds in zip(("connect", "read", "write", "pool"), parts, strict=True):
        check_seconds(f"{name}.{part}", seconds, allow_none=True)
    return parts


def check_seconds(name: str, value: object, *, allow_none: bool, zero: bool = False) -> None:
    """Raise ConfigError naming ``name`` unless ``value`` is a finite number of
    seconds, > 0 (>= 0 with ``zero``), or None when ``allow_none``."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise ConfigError(
            f"{name} must be a finite number of seconds {'>= 0' if zero else '> 0'}, not {value!r}"
        )


#: The schemes of ``shared_state``: Redis URLs, as redis-py's ``from_url`` reads them.
SHARED_STATE_SCHEMES = ("redis://", "rediss://", "unix://")


def _check_rate_limits(limits: object) -> None:
    """``rate_limits``: a dict of RateLimit by a known provider or ``provider/model``."""
    if not isinstance(limits, dict):
        raise ConfigError(
            f"rate_limits must be a dict of mal.RateLimit by provider or 'provider/model', "
            f"not {limits!r}"
        )
    for key, limit in limits.items():
        if not isinstance(key, str):
            raise ConfigError(f"rate_limits: a key must be a str, not {key!r}")
        provider, slash, model = key.partition("/")
        if provider not in PROTOCOLS or (slash and not model.strip()):
            known = ", ".join(sorted(PROTOCOLS))
            raise ConfigError(
                f"rate_limits: {key!r} is neither a provider nor 'provider/model' "
                f"(providers: {known})"
            )
        if not isinstance(limit, RateLimit):
            raise ConfigError(f"rate_limits[{key!r}] must be a mal.RateLimit, not {limit!r}")
        if limit == RateLimit():
            raise ConfigError(
                f"rate_limits[{key!r}] limits nothing: give it requests_per_minute, "
                "tokens_per_minute or concurrent"
            )


def hide_password(url: object) -> object:
    """A Redis URL with its password hidden: in the user info
    (``redis://:secret@host``) or the query (``unix:///s.sock?password=secret``),
    the two places redis-py's ``from_url`` reads one from."""
    if not isinstance(url, str):
        return url
    url = re.sub(r"^([a-z]+://[^:/@?]*:)[^@/?]*@", r"\1***@", url)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url)


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, not {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, not {value!r}")


class Endpoint(msgspec.Struct, frozen=True):
    """Where one provider's requests go, and the key they carry."""

    base_url: str
    api_key: str | None
    #: Azure OpenAI's api-version (the config's, the environment's or the
    #: default), which every base URL of the provider carries in its query;
    #: None for the other providers.
    api_version: str | None = None
    #: Headers every request of the provider carries, from the environment
    #: (``OPENAI_ORG_ID``...); a call's ``extra_headers`` replace them.
    headers: dict[str, str] = {}

    def replaced(self, base_url: str | None, api_key: str | None) -> Endpoint:
        """This endpoint with a call's own ``base_url`` and ``api_key`` (None
        keeps this one's). A base URL without an api-version gets this
        endpoint's, as the configured one did: Azure answers a deployment URL
        without one with 404."""
        if base_url is None and api_key is None:
            return self
        return Endpoint(
            self.base_url if base_url is None else with_api_version(base_url, self.api_version),
            self.api_key if api_key is None else api_key,
            self.api_version,
            self.headers,
        )

    def __repr__(self) -> str:
        return f"Endpoint({self.base_url!r}, api_key={'***' if self.api_key else None})"


def with_api_version(base_url: str, version: str | None) -> str:
    """``base_url`` with ``api-version=version`` in its query, unless it
    already names one (or there is no version, or no URL)."""
    if not version or not base_url:
        return base_url
    query = urlsplit(base_url).query
    if any(name == "api-version" for name, _ in parse_qsl(query, keep_blank_values=True)):
        return base_url
    return f"{base_url}{'&' if query else '?'}api-version={quote(version, safe='')}"


def resolve_endpoint(
    protocol: Protocol,
    config: MALConfig,
    environ: Mapping[str, str],
) -> Endpoint:
    """The base URL and API key of a provider: the config's, else the
    environment's (``OLLAMA_HOST``, ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``,
    ``ANTHROPIC_BASE_URL``, ``ANTHROPIC_API_KEY``), else the default; and
    the headers of ``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID`` and
    ``ANTHROPIC_AUTH_TOKEN``."""
    name = protocol.name
    # The Responses API lives beside chat completions: it shares OpenAI's settings.
    shared = "openai" if name == "openai-responses" else name
    base_url = config.base_urls.get(name) or config.base_urls.get(shared)
    if base_url is None and protocol.base_url_env:
        base_url = environ.get(protocol.base_url_env) or None
        if base_url is not None and name == "ollama":
            base_url = normalize_host(base_url)
    api_key = config.api_keys.get(name) or config.api_keys.get(shared)
    if api_key is None and protocol.api_key_env:
        api_key = environ.get(protocol.api_key_env) or None
    for env in protocol.more_api_key_envs:
        api_key = api_key or environ.get(env) or None
    base_url = base_url or protocol.default_base_url
    headers = _environment_headers(shared, environ)
    if name != "azure":
        return Endpoint(base_url, api_key, None, headers)
    # The API version rides in the endpoint's query, as Azure wants it in every
    # URL of a deployment ("api-version: required, in: query" on each path of
    # the Azure OpenAI inference spec, stable/2024-10-21/inference.yaml).
    version = config.azure_api_version or environ.get("OPENAI_API_VERSION") or AZURE_API_VERSION
    return Endpoint(with_api_version(base_url, version), api_key, version, headers)


def _environment_headers(provider: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The headers the official SDKs build from the environment: openai-python's
    ``OpenAI-Organization`` from ``OPENAI_ORG_ID`` and ``OpenAI-Project`` from
    ``OPENAI_PROJECT_ID`` (``OpenAI.__init__`` and ``default_headers`` in its
    ``_client.py``; ``AzureOpenAI`` reads them too), anthropic-python's
    ``Authorization: Bearer`` from ``ANTHROPIC_AUTH_TOKEN``, sent beside
    ``x-api-key`` when both are set (``auth_headers`` in its ``_client.py``)."""
    headers = {}
    if provider in ("openai", "azure"):
        for variable, header in (
            ("OPENAI_ORG_ID", "openai-organization"),
            ("OPENAI_PROJECT_ID", "openai-project"),
        ):
            if environ.get(variable):
                headers[header] = environ[variable]
    elif provider == "anthropic" and environ.get("ANTHROPIC_AUTH_TOKEN"):
        headers["authorization"] = f"Bearer {environ['ANTHROPIC_AUTH_TOKEN']}"
    return headers
