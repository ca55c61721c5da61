"""Prompt-cache breakpoints in the request builders: ``Message(cache=True)``
(or a dict's ``"cache": True``), ``cache_system`` and ``cache_tools`` become
Anthropic's ``cache_control`` markers, at most four; every other provider is
sent nothing new. Each body is also checked against the strict server's rules."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest

import mal
from mal.protocols import GenerateParams, get_protocol
from mal.testing._rules import Request, check

EPHEMERAL = {"type": "ephemeral"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 24
#: The strict server's endpoint kind of each provider's requests.
KINDS = {
    "openai": "openai",
    "openai-responses": "responses",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "groq": "openai",
}


def build(provider: str, prompt: Any, **fields: Any) -> dict[str, Any]:
    """The body of a request, after checking that the strict server accepts it."""
    fields.setdefault("model", "claude-sonnet-4-5" if provider == "anthropic" else "m")
    request = get_protocol(provider).build_request(
        GenerateParams(prompt=prompt, **fields), api_key="k"
    )
    body = json.loads(request.body)
    path = urlsplit(request.url).path
    kind = KINDS.get(provider) or path.rsplit("/", 1)[1]
    headers = {k.lower(): v for k, v in request.headers.items()}
    violation = check(Request(kind, path, "", headers, body))
    assert violation is None, violation
    return body


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


def get_time(zone: str) -> str:
    """The time in a time zone."""
    return "12:00"


# Messages ---------------------------------------------------------------------


def test_a_string_message_becomes_one_marked_text_block() -> None:
    body = build(
        "anthropic",
        [mal.Message("user", "A long document.", cache=True), mal.Message("user", "Question?")],
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "A long document.", "cache_control": EPHEMERAL}],
        },
        {"role": "user", "content": "Question?"},
    ]


def test_without_cache_the_body_is_unchanged() -> None:
    body = build("anthropic", [mal.Message("user", "Hi")], system="Be brief.", tools=None)
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert body["system"] == "Be brief."
    assert "cache_control" not in json.dumps(body)


def test_the_last_part_of_a_list_is_marked() -> None:
    image = mal.Image.from_bytes(PNG, "image/png")
    body = build("anthropic", [mal.Message("user", ["Look:", image], cache=True)])
    content = body["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "Look:"}
    assert content[1]["type"] == "image"
    assert content[1]["cache_control"] == EPHEMERAL


def test_a_dict_message_may_say_cache() -> None:
    blocks = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    prompt = [{"role": "user", "content": blocks, "cache": True}]
    body = build("anthropic", prompt)
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b", "cache_control": EPHEMERAL},
            ],
        }
    ]
    # The caller's message and blocks are left as they were.
    assert prompt == [{"role": "user", "content": blocks, "cache": True}]
    assert blocks[1] == {"type": "text", "text": "b"}


def test_a_dict_message_with_cache_false_sends_no_key() -> None:
    body = build("anthropic", [{"role": "user", "content": "Hi", "cache": False}])
    assert body["messages"] == [{"role": "user", "content": "Hi"}]


def test_a_tool_result_marks_its_tool_result_block() -> None:
    call = mal.ToolCall("toolu_1", "get_weather", {"city": "Paris"})
    call2 = mal.ToolCall("toolu_2", "get_weather", {"city": "Rome"})
    body = build(
        "anthropic",
        [
            mal.Message("user", "Weather?"),
            mal.Message("assistant", "", tool_calls=[call, call2]),
            mal.Message("tool", "Sunny", tool_call_id="toolu_1"),
            mal.Message("tool", "Rainy", tool_call_id="toolu_2", cache=True),
        ],
    )
    results = body["messages"][2]
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_2",
                "content": "Rainy",
                "cache_control": EPHEMERAL,
            },
        ],
    }


def test_an_assistant_turn_with_calls_marks_its_last_tool_use() -> None:
    call = mal.ToolCall("toolu_1", "get_weather", {"city": "Paris"})
    body = build(
        "anthropic",
        [
            mal.Message("user", "Weather?"),
            mal.Message("assistant", "Let me look.", tool_calls=[call], cache=True),
            mal.Message("tool", "Sunny", tool_call_id="toolu_1"),
        ],
    )
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "Let me look."},
        {
            "type": "tool_use",
            "id": "toolu_1",
            "name": "get_weather",
            "input": {"city": "Paris"},
            "cache_control": EPHEMERAL,
        },
    ]


THINKING = {"type": "thinking", "thinking": "Hmm.", "signature": "sig"}
REDACTED = {"type": "redacted_thinking", "data": "opaque"}


def test_an_assistant_turn_sent_back_with_its_blocks_marks_the_last_block() -> None:
    blocks = [THINKING, {"type": "text", "text": "Paris."}]
    body = build(
        "anthropic",
        [
            mal.Message("user", "Capital?"),
            mal.Message("assistant", "Paris.", blocks=blocks, cache=True),
            mal.Message("user", "And Italy?"),
        ],
    )
    assert body["messages"][1]["content"] == [
        THINKING,
        {"type": "text", "text": "Paris.", "cache_control": EPHEMERAL},
    ]
    assert blocks[1] == {"type": "text", "text": "Paris."}  # not changed in place


def test_thinking_blocks_never_carry_the_marker() -> None:
    # A turn that ends in thinking: the marker goes on its last block that may carry it.
    blocks = [{"type": "text", "text": "So far."}, THINKING, REDACTED]
    body = build(
        "anthropic",
        [
            mal.Message("user", "Go on."),
            mal.Message("assistant", "So far.", blocks=blocks, cache=True),
            mal.Message("user", "Continue."),
        ],
    )
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "So far.", "cache_control": EPHEMERAL},
        THINKING,
        REDACTED,
    ]


def test_a_turn_of_thinking_alone_cannot_be_marked() -> None:
    with pytest.raises(mal.ConfigError, match="prompt message 1 has cache=True but no block"):
        build(
            "anthropic",
            [
                mal.Message("user", "Go on."),
                mal.Message("assistant", "", blocks=[THINKING], cache=True),
                mal.Message("user", "Continue."),
            ],
        )


def test_an_empty_message_cannot_be_marked() -> None:
    with pytest.raises(mal.ConfigError, match="prompt message 0 has cache=True but no content"):
        build("anthropic", [mal.Message("user", "", cache=True)])


@pytest.mark.parametrize("value", ["1h", 1, None, {"type": "ephemeral"}])
@pytest.mark.parametrize("provider", ["anthropic", "openai", "openai-responses", "ollama"])
def test_cache_must_be_a_bool(provider: str, value: Any) -> None:
    with pytest.raises(mal.ConfigError, match="prompt message 0: cache must be True or False"):
        build(provider, [{"role": "user", "content": "Hi", "cache": value}])
    with pytest.raises(mal.ConfigError, match="prompt message 0: cache must be True or False"):
        build(provider, [mal.Message("user", "Hi", cache=value)])


# The system prompt and the tools -------------------------------------------------


def test_cache_system_marks_the_system_prompt() -> None:
    body = build("anthropic", "Hi", system="You are terse.", cache_system=True)
    assert body["system"] == [
        {"type": "text", "text": "You are terse.", "cache_control": EPHEMERAL}
    ]
    assert body["messages"] == [{"role": "user", "content": "Hi"}]


def test_a_system_message_with_cache_marks_its_own_block() -> None:
    body = build(
        "anthropic",
        [
            mal.Message("system", "Rules.", cache=True),
            {"role": "system", "content": "Today is Monday."},
            mal.Message("user", "Hi"),
        ],
        system="You are terse.",
    )
    assert body["system"] == [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Rules.", "cache_control": EPHEMERAL},
        {"type": "text", "text": "Today is Monday."},
    ]


def test_cache_system_marks_the_last_system_part() -> None:
    body = build(
        "anthropic",
        [{"role": "system", "content": "Rules."}, mal.Message("user", "Hi")],
        system="You are terse.",
        cache_system=True,
    )
    assert body["system"] == [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Rules.", "cache_control": EPHEMERAL},
    ]


def test_cache_system_without_a_system_prompt_is_an_error() -> None:
    with pytest.raises(mal.ConfigError, match="cache_system=True, but the call has no system"):
        build("anthropic", "Hi", cache_system=True)
    with pytest.raises(mal.ConfigError, match="cache_system=True, but the system prompt is empty"):
        build("anthropic", "Hi", system="", cache_system=True)


def test_cache_tools_marks_the_last_tool() -> None:
    tools = [mal.Tool.from_function(get_weather), mal.Tool.from_function(get_time)]
    body = build("anthropic", "Hi", tools=tools, cache_tools=True)
    assert [tool.get("cache_control") for tool in body["tools"]] == [None, EPHEMERAL]
    assert body["tools"][1]["name"] == "get_time"
    # The tool's own declaration is not changed.
    assert "cache_control" not in tools[1].to_anthropic()


def test_cache_tools_marks_the_answer_tool_of_a_schema() -> None:
    tools = [mal.Tool.from_function(get_weather)]
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    params: dict[str, Any] = {"tools": tools, "cache_tools": True, "schema_tool": True}
    from mal.schema import OutputSchema

    body = build("anthropic", "Hi", schema=OutputSchema.of(schema), **params)
    assert [tool.get("cache_control") for tool in body["tools"]] == [None, EPHEMERAL]


def test_cache_tools_without_tools_is_an_error() -> None:
    with pytest.raises(mal.ConfigError, match="cache_tools=True, but the call has no tools"):
        build("anthropic", "Hi", cache_tools=True)


# The limit of four ------------------------------------------------------------------


def four_marks(**fields: Any) -> dict[str, Any]:
    return build(
        "anthropic",
        [
            mal.Message("user", "Document.", cache=True),
            mal.Message("assistant", "Read."),
            mal.Message("user", "Question.", cache=True),
        ],
        system="Rules.",
        tools=[mal.Tool.from_function(get_weather)],
        cache_system=True,
        cache_tools=True,
        **fields,
    )


def test_four_breakpoints_are_sent() -> None:
    body = four_marks()
    assert json.dumps(body).count('"cache_control"') == 4


def test_a_fifth_breakpoint_is_a_config_error_naming_each() -> None:
    prompt = [
        mal.Message("system", "More rules.", cache=True),
        {"role": "system", "content": "Today is Monday."},
        mal.Message("user", "Document.", cache=True),
        mal.Message("assistant", "Read."),
        mal.Message("user", "Question.", cache=True),
    ]
    with pytest.raises(mal.ConfigError) as info:
        build(
            "anthropic",
            prompt,
            system="Rules.",
            tools=[mal.Tool.from_function(get_weather)],
            cache_system=True,
            cache_tools=True,
        )
    assert str(info.value) == (
        "5 prompt-cache breakpoints, but Anthropic takes at most 4 in a request: "
        "tools[0] (get_weather), system[1] (prompt message 0), system[2] (prompt message 1), "
        "messages[0].content[0] (prompt message 2), messages[2].content[0] (prompt message 4)"
    )
    # Without cache_tools: four, sent.
    body = build("anthropic", prompt, system="Rules.", cache_system=True)
    assert json.dumps(body).count('"cache_control"') == 4
    # cache_system marks the last system part; when a message marked it already: one.
    prompt[1] = mal.Message("system", "Today is Monday.", cache=True)
    body = build("anthropic", prompt, system="Rules.", cache_system=True)
    assert [block.get("cache_control") for block in body["system"]] == [None, EPHEMERAL, EPHEMERAL]
    assert json.dumps(body).count('"cache_control"') == 4
    with pytest.raises(mal.ConfigError, match=r"^5 prompt-cache"):
        build("anthropic", prompt, tools=[mal.Tool.from_function(get_weather)], cache_tools=True)


def test_markers_in_raw_blocks_and_extra_body_count_too() -> None:
    with pytest.raises(mal.ConfigError, match=r"5 prompt-cache breakpoints.*top-level"):
        four_marks(extra_body={"cache_control": {"type": "ephemeral"}})
    raw = {"type": "text", "text": "Raw.", "cache_control": {"type": "ephemeral"}}
    call = mal.ToolCall("toolu_1", "get_weather", {"city": "Paris"})
    prompt: list[Any] = [
        {"role": "user", "content": [raw]},
        mal.Message("assistant", "", tool_calls=[call]),
        mal.Message("tool", "Sunny", tool_call_id="toolu_1", cache=True),
        mal.Message("user", "a", cache=True),
        mal.Message("user", "b", cache=True),
        mal.Message("user", "c", cache=True),
    ]
    with pytest.raises(mal.ConfigError) as info:
        build("anthropic", prompt)
    assert "messages[0].content[0] (prompt message 0)" in str(info.value)
    assert "messages[2].content[0] (prompt message 2)" in str(info.value)


# Providers that cache by themselves -----------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "openai-responses", "ollama", "gemini", "groq"])
def test_other_providers_are_sent_nothing_new(provider: str) -> None:
    call = mal.ToolCall("call_1", "get_weather", {"city": "Paris"})
    tools = [mal.Tool.from_function(get_weather)]

    def prompt(cache: bool) -> list[Any]:
        return [
            mal.Message("system", "Rules.", cache=cache),
            {"role": "user", "content": "Document.", "cache": cache},
            mal.Message("assistant", "", tool_calls=[call], cache=cache),
            {"role": "tool", "content": "Sunny", "tool_call_id": "call_1", "cache": cache},
            mal.Message("user", "Question.", cache=cache),
        ]

    cached = build(
        provider, prompt(True), system="Be brief.", tools=tools, cache_system=True, cache_tools=True
    )
    plain = build(provider, prompt(False), system="Be brief.", tools=tools)
    assert cached == plain
    assert "cache" not in json.dumps(cached)
