"""The rules of Anthropic's Messages API that the strict built-in server
checks: each rule rejects what the real API rejects, with its wording, and
lets through every request mal builds for it."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest

import mal
from mal.protocols import GenerateParams, get_protocol
from mal.schema import OutputSchema
from mal.testing._rules import Request, Violation, check

DATA = Path(__file__).resolve().parent.parent / "data" / "anthropic"
HEADERS = {"anthropic-version": "2023-06-01", "content-type": "application/json"}
MODEL = "claude-sonnet-4-5"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 24


def run(body: Any, headers: dict[str, str] | None = None) -> Violation | None:
    request = Request(
        "anthropic", "/v1/messages", "", HEADERS if headers is None else headers, body
    )
    return check(request)


def body(**fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    out.update(fields)
    return out


def rejected(violation: Violation | None, message: str, param: str | None = None) -> None:
    assert violation is not None, "the request was accepted"
    assert violation.status == 400
    assert violation.error_type == "invalid_request_error"
    assert violation.message == message
    if param is not None:
        assert violation.param == param


def without(key: str) -> dict[str, Any]:
    out = body()
    del out[key]
    return out


WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def tool_turns(*results: dict[str, Any], text_first: bool = False) -> list[dict[str, Any]]:
    """A user question, an assistant turn calling toolu_A and toolu_B, and a
    user turn with ``results``."""
    calls = [
        {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {"city": "A"}},
        {"type": "tool_use", "id": "toolu_B", "name": "get_weather", "input": {"city": "B"}},
    ]
    content: list[dict[str, Any]] = list(results)
    if text_first:
        content.insert(0, {"type": "text", "text": "Here:"})
    return [
        {"role": "user", "content": "Weather in A and B?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."}, *calls]},
        {"role": "user", "content": content},
    ]


def result(id: str, content: Any = "18C") -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": id, "content": content}


THINKING = {"type": "enabled", "budget_tokens": 2048}
SIGNED = {"type": "thinking", "thinking": "Both cities.", "signature": "EqQBCkYIBxgCKkA="}


def test_a_plain_request_is_accepted() -> None:
    assert run(body()) is None


# Headers and top-level fields -----------------------------------------------------------


def test_the_version_header_is_required() -> None:
    rejected(run(body(), {}), "anthropic-version: header is required", "anthropic-version")
    rejected(
        run(body(), {"anthropic-version": "2023-06-01, 2023-06-01"}),
        'anthropic-version: "2023-06-01, 2023-06-01" is not a valid version',
    )
    assert run(body(), {"anthropic-version": "2023-01-01"}) is None


V2026 = {**HEADERS, "anthropic-version": "2026-10-21"}


@pytest.mark.parametrize("key", ["temperature", "top_p", "top_k"])
def test_version_2026_10_21_has_no_sampling_parameters(key: str) -> None:
    value = 1 if key != "top_k" else 5
    rejected(run(body(**{key: value}), V2026), f"{key}: Extra inputs are not permitted", key)
    assert run(body(**{key: value})) is None
    assert run(body(), V2026) is None


def test_version_2026_10_21_message_rules() -> None:
    document = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "Notes."},
    }
    turns = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [document, {"type": "text", "text": "Read it."}]},
        {"role": "user", "content": "And?"},
    ]
    assert run(body(messages=turns)) is None
    rejected(
        run(body(messages=turns), V2026),
        "messages.1.content.0: document blocks are not allowed in assistant messages",
    )
    cited = {"type": "text", "text": "As said.", "citations": [{"type": "char_location"}]}
    mine = [{"role": "user", "content": [cited]}]
    assert run(body(messages=mine)) is None
    rejected(
        run(body(messages=mine), V2026),
        "messages.0.content.0: text blocks in user messages cannot have citations",
    )
    found = {"type": "search_result", "source": "s", "title": "t", "content": [cited]}
    rejected(
        run(body(messages=[{"role": "user", "content": [found]}]), V2026),
        "messages.0.content.0: text blocks in user messages cannot have citations",
    )
    uncited = [{"role": "user", "content": [{**cited, "citations": []}]}]
    assert run(body(messages=uncited), V2026) is None


@pytest.mark.parametrize("key", ["model", "messages", "max_tokens"])
def test_required_fields(key: str) -> None:
    rejected(run(without(key)), f"{key}: Field required", key)


@pytest.mark.parametrize("key", ["response_format", "extra_body", "n", "context_management"])
def test_unknown_top_level_fields(key: str) -> None:
    rejected(run(body(**{key: {}})), f"{key}: Extra inputs are not permitted", key)


def test_beta_fields_need_a_beta_header() -> None:
    beta = {**HEADERS, "anthropic-beta": "context-management-2025-06-27"}
    assert run(body(context_management={"edits": []}), beta) is None


@pytest.mark.parametrize(
    ("fields", "message", "param"),
    [
        ({"max_tokens": -1}, "max_tokens: Input should be greater than or equal to 0", None),
        ({"max_tokens": "5"}, "max_tokens: Input should be a valid integer", None),
        (
            {"max_tokens": 1.5},
            "max_tokens: Input should be a valid integer, got a number with a fractional part",
            None,
        ),
        ({"model": 5}, "model: Input should be a valid string", None),
        ({"messages": "Hi"}, "messages: Input should be a valid list", None),
        ({"temperature": 1.5}, "temperature: Input should be less than or equal to 1", None),
        ({"temperature": -0.1}, "temperature: Input should be greater than or equal to 0", None),
        ({"temperature": "hot"}, "temperature: Input should be a valid number", None),
        ({"top_p": 2}, "top_p: Input should be less than or equal to 1", None),
        ({"top_k": -1}, "top_k: Input should be greater than or equal to 0", None),
        ({"stream": "yes"}, "stream: Input should be a valid boolean", None),
        ({"stop_sequences": "END"}, "stop_sequences: Input should be a valid list", None),
        (
            {"stop_sequences": ["END", 3]},
            "stop_sequences.1: Input should be a valid string",
            "stop_sequences[1]",
        ),
        (
            {"metadata": {"user": "x"}},
            "metadata.user: Extra inputs are not permitted",
            "metadata.user",
        ),
        (
            {"metadata": {"user_id": "x" * 257}},
            "metadata.user_id: String should have at most 256 characters",
            None,
        ),
        (
            {"service_tier": "priority"},
            "service_tier: Input should be 'auto' or 'standard_only'",
            None,
        ),
        ({"system": 5}, "system: Input should be a valid string or a list of text blocks", None),
        (
            {"system": [{"type": "text", "text": "Be brief.", "lang": "en"}]},
            "system.0.lang: Extra inputs are not permitted",
            "system[0].lang",
        ),
        (
            {"system": [{"type": "text", "text": ""}]},
            "system: text content blocks must be non-empty",
            None,
        ),
        (
            {"cache_control": {"type": "ephemeral", "ttl": "2h"}},
            "cache_control.ephemeral.ttl: Input should be '5m' or '1h'",
            "cache_control.ttl",
        ),
    ],
)
def test_field_types_and_ranges(fields: dict[str, Any], message: str, param: str | None) -> None:
    rejected(run(body(**fields)), message, param)


@pytest.mark.parametrize(
    "fields",
    [
        {"max_tokens": 0},  # fills the prompt cache without generating
        {"temperature": 0, "top_k": 0},
        {"top_p": 1, "model": "claude-sonnet-4-20250514", "temperature": 0.5},
        {"temperature": 1.0, "stream": True, "stop_sequences": []},
        {"system": "Be brief."},
        {"system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]},
        {"metadata": {"user_id": None}},
        {"metadata": {"user_id": "u-1"}, "service_tier": "standard_only"},
        {"output_config": {"effort": "low"}},
    ],
)
def test_valid_fields(fields: dict[str, Any]) -> None:
    assert run(body(**fields)) is None


# Messages -------------------------------------------------------------------------------


def test_no_messages() -> None:
    rejected(run(body(messages=[])), "messages: at least one message is required")


def test_roles() -> None:
    rejected(
        run(body(messages=[{"role": "tool", "content": "x"}])),
        "messages.0.role: Input should be 'user', 'assistant' or 'system'",
        "messages[0].role",
    )
    system_first = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    rejected(
        run(body(messages=system_first)),
        'messages: Unexpected role "system". The Messages API accepts a top-level `system` '
        'parameter, not "system" as an input message role.',
        "messages[0].role",
    )


def test_the_first_message_may_be_the_assistants() -> None:
    # The old rule "the first message must use the user role" is gone;
    # consecutive turns of one role are merged.
    messages = [
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": "Again"},
    ]
    assert run(body(messages=messages)) is None


def test_mid_conversation_system_messages_on_opus_4_8() -> None:
    opus = "claude-opus-4-8"
    ok = [
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": "From now on, answer in French."},
    ]
    assert run(body(model=opus, messages=ok)) is None
    answered = [*ok, {"role": "assistant", "content": "Oui"}, {"role": "user", "content": "?"}]
    assert run(body(model=opus, messages=answered)) is None
    first = [ok[1], ok[0]]
    rejected(
        run(body(model=opus, messages=first)),
        "messages.0: a system message cannot be the first message; use `system`",
    )
    twice = [*ok, ok[1]]
    rejected(
        run(body(model=opus, messages=twice)),
        "messages.1: system messages cannot be adjacent to another system message",
    )
    after_assistant = [ok[0], {"role": "assistant", "content": "Hello"}, ok[1]]
    rejected(
        run(body(model=opus, messages=after_assistant)),
        "messages.2: a system message must follow a user message or an assistant message "
        "that ends in a server tool use",
    )
    before_user = [*ok, {"role": "user", "content": "?"}]
    rejected(
        run(body(model=opus, messages=before_user)),
        "messages.1: a system message must be the last message or precede an assistant",
    )
    image = {"role": "system", "content": [image_block()]}
    rejected(
        run(body(model=opus, messages=[ok[0], image])),
        "messages.1.content.0: system messages support text blocks only",
    )


@pytest.mark.parametrize(
    ("message", "error", "param"),
    [
        ({"role": "user"}, "messages.0.content: Field required", "messages[0].content"),
        (
            {"role": "user", "content": "Hi", "name": "bob"},
            "messages.0.name: Extra inputs are not permitted",
            "messages[0].name",
        ),
        (
            {"role": "user", "content": 5},
            "messages.0.content: Input should be a valid string or a list of blocks",
            None,
        ),
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
            "messages.0.content.0: Input tag 'image_url' found using 'type' does not match any "
            "of the expected tags: 'text', 'image', 'document', 'search_result', 'thinking', "
            "'redacted_thinking', 'tool_use', 'tool_result', 'server_tool_use', "
            "'web_search_tool_result', 'web_fetch_tool_result', 'code_execution_tool_result', "
            "'bash_code_execution_tool_result', 'text_editor_code_execution_tool_result', "
            "'tool_search_tool_result', 'container_upload', 'mid_conv_system'",
            "messages[0].content[0]",
        ),
        (
            {"role": "user", "content": [{"text": "Hi"}]},
            "messages.0.content.0: Unable to extract tag using discriminator 'type'",
            None,
        ),
        (
            {"role": "user", "content": ["Hi"]},
            "messages.0.content.0: Input should be a valid dictionary",
            None,
        ),
        (
            {"role": "user", "content": [{"type": "text"}]},
            "messages.0.content.0.text.text: Field required",
            "messages[0].content[0].text",
        ),
        (
            {"role": "user", "content": [{"type": "text", "text": "Hi", "id": 1}]},
            "messages.0.content.0.text.id: Extra inputs are not permitted",
            None,
        ),
        (
            {"role": "user", "content": [{"type": "thinking", "thinking": "x"}]},
            "messages.0.content.0.thinking.signature: Field required",
            "messages[0].content[0].signature",
        ),
        (
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Hi", "cache_control": {"type": "persistent"}}
                ],
            },
            "messages.0.content.0.text.cache_control: Input tag 'persistent' found using 'type' "
            "does not match any of the expected tags: 'ephemeral'",
            None,
        ),
    ],
)
def test_message_shapes(message: dict[str, Any], error: str, param: str | None) -> None:
    rejected(run(body(messages=[message])), error, param)


def test_empty_content() -> None:
    for content in ("", []):
        rejected(
            run(body(messages=[{"role": "user", "content": content}])),
            "messages.0: all messages must have non-empty content except for the optional "
            "final assistant message",
            "messages[0]",
        )
    # The final assistant message may be empty (the answer starts from nothing).
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]
    assert run(body(messages=turns)) is None


def test_empty_and_blank_text_blocks() -> None:
    empty = [{"role": "user", "content": [{"type": "text", "text": ""}]}]
    rejected(
        run(body(messages=empty)),
        "messages: text content blocks must be non-empty",
        "messages[0].content[0].text",
    )
    blank = [{"role": "user", "content": [{"type": "text", "text": " \n"}]}]
    rejected(
        run(body(messages=blank)), "messages: text content blocks must contain non-whitespace text"
    )
    rejected(
        run(body(messages=[{"role": "user", "content": "  "}])),
        "messages: text content blocks must contain non-whitespace text",
    )


@pytest.mark.parametrize(
    "prefill",
    ["The answer is ", "Sure\n", [{"type": "text", "text": "A "}], "   "],
)
def test_the_final_assistant_message_cannot_end_with_whitespace(prefill: Any) -> None:
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": prefill}]
    rejected(
        run(body(messages=turns)),
        "messages: final assistant content cannot end with trailing whitespace",
        "messages[1].content",
    )
    # Earlier assistant turns may.
    later = [*turns, {"role": "user", "content": "Go on"}]
    if isinstance(prefill, str) and not prefill.strip():
        return  # a blank earlier turn breaks another rule
    assert run(body(messages=later)) is None


def test_a_prefill_without_trailing_whitespace() -> None:
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "The answer is"}]
    assert run(body(messages=turns)) is None


# Images ---------------------------------------------------------------------------------


def image_block(data: bytes = PNG, media_type: str = "image/png") -> dict[str, Any]:
    source = {"type": "base64", "media_type": media_type, "data": base64.b64encode(data).decode()}
    return {"type": "image", "source": source}


def with_image(block: dict[str, Any]) -> dict[str, Any]:
    return body(messages=[{"role": "user", "content": [block, {"type": "text", "text": "?"}]}])


def test_images() -> None:
    assert run(with_image(image_block())) is None
    url = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
    assert run(with_image(url)) is None
    rejected(
        run(with_image(image_block(media_type="image/bmp"))),
        "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg', "
        "'image/png', 'image/gif' or 'image/webp'",
        "messages[0].content[0].source.media_type",
    )
    rejected(
        run(with_image({"type": "image", "source": {"type": "base64", "data": "AAAA"}})),
        "messages.0.content.0.image.source.base64.media_type: Field required",
    )
    rejected(
        run(with_image({"type": "image", "source": {"type": "path", "path": "/x.png"}})),
        "messages.0.content.0.image.source: Input tag 'path' found using 'type' does not match "
        "any of the expected tags: 'base64', 'url'",
    )
    rejected(
        run(with_image({"type": "image", "source": {"type": "url"}})),
        "messages.0.content.0.image.source.url.url: Field required",
    )


def test_the_image_limit_is_on_the_base64_text() -> None:
    # 3.75 MiB of image is 5 MiB of base64: the most the API takes.
    assert run(with_image(image_block(b"\x89PNG" * (15 * 64 * 1024)))) is None
    big = image_block(b"\x89PNG" * (15 * 64 * 1024) + b"\0" * 3)
    rejected(
        run(with_image(big)),
        "messages.0.content.0.image.source.base64: image exceeds 5 MB maximum: 5242884 bytes "
        "> 5242880 bytes",
        "messages[0].content[0].source.data",
    )


# Tools ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "message", "param"),
    [
        (
            {**WEATHER, "name": "get.weather"},
            "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
            "tools[0].name",
        ),
        (
            {**WEATHER, "name": ""},
            "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
            None,
        ),
        (
            {**WEATHER, "name": "a" * 129},
            "tools.0.custom.name: String should have at most 128 characters",
            None,
        ),
        (
            {"name": "f", "parameters": {"type": "object"}},
            "tools.0.custom.input_schema: Field required",
            "tools[0].input_schema",
        ),
        (
            {"type": "function", "function": {"name": "f"}},
            "tools.0: Input tag 'function' found using 'type' does not match any of the "
            "expected tags: 'custom', 'bash_20250124', 'code_execution_20250522', "
            "'code_execution_20250825', 'code_execution_20260120', 'code_execution_20260521', "
            "'memory_20250818', 'text_editor_20250124', 'text_editor_20250429', "
            "'text_editor_20250728', 'web_search_20250305', 'web_search_20260209', "
            "'web_search_20260318', 'web_fetch_20250910', 'web_fetch_20260209', "
            "'web_fetch_20260309', 'web_fetch_20260318', 'tool_search_tool_bm25_20251119', "
            "'tool_search_tool_bm25', 'tool_search_tool_regex_20251119', 'tool_search_tool_regex'",
            None,
        ),
        (
            {**WEATHER, "input_schema": {"type": "string"}},
            "tools.0.custom.input_schema.type: Input should be 'object'",
            "tools[0].input_schema.type",
        ),
        (
            {**WEATHER, "input_schema": {"properties": {}}},
            "tools.0.custom.input_schema.type: Field required",
            None,
        ),
        (
            {**WEATHER, "parameters": {}},
            "tools.0.custom.parameters: Extra inputs are not permitted",
            None,
        ),
        (
            {**WEATHER, "strict": "yes"},
            "tools.0.custom.strict: Input should be a valid boolean",
            None,
        ),
    ],
)
def test_tool_declarations(tool: dict[str, Any], message: str, param: str | None) -> None:
    rejected(run(body(tools=[tool])), message, param)


def test_valid_tools() -> None:
    search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
    tools = [WEATHER, {**WEATHER, "name": "a" * 128, "strict": False}, search]
    assert run(body(tools=tools)) is None
    assert run(body(tools=[{**WEATHER, "type": "custom"}])) is None


def test_tool_names_are_unique() -> None:
    rejected(
        run(body(tools=[WEATHER, WEATHER])),
        "tools: Tool names must be unique. Duplicate name: get_weather",
    )


@pytest.mark.parametrize(
    "choice",
    [
        {"type": "auto"},
        {"type": "any"},
        {"type": "none"},
        {"type": "tool", "name": "get_weather"},
        {"type": "auto", "disable_parallel_tool_use": True},
        {"type": "any", "disable_parallel_tool_use": False},
        {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    ],
)
def test_valid_tool_choices(choice: dict[str, Any]) -> None:
    assert run(body(tools=[WEATHER], tool_choice=choice)) is None


@pytest.mark.parametrize(
    ("choice", "message", "param"),
    [
        (
            "auto",
            "tool_choice: Input should be a valid dictionary",
            "tool_choice",
        ),
        (
            {"type": "required"},
            "tool_choice: Input tag 'required' found using 'type' does not match any of the "
            "expected tags: 'auto', 'any', 'tool', 'none'",
            None,
        ),
        ({"type": "tool"}, "tool_choice.tool.name: Field required", "tool_choice.name"),
        (
            {"type": "tool", "name": "get_time"},
            "tool_choice.tool.name: Tool 'get_time' not found in tools",
            "tool_choice.name",
        ),
        (
            {"type": "none", "disable_parallel_tool_use": True},
            "tool_choice.none.disable_parallel_tool_use: Extra inputs are not permitted",
            None,
        ),
        (
            {"type": "auto", "disable_parallel_tool_use": "yes"},
            "tool_choice.auto.disable_parallel_tool_use: Input should be a valid boolean",
            None,
        ),
    ],
)
def test_tool_choice(choice: Any, message: str, param: str | None) -> None:
    rejected(run(body(tools=[WEATHER], tool_choice=choice)), message, param)


# Tool results ----------------------------------------------------------------------------


def test_a_tool_round_trip_is_accepted() -> None:
    messages = tool_turns(result("toolu_A"), result("toolu_B", [{"type": "text", "text": "5C"}]))
    messages[2]["content"].append({"type": "text", "text": "Thanks."})
    assert run(body(tools=[WEATHER], messages=messages)) is None
    # A tool result may hold an image; it may report an error.
    picture = result("toolu_A", [image_block()])
    failed = {**result("toolu_B", "boom"), "is_error": True}
    assert run(body(tools=[WEATHER], messages=tool_turns(picture, failed))) is None


def test_every_tool_use_needs_its_result_in_the_next_message() -> None:
    rejected(
        run(body(tools=[WEATHER], messages=tool_turns(result("toolu_A")))),
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "toolu_B. Each `tool_use` block must have a corresponding `tool_result` block in the "
        "next message.",
        "messages[1]",
    )
    question = [*tool_turns()[:2], {"role": "user", "content": "And now?"}]
    rejected(
        run(body(tools=[WEATHER], messages=question)),
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "toolu_A, toolu_B. Each `tool_use` block must have a corresponding `tool_result` block "
        "in the next message.",
    )


def test_tool_results_come_first_in_their_message() -> None:
    messages = tool_turns(result("toolu_A"), result("toolu_B"), text_first=True)
    rejected(
        run(body(tools=[WEATHER], messages=messages)),
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "toolu_A, toolu_B. Each `tool_use` block must have a corresponding `tool_result` block "
        "in the next message.",
    )


def test_a_result_answers_a_tool_use_of_the_previous_message() -> None:
    messages = tool_turns(result("toolu_A"), result("toolu_B"), result("toolu_C"))
    rejected(
        run(body(tools=[WEATHER], messages=messages)),
        "messages.2.content.2: unexpected `tool_use_id` found in `tool_result` blocks: toolu_C. "
        "Each `tool_result` block must have a corresponding `tool_use` block in the previous "
        "message.",
        "messages[2].content[2]",
    )
    stray = [{"role": "user", "content": [result("toolu_A")]}]
    rejected(
        run(body(messages=stray)),
        "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_A. "
        "Each `tool_result` block must have a corresponding `tool_use` block in the previous "
        "message.",
    )


def test_an_error_result_says_what_failed() -> None:
    for empty in ("", [], None):
        failed = {**result("toolu_B", empty), "is_error": True}
        if empty is None:
            del failed["content"]
        rejected(
            run(body(tools=[WEATHER], messages=tool_turns(result("toolu_A"), failed))),
            "messages.2.content.1.tool_result: content cannot be empty if `is_error` is true",
            "messages[2].content[1].content",
        )
    # A result that is not an error may be empty.
    quiet = tool_turns(result("toolu_A", ""), {"type": "tool_result", "tool_use_id": "toolu_B"})
    assert run(body(tools=[WEATHER], messages=quiet)) is None


def test_tool_use_and_result_ids() -> None:
    bad = tool_turns(result("toolu_A"), result("toolu B"))
    rejected(
        run(body(tools=[WEATHER], messages=bad)),
        "messages.2.content.1.tool_result.tool_use_id: String should match pattern "
        "'^[a-zA-Z0-9_-]+$'",
    )
    turns = tool_turns(result("toolu_A"), result("toolu_B"))
    turns[1]["content"][1]["input"] = '{"city": "A"}'
    rejected(
        run(body(tools=[WEATHER], messages=turns)),
        "messages.1.content.1.tool_use.input: Input should be a valid dictionary",
    )


# Extended thinking -------------------------------------------------------------------------


def test_thinking_budget() -> None:
    assert run(body(max_tokens=4096, thinking=THINKING)) is None
    rejected(
        run(body(max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 512})),
        "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        "thinking.budget_tokens",
    )
    rejected(
        run(body(max_tokens=2048, thinking=THINKING)),
        "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
        "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
        "#max-tokens-and-context-window-size",
        "max_tokens",
    )
    rejected(
        run(body(thinking={"type": "enabled"})),
        "thinking.enabled.budget_tokens: Field required",
    )
    rejected(
        run(body(thinking={"type": "on"})),
        "thinking: Input tag 'on' found using 'type' does not match any of the expected tags: "
        "'enabled', 'disabled', 'adaptive'",
    )
    # With interleaved thinking the budget spans the turn and may exceed max_tokens.
    interleaved = {**HEADERS, "anthropic-beta": "interleaved-thinking-2025-05-14"}
    assert run(body(max_tokens=2048, thinking=THINKING), interleaved) is None
    assert run(body(thinking={"type": "adaptive", "display": "omitted"})) is None
    assert run(body(thinking={"type": "disabled"}, temperature=0.2)) is None


@pytest.mark.parametrize("thinking", [THINKING, {"type": "adaptive"}])
def test_sampling_with_thinking(thinking: dict[str, Any]) -> None:
    fields = {"max_tokens": 4096, "thinking": thinking}
    docs = (
        "Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/"
        "extended-thinking#important-considerations-when-using-extended-thinking"
    )
    rejected(
        run(body(**fields, temperature=0.5)),
        f"`temperature` may only be set to 1 when thinking is enabled. {docs}",
        "temperature",
    )
    rejected(
        run(body(**fields, top_k=40)),
        f"`top_k` must be unset when thinking is enabled. {docs}",
        "top_k",
    )
    rejected(
        run(body(**fields, top_p=0.9)),
        f"`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled. {docs}",
        "top_p",
    )
    assert run(body(**fields, temperature=1)) is None
    assert run(body(**fields, top_p=0.95)) is None


@pytest.mark.parametrize("choice", [{"type": "any"}, {"type": "tool", "name": "get_weather"}])
def test_thinking_cannot_force_a_tool(choice: dict[str, Any]) -> None:
    request = body(max_tokens=4096, thinking=THINKING, tools=[WEATHER], tool_choice=choice)
    rejected(run(request), "Thinking may not be enabled when tool_choice forces tool use.")
    for allowed in ({"type": "auto"}, {"type": "none"}):
        assert run({**request, "tool_choice": allowed}) is None


def thinking_first_error(index: int, found: str) -> str:
    return (
        f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
        f"`{found}`. When `thinking` is enabled, a final `assistant` message must start with a "
        "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). "
        "We recommend you include thinking blocks from previous turns. To avoid this "
        "requirement, disable `thinking`. Please consult our documentation at "
        "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
    )


def test_a_tool_use_turn_sent_back_with_thinking_on_starts_with_its_thinking() -> None:
    fields = {"max_tokens": 4096, "thinking": THINKING, "tools": [WEATHER]}
    turns = tool_turns(result("toolu_A"), result("toolu_B"))
    rejected(
        run(body(**fields, messages=turns)),
        thinking_first_error(1, "text"),
        "messages[1].content[0].type",
    )
    turns[1]["content"].insert(0, SIGNED)
    assert run(body(**fields, messages=turns)) is None
    turns[1]["content"][0] = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3"}
    assert run(body(**fields, messages=turns)) is None
    # Thinking off: no thinking needed.
    plain = tool_turns(result("toolu_A"), result("toolu_B"))
    assert run(body(tools=[WEATHER], messages=plain)) is None


def test_the_thinking_rule_is_for_the_turn_in_progress() -> None:
    fields = {"max_tokens": 4096, "thinking": THINKING, "tools": [WEATHER]}
    turns = tool_turns(result("toolu_A"), result("toolu_B"))
    # A finished turn, then a new question: the old turn needs no thinking.
    done = [*turns, {"role": "assistant", "content": "Both 18C."}, {"role": "user", "content": "?"}]
    assert run(body(**fields, messages=done)) is None
    # A later step of the turn in progress has no thinking of its own.
    turns[1]["content"].insert(0, SIGNED)
    step = {"type": "tool_use", "id": "toolu_C", "name": "get_weather", "input": {"city": "C"}}
    more = [
        *turns,
        {"role": "assistant", "content": [step]},
        {"role": "user", "content": [result("toolu_C")]},
    ]
    assert run(body(**fields, messages=more)) is None
    turns[1]["content"].pop(0)
    rejected(run(body(**fields, messages=more)), thinking_first_error(1, "text"))


# Structured outputs ----------------------------------------------------------------------


def output(schema: dict[str, Any]) -> dict[str, Any]:
    return body(output_config={"format": {"type": "json_schema", "schema": schema}})


CITY = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["name", "population"],
    "additionalProperties": False,
}


def test_a_valid_output_schema() -> None:
    nested = {
        "type": "object",
        "properties": {
            "cities": {"type": "array", "items": {"$ref": "#/$defs/City"}, "minItems": 1},
            "when": {"type": "string", "format": "date"},
            "kind": {"enum": ["a", "b", None]},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["cities"],
        "additionalProperties": False,
        "$defs": {"City": CITY},
    }
    assert run(output(nested)) is None


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            {**CITY, "additionalProperties": True},
            "For 'object' type, 'additionalProperties' must be explicitly set to false",
        ),
        (
            {k: v for k, v in CITY.items() if k != "additionalProperties"},
            "For 'object' type, 'additionalProperties' must be explicitly set to false",
        ),
        (
            {**CITY, "properties": {"population": {"type": "integer", "minimum": 0}}},
            "For 'integer' type, property 'minimum' is not supported",
        ),
        (
            {**CITY, "properties": {"share": {"type": "number", "multipleOf": 0.5}}},
            "For 'number' type, property 'multipleOf' is not supported",
        ),
        (
            {**CITY, "properties": {"name": {"type": "string", "maxLength": 10}}},
            "For 'string' type, property 'maxLength' is not supported",
        ),
        (
            {**CITY, "properties": {"tags": {"type": "array", "maxItems": 3}}},
            "For 'array' type, property 'maxItems' is not supported",
        ),
        (
            {**CITY, "properties": {"tags": {"type": "array", "minItems": 2}}},
            "For 'array' type, 'minItems' values other than 0 or 1 are not supported",
        ),
        (
            {**CITY, "properties": {"web": {"type": "string", "format": "uri-reference"}}},
            "For 'string' type, format 'uri-reference' is not supported",
        ),
        (
            {**CITY, "properties": {"kind": {"enum": [{"a": 1}]}}},
            "Complex types in 'enum' are not supported",
        ),
        (
            {**CITY, "properties": {"x": {"$ref": "https://example.com/s.json"}}},
            "External $ref 'https://example.com/s.json' is not supported",
        ),
        (
            {
                **CITY,
                "properties": {"next": {"$ref": "#/$defs/Node"}},
                "$defs": {
                    "Node": {
                        "type": "object",
                        "properties": {"next": {"$ref": "#/$defs/Node"}},
                        "additionalProperties": False,
                    }
                },
            },
            "Recursive schema via $ref '#/$defs/Node' is not supported",
        ),
        (
            {
                "type": "object",
                "properties": {"city": {"type": "object", "properties": {}}},
                "additionalProperties": False,
            },
            "For 'object' type, 'additionalProperties' must be explicitly set to false",
        ),
    ],
)
def test_output_schema_limits(schema: dict[str, Any], message: str) -> None:
    rejected(
        run(output(schema)),
        f"output_config.format.schema: {message}",
        "output_config.format.schema",
    )


def test_output_config_shape() -> None:
    rejected(
        run(body(output_config={"format": {"type": "json", "schema": CITY}})),
        "output_config.format.type: Input should be 'json_schema'",
    )
    rejected(
        run(body(output_config={"format": {"type": "json_schema", "json_schema": CITY}})),
        "output_config.format.schema: Field required",
    )
    rejected(
        run(body(output_config={"effort": "extreme"})),
        "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'",
    )
    # The deprecated beta field, with its beta header.
    beta = {**HEADERS, "anthropic-beta": "structured-outputs-2025-11-13"}
    minimum = {**CITY, "properties": {"n": {"type": "integer", "minimum": 1}}}
    rejected(
        run(body(output_format={"type": "json_schema", "schema": minimum}), beta),
        "output_format.schema: For 'integer' type, property 'minimum' is not supported",
    )


def test_strict_tools_have_the_same_schema_limits() -> None:
    loose = {
        **WEATHER,
        "input_schema": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}},
    }
    assert run(body(tools=[loose])) is None
    rejected(
        run(body(tools=[{**loose, "strict": True}])),
        "tools.0.custom.input_schema: For 'object' type, 'additionalProperties' must be "
        "explicitly set to false",
        "tools[0].input_schema",
    )


# Prompt caching ---------------------------------------------------------------------------


def test_at_most_four_cache_breakpoints() -> None:
    cached = {"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}
    four = [{"role": "user", "content": [dict(cached) for _ in range(4)]}]
    assert run(body(messages=four)) is None
    rejected(
        run(body(messages=four, cache_control={"type": "ephemeral"})),
        "A maximum of 4 blocks with cache_control may be provided. Found 5.",
    )


# Rules of some models ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "both"),
    [
        ("claude-sonnet-4-5", False),
        ("claude-sonnet-4-5-20250929", False),
        ("claude-haiku-4-5", False),
        ("claude-opus-4-1-20250805", False),
        ("claude-sonnet-4-6", False),
        ("claude-fable-5", False),
        ("claude-sonnet-4-20250514", True),
        ("claude-opus-4-20250514", True),
        ("claude-3-5-haiku-latest", True),
        ("claude-3-7-sonnet-20250219", True),
        ("m", True),
    ],
)
def test_temperature_and_top_p_together(model: str, both: bool) -> None:
    request = body(model=model, temperature=0.5, top_p=0.9)
    if both:
        assert run(request) is None
    else:
        rejected(
            run(request),
            "`temperature` and `top_p` cannot both be specified for this model. Please use only "
            "one.",
        )
    assert run(body(model=model, temperature=0.5)) is None
    assert run(body(model=model, top_p=0.9)) is None


@pytest.mark.parametrize(
    ("model", "prefill"),
    [
        ("claude-opus-4-6", False),
        ("claude-sonnet-4-6", False),
        ("claude-opus-4-8", False),
        ("claude-mythos-5", False),
        ("claude-opus-4-5", True),
        ("claude-sonnet-4-5", True),
        ("claude-haiku-4-5", True),
    ],
)
def test_prefill(model: str, prefill: bool) -> None:
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "The answer is"}]
    if prefill:
        assert run(body(model=model, messages=turns)) is None
    else:
        rejected(
            run(body(model=model, messages=turns)),
            "This model does not support assistant message prefill. The conversation must end "
            "with a user message.",
            "messages[1]",
        )
    assert run(body(model=model, messages=[*turns, {"role": "user", "content": "?"}])) is None


@pytest.mark.parametrize("model", ["claude-opus-4-7", "claude-opus-4-8-20260528", "claude-fable-5"])
def test_adaptive_thinking_only(model: str) -> None:
    rejected(
        run(body(model=model, max_tokens=4096, thinking=THINKING)),
        '"thinking.type.enabled" is not supported for this model. Use "thinking.type.adaptive" '
        'and "output_config.effort" to control thinking behavior.',
        "thinking.type",
    )
    assert run(body(model=model, thinking={"type": "adaptive"})) is None
    assert run(body(model="claude-opus-4-6", max_tokens=4096, thinking=THINKING)) is None


# Requests that mal builds ------------------------------------------------------------------


def build(**kwargs: Any) -> tuple[Any, dict[str, Any]]:
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("prompt", "Hi")
    request = get_protocol("anthropic").build_request(GenerateParams(**kwargs), api_key="k")
    return request, json.loads(request.body)


def run_built(**kwargs: Any) -> Violation | None:
    request, sent = build(**kwargs)
    headers = {k.lower(): v for k, v in request.headers.items()}
    return check(Request("anthropic", "/v1/messages", "", headers, sent))


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"18C in {city}"


def get_time() -> str:
    """The time now."""
    return "12:00"


class City(msgspec.Struct):
    name: str
    population: int


class Rated(msgspec.Struct):
    name: str
    stars: Annotated[int, msgspec.Meta(ge=1, le=5)]


IMAGE = mal.Image.from_bytes(PNG)
ON = {"thinking": {"type": "enabled", "budget_tokens": 2048}}


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"stream": False},
        {"system": "Be brief.", "temperature": 0.2, "max_tokens": 50},
        {"temperature": 0.2, "top_p": 0.9, "model": "claude-sonnet-4-20250514"},
        {"stop": "END"},
        {"stop": ["END", "STOP"], "temperature": 1},
        {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]},
        {
            "prompt": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."},
                mal.Message("user", "How are you?"),
            ]
        },
        {"prompt": [mal.Message("user", ["What is this?", IMAGE])]},
        {"prompt": [mal.Message("user", [IMAGE, mal.Image.from_url("https://e.com/a.png")])]},
        {"tools": [get_weather]},
        {"tools": [get_weather, get_time], "tool_choice": "auto"},
        {"tools": [get_weather], "tool_choice": "none"},
        {"tools": [get_weather], "tool_choice": "required"},
        {"tools": [get_weather], "tool_choice": "get_weather", "parallel_tool_calls": False},
        {"tools": [get_weather], "parallel_tool_calls": False},
        {"tools": [get_weather], "extra_body": ON, "max_tokens": 4096},
        {"extra_body": ON, "max_tokens": 4096, "stream": False},
        {"extra_body": {"thinking": {"type": "adaptive"}}},
        {"schema": OutputSchema(City), "schema_tool": True},
        {"schema": OutputSchema(Rated), "schema_tool": True},
        {"schema": OutputSchema(City), "schema_tool": True, "tools": [get_weather]},
        {"extra_body": {"metadata": {"user_id": "u-1"}, "top_k": 5}},
        {"extra_headers": {"anthropic-beta": "interleaved-thinking-2025-05-14"}},
    ],
)
def test_mal_requests_are_accepted(options: dict[str, Any]) -> None:
    if "tools" in options:
        options = {**options, "tools": [mal.Tool.from_function(f) for f in options["tools"]]}
    assert run_built(**options) is None


@pytest.mark.parametrize(
    "schema",
    [
        # A JSON schema dict written for Anthropic's limits goes through as it is.
        CITY,
    ],
)
def test_mal_structured_output_with_a_conforming_schema(schema: dict[str, Any]) -> None:
    assert run_built(schema=OutputSchema(schema)) is None
    assert run_built(schema=OutputSchema(schema), extra_body=ON, max_tokens=4096) is None


@pytest.mark.parametrize("schema_type", [City, list[City]])
def test_mal_structured_output_closes_its_objects(schema_type: Any) -> None:
    assert run_built(schema=OutputSchema(schema_type)) is None


def test_mal_structured_output_drops_unsupported_keywords() -> None:
    assert run_built(schema=OutputSchema(Rated)) is None
    closed = copy.deepcopy(OutputSchema(Rated).json_schema)
    closed["additionalProperties"] = False
    assert run_built(schema=OutputSchema(closed)) is None


def test_mal_checks_the_image_limit_as_the_api_measures_it() -> None:
    image = mal.Image.from_bytes(PNG + b"\0" * (4 * 1024 * 1024))
    try:
        violation = run_built(prompt=[mal.Message("user", ["?", image])])
    except mal.ConfigError:
        return  # mal refuses it before sending, as it should
    assert violation is None


def decode(name: str) -> Any:
    decoder = get_protocol("anthropic").decoder(True)
    decoder.feed((DATA / name).read_bytes())
    decoder.flush()
    return decoder


@pytest.mark.parametrize("stream", ["tools_text_then_tool.sse", "stream_tool_use.sse"])
def test_mal_tool_round_trip(stream: str) -> None:
    decoder = decode(stream)
    turn = decoder.message()
    assert turn.tool_calls
    results = [mal.Message("tool", "18C", tool_call_id=c.id) for c in turn.tool_calls]
    prompt = [mal.Message("user", "Weather in Paris?"), turn, *results]
    assert run_built(prompt=prompt, tools=[mal.Tool.from_function(get_weather)]) is None
    # ... and the question after the answer.
    answer = mal.Message("assistant", "It is 18C.")
    later = [*prompt, answer, mal.Message("user", "Thanks. And tomorrow?")]
    assert run_built(prompt=later, tools=[mal.Tool.from_function(get_weather)]) is None


def test_mal_tool_round_trip_with_thinking() -> None:
    decoder = decode("tools_thinking_tools.sse")
    turn = decoder.message()
    assert turn.blocks and turn.blocks[0]["type"] == "thinking"
    results = [mal.Message("tool", "ok", tool_call_id=c.id) for c in turn.tool_calls]
    image_result = mal.Message("tool", ["A chart:", IMAGE], tool_call_id=turn.tool_calls[0].id)
    tools = [mal.Tool.from_function(get_time), mal.Tool.from_function(get_weather)]
    for first in (results[0], image_result):
        prompt = [mal.Message("user", "Time and weather?"), turn, first, *results[1:]]
        assert run_built(prompt=prompt, tools=tools, extra_body=ON, max_tokens=4096) is None
    # Without its blocks the turn would lose its thinking, which the API rejects.
    bare = mal.Message("assistant", "", tool_calls=turn.tool_calls)
    prompt = [mal.Message("user", "Time and weather?"), bare, *results]
    violation = run_built(prompt=prompt, tools=tools, extra_body=ON, max_tokens=4096)
    assert violation is not None and "Expected `thinking`" in violation.message


def test_mal_non_streamed_thinking_round_trip() -> None:
    decoder = get_protocol("anthropic").decoder(False)
    sent = {
        "type": "message",
        "content": [
            SIGNED,
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 5},
    }
    decoder.feed(json.dumps(sent).encode())
    decoder.flush()
    turn = decoder.message()
    prompt = [mal.Message("user", "Oslo?"), turn, mal.Message("tool", "3C", tool_call_id="toolu_1")]
    tools = [mal.Tool.from_function(get_weather)]
    assert run_built(prompt=prompt, tools=tools, extra_body=ON, max_tokens=4096) is None
