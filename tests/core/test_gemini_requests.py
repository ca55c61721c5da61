"""Gemini requests built field by field, the tool loop's turns, key lookup and status errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

import mal
from mal.config import MALConfig, resolve_endpoint
from mal.protocols import GenerateParams, get_protocol
from mal.tools import Tool

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def build(**kwargs: Any) -> tuple[str, dict[str, str], dict[str, Any]]:
    params = GenerateParams(model=kwargs.pop("model", "gemini-2.5-flash"), **kwargs)
    request = get_protocol("gemini").build_request(params, api_key="k-123")
    return request.url, request.headers, json.loads(request.body)


def test_streamed_request_url_headers_and_generation_config() -> None:
    url, headers, body = build(
        prompt="Hi",
        system="Be brief.",
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        stop="END",
        seed=7,
    )
    assert url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
        ":streamGenerateContent?alt=sse"
    )
    assert headers["x-goog-api-key"] == "k-123"
    assert body == {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {
            "temperature": 0.2,
            "topP": 0.9,
            "maxOutputTokens": 50,
            "stopSequences": ["END"],
            "seed": 7,
        },
    }


def test_non_streamed_url() -> None:
    url, _, body = build(prompt="Hi", stream=False)
    assert url.endswith("/v1beta/models/gemini-2.5-flash:generateContent")
    assert "generationConfig" not in body


def test_schema_asks_for_json_with_the_plain_json_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    _, _, body = build(prompt="Hi", schema=mal.schema.OutputSchema.of(schema))
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"]["properties"] == {"a": {"type": "integer"}}


def test_images_are_inline_data_and_urls_are_refused() -> None:
    image = mal.Image.from_bytes(PNG)
    _, _, body = build(prompt=[{"role": "user", "content": ["What is this?", image]}])
    assert body["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": image.base64}},
    ]
    with pytest.raises(mal.ConfigError, match="not URLs"):
        build(prompt=[{"role": "user", "content": [mal.Image.from_url("https://x.test/a.png")]}])


def test_tools_and_tool_choice() -> None:
    tool = Tool("get_weather", "Weather of a city", {"type": "object", "properties": {}})
    _, _, body = build(prompt="Hi", tools=[tool], tool_choice="get_weather")
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather of a city",
                    "parametersJsonSchema": {"type": "object", "properties": {}},
                }
            ]
        }
    ]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    for choice, mode in (("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")):
        _, _, body = build(prompt="Hi", tools=[tool], tool_choice=choice)
        assert body["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


def test_tool_loop_turns_without_signatures() -> None:
    call = mal.ToolCall("call_1", "get_weather", {"city": "Paris"})
    prompt = [
        {"role": "user", "content": "Weather?"},
        mal.Message("assistant", "", tool_calls=[call]),
        mal.Message("tool", "18C", tool_call_id="call_1"),
        mal.Message("tool", "boom", tool_call_id="call_1", is_error=True),
    ]
    _, _, body = build(prompt=prompt)
    assert body["contents"][1:] == [
        {
            "role": "model",
            "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}},
                {"functionResponse": {"name": "get_weather", "response": {"error": "boom"}}},
            ],
        },
    ]


def test_tool_loop_sends_the_signed_turn_back_as_it_came() -> None:
    body = (
        b'data: {"candidates": [{"content": {"parts": [{"functionCall": {"id": "fc-1", '
        b'"name": "f", "args": {"x": 1}}, "thoughtSignature": "c2ln"}], "role": "model"}, '
        b'"finishReason": "STOP"}]}\n\n'
    )
    decoder = get_protocol("gemini").decoder(True)
    decoder.feed(body)
    decoder.flush()
    message = decoder.message()
    assert message.tool_calls is not None and message.tool_calls[0].id == "fc-1"
    prompt = [
        {"role": "user", "content": "go"},
        message,
        mal.Message("tool", "done", tool_call_id="fc-1"),
    ]
    _, _, sent = build(prompt=prompt)
    assert sent["contents"][1] == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"id": "fc-1", "name": "f", "args": {"x": 1}},
                "thoughtSignature": "c2ln",
            }
        ],
    }
    assert sent["contents"][2]["parts"] == [
        {"functionResponse": {"name": "f", "response": {"output": "done"}, "id": "fc-1"}}
    ]


def test_roles_and_system_messages() -> None:
    _, _, body = build(
        prompt=[
            {"role": "system", "content": "S"},
            {"role": "user", "content": "U"},
            {"role": "assistant", "content": "A"},
        ]
    )
    assert body["systemInstruction"] == {"parts": [{"text": "S"}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model"]


def test_key_from_gemini_then_google_env() -> None:
    protocol = get_protocol("gemini")
    config = MALConfig()
    both = {"GEMINI_API_KEY": "g", "GOOGLE_API_KEY": "o"}
    assert resolve_endpoint(protocol, config, both).api_key == "g"
    assert resolve_endpoint(protocol, config, {"GOOGLE_API_KEY": "o"}).api_key == "o"
    endpoint = resolve_endpoint(protocol, config, {"GOOGLE_GEMINI_BASE_URL": "http://h:1"})
    assert endpoint.base_url == "http://h:1"
    assert resolve_endpoint(protocol, config, {}).base_url == (
        "https://generativelanguage.googleapis.com"
    )


def test_model_prefix_goes_to_gemini() -> None:
    from mal.protocols import split_model

    assert split_model("gemini/gemini-2.5-flash") == ("gemini", "gemini-2.5-flash")


def test_status_error_takes_googles_status_as_its_type() -> None:
    body = json.dumps(
        {"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED"}}
    ).encode()
    error = get_protocol("gemini").status_error(429, {}, body)
    assert isinstance(error, mal.RateLimitError)
    assert "(RESOURCE_EXHAUSTED): Quota exceeded." in str(error)
    body = json.dumps(
        {"error": {"code": 400, "message": 'Unknown name "x"', "status": "INVALID_ARGUMENT"}}
    ).encode()
    error = get_protocol("gemini").status_error(400, {}, body)
    assert "gemini returned HTTP 400 (INVALID_ARGUMENT)" in str(error)
