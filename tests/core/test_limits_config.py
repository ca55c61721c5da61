"""The config of limits and cool-downs: ``rate_limits``, ``shared_state``,
``cooldown_failures`` and ``cooldown_seconds``, checked when the config is
made, and still plain data for msgspec."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import mal


def test_the_defaults_limit_nothing() -> None:
    config = mal.MALConfig()
    assert config.rate_limits == {}
    assert config.shared_state is None
    assert config.cooldown_failures is None
    assert config.cooldown_seconds == 60.0


def test_rate_limit_is_exported() -> None:
    assert "RateLimit" in mal.__all__
    assert mal.RateLimit(concurrent=2).concurrent == 2


@pytest.mark.parametrize(
    "key", ["openai", "anthropic/claude-sonnet-4-5", "openrouter/meta/llama-3", "ollama/qwen:7b"]
)
def test_a_key_is_a_provider_or_a_provider_and_model(key: str) -> None:
    config = mal.MALConfig(rate_limits={key: mal.RateLimit(requests_per_minute=5)})
    assert config.rate_limits[key].requests_per_minute == 5


@pytest.mark.parametrize("key", ["gpt-4o", "opneai", "openai/", "openai/  ", "/gpt", ""])
def test_a_key_that_names_no_provider_is_a_config_error(key: str) -> None:
    with pytest.raises(mal.ConfigError, match=r"rate_limits: .* neither a provider"):
        mal.MALConfig(rate_limits={key: mal.RateLimit(concurrent=1)})


@pytest.mark.parametrize("value", [{"concurrent": 1}, 5, None])
def test_a_value_that_is_no_rate_limit_is_a_config_error(value: Any) -> None:
    with pytest.raises(mal.ConfigError, match=r"rate_limits\['openai'\] must be a mal.RateLimit"):
        mal.MALConfig(rate_limits={"openai": value})


def test_a_rate_limit_that_limits_nothing_is_a_config_error() -> None:
    with pytest.raises(mal.ConfigError, match="limits nothing"):
        mal.MALConfig(rate_limits={"openai": mal.RateLimit()})


def test_rate_limits_must_be_a_dict() -> None:
    with pytest.raises(mal.ConfigError, match="rate_limits must be a dict"):
        mal.MALConfig(rate_limits=[mal.RateLimit(concurrent=1)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("requests_per_minute", 0),
        ("tokens_per_minute", -5),
        ("concurrent", 1.5),
        ("concurrent", True),
    ],
)
def test_a_bad_rate_limit_is_a_config_error(field: str, value: Any) -> None:
    with pytest.raises(mal.ConfigError, match=f"RateLimit.{field}"):
        mal.RateLimit(**{field: value})


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://h:6380", "unix:///s.sock"])
def test_shared_state_takes_a_redis_url(url: str) -> None:
    assert mal.MALConfig(shared_state=url).shared_state == url


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "", 6379])
def test_a_shared_state_that_is_no_redis_url_is_a_config_error(url: Any) -> None:
    with pytest.raises(mal.ConfigError, match="shared_state must be None or a redis://"):
        mal.MALConfig(shared_state=url)


def test_the_password_of_shared_state_stays_out_of_repr_and_errors() -> None:
    config = mal.MALConfig(shared_state="redis://:hunter2@cache:6379/0")
    assert "hunter2" not in repr(config)
    assert "redis://:***@cache:6379/0" in repr(config)
    assert "hunter2" not in repr(mal.MALConfig(shared_state="unix:///s.sock?password=hunter2"))
    with pytest.raises(mal.ConfigError) as info:
        mal.MALConfig(shared_state="memcached://:hunter2@cache")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"cooldown_failures": 0}, "cooldown_failures must be >= 1"),
        ({"cooldown_failures": 2.0}, "cooldown_failures must be an integer"),
        ({"cooldown_seconds": 0}, "cooldown_seconds"),
        ({"cooldown_seconds": float("inf")}, "cooldown_seconds"),
        ({"cooldown_seconds": None}, "cooldown_seconds"),
    ],
)
def test_bad_cool_down_settings_are_config_errors(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(mal.ConfigError, match=match):
        mal.MALConfig(**fields)


def test_limits_survive_plain_data() -> None:
    # As a config read from a file or the environment is built.
    data = {
        "rate_limits": {
            "openai": {"requests_per_minute": 500, "tokens_per_minute": 200_000},
            "anthropic/claude-sonnet-4-5": {"concurrent": 8},
        },
        "shared_state": "redis://127.0.0.1:6379/0",
        "cooldown_failures": 3,
    }
    config = msgspec.convert(data, mal.MALConfig)
    assert config.rate_limits == {
        "openai": mal.RateLimit(requests_per_minute=500, tokens_per_minute=200_000),
        "anthropic/claude-sonnet-4-5": mal.RateLimit(concurrent=8),
    }
    assert msgspec.convert(msgspec.to_builtins(config), mal.MALConfig) == config
    # A bad value in plain data is refused too (msgspec wraps the ConfigError).
    with pytest.raises(msgspec.ValidationError, match="concurrent"):
        msgspec.convert({"rate_limits": {"openai": {"concurrent": 0}}}, mal.MALConfig)
    with pytest.raises(msgspec.ValidationError, match="neither a provider"):
        msgspec.convert({"rate_limits": {"gpt": {"concurrent": 1}}}, mal.MALConfig)


def test_with_options_replaces_the_limits() -> None:
    limits = {"openai": mal.RateLimit(requests_per_minute=5)}
    with mal.Client() as client:
        derived = client.with_options(rate_limits=limits, cooldown_failures=2)
        assert derived.config.rate_limits == limits
        assert derived.config.cooldown_failures == 2
        with pytest.raises(mal.ConfigError, match="rate_limits"):
            client.with_options(rate_limits={"nope": mal.RateLimit(concurrent=1)})
