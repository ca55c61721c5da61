"""mal.Tool, and the tool fields of each provider's request: declarations,
tool_choice, earlier calls and tool results, field by field."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any, Literal

import msgspec
import pytest

import mal
from mal.protocols import GenerateParams, get_protocol
from mal.tools import as_tools, format_result


def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
    """Current weather in a city.

    Args:
        city: The city's name,
            as the user wrote it.
        unit (str): Celsius or Fahrenheit.

    Returns:
        The weather, as text.
    """
    return f"18 {unit} in {city}"


@dataclasses.dataclass
class Point:
    x: float
    y: float


def distance(a: Point, b: Point, /, *, squared: bool = False) -> float:
    d2 = (a.x - b.x) ** 2 + (a.y - b.y) ** 2
    return d2 if squared else float(d2**0.5)


async def fetch(url: str) -> str:
    """Fetch a page."""
    return url


# Tool.from_function ---------------------------------------------------------------


def test_a_function_gives_name_description_and_schema() -> None:
    tool = mal.Tool.from_function(get_weather)
    assert tool.name == "get_weather"
    assert tool.description == "Current weather in a city.\n\nReturns:\n    The weather, as text."
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city's name, as the user wrote it."},
            "unit": {"enum": ["c", "f"], "default": "c", "description": "Celsius or Fahrenheit."},
        },
        "required": ["city"],
    }
    assert tool.function is get_weather and not tool.is_async
    assert mal.Tool.from_function(get_weather) is tool  # built once


def test_nested_types_go_to_defs_and_bind_converts_them() -> None:
    tool = mal.Tool.from_function(distance)
    assert set(tool.parameters["$defs"]) == {"Point"}
    assert tool.parameters["properties"]["a"] == {"$ref": "#/$defs/Point"}
    assert tool.parameters["required"] == ["a", "b"]
    args, kwargs = tool.bind({"a": {"x": 0, "y": 0}, "b": {"x": 3, "y": 4}})
    assert args == (Point(0, 0), Point(3, 4)) and kwargs == {"squared": False}
    assert distance(*args, **kwargs) == 5.0
    with pytest.raises(msgspec.ValidationError, match=r"\$\.a\.x"):
        tool.bind({"a": {"x": "far", "y": 0}, "b": {"x": 3, "y": 4}})
    with pytest.raises(msgspec.ValidationError, match="missing required field `b`"):
        tool.bind({"a": {"x": 0, "y": 0}})


def test_an_annotated_description_wins_over_the_docstring() -> None:
    def f(q: Annotated[str, msgspec.Meta(description="The query.")]) -> None:
        """Search.

        Args:
            q: ignored here.
        """

    assert mal.Tool.from_function(f).parameters["properties"]["q"] == {
        "type": "string",
        "description": "The query.",
    }


def test_a_function_without_parameters() -> None:
    def now() -> str:
        return "noon"

    tool = mal.Tool.from_function(now)
    assert tool.parameters == {"type": "object", "properties": {}}
    assert tool.description == ""
    assert tool.bind({}) == ((), {})


def test_async_functions_and_overrides() -> None:
    tool = mal.Tool.from_function(fetch, name="get_page", description="Get a page.")
    assert tool.is_async and tool.name == "get_page" and tool.description == "Get a page."
    assert mal.Tool.from_function(fetch) is not tool


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (lambda x: x, "parameter 'x' has no type annotation"),
        (lambda *xs: xs, "parameter 'xs': \\*args and \\*\\*kwargs"),
        (lambda **kw: kw, "parameter 'kw': \\*args and \\*\\*kwargs"),
    ],
)
def test_parameters_that_cannot_be_declared(function: Any, message: str) -> None:
    with pytest.raises(mal.ConfigError, match=message):
        mal.Tool.from_function(function, name="f")


def test_a_type_without_a_schema_is_named() -> None:
    def f(handle: int, when: complex) -> None: ...

    with pytest.raises(mal.ConfigError, match=r"tool 'f': parameter 'when': its type"):
        mal.Tool.from_function(f)


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "dotted.name", 3])
def test_bad_names(name: Any) -> None:
    with pytest.raises(mal.ConfigError, match="tool name"):
        mal.Tool(name)


def test_bad_declarations() -> None:
    with pytest.raises(mal.ConfigError, match="JSON schema of an object"):
        mal.Tool("t", parameters={"type": "string"})
    with pytest.raises(mal.ConfigError, match="description must be a string"):
        mal.Tool("t", None)  # type: ignore[arg-type]
    with pytest.raises(mal.ConfigError, match="callable"):
        mal.Tool("t", function="run")  # type: ignore[arg-type]


def test_a_declared_tool_passes_arguments_as_they_are() -> None:
    tool = mal.Tool("search", "Search.", {"properties": {"q": {"type": "string"}}})
    assert tool.parameters == {"type": "object", "properties": {"q": {"type": "string"}}}
    assert tool.bind({"q": 1}) == ((), {"q": 1})
    assert tool.function is None and repr(tool) == "Tool('search', declaration)"


# as_tools -----------------------------------------------------------------------------


def test_as_tools() -> None:
    search = mal.Tool("search")
    tools = as_tools([get_weather, search])
    assert tools is not None
    assert [t.name for t in tools] == ["get_weather", "search"] and tools[1] is search
    assert as_tools(None) is None
    with pytest.raises(mal.ConfigError, match="two tools are named 'search'"):
        as_tools([search, mal.Tool("search")])
    with pytest.raises(mal.ConfigError, match=r"not dict \(use mal.Tool"):
        as_tools([{"name": "search"}])
    with pytest.raises(mal.ConfigError, match="a list"):
        as_tools(get_weather)  # type: ignore[arg-type]
    with pytest.raises(mal.ConfigError, match="not type"):
        as_tools([Point])


# format_result ------------------------------------------------------------------------


def test_format_result() -> None:
    image = mal.Image.from_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 8)
    assert format_result("18 C") == "18 C"
    assert format_result(None) == ""
    assert format_result({"t": 18, "ok": True}) == '{"t":18,"ok":true}'
    assert format_result(Point(1.5, 2.25)) == '{"x":1.5,"y":2.25}'
    assert format_result([1, "a"]) == '[1,"a"]'
    assert format_result(image) == [image]
    assert format_result(["Here:", image]) == ["Here:", image]
    assert format_result({1j}) == "{1j}"  # no JSON form: its str()


# Declarations per provider --------------------------------------------------------------


def build(provider: str, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("model", "m")
    kwargs.setdefault("prompt", [{"role": "user", "content": "Hi"}])
    tools = kwargs.get("tools")
    if tools is not None:
        kwargs["tools"] = as_tools(tools)
    request = get_protocol(provider).build_request(GenerateParams(**kwargs))
    body: dict[str, Any] = json.loads(request.body)
    if provider == "ollama":
        assert request.url.endswith("/api/chat")
    return body


WEATHER_SCHEMA = mal.Tool.from_function(get_weather).parameters


def test_openai_tools() -> None:
    body = build("openai", tools=[get_weather, mal.Tool("now")], tool_choice="auto")
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": mal.Tool.from_function(get_weather).description,
                "parameters": WEATHER_SCHEMA,
            },
        },
        {
            "type": "function",
            "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
        },
    ]
    assert body["tool_choice"] == "auto"
    assert "parallel_tool_calls" not in body


@pytest.mark.parametrize(
    ("choice", "parallel", "sent"),
    [
        (None, None, {}),
        ("none", None, {"tool_choice": "none"}),
        ("required", False, {"tool_choice": "required", "parallel_tool_calls": False}),
        (
            "get_weather",
            True,
            {
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "parallel_tool_calls": True,
            },
        ),
    ],
)
def test_openai_tool_choice(
    choice: str | None, parallel: bool | None, sent: dict[str, Any]
) -> None:
    body = build("openai", tools=[get_weather], tool_choice=choice, parallel_tool_calls=parallel)
    assert {k: body[k] for k in ("tool_choice", "parallel_tool_calls") if k in body} == sent


def test_openai_strict_tools() -> None:
    tool = mal.Tool.from_function(get_weather, strict=True)
    (sent,) = build("openai", tools=[tool])["tools"]
    function = sent["function"]
    assert function["strict"] is True
    assert function["parameters"]["additionalProperties"] is False
    assert function["parameters"]["required"] == ["city", "unit"]
    free = mal.Tool(
        "free", parameters={"type": "object", "additionalProperties": True}, strict=True
    )
    with pytest.raises(mal.ConfigError, match="cannot be strict"):
        build("openai", tools=[free])


@pytest.mark.parametrize(
    ("choice", "parallel", "sent"),
    [
        (None, None, None),
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ("get_weather", None, {"type": "tool", "name": "get_weather"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("auto", True, {"type": "auto"}),
    ],
)
def test_anthropic_tools(choice: str | None, parallel: bool | None, sent: Any) -> None:
    body = build("anthropic", tools=[get_weather], tool_choice=choice, parallel_tool_calls=parallel)
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": mal.Tool.from_function(get_weather).description,
            "input_schema": WEATHER_SCHEMA,
        }
    ]
    assert body.get("tool_choice") == sent


def test_anthropic_cannot_force_a_tool_while_thinking() -> None:
    extra = {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    with pytest.raises(mal.ConfigError, match="thinking"):
        build("anthropic", tools=[get_weather], tool_choice="required", extra_body=extra)
    assert build("anthropic", tools=[get_weather], tool_choice="auto", extra_body=extra)


def test_ollama_tools() -> None:
    body = build("ollama", prompt="Hi", tools=[get_weather])
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": mal.Tool.from_function(get_weather).description,
                "parameters": WEATHER_SCHEMA,
            },
        }
    ]
    # A string prompt goes to /api/chat once there are tools.
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert "tools" not in build("ollama", tools=[get_weather], tool_choice="none")
    assert "tools" in build("ollama", tools=[get_weather], tool_choice="auto")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": "get_weather"}, "tool_choice"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
    ],
)
def test_what_ollama_cannot_do_is_a_config_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(mal.ConfigError, match=message):
        build("ollama", tools=[get_weather], **options)


# Earlier calls and tool results ----------------------------------------------------------

CALLS = [
    mal.ToolCall("call_1", "get_weather", {"city": "Paris"}),
    mal.ToolCall("call_2", "get_weather", arguments_json='{"city": "Oslo", "unit": "f"}'),
]
CONVERSATION: list[Any] = [
    {"role": "user", "content": "Weather in Paris and Oslo?"},
    mal.Message("assistant", "Let me look.", tool_calls=CALLS),
    mal.Message("tool", "18 c in Paris", tool_call_id="call_1"),
    {"role": "tool", "content": "boom", "tool_call_id": "call_2", "is_error": True},
]


def test_openai_sends_calls_and_results() -> None:
    messages = build("openai", prompt=CONVERSATION)["messages"]
    assert messages == [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    # The text as the model wrote it, not re-encoded.
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city": "Oslo", "unit": "f"}',
                    },
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 c in Paris"},
        {"role": "tool", "tool_call_id": "call_2", "content": "boom"},
    ]


def test_openai_assistant_turn_without_text_has_null_content() -> None:
    turn = mal.Message("assistant", "", tool_calls=CALLS[:1])
    (_, sent) = build("openai", prompt=[CONVERSATION[0], turn])["messages"]
    assert sent["content"] is None


def test_anthropic_merges_tool_results_into_one_user_turn() -> None:
    image = mal.Image.from_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 8)
    conversation = [*CONVERSATION[:3], {**CONVERSATION[3]}, {"role": "user", "content": "Thanks"}]
    conversation[2] = mal.Message("tool", ["A chart:", image], tool_call_id="call_1")
    messages = build("anthropic", prompt=conversation)["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {
                "type": "tool_use",
                "id": "call_2",
                "name": "get_weather",
                "input": {"city": "Oslo", "unit": "f"},
            },
        ],
    }
    results = messages[2]
    assert results["role"] == "user"
    first, second = results["content"]
    assert first["type"] == "tool_result" and first["tool_use_id"] == "call_1"
    assert first["content"][0] == {"type": "text", "text": "A chart:"}
    assert first["content"][1]["type"] == "image"
    assert "is_error" not in first
    assert second == {
        "type": "tool_result",
        "tool_use_id": "call_2",
        "content": "boom",
        "is_error": True,
    }
    assert messages[3] == {"role": "user", "content": "Thanks"}
    assert len(messages) == 4


def test_anthropic_sends_blocks_back_verbatim() -> None:
    blocks = [
        {"type": "thinking", "thinking": "Hmm.", "signature": "c2ln"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    turn = mal.Message(
        "assistant",
        "",
        tool_calls=[mal.ToolCall("toolu_1", "get_weather", {"city": "Paris"})],
        blocks=blocks,
    )
    messages = build("anthropic", prompt=[CONVERSATION[0], turn])["messages"]
    assert messages[1] == {"role": "assistant", "content": blocks}


def test_ollama_sends_calls_and_results_with_tool_names() -> None:
    messages = build("ollama", prompt=CONVERSATION)["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [
            {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {
                "id": "call_2",
                "function": {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "f"}},
            },
        ],
    }
    # The tool's name, which Ollama needs, is looked up from the call.
    assert messages[2] == {
        "role": "tool",
        "content": "18 c in Paris",
        "tool_name": "get_weather",
        "tool_call_id": "call_1",
    }
    assert messages[3]["tool_name"] == "get_weather"


def test_a_result_of_no_known_call_is_named_for_ollama() -> None:
    stray = [{"role": "user", "content": "?"}, mal.Message("tool", "x", tool_call_id="call_9")]
    with pytest.raises(mal.ConfigError, match="call_9"):
        build("ollama", prompt=stray)
    named = [stray[0], mal.Message("tool", "x", tool_call_id="call_9", name="lookup")]
    assert build("ollama", prompt=named)["messages"][1]["tool_name"] == "lookup"


@pytest.mark.parametrize("provider", ["openai", "anthropic", "ollama"])
def test_a_tool_result_needs_its_call_id(provider: str) -> None:
    prompt = [{"role": "user", "content": "?"}, {"role": "tool", "content": "18 C"}]
    with pytest.raises(mal.ConfigError, match="tool_call_id"):
        build(provider, prompt=prompt)


@pytest.mark.parametrize("provider", ["openai", "ollama"])
def test_images_in_tool_results_only_for_anthropic(provider: str) -> None:
    image = mal.Image.from_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 8)
    prompt = [*CONVERSATION[:2], mal.Message("tool", [image], tool_call_id="call_1")]
    with pytest.raises(mal.ConfigError, match="Anthropic does"):
        build(provider, prompt=prompt)
