"""The named OpenAI-compatible services, sans-I/O: the table, the requests each
is sent (URL, headers, body), where its base URL and key come from, its
embeddings, and the hint a model with an unknown prefix gets."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import mal
from mal.config import resolve_endpoint
from mal.embeddings import embed_request
from mal.protocols import (
    PROTOCOLS,
    GenerateParams,
    get_protocol,
    split_model,
    unknown_prefix_hint,
)
from mal.protocols.services import SERVICES, ServiceProtocol, service

#: Each service's documented base URL, key variable and token-limit field,
#: written out again here so that a change to the table shows as a failure.
EXPECTED = {
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY", "max_completion_tokens"),
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "max_tokens"),
    "deepseek": ("https://api.deepseek.com", "DEEPSEEK_API_KEY", "max_tokens"),
    "together": ("https://api.together.ai/v1", "TOGETHER_API_KEY", "max_tokens"),
    "fireworks": ("https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY", "max_tokens"),
    "mistral": ("https://api.mistral.ai/v1", "MISTRAL_API_KEY", "max_tokens"),
    "xai": ("https://api.x.ai/v1", "XAI_API_KEY", "max_tokens"),
    "cerebras": ("https://api.cerebras.ai/v1", "CEREBRAS_API_KEY", "max_completion_tokens"),
}
NAMES = sorted(EXPECTED)
EMBEDDINGS = {"together": "dimensions", "fireworks": "dimensions", "mistral": "output_dimension"}


def test_the_table_holds_the_eight_services() -> None:
    assert sorted(entry.name for entry in SERVICES) == NAMES
    for entry in SERVICES:
        assert (entry.base_url, entry.api_key_env, entry.max_tokens_field) == EXPECTED[entry.name]
        assert entry.embed_dimensions == EMBEDDINGS.get(entry.name)


@pytest.mark.parametrize("name", NAMES)
def test_each_service_is_a_provider(name: str) -> None:
    protocol = get_protocol(name)
    assert isinstance(protocol, ServiceProtocol) and PROTOCOLS[name] is protocol
    assert protocol.name == name
    assert protocol.default_base_url == EXPECTED[name][0]
    assert protocol.api_key_env == EXPECTED[name][1]
    assert protocol.base_url_env is None
    assert split_model(f"{name}/some-org/some-model:tag") == (name, "some-org/some-model:tag")


def test_the_other_providers_keep_their_own_settings() -> None:
    # The services are instances: setting their values must not reach the OpenAI class.
    openai = get_protocol("openai")
    assert openai.name == "openai" and openai.api_key_env == "OPENAI_API_KEY"
    assert openai.base_url_env == "OPENAI_BASE_URL"
    assert openai.default_base_url == "https://api.openai.com/v1"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("stream", [True, False])
def test_the_request_of_each_service(name: str, stream: bool) -> None:
    protocol = get_protocol(name)
    params = GenerateParams(
        model="org/model-1", prompt="Hi", stream=stream, max_tokens=64, temperature=0.5
    )
    request = protocol.build_request(params, base_url=protocol.default_base_url, api_key="k-1")
    assert request.method == "POST"
    assert request.url == EXPECTED[name][0] + "/chat/completions"
    assert request.headers["authorization"] == "Bearer k-1"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == ("text/event-stream" if stream else "application/json")
    body = msgspec.json.decode(request.body)
    field = EXPECTED[name][2]
    expected: dict[str, Any] = {
        "model": "org/model-1",
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0.5,
        field: 64,
    }
    if stream:
        expected["stream"] = True
        expected["stream_options"] = {"include_usage": True}
    assert body == expected


@pytest.mark.parametrize("name", NAMES)
def test_the_token_field_holds_for_reasoning_models_and_any_url(name: str) -> None:
    # OpenAI's rule (max_completion_tokens for o-series and gpt-5 names, and for
    # api.openai.com) is OpenAI's: a service documents one field for all its models.
    protocol = get_protocol(name)
    for model in ("openai/o3-mini", "gpt-5-nano", "deepseek-reasoner"):
        params = GenerateParams(model=model, prompt="Hi", max_tokens=9)
        for base in (None, "http://127.0.0.1:1/v1"):
            body = msgspec.json.decode(protocol.build_request(params, base_url=base).body)
            assert body[EXPECTED[name][2]] == 9
            assert {"max_tokens", "max_completion_tokens"} & set(body) == {EXPECTED[name][2]}


def test_extra_body_still_chooses_the_token_field() -> None:
    params = GenerateParams(model="m", prompt="Hi", max_tokens=9, extra_body={"max_tokens": 5})
    body = msgspec.json.decode(get_protocol("groq").build_request(params).body)
    assert body["max_tokens"] == 5 and "max_completion_tokens" not in body


# Where the base URL and the key come from ------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_the_defaults_and_the_key_variable(name: str) -> None:
    protocol = get_protocol(name)
    endpoint = resolve_endpoint(protocol, mal.MALConfig(), {EXPECTED[name][1]: "env-key"})
    assert (endpoint.base_url, endpoint.api_key) == (EXPECTED[name][0], "env-key")
    # Another service's variable, or OpenAI's, is not this one's key.
    endpoint = resolve_endpoint(protocol, mal.MALConfig(), {"OPENAI_API_KEY": "sk-openai"})
    assert endpoint.api_key is None
    # OPENAI_BASE_URL is OpenAI's, not the services'.
    endpoint = resolve_endpoint(protocol, mal.MALConfig(), {"OPENAI_BASE_URL": "http://x/v1"})
    assert endpoint.base_url == EXPECTED[name][0]


@pytest.mark.parametrize("name", NAMES)
def test_base_urls_and_api_keys_override(name: str) -> None:
    config = mal.MALConfig(base_urls={name: "http://127.0.0.1:8000/v1"}, api_keys={name: "cfg"})
    endpoint = resolve_endpoint(get_protocol(name), config, {EXPECTED[name][1]: "env-key"})
    assert (endpoint.base_url, endpoint.api_key) == ("http://127.0.0.1:8000/v1", "cfg")
    replaced = endpoint.replaced("http://127.0.0.1:9/v1", "call-key")
    assert (replaced.base_url, replaced.api_key) == ("http://127.0.0.1:9/v1", "call-key")


def test_a_service_may_be_the_default_provider() -> None:
    config = mal.MALConfig(default_provider="openrouter", fallbacks=["meta-llama/llama-3-8b"])
    assert split_model("meta-llama/llama-3-8b", config.default_provider) == (
        "openrouter",
        "meta-llama/llama-3-8b",
    )


def test_an_unknown_name_in_base_urls_is_still_an_error() -> None:
    with pytest.raises(mal.ConfigError, match="base_urls: unknown provider 'grok'"):
        mal.MALConfig(base_urls={"grok": "http://x"})


# Embeddings ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EMBEDDINGS))
def test_embeddings_where_the_service_has_them(name: str) -> None:
    request = embed_request(
        name, "embed-1", ["a", "b"], dimensions=256, base_url=EXPECTED[name][0], api_key="k"
    )
    assert request.url == EXPECTED[name][0] + "/embeddings"
    assert request.headers["authorization"] == "Bearer k"
    assert msgspec.json.decode(request.body) == {
        "model": "embed-1",
        "input": ["a", "b"],
        EMBEDDINGS[name]: 256,
    }
    without = embed_request(name, "embed-1", ["a"], base_url=EXPECTED[name][0], api_key=None)
    assert msgspec.json.decode(without.body) == {"model": "embed-1", "input": ["a"]}
    assert "authorization" not in without.headers


@pytest.mark.parametrize("name", sorted(set(NAMES) - set(EMBEDDINGS)))
def test_no_embeddings_is_a_config_error(name: str) -> None:
    assert service(name) is not None
    with pytest.raises(mal.ConfigError, match=f"{name} has no embeddings API"):
        embed_request(name, "m", ["a"], base_url=EXPECTED[name][0], api_key=None)


# The unknown-prefix hint --------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("vertex/gemini-2.0-flash", "'vertex' is not a known provider"),
        ("foo/bar", "'foo' is not a known provider"),
        ("library/qwen2.5:7b", "'library' is not a known provider"),
        ("openai:gpt-4o", "a provider's name ends with '/'"),
        ("opneai/gpt-4o", "did you mean 'openai/gpt-4o'?"),
    ],
)
def test_the_hint_of_an_unknown_prefix(model: str, says: str) -> None:
    provider, name = split_model(model, "ollama")
    assert (provider, name) == ("ollama", model)  # the name still goes whole
    hint = unknown_prefix_hint(model, name, provider)
    assert hint is not None
    assert says in hint
    assert f"the model {model!r} went to the default provider, ollama" in hint
    assert "known providers: " + ", ".join(sorted(PROTOCOLS)) in hint


def test_openai_colon_suggests_the_slash() -> None:
    hint = unknown_prefix_hint("openai:gpt-4o", "openai:gpt-4o", "ollama")
    assert hint is not None and hint.endswith("did you mean 'openai/gpt-4o'?")


@pytest.mark.parametrize(
    "model", ["qwen2.5-coder:7b", "llama3", "llama3.2:latest", "ollama/library/qwen:7b", "groq/x"]
)
def test_no_hint_for_plain_names_and_known_prefixes(model: str) -> None:
    provider, name = split_model(model, "ollama")
    assert unknown_prefix_hint(model, name, provider) is None
