"""build_request for each provider, split_model, and OLLAMA_HOST normalisation."""

from __future__ import annotations

import json
from typing import Any

import pytest

import mal
from mal.protocols import GenerateParams, get_protocol, split_model
from mal.protocols.ollama import normalize_host

PROVIDERS = ["ollama", "openai", "anthropic"]


def build(provider: str, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    base_url = kwargs.pop("base_url", None)
    api_key = kwargs.pop("api_key", None)
    kwargs.setdefault("model", "m")
    request = get_protocol(provider).build_request(
        GenerateParams(**kwargs), base_url=base_url, api_key=api_key
    )
    return request, json.loads(request.body)


def lower_headers(request: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in request.headers.items():
        out.setdefault(key.lower(), []).append(value)
    return out


# URLs and headers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "prompt", "url"),
    [
        ("ollama", "Hi", "http://localhost:11434/api/generate"),
        ("ollama", [{"role": "user", "content": "Hi"}], "http://localhost:11434/api/chat"),
        ("openai", "Hi", "https://api.openai.com/v1/chat/completions"),
        ("anthropic", "Hi", "https://api.anthropic.com/v1/messages"),
    ],
)
def test_default_urls(provider: str, prompt: Any, url: str) -> None:
    request, _ = build(provider, prompt=prompt)
    assert request.method == "POST"
    assert request.url == url
    assert request.stream is True


@pytest.mark.parametrize(
    ("provider", "base_url", "url"),
    [
        ("ollama", "http://gpu-box:11434", "http://gpu-box:11434/api/generate"),
        ("ollama", "https://proxy.example/ollama/", "https://proxy.example/ollama/api/generate"),
        ("openai", "http://localhost:8000/v1", "http://localhost:8000/v1/chat/completions"),
        ("openai", "http://localhost:8000/v1/", "http://localhost:8000/v1/chat/completions"),
        ("anthropic", "https://gateway.example", "https://gateway.example/v1/messages"),
    ],
)
def test_base_url(provider: str, base_url: str, url: str) -> None:
    request, _ = build(provider, prompt="Hi", base_url=base_url)
    assert request.url == url


def test_openai_auth_header() -> None:
    request, _ = build("openai", prompt="Hi", api_key="sk-test-123")
    headers = lower_headers(request)
    assert headers["authorization"] == ["Bearer sk-test-123"]
    assert headers["content-type"] == ["application/json"]
    assert "x-api-key" not in headers


def test_anthropic_auth_headers() -> None:
    request, _ = build("anthropic", prompt="Hi", api_key="sk-ant-test")
    headers = lower_headers(request)
    assert headers["x-api-key"] == ["sk-ant-test"]
    assert headers["anthropic-version"] == ["2023-06-01"]
    assert headers["content-type"] == ["application/json"]
    assert "authorization" not in headers


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_auth_header_without_a_key(provider: str) -> None:
    for api_key in (None, ""):
        request, _ = build(provider, prompt="Hi", api_key=api_key)
        headers = lower_headers(request)
        assert "authorization" not in headers
        assert "x-api-key" not in headers


def test_anthropic_version_without_a_key() -> None:
    request, _ = build("anthropic", prompt="Hi")
    assert lower_headers(request)["anthropic-version"] == ["2023-06-01"]


def test_ollama_with_a_key_sends_bearer() -> None:
    # For an Ollama behind an authenticating proxy.
    request, _ = build("ollama", prompt="Hi", api_key="proxy-token")
    assert lower_headers(request)["authorization"] == ["Bearer proxy-token"]


@pytest.mark.parametrize(
    ("provider", "stream", "accept"),
    [
        ("openai", True, "text/event-stream"),
        ("openai", False, "application/json"),
        ("anthropic", True, "text/event-stream"),
        ("anthropic", False, "application/json"),
    ],
)
def test_accept_header(provider: str, stream: bool, accept: str) -> None:
    request, _ = build(provider, prompt="Hi", stream=stream)
    assert lower_headers(request)["accept"] == [accept]
    assert request.stream is stream


@pytest.mark.parametrize("provider", PROVIDERS)
def test_extra_headers_added(provider: str) -> None:
    request, _ = build(
        provider,
        prompt="Hi",
        api_key="k",
        extra_headers={"x-request-id": "abc-123", "OpenAI-Organization": "org-1"},
    )
    headers = lower_headers(request)
    assert headers["x-request-id"] == ["abc-123"]
    assert headers["openai-organization"] == ["org-1"]


@pytest.mark.parametrize(
    ("provider", "header"),
    [("openai", "Authorization"), ("anthropic", "Anthropic-Version"), ("ollama", "Accept")],
)
def test_extra_headers_replace_defaults_whatever_their_case(provider: str, header: str) -> None:
    # As in the OpenAI SDK, extra_headers override the defaults; HTTP header
    # names are case-insensitive, so a header must not go out twice.
    request, _ = build(provider, prompt="Hi", api_key="k", extra_headers={header: "custom"})
    assert lower_headers(request)[header.lower()] == ["custom"]


def test_repr_hides_the_key() -> None:
    request, _ = build("openai", prompt="Hi", api_key="sk-secret-value")
    assert "sk-secret-value" not in repr(request)
    assert "sk-secret-value" not in str(request)


# Bodies: Ollama -----------------------------------------------------------------


def test_ollama_string_prompt_goes_to_generate() -> None:
    request, body = build("ollama", model="qwen2.5-coder:7b", prompt="Why?", system="Be brief.")
    assert request.url.endswith("/api/generate")
    assert body == {
        "model": "qwen2.5-coder:7b",
        "prompt": "Why?",
        "system": "Be brief.",
        "stream": True,
    }


def test_ollama_messages_go_to_chat_with_system_first() -> None:
    request, body = build(
        "ollama",
        prompt=[{"role": "user", "content": "Hi"}, mal.Message(role="assistant", content="Yo")],
        system="Be brief.",
    )
    assert request.url.endswith("/api/chat")
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Yo"},
    ]
    assert "prompt" not in body
    assert "system" not in body


def test_ollama_options() -> None:
    _, body = build(
        "ollama",
        prompt="Hi",
        temperature=0.2,
        top_p=0.9,
        seed=42,
        max_tokens=128,
        stop=["\n\n", "END"],
    )
    assert body["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 42,
        "num_predict": 128,
        "stop": ["\n\n", "END"],
    }
    for key in ("temperature", "top_p", "seed", "max_tokens", "num_predict", "stop"):
        assert key not in body


def test_ollama_stop_string_becomes_a_list() -> None:
    _, body = build("ollama", prompt="Hi", stop="END")
    assert body["options"] == {"stop": ["END"]}


def test_ollama_no_options_when_none_given() -> None:
    _, body = build("ollama", prompt="Hi")
    assert "options" not in body


def test_ollama_zero_values_are_sent() -> None:
    _, body = build("ollama", prompt="Hi", temperature=0.0, seed=0)
    assert body["options"] == {"temperature": 0.0, "seed": 0}


def test_ollama_not_streamed() -> None:
    request, body = build("ollama", prompt="Hi", stream=False)
    assert body["stream"] is False
    assert request.stream is False


def test_ollama_extra_body_deep_merged() -> None:
    _, body = build(
        "ollama",
        prompt="Hi",
        temperature=0.5,
        extra_body={"keep_alive": "5m", "think": True, "options": {"num_ctx": 8192}},
    )
    assert body["options"] == {"temperature": 0.5, "num_ctx": 8192}
    assert body["keep_alive"] == "5m"
    assert body["think"] is True
    assert body["prompt"] == "Hi"


def test_extra_body_overrides_common_options() -> None:
    _, body = build(
        "ollama", prompt="Hi", temperature=0.5, extra_body={"options": {"temperature": 1}}
    )
    assert body["options"] == {"temperature": 1}


def test_extra_body_is_not_modified() -> None:
    extra = {"options": {"num_ctx": 8192}, "format": {"type": "object"}}
    build("ollama", prompt="Hi", temperature=0.5, extra_body=extra)
    assert extra == {"options": {"num_ctx": 8192}, "format": {"type": "object"}}


# Bodies: OpenAI -----------------------------------------------------------------


def test_openai_body() -> None:
    _, body = build(
        "openai",
        model="gpt-4o-mini",
        prompt="Hi",
        system="Be brief.",
        temperature=0.3,
        top_p=0.8,
        max_tokens=64,
        stop=["END"],
        seed=7,
    )
    assert body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.3,
        "top_p": 0.8,
        "stop": ["END"],
        "seed": 7,
        # OpenAI's own API: max_tokens is deprecated there (CreateChatCompletionRequest).
        "max_completion_tokens": 64,
    }


def test_openai_not_streamed() -> None:
    _, body = build("openai", prompt="Hi", stream=False)
    assert body.get("stream", False) is False
    assert "stream_options" not in body


def test_openai_messages_and_message_objects() -> None:
    _, body = build(
        "openai",
        prompt=[
            mal.Message(role="system", content="S"),
            {"role": "user", "content": "U", "name": "alice"},
            mal.Message(role="assistant", content="A"),
        ],
    )
    assert body["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U", "name": "alice"},
        {"role": "assistant", "content": "A"},
    ]


def test_openai_extra_body() -> None:
    _, body = build(
        "openai",
        prompt="Hi",
        extra_body={"stream_options": {"continuous_usage_stats": True}, "logprobs": True},
    )
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert body["logprobs"] is True


# Bodies: Anthropic --------------------------------------------------------------


def test_anthropic_body() -> None:
    _, body = build(
        "anthropic",
        model="claude-sonnet-4-5",
        prompt="Hi",
        temperature=0.3,
        top_p=0.8,
        stop=["END", "STOP"],
    )
    assert body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "temperature": 0.3,
        "top_p": 0.8,
        "stop_sequences": ["END", "STOP"],
    }


def test_anthropic_max_tokens_and_stop_string() -> None:
    _, body = build("anthropic", prompt="Hi", max_tokens=100, stop="END")
    assert body["max_tokens"] == 100
    assert body["stop_sequences"] == ["END"]
    assert "stop" not in body


def test_anthropic_system_messages_move_to_top_level() -> None:
    _, body = build(
        "anthropic",
        prompt=[
            {"role": "system", "content": "Rule one."},
            {"role": "user", "content": "Hi"},
            mal.Message(role="assistant", content="Hello"),
            {"role": "user", "content": "Again"},
        ],
    )
    assert body["system"] == "Rule one."
    assert body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Again"},
    ]


def test_anthropic_system_option_and_system_message_both_kept() -> None:
    _, body = build(
        "anthropic",
        prompt=[mal.Message(role="system", content="Second."), {"role": "user", "content": "Hi"}],
        system="First.",
    )
    assert "First." in body["system"]
    assert "Second." in body["system"]
    assert body["system"].index("First.") < body["system"].index("Second.")
    assert [m["role"] for m in body["messages"]] == ["user"]


def test_anthropic_seed_is_a_config_error() -> None:
    with pytest.raises(mal.ConfigError, match="seed"):
        build("anthropic", prompt="Hi", seed=1)


def test_anthropic_not_streamed() -> None:
    _, body = build("anthropic", prompt="Hi", stream=False)
    assert body.get("stream", False) is False


def test_anthropic_extra_body() -> None:
    _, body = build(
        "anthropic",
        prompt="Hi",
        extra_body={"thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 8192},
    )
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 8192


# Bad prompts ----------------------------------------------------------------------

BAD_PROMPTS = [
    pytest.param(None, id="None"),
    pytest.param(42, id="int"),
    pytest.param([], id="empty list"),
    pytest.param({"role": "user", "content": "Hi"}, id="a dict, not a list"),
    pytest.param(["Hi"], id="list of str"),
    pytest.param([{"content": "Hi"}], id="no role"),
    pytest.param([{"role": "user"}], id="no content"),
    pytest.param([{"role": 1, "content": "Hi"}], id="role not a str"),
    pytest.param([("user", "Hi")], id="tuple message"),
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("prompt", BAD_PROMPTS)
def test_bad_prompt_is_a_config_error(provider: str, prompt: Any) -> None:
    with pytest.raises(mal.ConfigError) as info:
        build(provider, prompt=prompt)
    assert isinstance(info.value, ValueError)
    assert "prompt" in str(info.value)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_unencodable_extra_body_is_a_config_error(provider: str) -> None:
    with pytest.raises(mal.ConfigError):
        build(provider, prompt="Hi", extra_body={"x": object()})


# Models -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("ollama/library/qwen2.5-coder:7b", ("ollama", "library/qwen2.5-coder:7b")),
        ("ollama/qwen2.5-coder:7b", ("ollama", "qwen2.5-coder:7b")),
        ("qwen2.5-coder:7b", ("ollama", "qwen2.5-coder:7b")),
        ("library/qwen2.5-coder:7b", ("ollama", "library/qwen2.5-coder:7b")),
        (
            "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
            ("ollama", "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"),
        ),
        ("openai/gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("openai/meta-llama/Llama-3.1-8B-Instruct", ("openai", "meta-llama/Llama-3.1-8B-Instruct")),
        ("anthropic/claude-sonnet-4-5", ("anthropic", "claude-sonnet-4-5")),
    ],
)
def test_split_model(model: str, expected: tuple[str, str]) -> None:
    assert split_model(model) == expected


def test_split_model_default_provider() -> None:
    assert split_model("gpt-4o-mini", "openai") == ("openai", "gpt-4o-mini")
    assert split_model("anthropic/claude-haiku-4-5", "openai") == ("anthropic", "claude-haiku-4-5")


@pytest.mark.parametrize("model", ["anthropic/", "openai/", "ollama/", "", "   "])
def test_split_model_errors(model: str) -> None:
    with pytest.raises(mal.ConfigError):
        split_model(model)


def test_unknown_provider() -> None:
    with pytest.raises(mal.ConfigError, match="nosuch"):
        get_protocol("nosuch")


# OLLAMA_HOST ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("gpu-box", "http://gpu-box:11434"),
        ("gpu-box:8080", "http://gpu-box:8080"),
        ("http://gpu-box:8080", "http://gpu-box:8080"),
        ("https://ollama.example.com", "https://ollama.example.com:443"),
        ("https://ollama.example.com:8443", "https://ollama.example.com:8443"),
        ("[::1]:11434", "http://[::1]:11434"),
        ("[::1]", "http://[::1]:11434"),
        ("0.0.0.0", "http://0.0.0.0:11434"),
        ("0.0.0.0:11434", "http://0.0.0.0:11434"),
        ("127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("  gpu-box:8080  ", "http://gpu-box:8080"),
        ("gpu-box:8080/", "http://gpu-box:8080"),
        ("https://example.com/ollama", "https://example.com:443/ollama"),
        ("", "http://127.0.0.1:11434"),
    ],
)
def test_normalize_host(host: str, url: str) -> None:
    assert normalize_host(host) == url


@pytest.mark.parametrize(
    ("host", "url"),
    [
        # Ollama's envconfig.Host() and the official Python client both give
        # an explicit http:// scheme its default port, 80.
        ("http://gpu-box", "http://gpu-box:80"),
        ("http://1.2.3.4", "http://1.2.3.4:80"),
        # A port alone means this machine (the Python client: 127.0.0.1).
        (":11435", "http://127.0.0.1:11435"),
        # More cases from the official Python client's own doctests.
        ("example.com/", "http://example.com:11434"),
        ("example.com:56789/", "http://example.com:56789"),
        ("example.com/path", "http://example.com:11434/path"),
        ("example.com:56789/path/", "http://example.com:56789/path"),
        ("https://example.com:56789/path", "https://example.com:56789/path"),
        ("[0001:002:003:0004::1]", "http://[0001:002:003:0004::1]:11434"),
        ("[0001:002:003:0004::1]:56789", "http://[0001:002:003:0004::1]:56789"),
        ("http://[0001:002:003:0004::1]", "http://[0001:002:003:0004::1]:80"),
        ("https://[0001:002:003:0004::1]:56789", "https://[0001:002:003:0004::1]:56789"),
        # Ollama's envconfig: an IPv6 address without brackets.
        ("::1", "http://[::1]:11434"),
    ],
)
def test_normalize_host_as_ollama_reads_it(host: str, url: str) -> None:
    assert normalize_host(host) == url
