"""The OpenAI Responses API's requests, field by field: input items,
instructions, flat tools, tool_choice, structured output, images, and an
earlier turn's items sent back as they came."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

import mal
from mal.protocols import GenerateParams, get_protocol
from mal.schema import OutputSchema
from mal.tools import as_tools

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 8


def build(**kwargs: Any) -> tuple[Any, dict[str, Any]]:
    kwargs.setdefault("model", "o4-mini")
    kwargs.setdefault("prompt", "Hi")
    if kwargs.get("tools") is not None:
        kwargs["tools"] = as_tools(kwargs["tools"])
    request = get_protocol("openai-responses").build_request(
        GenerateParams(**kwargs), base_url="https://api.openai.com/v1", api_key="sk-x"
    )
    return request, json.loads(request.body)


def test_the_basic_request() -> None:
    request, body = build(system="Be brief.", max_tokens=50, temperature=0.2, top_p=0.9)
    assert request.url == "https://api.openai.com/v1/responses"
    assert request.headers["authorization"] == "Bearer sk-x"
    assert request.headers["accept"] == "text/event-stream" and request.stream
    assert body == {
        "model": "o4-mini",
        "input": [{"role": "user", "content": "Hi"}],
        "instructions": "Be brief.",
        "stream": True,
        "max_output_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
    }


@pytest.mark.parametrize("option", [{"stop": ["\n"]}, {"seed": 1}])
def test_what_the_api_does_not_take_is_a_config_error(option: dict[str, Any]) -> None:
    with pytest.raises(mal.ConfigError, match="not supported by the OpenAI Responses API"):
        build(**option)


def lookup(q: str) -> str:
    """Look something up."""
    return q


def test_tools_are_flat() -> None:
    _, body = build(tools=[lookup], tool_choice="lookup", parallel_tool_calls=False)
    assert body["tools"] == [
        {
            "type": "function",
            "name": "lookup",
            "description": "Look something up.",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}},
                "required": ["q"],
            },
            # Said, not left out: the Responses API makes a tool without it strict.
            "strict": False,
        }
    ]
    assert body["tool_choice"] == {"type": "function", "name": "lookup"}
    assert body["parallel_tool_calls"] is False
    assert build(tools=[lookup], tool_choice="required")[1]["tool_choice"] == "required"


class City(msgspec.Struct):
    name: str


def test_structured_output_goes_in_text_format() -> None:
    _, body = build(schema=OutputSchema.of(City))
    fmt = body["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["name"] == "City" and fmt["strict"] is True
    assert fmt["schema"]["additionalProperties"] is False


def test_the_conversation_as_items() -> None:
    image = mal.Image.from_bytes(PNG)
    calls = [mal.ToolCall("call_1", "lookup", {"q": "mal"})]
    prompt = [
        {"role": "developer", "content": "Use tools."},
        mal.Message("user", ["What is this?", image, mal.Image.from_url("https://x/y.png")]),
        mal.Message("assistant", "Let me look.", tool_calls=calls),
        mal.Message("tool", "A model layer.", tool_call_id="call_1"),
    ]
    _, body = build(prompt=prompt)
    assert body["input"] == [
        {"role": "developer", "content": "Use tools."},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": image.data_url, "detail": "auto"},
                {"type": "input_image", "image_url": "https://x/y.png", "detail": "auto"},
            ],
        },
        {"role": "assistant", "content": "Let me look."},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "lookup",
            "arguments": '{"q":"mal"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "A model layer."},
    ]


def test_a_turn_with_reasoning_goes_back_as_its_items() -> None:
    items = [
        {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "gAAAA"},
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "lookup",
            "arguments": "{}",
        },
    ]
    turn = mal.Message("assistant", "", tool_calls=[mal.ToolCall("call_1", "lookup")], blocks=items)
    _, body = build(prompt=[{"role": "user", "content": "?"}, turn])
    assert body["input"][1:] == items


def test_a_tool_result_needs_its_call_id_and_text() -> None:
    with pytest.raises(mal.ConfigError, match="tool_call_id"):
        build(prompt=[{"role": "tool", "content": "x"}])
    image = mal.Image.from_bytes(PNG)
    with pytest.raises(mal.ConfigError, match="images in tool results"):
        build(prompt=[mal.Message("tool", [image], tool_call_id="c")])


def test_it_shares_openais_base_url_and_key() -> None:
    config = mal.MALConfig(base_urls={"openai": "http://local:8000/v1"}, api_keys={"openai": "k"})
    from mal.config import resolve_endpoint

    endpoint = resolve_endpoint(get_protocol("openai-responses"), config, {})
    assert endpoint.base_url == "http://local:8000/v1" and endpoint.api_key == "k"
    mine = mal.MALConfig(base_urls={"openai": "http://a/v1", "openai-responses": "http://b/v1"})
    assert resolve_endpoint(get_protocol("openai-responses"), mine, {}).base_url == "http://b/v1"
