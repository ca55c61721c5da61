"""MALConfig: defaults, validation, timeouts, and where endpoints come from."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest

import mal
from mal.config import resolve_endpoint
from mal.protocols import get_protocol

DEFAULTS: dict[str, Any] = {
    "connect_timeout": 10.0,
    "read_timeout": 600.0,
    "write_timeout": 30.0,
    "pool_timeout": 10.0,
    "timeout": None,
    "use_streaming": True,
    "streaming_threshold": 5000,
    "default_provider": "ollama",
    "max_retries": 2,
    "max_retry_after": 60.0,
    "first_token_timeout": None,
    "idle_timeout": None,
    "total_timeout": None,
    "fallbacks": [],
}


def test_is_a_msgspec_struct() -> None:
    assert isinstance(mal.MALConfig(), msgspec.Struct)


@pytest.mark.parametrize(("field", "value"), list(DEFAULTS.items()))
def test_default(field: str, value: Any) -> None:
    assert getattr(mal.MALConfig(), field) == value


def test_defaults_are_not_shared() -> None:
    a, b = mal.MALConfig(), mal.MALConfig()
    a.fallbacks.append("openai/gpt-4o-mini")
    assert b.fallbacks == []


def test_seed_examples() -> None:
    config = mal.MALConfig(streaming_threshold=10000)
    assert config.streaming_threshold == 10000
    assert config.use_streaming is True

    config = mal.MALConfig(use_streaming=False)
    assert config.use_streaming is False
    assert config.streaming_threshold == 5000

    config = mal.MALConfig(
        connect_timeout=5.0, read_timeout=300.0, write_timeout=20.0, pool_timeout=5.0
    )
    assert (
        config.connect_timeout,
        config.read_timeout,
        config.write_timeout,
        config.pool_timeout,
    ) == (5.0, 300.0, 20.0, 5.0)
    assert config.timeouts() == (5.0, 300.0, 20.0, 5.0)


def test_integers_and_none_accepted() -> None:
    config = mal.MALConfig(
        read_timeout=300,
        connect_timeout=None,
        total_timeout=120,
        idle_timeout=30.5,
        first_token_timeout=60,
        streaming_threshold=0,
        max_retries=0,
        max_retry_after=0,
        default_provider="anthropic",
        fallbacks=["openai/gpt-4o-mini", "qwen2.5-coder:7b"],
    )
    assert config.read_timeout == 300
    assert config.connect_timeout is None
    assert config.default_provider == "anthropic"


BAD: list[tuple[str, Any]] = [
    ("connect_timeout", -1.0),
    ("read_timeout", -0.5),
    ("write_timeout", -30),
    ("pool_timeout", -10.0),
    ("timeout", -1.0),
    ("first_token_timeout", -1.0),
    ("idle_timeout", -2.0),
    ("total_timeout", -3.0),
    ("read_timeout", math.nan),
    ("read_timeout", "600"),
    ("connect_timeout", True),
    ("streaming_threshold", -1),
    ("streaming_threshold", 1.5),
    ("max_retries", -1),
    ("max_retries", "2"),
    ("max_retry_after", -1.0),
    ("max_retry_after", None),
    ("default_provider", "nosuch"),
    ("default_provider", ""),
    ("fallbacks", ["anthropic/"]),
    ("fallbacks", [""]),
    ("use_streaming", "yes"),
]


@pytest.mark.parametrize(("field", "value"), BAD)
def test_out_of_range_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(mal.ConfigError) as info:
        mal.MALConfig(**{field: value})
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, mal.MALError)
    assert field in str(info.value)


def test_unknown_provider_in_base_urls_or_api_keys() -> None:
    with pytest.raises(mal.ConfigError, match="base_urls"):
        mal.MALConfig(base_urls={"nosuch": "http://x"})
    with pytest.raises(mal.ConfigError, match="api_keys"):
        mal.MALConfig(api_keys={"nosuch": "k"})


def test_config_error_is_catchable_as_value_error() -> None:
    with pytest.raises(ValueError, match="streaming_threshold"):
        mal.MALConfig(streaming_threshold=-5)


# Timeouts ------------------------------------------------------------------------------


def test_timeouts_default() -> None:
    assert mal.MALConfig().timeouts() == (10.0, 600.0, 30.0, 10.0)


def test_legacy_timeout_replaces_all_four() -> None:
    config = mal.MALConfig(timeout=42.0, read_timeout=300.0)
    assert config.timeouts() == (42.0, 42.0, 42.0, 42.0)


def test_per_call_timeout_replaces_all_four() -> None:
    assert mal.MALConfig().timeouts(5.0) == (5.0, 5.0, 5.0, 5.0)
    assert mal.MALConfig(timeout=42.0).timeouts(5.0) == (5.0, 5.0, 5.0, 5.0)
    assert mal.MALConfig(timeout=42.0).timeouts(None) == (42.0, 42.0, 42.0, 42.0)


def test_no_limit_timeouts() -> None:
    config = mal.MALConfig(read_timeout=None, connect_timeout=None)
    assert config.timeouts() == (None, None, 30.0, 10.0)


# Endpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "environ", "base_url", "api_key"),
    [
        ("ollama", {}, "http://localhost:11434", None),
        ("ollama", {"OLLAMA_HOST": "gpu-box:8080"}, "http://gpu-box:8080", None),
        ("ollama", {"OLLAMA_HOST": "gpu-box"}, "http://gpu-box:11434", None),
        (
            "ollama",
            {"OLLAMA_HOST": "https://ollama.example.com"},
            "https://ollama.example.com:443",
            None,
        ),
        ("ollama", {"OLLAMA_HOST": "0.0.0.0"}, "http://0.0.0.0:11434", None),
        ("ollama", {"OLLAMA_HOST": ""}, "http://localhost:11434", None),
        ("ollama", {"OPENAI_API_KEY": "sk-x"}, "http://localhost:11434", None),
        ("openai", {}, "https://api.openai.com/v1", None),
        ("openai", {"OPENAI_API_KEY": "sk-env"}, "https://api.openai.com/v1", "sk-env"),
        ("openai", {"OPENAI_API_KEY": ""}, "https://api.openai.com/v1", None),
        (
            "openai",
            {"OPENAI_BASE_URL": "http://localhost:8000/v1"},
            "http://localhost:8000/v1",
            None,
        ),
        ("openai", {"ANTHROPIC_API_KEY": "sk-ant"}, "https://api.openai.com/v1", None),
        ("anthropic", {}, "https://api.anthropic.com", None),
        (
            "anthropic",
            {"ANTHROPIC_API_KEY": "sk-ant", "ANTHROPIC_BASE_URL": "https://gw.example"},
            "https://gw.example",
            "sk-ant",
        ),
    ],
)
def test_resolve_endpoint_from_environ(
    provider: str, environ: dict[str, str], base_url: str, api_key: str | None
) -> None:
    endpoint = resolve_endpoint(get_protocol(provider), mal.MALConfig(), environ)
    assert endpoint.base_url == base_url
    assert endpoint.api_key == api_key


def test_config_wins_over_environ() -> None:
    config = mal.MALConfig(
        base_urls={"openai": "http://vllm:8000/v1", "ollama": "http://cfg:1"},
        api_keys={"openai": "sk-config", "anthropic": "sk-ant-config"},
    )
    environ = {
        "OPENAI_BASE_URL": "http://env/v1",
        "OPENAI_API_KEY": "sk-env",
        "ANTHROPIC_API_KEY": "sk-ant-env",
        "OLLAMA_HOST": "env-host",
    }
    openai = resolve_endpoint(get_protocol("openai"), config, environ)
    assert (openai.base_url, openai.api_key) == ("http://vllm:8000/v1", "sk-config")
    anthropic = resolve_endpoint(get_protocol("anthropic"), config, environ)
    assert (anthropic.base_url, anthropic.api_key) == ("https://api.anthropic.com", "sk-ant-config")
    ollama = resolve_endpoint(get_protocol("ollama"), config, environ)
    assert ollama.base_url == "http://cfg:1"


def test_endpoint_repr_hides_the_key() -> None:
    endpoint = resolve_endpoint(
        get_protocol("openai"), mal.MALConfig(), {"OPENAI_API_KEY": "sk-very-secret"}
    )
    assert endpoint.api_key == "sk-very-secret"
    assert "sk-very-secret" not in repr(endpoint)
    assert "sk-very-secret" not in str(endpoint)


def test_api_key_never_in_repr_or_str() -> None:
    config = mal.MALConfig(
        api_keys={"openai": "sk-proj-SECRET123", "anthropic": "sk-ant-SECRET456"}
    )
    for text in (repr(config), str(config), f"{config}", f"{config!r}"):
        assert "SECRET123" not in text
        assert "SECRET456" not in text
        assert "MALConfig(" in text
    # The rest of the config is still shown.
    assert "read_timeout=600.0" in repr(config)
    assert config.api_keys["openai"] == "sk-proj-SECRET123"
