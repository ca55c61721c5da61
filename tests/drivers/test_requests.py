"""What goes out on the wire, per provider, seen through pytest-httpx (which patches
the sync and the async httpx transports alike): URLs, methods, headers, JSON
bodies, the timeouts that reach httpx, and where base URLs and keys come from."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

import mal

from ..support.adapters import Api, collect
from ._support import was_streamed

pytestmark = pytest.mark.anyio

REPLY = "Hi there"


def _ndjson(*objects: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


def _sse(*events: tuple[str | None, Any]) -> bytes:
    out = b""
    for name, data in events:
        if name is not None:
            out += b"event: " + name.encode() + b"\n"
        payload = data if isinstance(data, str) else json.dumps(data)
        out += b"data: " + payload.encode() + b"\n\n"
    return out


def fake_provider(request: httpx.Request) -> httpx.Response:
    """A valid answer, streamed or not, in the wire format of the endpoint asked."""
    body = json.loads(request.content)
    path = request.url.path
    if path.endswith(("/api/generate", "/api/chat")):
        chat = path.endswith("/api/chat")

        def line(text: str, done: bool) -> dict[str, Any]:
            obj: dict[str, Any] = {"model": body["model"], "done": done}
            if chat:
                obj["message"] = {"role": "assistant", "content": text}
            else:
                obj["response"] = text
            if done:
                obj.update(done_reason="stop", prompt_eval_count=3, eval_count=2)
            return obj

        if body.get("stream", True):
            return httpx.Response(
                200,
                content=_ndjson(line(REPLY[:3], False), line(REPLY[3:], False), line("", True)),
                headers={"content-type": "application/x-ndjson"},
            )
        return httpx.Response(200, json=line(REPLY, True))
    if path.endswith("/chat/completions"):
        if body.get("stream"):

            def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
                return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

            content = _sse(
                (None, choice({"role": "assistant", "content": ""})),
                (None, choice({"content": REPLY[:3]})),
                (None, choice({"content": REPLY[3:]})),
                (None, choice({}, "stop")),
                (None, {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
                (None, "[DONE]"),
            )
            return httpx.Response(
                200, content=content, headers={"content-type": "text/event-stream"}
            )
        message = {"role": "assistant", "content": REPLY}
        return httpx.Response(
            200,
            json={
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2},
            },
        )
    if path.endswith("/v1/messages"):
        if body.get("stream"):
            usage = {"input_tokens": 3, "output_tokens": 1}
            content = _sse(
                ("message_start", {"type": "message_start", "message": {"usage": usage}}),
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": REPLY},
                    },
                ),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn"},
                        "usage": {"output_tokens": 2},
                    },
                ),
                ("message_stop", {"type": "message_stop"}),
            )
            return httpx.Response(
                200, content=content, headers={"content-type": "text/event-stream"}
            )
        return httpx.Response(
            200,
            json={
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": REPLY}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 3, "output_tokens": 2},
            },
        )
    return httpx.Response(404, json={"error": f"no such path {path}"})


@pytest.fixture(autouse=True)
def _httpx_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-httpx mocks httpx's own transport: mal's clients keep it, as
    they do when the environment names a proxy, instead of mal's own."""
    import mal._helpers_async
    import mal._helpers_sync

    monkeypatch.setattr(mal._helpers_sync, "env_proxies", lambda: True)
    monkeypatch.setattr(mal._helpers_async, "env_proxies", lambda: True)


@pytest.fixture
def mock(httpx_mock: HTTPXMock) -> HTTPXMock:
    httpx_mock.add_callback(fake_provider, is_reusable=True)
    return httpx_mock


def only_request(mock: HTTPXMock) -> httpx.Request:
    requests = mock.get_requests()
    assert len(requests) == 1, requests
    return requests[0]


def body_of(request: httpx.Request) -> dict[str, Any]:
    body = json.loads(request.content)
    assert isinstance(body, dict)
    return body


def assert_common_headers(request: httpx.Request) -> None:
    assert request.headers["user-agent"].startswith("mal/")
    assert request.headers["content-type"].startswith("application/json")


# --------------------------------------------------------------------------- Ollama


async def test_ollama_string_prompt_goes_to_api_generate(api: Api, mock: HTTPXMock) -> None:
    async with api.client() as client:
        text = await client.generate(
            "Why is the sky blue?",
            model="ollama/qwen2.5-coder:7b",
            system="Be brief.",
            temperature=0.5,
            top_p=0.9,
            max_tokens=100,
            stop="\n\n",
            seed=42,
            extra_body={"keep_alive": "5m", "think": True, "options": {"num_ctx": 8192}},
            extra_headers={"X-Trace-Id": "abc-123"},
            stream=True,
        )
    assert text == REPLY
    request = only_request(mock)
    assert request.method == "POST"
    assert str(request.url) == "http://localhost:11434/api/generate"
    assert_common_headers(request)
    assert request.headers["x-trace-id"] == "abc-123"
    assert "authorization" not in request.headers
    body = body_of(request)
    assert body["model"] == "qwen2.5-coder:7b"
    assert body["prompt"] == "Why is the sky blue?"
    assert body["system"] == "Be brief."
    assert body["stream"] is True
    assert "messages" not in body
    # extra_body is deep-merged: "options" keeps the mapped common options.
    assert body["keep_alive"] == "5m"
    assert body["think"] is True
    assert body["options"] == {
        "temperature": 0.5,
        "top_p": 0.9,
        "seed": 42,
        "num_predict": 100,
        "stop": ["\n\n"],
        "num_ctx": 8192,
    }


async def test_ollama_messages_go_to_api_chat(api: Api, mock: HTTPXMock) -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        mal.Message(role="assistant", content="Hello!"),
        {"role": "user", "content": "Tell me more"},
    ]
    async with api.client() as client:
        text = await client.generate(
            messages, model="ollama/library/qwen2.5-coder:7b", system="sys", stream=False
        )
    assert text == REPLY
    request = only_request(mock)
    assert request.method == "POST"
    assert str(request.url) == "http://localhost:11434/api/chat"
    assert_common_headers(request)
    body = body_of(request)
    assert body["model"] == "library/qwen2.5-coder:7b"
    assert body["stream"] is False
    assert "prompt" not in body
    assert body["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me more"},
    ]


async def test_model_without_provider_goes_to_default_provider(api: Api, mock: HTTPXMock) -> None:
    async with api.client() as client:
        assert await client.generate("Hi", model="qwen2.5-coder:7b") == REPLY
    async with api.client(mal.MALConfig(default_provider="openai")) as client:
        assert await client.generate("Hi", model="gpt-4o-mini") == REPLY
    first, second = mock.get_requests()
    assert str(first.url) == "http://localhost:11434/api/generate"
    assert body_of(first)["model"] == "qwen2.5-coder:7b"
    assert str(second.url) == "https://api.openai.com/v1/chat/completions"
    assert body_of(second)["model"] == "gpt-4o-mini"


# --------------------------------------------------------------------------- OpenAI


async def test_openai_request(api: Api, mock: HTTPXMock) -> None:
    config = mal.MALConfig(api_keys={"openai": "sk-test"})
    async with api.client(config) as client:
        stream = client.stream(
            "Hi",
            model="openai/gpt-4o-mini",
            system="sys",
            temperature=0.5,
            top_p=0.9,
            max_tokens=100,
            stop=["END"],
            seed=42,
            extra_body={
                "stream_options": {"include_obfuscation": False},
                "user": "u-1",
                "top_p": 0.5,
            },
            extra_headers={"OpenAI-Organization": "org-1"},
        )
        async with stream:
            chunks = await collect(stream)
    assert "".join(c.text for c in chunks) == REPLY == stream.text
    request = only_request(mock)
    assert request.method == "POST"
    assert str(request.url) == "https://api.openai.com/v1/chat/completions"
    assert_common_headers(request)
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.headers["openai-organization"] == "org-1"
    assert "x-api-key" not in request.headers
    body = body_of(request)
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Hi"},
    ]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True, "include_obfuscation": False}
    assert body["temperature"] == 0.5
    assert body["top_p"] == 0.5  # extra_body comes after the common options
    # OpenAI's own API: max_tokens is deprecated there (CreateChatCompletionRequest).
    assert body["max_completion_tokens"] == 100 and "max_tokens" not in body
    assert body["stop"] == ["END"]
    assert body["seed"] == 42
    assert body["user"] == "u-1"


async def test_openai_not_streamed(api: Api, mock: HTTPXMock) -> None:
    async with api.client(mal.MALConfig(api_keys={"openai": "sk-test"})) as client:
        assert await client.generate("Hi", model="openai/gpt-4o-mini", stream=False) == REPLY
    request = only_request(mock)
    assert not was_streamed(request)


# --------------------------------------------------------------------------- Anthropic


async def test_anthropic_request(api: Api, mock: HTTPXMock) -> None:
    config = mal.MALConfig(api_keys={"anthropic": "sk-ant-test"})
    async with api.client(config) as client:
        text = await client.generate(
            [{"role": "user", "content": "Hi"}],
            model="anthropic/claude-sonnet-4-5",
            system="sys",
            temperature=0.5,
            top_p=0.9,
            max_tokens=100,
            stop="END",
            extra_body={
                "thinking": {"type": "enabled", "budget_tokens": 1024},
                "metadata": {"user_id": "u-1"},
            },
            extra_headers={"anthropic-beta": "some-beta"},
            stream=True,
        )
    assert text == REPLY
    request = only_request(mock)
    assert request.method == "POST"
    assert str(request.url) == "https://api.anthropic.com/v1/messages"
    assert_common_headers(request)
    assert request.headers["x-api-key"] == "sk-ant-test"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["anthropic-beta"] == "some-beta"
    assert "authorization" not in request.headers
    body = body_of(request)
    assert body["model"] == "claude-sonnet-4-5"
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert body["system"] == "sys"
    assert body["max_tokens"] == 100
    assert body["temperature"] == 0.5
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert "stop" not in body
    assert body["stream"] is True
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["metadata"] == {"user_id": "u-1"}


async def test_anthropic_max_tokens_always_sent(api: Api, mock: HTTPXMock) -> None:
    async with api.client(mal.MALConfig(api_keys={"anthropic": "k"})) as client:
        assert await client.generate("Hi", model="anthropic/claude-x", stream=False) == REPLY
    body = body_of(only_request(mock))
    assert isinstance(body["max_tokens"], int)
    assert body["max_tokens"] > 0
    assert not body.get("stream")


# --------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize(
    ("config", "options", "expected"),
    [
        pytest.param(
            mal.MALConfig(),
            {},
            {"connect": 10.0, "read": 600.0, "write": 30.0, "pool": 10.0},
            id="defaults",
        ),
        pytest.param(
            mal.MALConfig(
                connect_timeout=1.5, read_timeout=2.5, write_timeout=3.5, pool_timeout=4.5
            ),
            {},
            {"connect": 1.5, "read": 2.5, "write": 3.5, "pool": 4.5},
            id="granular",
        ),
        pytest.param(
            mal.MALConfig(timeout=7),
            {},
            {"connect": 7, "read": 7, "write": 7, "pool": 7},
            id="legacy",
        ),
        pytest.param(
            mal.MALConfig(timeout=7),
            {"timeout": 3},
            {"connect": 3, "read": 3, "write": 3, "pool": 3},
            id="per-call-over-legacy",
        ),
        pytest.param(
            mal.MALConfig(connect_timeout=1.5, read_timeout=2.5),
            {"timeout": 3},
            {"connect": 3, "read": 3, "write": 3, "pool": 3},
            id="per-call-over-granular",
        ),
    ],
)
async def test_timeouts_reach_httpx(
    api: Api,
    mock: HTTPXMock,
    config: mal.MALConfig,
    options: dict[str, Any],
    expected: dict[str, float],
) -> None:
    async with api.client(config) as client:
        for model in ("ollama/m", "openai/m", "anthropic/m"):
            async with client.stream("Hi", model=model, **options) as stream:
                await collect(stream)
            await client.generate("Hi", model=model, stream=False, **options)
    requests = mock.get_requests()
    assert len(requests) == 6
    for request in requests:
        assert request.extensions["timeout"] == expected, request.url


# --------------------------------------------------------------------------- environment


async def test_ollama_host_without_scheme(
    api: Api, mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "ollama.internal:9999")
    async with api.client() as client:
        await client.generate("Hi", model="ollama/m")
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box")
    async with api.client() as client:
        await client.generate("Hi", model="ollama/m")
    first, second = mock.get_requests()
    assert str(first.url) == "http://ollama.internal:9999/api/generate"
    assert str(second.url) == "http://gpu-box:11434/api/generate"


@pytest.mark.parametrize(
    ("provider", "base_url", "key", "url", "auth_header", "auth", "absent"),
    [
        pytest.param(
            "openai",
            "https://llm.example.com/v1",
            "sk-from-env",
            "https://llm.example.com/v1/chat/completions",
            "authorization",
            "Bearer sk-from-env",
            (),
            id="openai",
        ),
        pytest.param(
            "anthropic",
            "https://proxy.example.com",
            "sk-ant-from-env",
            "https://proxy.example.com/v1/messages",
            "x-api-key",
            "sk-ant-from-env",
            ("authorization",),
            id="anthropic",
        ),
    ],
)
async def test_provider_environment(
    api: Api,
    mock: HTTPXMock,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
    base_url: str,
    key: str,
    url: str,
    auth_header: str,
    auth: str,
    absent: tuple[str, ...],
) -> None:
    # <PROVIDER>_BASE_URL and <PROVIDER>_API_KEY.
    monkeypatch.setenv(f"{provider.upper()}_BASE_URL", base_url)
    monkeypatch.setenv(f"{provider.upper()}_API_KEY", key)
    async with api.client() as client:
        await client.generate("Hi", model=f"{provider}/m")
    request = only_request(mock)
    assert str(request.url) == url
    assert request.headers[auth_header] == auth
    for header in absent:
        assert header not in request.headers


async def test_environment_is_read_when_the_client_is_made(
    api: Api, mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = api.client()  # made with no key in the environment
    monkeypatch.setenv("OPENAI_API_KEY", "sk-one")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://one.example/v1")
    one = api.client()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-two")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://two.example/v1")
    for client in (before, one):
        async with client:
            await client.generate("Hi", model="openai/m")
    no_key, with_key = mock.get_requests()
    assert str(no_key.url) == "https://api.openai.com/v1/chat/completions"
    assert "authorization" not in no_key.headers
    assert str(with_key.url) == "https://one.example/v1/chat/completions"
    assert with_key.headers["authorization"] == "Bearer sk-one"


async def test_environ_argument_replaces_os_environ(
    api: Api, mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-os")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-os")
    environ = {"OPENAI_API_KEY": "sk-mapping", "OPENAI_BASE_URL": "http://mapping.example/v1"}
    async with api.client(environ=environ) as client:
        await client.generate("Hi", model="openai/m")
        await client.generate("Hi", model="anthropic/m")
    async with api.client(environ={}) as client:
        await client.generate("Hi", model="openai/m")
    openai, anthropic, bare = mock.get_requests()
    assert str(openai.url) == "http://mapping.example/v1/chat/completions"
    assert openai.headers["authorization"] == "Bearer sk-mapping"
    assert "x-api-key" not in anthropic.headers
    assert "authorization" not in bare.headers


async def test_key_and_base_url_precedence(
    api: Api, mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://env.example/v1")
    config = mal.MALConfig(
        api_keys={"openai": "sk-config"}, base_urls={"openai": "https://config.example/v1"}
    )
    async with api.client(config) as client:
        await client.generate("Hi", model="openai/m")
        await client.generate(
            "Hi", model="openai/m", api_key="sk-call", base_url="http://call.example/v1"
        )
    from_config, from_call = mock.get_requests()
    assert str(from_config.url) == "https://config.example/v1/chat/completions"
    assert from_config.headers["authorization"] == "Bearer sk-config"
    assert str(from_call.url) == "http://call.example/v1/chat/completions"
    assert from_call.headers["authorization"] == "Bearer sk-call"


@pytest.mark.parametrize(
    ("model", "auth_header"),
    [("openai/m", "authorization"), ("anthropic/m", "x-api-key")],
)
async def test_no_key_no_auth_header(
    api: Api, mock: HTTPXMock, model: str, auth_header: str
) -> None:
    async with api.client() as client:
        assert await client.generate("Hi", model=model) == REPLY
    request = only_request(mock)
    assert auth_header not in request.headers
    assert "authorization" not in request.headers


@pytest.mark.parametrize(
    ("model", "variable", "error_body"),
    [
        (
            "openai/m",
            "OPENAI_API_KEY",
            {
                "error": {
                    "message": "You didn't provide an API key.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            },
        ),
        (
            "anthropic/m",
            "ANTHROPIC_API_KEY",
            {
                "type": "error",
                "error": {
                    "type": "authentication_error",
                    "message": "x-api-key header is required",
                },
            },
        ),
    ],
)
@pytest.mark.parametrize("streamed", [True, False], ids=["stream", "generate"])
async def test_401_names_the_variable_to_set(
    api: Api,
    httpx_mock: HTTPXMock,
    model: str,
    variable: str,
    error_body: dict[str, Any],
    streamed: bool,
) -> None:
    httpx_mock.add_response(status_code=401, json=error_body)
    async with api.client() as client:
        with pytest.raises(mal.AuthenticationError) as info:
            if streamed:
                async with client.stream("Hi", model=model) as stream:
                    await collect(stream)
            else:
                await client.generate("Hi", model=model)
    error = info.value
    assert variable in str(error)
    assert error.status_code == 401
    assert error.provider == model.split("/")[0]
    assert error.retryable is False
    assert error.body == error_body
    assert "authorization" not in httpx_mock.get_requests()[0].headers
