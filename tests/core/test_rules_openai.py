"""The rules of OpenAI's APIs the strict built-in server checks
(``mal.testing._rules``): each one refuses what the real API refuses, with its
status, param, code and wording, and lets through what the real API takes,
mal's own requests among them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec
import pytest

import mal
from mal.embeddings import embed_request
from mal.protocols import GenerateParams, get_protocol
from mal.schema import OutputSchema
from mal.testing._rules import Request, Violation, check
from mal.tools import as_tools

DATA = Path(__file__).resolve().parent.parent / "data"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 8
PNG_URL = "data:image/png;base64,iVBORw0KGgoAAAAAAAAAAA=="
PATHS = {
    "openai": "/v1/chat/completions",
    "responses": "/v1/responses",
    "embeddings": "/v1/embeddings",
}


def run(
    kind: str, body: Any, *, path: str | None = None, query: str = "", azure: bool = False
) -> Violation | None:
    headers = {"content-type": "application/json"}
    return check(Request(kind, path or PATHS[kind], query, headers, body, azure))


def refused(
    found: Violation | None,
    message: str,
    param: str | None,
    code: str | None = None,
    status: int = 400,
) -> None:
    assert found is not None, "the request was accepted"
    assert (found.message, found.param, found.code, found.status) == (
        message,
        param,
        code,
        status,
    )
    assert found.error_type == "invalid_request_error"


def chat(model: str = "gpt-4o-mini", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}
    body.update(fields)
    return body


def responses(model: str = "gpt-4o-mini", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "input": "Hi"}
    body.update(fields)
    return body


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


def fn(name: str = "get_weather", **extra: Any) -> dict[str, Any]:
    """A chat completions function tool."""
    function = {"name": name, "parameters": {"type": "object", "properties": {}}}
    function.update(extra)
    return {"type": "function", "function": function}


def call(id: str, name: str = "get_weather", arguments: str = '{"city":"Paris"}') -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


STRICT = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["city", "n"],
    "additionalProperties": False,
}


# Chat Completions: the request's own fields -------------------------------------------------


def test_a_plain_request_is_accepted() -> None:
    assert run("openai", chat()) is None


def test_model_is_required() -> None:
    # Chat Completions' own sentence, param and code null (danielmiessler/Fabric#239).
    refused(run("openai", without(chat(), "model")), "you must provide a model parameter", None)
    refused(run("openai", chat(model=None)), "you must provide a model parameter", None)


def test_messages_are_required_and_not_empty() -> None:
    refused(
        run("openai", without(chat(), "messages")),
        "Missing required parameter: 'messages'.",
        "messages",
        "missing_required_parameter",
    )
    refused(
        run("openai", chat(messages=[])),
        "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
        "empty array instead.",
        "messages",
        "empty_array",
    )
    refused(
        run("openai", chat(messages="Hi")),
        "Invalid type for 'messages': expected an array of objects, but got a string instead.",
        "messages",
        "invalid_type",
    )


def test_an_unknown_field_is_an_unrecognized_argument() -> None:
    refused(run("openai", chat(top_k=40)), "Unrecognized request argument supplied: top_k", None)
    # Several, named together and sorted (langchain-ai/langchain#8593).
    refused(
        run("openai", chat(top_k=40, repetition_penalty=1.1)),
        "Unrecognized request arguments supplied: repetition_penalty, top_k",
        None,
    )


def test_the_reasoning_models_name_an_unknown_field_with_a_suggestion() -> None:
    refused(
        run("openai", chat("o4-mini", reasoning={"effort": "low"})),
        "Unknown parameter: 'reasoning'.",
        "reasoning",
        "unknown_parameter",
    )
    refused(
        run("openai", chat("gpt-5", temperatur=1)),
        "Unknown parameter: 'temperatur'. Did you mean 'temperature'?",
        "temperatur",
        "unknown_parameter",
    )
    refused(
        run("openai", chat("gpt-5", stor=True)),
        "Unknown parameter: 'stor'. Did you mean 'stop' or 'store'?",
        "stor",
        "unknown_parameter",
    )
    # A key the body already has is never suggested.
    refused(
        run("openai", chat("gpt-5", messagess=[])),
        "Unknown parameter: 'messagess'.",
        "messagess",
        "unknown_parameter",
    )


def test_reasoning_effort_is_unknown_to_the_earlier_models() -> None:
    refused(
        run("openai", chat("gpt-4o-mini", reasoning_effort="low")),
        "Unrecognized request argument supplied: reasoning_effort",
        None,
    )
    assert run("openai", chat("gpt-4o-mini", reasoning_effort=None)) is None
    assert run("openai", chat("o3", reasoning_effort="high")) is None


@pytest.mark.parametrize(
    ("fields", "message", "param", "code"),
    [
        (
            {"temperature": 2.5},
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got "
            "2.5 instead.",
            "temperature",
            "decimal_above_max_value",
        ),
        (
            {"temperature": -0.5},
            "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got "
            "-0.5 instead.",
            "temperature",
            "decimal_below_min_value",
        ),
        (
            {"temperature": 200},
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got "
            "200 instead.",
            "temperature",
            "decimal_above_max_value",
        ),
        (
            {"temperature": "hot"},
            "Invalid type for 'temperature': expected a decimal, but got a string instead.",
            "temperature",
            "invalid_type",
        ),
        (
            {"top_p": 1.5},
            "Invalid 'top_p': decimal above maximum value. Expected a value <= 1, but got 1.5 "
            "instead.",
            "top_p",
            "decimal_above_max_value",
        ),
        (
            {"frequency_penalty": 3},
            "Invalid 'frequency_penalty': decimal above maximum value. Expected a value <= 2, but "
            "got 3 instead.",
            "frequency_penalty",
            "decimal_above_max_value",
        ),
        (
            {"presence_penalty": -3},
            "Invalid 'presence_penalty': decimal below minimum value. Expected a value >= -2, but "
            "got -3 instead.",
            "presence_penalty",
            "decimal_below_min_value",
        ),
        (
            {"n": 0},
            "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead.",
            "n",
            "integer_below_min_value",
        ),
        (
            {"n": "2"},
            "Invalid type for 'n': expected an integer, but got a string instead.",
            "n",
            "invalid_type",
        ),
        (
            {"seed": 1.5},
            "Invalid type for 'seed': expected an integer, but got a decimal number instead.",
            "seed",
            "invalid_type",
        ),
        (
            {"max_tokens": "100"},
            "Invalid type for 'max_tokens': expected an integer, but got a string instead.",
            "max_tokens",
            "invalid_type",
        ),
        (
            {"max_completion_tokens": 0},
            "Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 1, "
            "but got 0 instead.",
            "max_completion_tokens",
            "integer_below_min_value",
        ),
        (
            {"stop": ["a", "b", "c", "d", "e"]},
            "Invalid 'stop': array too long. Expected an array with maximum length 4, but got an "
            "array with length 5 instead.",
            "stop",
            "array_above_max_length",
        ),
        (
            {"stop": 7},
            "Invalid type for 'stop': expected one of a string or array of strings, but got an "
            "integer instead.",
            "stop",
            "invalid_type",
        ),
        (
            {"stream": "yes"},
            "Invalid type for 'stream': expected a boolean, but got a string instead.",
            "stream",
            "invalid_type",
        ),
        (
            {"top_logprobs": 21, "logprobs": True},
            "Invalid 'top_logprobs': integer above maximum value. Expected a value <= 20, but got "
            "21 instead.",
            "top_logprobs",
            "integer_above_max_value",
        ),
        (
            {"service_tier": "bogus"},
            "Invalid value: 'bogus'. Supported values are: 'auto', 'default', 'flex', 'scale', "
            "'priority', and 'fast'.",
            "service_tier",
            "invalid_value",
        ),
        (
            {"reasoning_effort": {"x": 1}},
            "Invalid type for 'reasoning_effort': expected one of 'none', 'minimal', 'low', "
            "'medium', 'high', 'xhigh', or 'max', but got an object instead.",
            "reasoning_effort",
            "invalid_type",
        ),
        (
            {"metadata": {"k": 7}},
            "Invalid type for 'metadata.k': expected a string, but got an integer instead.",
            "metadata.k",
            "invalid_type",
        ),
        (
            {"stream": True, "stream_options": {"include_usage": "yes"}},
            "Invalid type for 'stream_options.include_usage': expected a boolean, but got a "
            "string instead.",
            "stream_options.include_usage",
            "invalid_type",
        ),
    ],
)
def test_each_field_has_its_type_and_range(
    fields: dict[str, Any], message: str, param: str, code: str
) -> None:
    refused(
        run("openai", chat("o3" if "reasoning_effort" in fields else "gpt-4o", **fields)),
        message,
        param,
        code,
    )


def test_stream_options_need_stream() -> None:
    message = "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    options = {"include_usage": True}
    refused(run("openai", chat(stream_options=options)), message, "stream_options")
    refused(run("openai", chat(stream=False, stream_options=options)), message, "stream_options")
    assert run("openai", chat(stream=True, stream_options=options)) is None
    refused(
        run("openai", chat(stream=True, stream_options={"include_usage": True, "bogus": 1})),
        "Unknown parameter: 'stream_options.bogus'.",
        "stream_options.bogus",
        "unknown_parameter",
    )


def test_top_logprobs_need_logprobs() -> None:
    refused(
        run("openai", chat(top_logprobs=2)),
        "The 'top_logprobs' parameter is only allowed when 'logprobs' is enabled.",
        "top_logprobs",
    )
    assert run("openai", chat(top_logprobs=2, logprobs=True)) is None


# Chat Completions: messages --------------------------------------------------------------------


def test_roles() -> None:
    refused(
        run("openai", chat(messages=[{"role": "bot", "content": "Hi"}])),
        "Invalid value: 'bot'. Supported values are: 'system', 'assistant', 'user', 'function', "
        "'tool', and 'developer'.",
        "messages[0].role",
        "invalid_value",
    )
    refused(
        run("openai", chat(messages=[{"content": "Hi"}])),
        "Missing required parameter: 'messages[0].role'.",
        "messages[0].role",
        "missing_required_parameter",
    )
    refused(
        run("openai", chat(messages=["Hi"])),
        "Invalid type for 'messages[0]': expected an object, but got a string instead.",
        "messages[0]",
        "invalid_type",
    )
    for role in ("system", "developer", "user"):
        assert run("openai", chat(messages=[{"role": role, "content": "Hi"}])) is None


def test_a_message_needs_its_content() -> None:
    message = "Invalid value for 'content': expected a string, got null."
    refused(run("openai", chat(messages=[{"role": "user"}])), message, "messages.[0].content")
    refused(
        run(
            "openai",
            chat(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": None}]),
        ),
        message,
        "messages.[1].content",
    )
    # An assistant turn needs content or calls; a refusal is no substitute.
    refused(
        run(
            "openai",
            chat(
                messages=[{"role": "user", "content": "a"}, {"role": "assistant", "refusal": None}]
            ),
        ),
        message,
        "messages.[1].content",
    )
    # The developer message's own schema answers in its own words.
    refused(
        run("openai", chat(messages=[{"role": "developer"}, {"role": "user", "content": "a"}])),
        "Missing required parameter: 'messages[0].content'.",
        "messages[0].content",
        "missing_required_parameter",
    )


def test_a_type_fault_later_is_reported_before_a_missing_content_earlier() -> None:
    refused(
        run("openai", chat(messages=[{"role": "user"}, {"role": "user", "content": 7}])),
        "Invalid type for 'messages[1].content': expected one of a string or array of objects, "
        "but got an integer instead.",
        "messages[1].content",
        "invalid_type",
    )


@pytest.mark.parametrize(
    ("message", "found", "param", "code"),
    [
        (
            {"role": "user", "content": {"text": "Hi"}},
            "Invalid type for 'messages[0].content': expected one of a string or array of "
            "objects, but got an object instead.",
            "messages[0].content",
            "invalid_type",
        ),
        (
            {"role": "user", "content": []},
            "Invalid 'messages[0].content': empty array. Expected an array with minimum length "
            "1, but got an empty array instead.",
            "messages[0].content",
            "empty_array",
        ),
        (
            {"role": "user", "content": [{"text": "Hi"}]},
            "Missing required parameter: 'messages[0].content[0].type'.",
            "messages[0].content[0].type",
            "missing_required_parameter",
        ),
        (
            {"role": "user", "content": [{"type": "text"}]},
            "Missing required parameter: 'messages[0].content[0].text'.",
            "messages[0].content[0].text",
            "missing_required_parameter",
        ),
        (
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            "Invalid value: 'input_text'. Supported values are: 'text', 'image_url', "
            "'input_audio', and 'file'.",
            "messages[0].content[0].type",
            "invalid_value",
        ),
        (
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]},
            "Invalid value: 'image_url'. Supported values are: 'text'.",
            "messages[0].content[0].type",
            "invalid_value",
        ),
        (
            {"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {}}]},
            "Unknown parameter: 'messages[0].content[0].cache_control'.",
            "messages[0].content[0].cache_control",
            "unknown_parameter",
        ),
        (
            {"role": "user", "content": "Hi", "id": "msg_1"},
            "Unknown parameter: 'messages[0].id'.",
            "messages[0].id",
            "unknown_parameter",
        ),
        (
            {"role": "user", "content": "Hi", "name": "Ada Lovelace"},
            "Invalid 'messages[0].name': string does not match pattern. Expected a string that "
            "matches the pattern '^[a-zA-Z0-9_-]+$'.",
            "messages[0].name",
            "invalid_value",
        ),
        (
            {"role": "function", "content": "18 C"},
            "Missing required parameter: 'messages[0].name'.",
            "messages[0].name",
            "missing_required_parameter",
        ),
        (
            {"role": "tool", "content": "18 C"},
            "Missing required parameter: 'messages[0].tool_call_id'.",
            "messages[0].tool_call_id",
            "missing_required_parameter",
        ),
    ],
)
def test_message_shapes(message: dict[str, Any], found: str, param: str, code: str) -> None:
    refused(run("openai", chat(messages=[message])), found, param, code)


def image(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": url, **extra}},
        ],
    }


@pytest.mark.parametrize(
    ("url", "ending"),
    [
        ("iVBORw0KGgo=", "a value without the 'data:' prefix"),
        ("file:///home/ada/cat.png", "a value without the 'data:' prefix"),
        ("data:image/png,iVBORw0KGgo=", "a value without the ';base64' separator"),
        ("data:text/plain;base64,aGk=", "unsupported MIME type 'text/plain'"),
        ("data:image/png;base64,", "empty base64-encoded bytes"),
        ("data:image/png;base64,not base64!", "an invalid base64-encoded value"),
    ],
)
def test_image_urls(url: str, ending: str) -> None:
    param = "messages[0].content[1].image_url.url"
    refused(
        run("openai", chat(messages=[image(url)])),
        f"Invalid image URL: '{param}'. Expected a base64-encoded data URL with an image MIME "
        f"type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got {ending}.",
        param,
        "invalid_value",
    )


def test_images_that_are_taken() -> None:
    for url in (PNG_URL, "https://example.com/cat.png", "http://example.com/cat.jpg"):
        assert run("openai", chat(messages=[image(url)])) is None
    assert run("openai", chat(messages=[image(PNG_URL, detail="low")])) is None
    refused(
        run("openai", chat(messages=[image(PNG_URL, detail="original")])),
        "Invalid value: 'original'. Supported values are: 'auto', 'low', and 'high'.",
        "messages[0].content[1].image_url.detail",
        "invalid_value",
    )


def test_an_assistant_turn_with_calls() -> None:
    user = {"role": "user", "content": "Weather in Paris?"}
    done = {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}
    turn = {"role": "assistant", "content": None, "tool_calls": [call("call_1")]}
    assert run("openai", chat(messages=[user, turn, done])) is None
    # The arguments go back as a JSON string.
    bad = {"role": "assistant", "tool_calls": [call("call_1", arguments={"city": "Paris"})]}  # type: ignore[arg-type]
    refused(
        run("openai", chat(messages=[user, bad, done])),
        "Invalid type for 'messages[1].tool_calls[0].function.arguments': expected a string, "
        "but got an object instead.",
        "messages[1].tool_calls[0].function.arguments",
        "invalid_type",
    )
    # A streamed delta's index is not part of the request.
    indexed = {"role": "assistant", "tool_calls": [{**call("call_1"), "index": 0}]}
    refused(
        run("openai", chat(messages=[user, indexed, done])),
        "Unknown parameter: 'messages[1].tool_calls[0].index'.",
        "messages[1].tool_calls[0].index",
        "unknown_parameter",
    )
    refused(
        run(
            "openai", chat(messages=[user, {"role": "assistant", "content": "x", "tool_calls": []}])
        ),
        "Invalid 'messages[1].tool_calls': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.",
        "messages[1].tool_calls",
        "empty_array",
    )


# Chat Completions: tool turns -------------------------------------------------------------------

UNANSWERED = (
    "An assistant message with 'tool_calls' must be followed by tool messages responding to "
    "each 'tool_call_id'. The following tool_call_ids did not have response messages: "
)
NO_CALL = (
    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
    "with 'tool_calls'."
)
USER = {"role": "user", "content": "Weather in Paris and Zurich?"}


def answer(id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": id, "content": "18 C"}


def turn(*ids: str) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [call(i) for i in ids]}


def test_tool_turns_that_are_taken() -> None:
    messages = [USER, turn("a", "b"), answer("b"), answer("a"), {"role": "user", "content": "ok"}]
    assert run("openai", chat(messages=messages)) is None
    assert (
        run("openai", chat(messages=[USER, turn("a"), answer("a"), turn("b"), answer("b")])) is None
    )


def test_a_tool_message_answers_a_call_of_the_turn_before_it() -> None:
    refused(run("openai", chat(messages=[answer("a")])), NO_CALL, "messages.[0].role")
    refused(run("openai", chat(messages=[USER, answer("a")])), NO_CALL, "messages.[1].role")
    refused(
        run("openai", chat(messages=[USER, turn("a"), answer("a"), answer("z")])),
        NO_CALL,
        "messages.[3].role",
    )
    # A later turn's tool message cannot answer an earlier turn's call.
    messages = [USER, turn("a"), answer("a"), {"role": "user", "content": "again"}, answer("a")]
    refused(run("openai", chat(messages=messages)), NO_CALL, "messages.[4].role")


def test_every_call_is_answered() -> None:
    # The message that came instead of an answer is named...
    refused(
        run("openai", chat(messages=[USER, turn("call_1"), {"role": "user", "content": "?"}])),
        UNANSWERED + "call_1",
        "messages.[2].role",
    )
    # ...or the list, when it ended first; every unanswered id is listed.
    refused(
        run("openai", chat(messages=[USER, turn("call_1", "call_2", "call_3"), answer("call_2")])),
        UNANSWERED + "call_1, call_3",
        "messages",
    )


# Chat Completions: tools, tool_choice, response_format ---------------------------------------


def test_tools() -> None:
    # strict=False here is OpenAI's own flag on a function tool (not the built-in
    # server's): a tool that opts out of structured outputs is valid too.
    assert (
        run("openai", chat(tools=[fn(), fn("lookup", description="Look up.", strict=False)]))
        is None
    )
    refused(
        run("openai", chat(tools=[])),
        "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty "
        "array instead.",
        "tools",
        "empty_array",
    )
    refused(
        run("openai", chat(tools=[{"type": "function"}])),
        "Missing required parameter: 'tools[0].function'.",
        "tools[0].function",
        "missing_required_parameter",
    )
    refused(
        run("openai", chat(tools=[{"type": "function", "function": {"parameters": {}}}])),
        "Missing required parameter: 'tools[0].function.name'.",
        "tools[0].function.name",
        "missing_required_parameter",
    )


@pytest.mark.parametrize(
    ("name", "message", "code"),
    [
        (
            "get.weather",
            "Invalid 'tools[0].function.name': string does not match pattern. Expected a string "
            "that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            "invalid_value",
        ),
        (
            "x" * 65,
            "Invalid 'tools[0].function.name': string too long. Expected a string with maximum "
            "length 64, but got a string with length 65 instead.",
            "string_above_max_length",
        ),
        (
            "",
            "Invalid 'tools[0].function.name': empty string. Expected a string with minimum "
            "length 1, but got an empty string instead.",
            "empty_string",
        ),
    ],
)
def test_function_names(name: str, message: str, code: str) -> None:
    refused(run("openai", chat(tools=[fn(name)])), message, "tools[0].function.name", code)
    assert run("openai", chat(tools=[fn("Get_weather-2" + "x" * 51)])) is None


def test_tool_choice() -> None:
    for choice in (
        "none",
        "auto",
        "required",
        {"type": "function", "function": {"name": "get_weather"}},
    ):
        assert run("openai", chat(tools=[fn()], tool_choice=choice)) is None
    refused(
        run("openai", chat(tool_choice="auto")),
        "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
        "specified.",
        "tool_choice",
    )
    refused(
        run("openai", chat(parallel_tool_calls=False)),
        "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when "
        "'tools' are specified.",
        "parallel_tool_calls",
    )
    refused(
        run("openai", chat(tools=[fn()], tool_choice="always")),
        "Invalid value: 'always'. Supported values are: 'none', 'auto', and 'required'.",
        "tool_choice",
        "invalid_value",
    )
    refused(
        run(
            "openai",
            chat(tools=[fn()], tool_choice={"type": "function", "function": {"name": "nope"}}),
        ),
        "Invalid value for 'function_call': no function named 'nope' was specified in the "
        "'functions' parameter.",
        "function_call",
    )
    refused(
        run("openai", chat(tools=[fn()], tool_choice={"type": "function"})),
        "Missing required parameter: 'tool_choice.function'.",
        "tool_choice.function",
        "missing_required_parameter",
    )


def schema_format(schema: Any, name: str = "City", strict: bool = True) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": schema, "strict": strict},
    }


def test_response_format() -> None:
    assert run("openai", chat(response_format=schema_format(STRICT))) is None
    assert run("openai", chat(response_format={"type": "text"})) is None
    refused(
        run("openai", chat(response_format={"type": "json"})),
        "Invalid value: 'json'. Supported values are: 'json_object', 'json_schema', and 'text'.",
        "response_format.type",
        "invalid_value",
    )
    refused(
        run(
            "openai",
            chat(response_format={"type": "json_schema", "json_schema": {"schema": STRICT}}),
        ),
        "Missing required parameter: 'response_format.json_schema.name'.",
        "response_format.json_schema.name",
        "missing_required_parameter",
    )
    refused(
        run("openai", chat(response_format=schema_format(STRICT, name="my city"))),
        "Invalid 'response_format.json_schema.name': string does not match pattern. Expected a "
        "string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
        "response_format.json_schema.name",
        "invalid_value",
    )


def test_json_mode_needs_the_word_json() -> None:
    refused(
        run("openai", chat(response_format={"type": "json_object"})),
        "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
        "'json_object'.",
        "messages",
    )
    said = [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "Hi"}]
    assert run("openai", chat(messages=said, response_format={"type": "json_object"})) is None


def nested(**inner: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "inner": {"type": "object", "properties": {"x": {"type": "string"}}, **inner}
        },
        "required": ["inner"],
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        (
            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "In context=(), 'additionalProperties' is required to be supplied and to be false.",
        ),
        (
            {**STRICT, "required": ["city"]},
            "In context=(), 'required' is required to be supplied and to be an array including "
            "every key in properties. Missing 'n'.",
        ),
        (
            nested(required=["x"]),
            "In context=('properties', 'inner'), 'additionalProperties' is required to be "
            "supplied and to be false.",
        ),
        (
            nested(additionalProperties=False),
            "In context=('properties', 'inner'), 'required' is required to be supplied and to be "
            "an array including every key in properties. Missing 'x'.",
        ),
        (
            {
                **STRICT,
                "properties": {
                    "city": {"type": "string", "minLength": 1},
                    "n": {"type": "integer"},
                },
            },
            "In context=('properties', 'city'), 'minLength' is not permitted.",
        ),
        (
            {
                **STRICT,
                "properties": {
                    "city": {"type": "string", "default": "Paris"},
                    "n": {"type": "integer"},
                },
            },
            "In context=('properties', 'city'), 'default' is not permitted.",
        ),
        (
            {
                **STRICT,
                "properties": {
                    "city": {"type": "string"},
                    "n": {"type": "array", "items": {"oneOf": [{"type": "integer"}]}},
                },
            },
            "In context=('properties', 'n', 'items'), 'oneOf' is not permitted.",
        ),
        (
            {
                **STRICT,
                "properties": {
                    "city": {"type": "string"},
                    "n": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
                },
            },
            "In context=('properties', 'n'), 'uniqueItems' is not permitted.",
        ),
        (
            # A tuple, as msgspec describes one.
            {
                **STRICT,
                "properties": {
                    "city": {"type": "string"},
                    "n": {"type": "array", "prefixItems": [{"type": "integer"}], "items": False},
                },
            },
            "In context=('properties', 'n'), 'prefixItems' is not permitted.",
        ),
        (
            {
                **STRICT,
                "properties": {
                    "city": {"$ref": "#/$defs/C", "description": "the city"},
                    "n": {"type": "integer"},
                },
                "$defs": {"C": {"type": "string"}},
            },
            "In context=('properties', 'city'), $ref cannot have keywords {'description'}.",
        ),
        (
            {
                **STRICT,
                "properties": {
                    "city": {"type": "string", "format": "uri"},
                    "n": {"type": "integer"},
                },
            },
            "In context=('properties', 'city'), 'uri' is not a valid format.",
        ),
        (
            {"type": "array", "items": {"type": "string"}},
            "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"array\"'.",
        ),
    ],
)
def test_strict_schemas_keep_to_the_subset(schema: dict[str, Any], problem: str) -> None:
    refused(
        run("openai", chat(response_format=schema_format(schema))),
        f"Invalid schema for response_format 'City': {problem}",
        "response_format",
    )
    # A schema that is not strict (OpenAI's own strict=False on the format, not
    # the built-in server's) is taken as it is.
    assert run("openai", chat(response_format=schema_format(schema, strict=False))) is None
    # Strict tools keep to the same subset.
    refused(
        run("openai", chat(tools=[fn(parameters=schema, strict=True)])),
        f"Invalid schema for function 'get_weather': {problem}",
        "tools[0].function.parameters",
        "invalid_function_parameters",
    )


def test_strict_schemas_that_are_taken() -> None:
    schema = {
        "type": "object",
        "title": "Trip",
        "description": "A trip.",
        "properties": {
            "stops": {"type": "array", "items": {"$ref": "#/$defs/Stop"}, "minItems": 1},
            "note": {"anyOf": [{"type": "string", "pattern": "^[a-z]+$"}, {"type": "null"}]},
            "kind": {"enum": ["car", "train"]},
            "when": {"type": "string", "format": "date-time"},
            "cost": {"type": "number", "minimum": 0, "multipleOf": 0.5},
        },
        "required": ["stops", "note", "kind", "when", "cost"],
        "additionalProperties": False,
        "$defs": {
            "Stop": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": ["integer", "null"]}},
                "required": ["city", "days"],
                "additionalProperties": False,
            }
        },
    }
    assert run("openai", chat(response_format=schema_format(schema))) is None


# Chat Completions: what the reasoning models refuse ----------------------------------------------


def test_max_tokens_is_refused_by_the_reasoning_models() -> None:
    message = (
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
        "'max_completion_tokens' instead."
    )
    for model in (
        "o1",
        "o1-mini",
        "o3-mini",
        "o4-mini-2025-04-16",
        "gpt-5",
        "gpt-5-nano",
        "gpt-5.2",
    ):
        refused(
            run("openai", chat(model, max_tokens=100)),
            message,
            "max_tokens",
            "unsupported_parameter",
        )
        assert run("openai", chat(model, max_completion_tokens=100)) is None
    for model in ("gpt-4o", "gpt-4.1-mini", "gpt-5-chat-latest", "llama3", "m"):
        assert run("openai", chat(model, max_tokens=100)) is None


def test_a_recorded_body_with_three_faults_is_answered_with_max_tokens() -> None:
    # envoyproxy/ai-gateway tests/internal/testopenai/cassettes/chat-bad-request.yaml
    body = {
        "max_tokens": 0,
        "messages": [{"content": None, "role": "user"}],
        "model": "gpt-5-nano",
        "temperature": -0.5,
    }
    refused(
        run("openai", body),
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
        "'max_completion_tokens' instead.",
        "max_tokens",
        "unsupported_parameter",
    )


def test_sampling_settings_are_refused_by_the_reasoning_models() -> None:
    refused(
        run("openai", chat("o4-mini", temperature=0.1)),
        "Unsupported value: 'temperature' does not support 0.1 with this model. Only the default "
        "(1) value is supported.",
        "temperature",
        "unsupported_value",
    )
    refused(
        run("openai", chat("gpt-5-mini", temperature=0)),
        "Unsupported value: 'temperature' does not support 0 with this model. Only the default "
        "(1) value is supported.",
        "temperature",
        "unsupported_value",
    )
    refused(
        run("openai", chat("o1", top_p=0.9)),
        "Unsupported value: 'top_p' does not support 0.9 with this model. Only the default (1) "
        "value is supported.",
        "top_p",
        "unsupported_value",
    )
    assert run("openai", chat("o4-mini", temperature=1, top_p=1)) is None
    # gpt-5.1 and later sample again with reasoning off.
    assert run("openai", chat("gpt-5.1", temperature=0.2, reasoning_effort="none")) is None
    refused(
        run("openai", chat("gpt-5.1", temperature=0.2, reasoning_effort="low")),
        "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default "
        "(1) value is supported.",
        "temperature",
        "unsupported_value",
    )
    assert run("openai", chat("gpt-4o", temperature=0.2, top_p=0.5)) is None


@pytest.mark.parametrize(
    ("model", "fields", "param"),
    [
        ("o3", {"stop": ["\n"]}, "stop"),
        ("o4-mini", {"stop": "END"}, "stop"),
        ("gpt-5-mini", {"stop": ["\n"]}, "stop"),
        ("gpt-5", {"presence_penalty": 0.5}, "presence_penalty"),
        ("o3", {"frequency_penalty": 0.5}, "frequency_penalty"),
        ("gpt-5", {"logprobs": True}, "logprobs"),
        ("gpt-5", {"logit_bias": {"1734": -100}}, "logit_bias"),
        ("o1", {"tools": [fn()], "parallel_tool_calls": False}, "parallel_tool_calls"),
        ("o3-mini", {"tools": [fn()], "parallel_tool_calls": True}, "parallel_tool_calls"),
    ],
)
def test_parameters_the_reasoning_models_refuse(
    model: str, fields: dict[str, Any], param: str
) -> None:
    refused(
        run("openai", chat(model, **fields)),
        f"Unsupported parameter: '{param}' is not supported with this model.",
        param,
        "unsupported_parameter",
    )
    assert run("openai", chat("gpt-4o-mini", **fields)) is None


def test_o1_mini_takes_no_system_message() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    for model in ("o1-mini", "o1-preview-2024-09-12"):
        refused(
            run("openai", chat(model, messages=messages)),
            "Unsupported value: 'messages[0].role' does not support 'system' with this model.",
            "messages[0].role",
            "unsupported_value",
        )
    for model in ("o1", "o3-mini", "o4-mini", "gpt-5"):
        assert run("openai", chat(model, messages=messages)) is None


# Responses API ---------------------------------------------------------------------------------


def test_a_plain_responses_request_is_accepted() -> None:
    assert run("responses", responses()) is None
    assert run("responses", responses(input=[{"role": "user", "content": "Hi"}])) is None


def test_responses_model_and_input_are_required() -> None:
    refused(
        run("responses", without(responses(), "model")),
        "Missing required parameter: 'model'.",
        "model",
        "missing_required_parameter",
    )
    refused(
        run("responses", without(responses(), "input")),
        "Missing required parameter: 'input'.",
        "input",
        "missing_required_parameter",
    )
    for empty in ("", []):
        refused(
            run("responses", responses(input=empty)),
            "One of \"input\" or \"previous_response_id\" or 'prompt' or 'conversation' must be "
            "provided.",
            None,
            "missing_required_parameter",
        )
    assert run("responses", without(responses(previous_response_id="resp_1"), "input")) is None
    refused(
        run("responses", responses(input=7)),
        "Invalid type for 'input': expected one of a string or array of input items, but got an "
        "integer instead.",
        "input",
        "invalid_type",
    )


def test_responses_unknown_fields() -> None:
    refused(
        run("responses", responses(stop=["\n"])),
        "Unknown parameter: 'stop'. Did you mean 'store'?",
        "stop",
        "unknown_parameter",
    )
    refused(
        run("responses", responses(max_tokens=100)),
        "Unknown parameter: 'max_tokens'.",
        "max_tokens",
        "unknown_parameter",
    )
    refused(
        run("responses", responses(inpu="x")),
        "Unknown parameter: 'inpu'.",
        "inpu",
        "unknown_parameter",
    )
    refused(
        run("responses", responses(messages=[{"role": "user", "content": "Hi"}])),
        "Unsupported parameter: 'messages'. In the Responses API, this parameter has moved to "
        "'input'. Try again with the new parameter. See the API documentation for more "
        "information: https://platform.openai.com/docs/api-reference/responses/create.",
        None,
        "unsupported_parameter",
    )


@pytest.mark.parametrize(
    ("fields", "message", "param", "code"),
    [
        (
            {"max_output_tokens": 10},
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but "
            "got 10 instead.",
            "max_output_tokens",
            "integer_below_min_value",
        ),
        (
            {"max_output_tokens": "x"},
            "Invalid type for 'max_output_tokens': expected an integer, but got a string instead.",
            "max_output_tokens",
            "invalid_type",
        ),
        (
            {"max_tool_calls": 0},
            "Invalid 'max_tool_calls': integer below minimum value. Expected a value >= 1, but got "
            "0 instead.",
            "max_tool_calls",
            "integer_below_min_value",
        ),
        (
            {"temperature": 3},
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 "
            "instead.",
            "temperature",
            "decimal_above_max_value",
        ),
        (
            {"truncation": "bogus"},
            "Invalid value: 'bogus'. Supported values are: 'auto' and 'disabled'.",
            "truncation",
            "invalid_value",
        ),
        (
            {"reasoning": "low"},
            "Invalid type for 'reasoning': expected an object, but got a string instead.",
            "reasoning",
            "invalid_type",
        ),
        (
            {"reasoning": {"effort": "bogus"}},
            "Invalid value: 'bogus'. Supported values are: 'none', 'minimal', 'low', 'medium', "
            "'high', 'xhigh', and 'max'.",
            "reasoning.effort",
            "invalid_value",
        ),
        (
            {"reasoning": {"summary": "bogus"}},
            "Invalid value: 'bogus'. Supported values are: 'concise', 'detailed', and 'auto'.",
            "reasoning.summary",
            "invalid_value",
        ),
        (
            {"reasoning": {"bogus": 1}},
            "Unknown parameter: 'reasoning.bogus'.",
            "reasoning.bogus",
            "unknown_parameter",
        ),
        (
            {"text": {"verbosity": "bogus"}},
            "Invalid value: 'bogus'. Supported values are: 'low', 'medium', and 'high'.",
            "text.verbosity",
            "invalid_value",
        ),
        (
            {"text": {"zzz": 1}},
            "Unknown parameter: 'text.zzz'.",
            "text.zzz",
            "unknown_parameter",
        ),
        (
            {"text": {"format": {"type": "bogus"}}},
            "Invalid value: 'bogus'. Supported values are: 'json_object', 'text', and "
            "'json_schema'.",
            "text.format.type",
            "invalid_value",
        ),
        (
            {"text": {"format": {"type": "json_schema", "schema": STRICT}}},
            "Missing required parameter: 'text.format.name'.",
            "text.format.name",
            "missing_required_parameter",
        ),
        (
            {"text": {"format": {"type": "json_schema", "name": "City"}}},
            "Missing required parameter: 'text.format.schema'.",
            "text.format.schema",
            "missing_required_parameter",
        ),
        (
            {"text": {"format": {"type": "json_schema", "name": "my city", "schema": STRICT}}},
            "Invalid 'text.format.name': string does not match pattern. Expected a string that "
            "matches the pattern '^[a-zA-Z0-9_-]+$'.",
            "text.format.name",
            "invalid_value",
        ),
        (
            {"parallel_tool_calls": "yes"},
            "Invalid type for 'parallel_tool_calls': expected a boolean, but got a string instead.",
            "parallel_tool_calls",
            "invalid_type",
        ),
    ],
)
def test_responses_fields(fields: dict[str, Any], message: str, param: str, code: str) -> None:
    refused(run("responses", responses(**fields)), message, param, code)


def test_responses_structured_output() -> None:
    form = {"type": "json_schema", "name": "City", "schema": STRICT, "strict": True}
    assert run("responses", responses(text={"format": form})) is None
    loose = {**STRICT, "additionalProperties": True}
    refused(
        run("responses", responses(text={"format": {**form, "schema": loose}})),
        "Invalid schema for response_format 'City': In context=(), 'additionalProperties' is "
        "required to be supplied and to be false.",
        "text.format.schema",
        "invalid_json_schema",
    )
    assert (
        run("responses", responses(text={"format": {**form, "schema": loose, "strict": False}}))
        is None
    )


def test_responses_json_mode_needs_the_word_json_in_the_input() -> None:
    form = {"text": {"format": {"type": "json_object"}}}
    refused(
        run("responses", responses(instructions="Answer in JSON.", **form)),
        "Response input messages must contain the word 'json' in some form to use "
        "'text.format' of type 'json_object'.",
        "text.format",
    )
    assert run("responses", responses(input="Answer in json: hi", **form)) is None


@pytest.mark.parametrize(
    ("item", "message", "param", "code"),
    [
        (
            7,
            "Invalid type for 'input[0]': expected an input item, but got an integer instead.",
            "input[0]",
            "invalid_type",
        ),
        (
            {"role": "bot", "content": "Hi"},
            "Invalid value: 'bot'. Supported values are: 'assistant', 'system', 'developer', and "
            "'user'.",
            "input[0]",
            "invalid_value",
        ),
        (
            {"role": "user", "content": "Hi", "metadata": {}},
            "Unknown parameter: 'input[0].metadata'.",
            "input[0].metadata",
            "unknown_parameter",
        ),
        (
            {"role": "user"},
            "Missing required parameter: 'input[0].content'.",
            "input[0].content",
            "missing_required_parameter",
        ),
        (
            {"role": "assistant", "content": [{"type": "input_text", "text": "Hi"}]},
            "Invalid value: 'input_text'. Supported values are: 'output_text' and 'refusal'.",
            "input[0].content[0]",
            "invalid_value",
        ),
        (
            {"role": "user", "content": [{"type": "output_text", "text": "Hi"}]},
            "Invalid value: 'output_text'. Supported values are: 'input_text', 'input_image', "
            "'input_file', 'scoped_content', and 'input_audio'.",
            "input[0].content[0]",
            "invalid_value",
        ),
        (
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            "Invalid value: 'text'. Supported values are: 'input_text', 'input_image', "
            "'input_audio', 'output_text', 'refusal', 'input_file', 'computer_screenshot', "
            "'summary_text', and 'encrypted_content'.",
            "input[0].content[0].type",
            "invalid_value",
        ),
        (
            {"role": "user", "content": [{"type": "input_text"}]},
            "Missing required parameter: 'input[0].content[0].text'.",
            "input[0].content[0].text",
            "missing_required_parameter",
        ),
        (
            {"type": "bogus_item"},
            "Invalid value: 'bogus_item'. Supported values are: 'additional_tools', "
            "'agent_message', 'apply_patch_call', 'apply_patch_call_output', "
            "'code_interpreter_call', 'compaction', 'compaction_trigger', 'computer_call', "
            "'computer_call_output', 'custom_tool_call', 'custom_tool_call_output', "
            "'file_search_call', 'function_call', 'function_call_output', "
            "'image_generation_call', 'item_reference', 'local_shell_call', "
            "'local_shell_call_output', 'mcp_approval_request', 'mcp_approval_response', "
            "'mcp_call', 'mcp_list_tools', 'message', 'multi_agent_call', "
            "'multi_agent_call_output', 'program', 'program_output', 'reasoning', 'shell_call', "
            "'shell_call_output', 'tool_search_call', 'tool_search_output', and "
            "'web_search_call'.",
            "input[0]",
            "invalid_value",
        ),
        (
            {"type": "reasoning", "id": "rs_1", "summary": [], "status": "completed"},
            "Unknown parameter: 'input[0].status'.",
            "input[0].status",
            "unknown_parameter",
        ),
    ],
)
def test_responses_input_items(item: Any, message: str, param: str, code: str) -> None:
    refused(run("responses", responses(input=[item])), message, param, code)


def picture(url: str, detail: str = "auto") -> dict[str, Any]:
    return {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": url, "detail": detail},
        ],
    }


def test_responses_images() -> None:
    for url in (PNG_URL, "https://example.com/cat.png"):
        assert run("responses", responses(input=[picture(url)])) is None
    assert run("responses", responses(input=[picture(PNG_URL, "original")])) is None
    refused(
        run("responses", responses(input=[picture("data:image/png;base64,")])),
        "Invalid 'input[0].content[1].image_url'. Expected a base64-encoded data URL with an "
        "image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got empty "
        "base64-encoded bytes.",
        "input[0].content[1].image_url",
        "invalid_value",
    )
    refused(
        run("responses", responses(input=[picture(PNG_URL, "max")])),
        "Invalid value: 'max'. Supported values are: 'low', 'high', 'auto', and 'original'.",
        "input[0].content[1].detail",
        "invalid_value",
    )


FUNCTION_CALL = {
    "type": "function_call",
    "call_id": "call_1",
    "name": "get_weather",
    "arguments": '{"city":"Paris"}',
}
OUTPUT = {"type": "function_call_output", "call_id": "call_1", "output": "18 C"}
ASKED = {"role": "user", "content": "Weather in Paris?"}


def test_responses_calls_and_their_outputs() -> None:
    assert run("responses", responses(input=[ASKED, FUNCTION_CALL, OUTPUT])) is None
    refused(
        run("responses", responses(input=[ASKED, OUTPUT])),
        "No tool call found for function call output with call_id call_1.",
        "input",
    )
    refused(
        run("responses", responses(input=[ASKED, OUTPUT, FUNCTION_CALL])),
        "No tool call found for function call output with call_id call_1.",
        "input",
    )
    refused(
        run("responses", responses(input=[ASKED, FUNCTION_CALL])),
        "No tool output found for function call call_1.",
        "input",
    )
    # With stored state, the other half may be in it.
    assert run("responses", responses(input=[OUTPUT], previous_response_id="resp_1")) is None
    refused(
        run("responses", responses(input=[ASKED, {**FUNCTION_CALL, "id": "call_1"}, OUTPUT])),
        "Invalid 'input[1].id': 'call_1'. Expected an ID that begins with 'fc'.",
        "input[1].id",
        "invalid_value",
    )
    assert (
        run("responses", responses(input=[ASKED, {**FUNCTION_CALL, "id": "fc_1"}, OUTPUT])) is None
    )
    refused(
        run("responses", responses(input=[ASKED, without(FUNCTION_CALL, "name"), OUTPUT])),
        "Missing required parameter: 'input[1].name'.",
        "input[1].name",
        "missing_required_parameter",
    )


def flat(name: str = "get_weather", **extra: Any) -> dict[str, Any]:
    tool = {"type": "function", "name": name, "parameters": {"type": "object", "properties": {}}}
    tool.update(extra)
    return tool


def test_responses_tools() -> None:
    assert run("responses", responses(tools=[flat(), {"type": "web_search"}])) is None
    assert run("responses", responses(tools=[flat(strict=True, parameters=STRICT)])) is None
    refused(
        run("responses", responses(tools=[fn()])),
        "Missing required parameter: 'tools[0].name'.",
        "tools[0].name",
        "missing_required_parameter",
    )
    refused(
        run("responses", responses(tools=[flat("get weather")])),
        "Invalid 'tools[0].name': string does not match pattern. Expected a string that matches "
        "the pattern '^[a-zA-Z0-9_-]+$'.",
        "tools[0].name",
        "invalid_value",
    )
    refused(
        run("responses", responses(tools=[flat(strict=True)])),
        "Invalid schema for function 'get_weather': In context=(), 'additionalProperties' is "
        "required to be supplied and to be false.",
        "tools[0].parameters",
        "invalid_function_parameters",
    )
    assert (
        run(
            "responses",
            responses(tools=[flat()], tool_choice={"type": "function", "name": "get_weather"}),
        )
        is None
    )
    refused(
        run(
            "responses", responses(tools=[flat()], tool_choice={"type": "function", "name": "nope"})
        ),
        "Tool choice 'nope' not found in 'tools' parameter.",
        "tool_choice",
    )
    refused(
        run(
            "responses",
            responses(tools=[flat()], tool_choice={"type": "function", "function": {"name": "x"}}),
        ),
        "Missing required parameter: 'tool_choice.name'.",
        "tool_choice.name",
        "missing_required_parameter",
    )


def test_responses_reasoning_models_take_no_sampling_settings() -> None:
    for model in ("o3", "gpt-5.2", "o4-mini"):
        refused(
            run("responses", responses(model, temperature=0.5)),
            "Unsupported parameter: 'temperature' is not supported with this model.",
            "temperature",
        )
        refused(
            run("responses", responses(model, top_p=0.5)),
            "Unsupported parameter: 'top_p' is not supported with this model.",
            "top_p",
        )
        assert run("responses", responses(model, reasoning={"effort": "low"})) is None
    assert run("responses", responses("gpt-4.1", temperature=0.5, top_p=0.5)) is None


# Embeddings ---------------------------------------------------------------------------------------


def embeddings(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "text-embedding-3-small", "input": "Hi"}
    body.update(fields)
    return body


BAD_INPUT = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)


@pytest.mark.parametrize("value", ["Hi", ["a", "b"], [1, 2, 3], [[1, 2], [3]], ["x"] * 2048])
def test_embeddings_inputs_that_are_taken(value: Any) -> None:
    assert run("embeddings", embeddings(input=value)) is None


@pytest.mark.parametrize(
    "value", ["", [], ["a", ""], [1.5], [[1], []], [["a"]], {"text": "Hi"}, ["x"] * 2049, [1, "a"]]
)
def test_embeddings_inputs_that_are_refused(value: Any) -> None:
    refused(run("embeddings", embeddings(input=value)), BAD_INPUT, None)


def test_embeddings_fields() -> None:
    refused(
        run("embeddings", without(embeddings(), "model")),
        "you must provide a model parameter",
        None,
    )
    refused(
        run("embeddings", without(embeddings(), "input")), "'input' is a required property", None
    )
    # envoyproxy/ai-gateway cassette embeddings-bad-request.yaml
    refused(
        run("embeddings", embeddings(dimensions=-1)),
        "-1 is less than the minimum of 1 - 'dimensions'",
        None,
    )
    refused(
        run("embeddings", embeddings(dimensions=0)),
        "0 is less than the minimum of 1 - 'dimensions'",
        None,
    )
    refused(
        run("embeddings", embeddings(encoding_format="invalid_format")),
        "'invalid_format' is not one of ['float', 'base64'] - 'encoding_format'",
        None,
    )
    refused(
        run("embeddings", embeddings(truncate=True)),
        "Unrecognized request argument supplied: truncate",
        None,
    )
    assert (
        run("embeddings", embeddings(dimensions=256, encoding_format="base64", user="u1")) is None
    )


# Azure ------------------------------------------------------------------------------------------

DEPLOYMENT = "/openai/deployments/gpt-4o-mini/chat/completions"


def test_azure_deployment_urls_need_an_api_version() -> None:
    refused(
        run("openai", chat(), path=DEPLOYMENT, azure=True),
        "Resource not found",
        None,
        "404",
        status=404,
    )
    refused(
        run("embeddings", embeddings(), path="/openai/deployments/emb/embeddings", azure=True),
        "Resource not found",
        None,
        "404",
        status=404,
    )
    # Before any rule of the body.
    refused(
        run("openai", {}, path=DEPLOYMENT, azure=True),
        "Resource not found",
        None,
        "404",
        status=404,
    )
    assert (
        run("openai", chat(), path=DEPLOYMENT, query="api-version=2024-10-21", azure=True) is None
    )
    # The v1 API takes none; the same path on OpenAI's own URLs is no Azure rule's.
    assert run("openai", chat(), path="/openai/v1/chat/completions", azure=True) is None
    assert run("openai", chat(), path=DEPLOYMENT) is None


def test_an_azure_deployment_names_the_model() -> None:
    body = without(chat(), "model")
    assert run("openai", body, path=DEPLOYMENT, query="api-version=2024-10-21", azure=True) is None
    reasoning = "/openai/deployments/o4-mini/chat/completions"
    refused(
        run(
            "openai",
            {**body, "max_tokens": 5},
            path=reasoning,
            query="api-version=2025-04-01-preview",
            azure=True,
        ),
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
        "'max_completion_tokens' instead.",
        "max_tokens",
        "unsupported_parameter",
    )
    refused(
        run("openai", body, path="/openai/v1/chat/completions", azure=True),
        "you must provide a model parameter",
        None,
    )


def test_other_kinds_and_bodies_are_not_these_rules() -> None:
    assert run("openai", [1, 2]) is None
    assert check(Request("models", "/v1/models", "", {}, None)) is None


# mal's own requests -----------------------------------------------------------------------------


def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
    """Current weather in a city."""
    return "18 C"


class City(msgspec.Struct):
    name: str
    population: int
    country: str | None = None


SEARCH = mal.Tool(
    name="search",
    description="Search the web.",
    parameters={"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
)


def built(
    provider: str, kind: str, *, base_url: str | None = None, **kwargs: Any
) -> Violation | None:
    """mal's request for ``kwargs``, through the rules of its endpoint."""
    kwargs.setdefault("model", "gpt-4o-mini")
    kwargs.setdefault("prompt", "Hi")
    if kwargs.get("tools") is not None:
        kwargs["tools"] = as_tools(kwargs["tools"])
    if kwargs.get("schema") is not None:
        kwargs["schema"] = OutputSchema.of(kwargs["schema"])
    request = get_protocol(provider).build_request(GenerateParams(**kwargs), base_url=base_url)
    url = urlsplit(request.url)
    return run(
        kind, json.loads(request.body), path=url.path, query=url.query, azure=provider == "azure"
    )


TURN = [
    mal.Message(role="user", content="Weather in Paris?"),
    mal.Message(
        role="assistant",
        content="",
        tool_calls=[mal.ToolCall(id="call_1", name="get_weather", arguments={"city": "Paris"})],
    ),
    mal.Message(role="tool", content="18 C", tool_call_id="call_1"),
]

OPTIONS: list[dict[str, Any]] = [
    {},
    {"stream": False},
    {"system": "Be brief.", "temperature": 0.5, "top_p": 0.9, "max_tokens": 100},
    {"tools": [get_weather, SEARCH]},
    {"tools": [get_weather], "tool_choice": "get_weather", "parallel_tool_calls": False},
    {"tools": [get_weather], "tool_choice": "required", "parallel_tool_calls": True},
    {"tools": [get_weather], "tool_choice": "none"},
    {"tools": [mal.Tool.from_function(get_weather, strict=True)]},
    {"prompt": TURN, "tools": [get_weather]},
    {"prompt": TURN, "tools": [get_weather], "stream": False},
    {"schema": City},
    {"schema": City, "stream": False, "temperature": 0},
    {"schema": list[City]},
    {
        "schema": {
            "type": "object",
            "properties": {"tags": {"type": "object", "additionalProperties": {"type": "string"}}},
        }
    },
    {"prompt": [mal.Message(role="user", content=["What is this?", mal.Image.from_bytes(PNG)])]},
    {
        "prompt": [
            mal.Message(role="user", content=[mal.Image.from_bytes(PNG, detail="low"), "And?"])
        ]
    },
    {
        "prompt": [
            mal.Message(
                role="user", content=["What?", mal.Image.from_url("https://example.com/cat.png")]
            )
        ]
    },
    {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]},
]
CHAT_ONLY: list[dict[str, Any]] = [{"stop": ["\n"], "seed": 7}, {"stop": "END"}]


@pytest.mark.parametrize("options", OPTIONS + CHAT_ONLY)
def test_mals_chat_completions_requests_are_taken(options: dict[str, Any]) -> None:
    assert built("openai", "openai", **options) is None


@pytest.mark.parametrize("options", OPTIONS)
def test_mals_responses_requests_are_taken(options: dict[str, Any]) -> None:
    assert built("openai-responses", "responses", **options) is None


@pytest.mark.parametrize(
    "options", [o for o in OPTIONS if "temperature" not in o and "max_tokens" not in o]
)
@pytest.mark.parametrize("model", ["o4-mini", "gpt-5-mini"])
def test_mals_requests_to_reasoning_models_are_taken(model: str, options: dict[str, Any]) -> None:
    options = dict(options)
    if model == "o4-mini" and "parallel_tool_calls" in options:
        options.pop("parallel_tool_calls")  # the o-series refuses it; a user's choice
    assert built("openai", "openai", model=model, **options) is None
    assert built("openai-responses", "responses", model=model, **options) is None


@pytest.mark.parametrize(
    "base_url",
    [
        "https://res.openai.azure.com?api-version=2024-10-21",
        "https://res.openai.azure.com/openai/deployments/gpt-4o-mini?api-version=2024-10-21",
        "https://res.openai.azure.com/openai/v1",
    ],
)
@pytest.mark.parametrize("options", OPTIONS[:6])
def test_mals_azure_requests_are_taken(base_url: str, options: dict[str, Any]) -> None:
    assert built("azure", "openai", base_url=base_url, **options) is None


def test_mals_azure_request_without_an_api_version_is_refused() -> None:
    refused(
        built("azure", "openai", base_url="https://res.openai.azure.com/openai/deployments/d"),
        "Resource not found",
        None,
        "404",
        status=404,
    )


def decoded(provider: str, name: str) -> Any:
    decoder = get_protocol(provider).decoder(True)
    decoder.feed((DATA / provider / name).read_bytes())
    decoder.flush()
    return decoder


def test_a_tool_round_trip_sends_back_what_the_api_takes() -> None:
    # The assistant turn as mal assembled it from a recorded stream, then the results.
    for provider, kind in (("openai", "openai"), ("openai-responses", "responses")):
        name = "tools_one_call.sse"
        decoder = decoded(provider, name)
        assert decoder.tool_calls
        results = [
            mal.Message(role="tool", content="18 C", tool_call_id=c.id) for c in decoder.tool_calls
        ]
        prompt = [mal.Message(role="user", content="Weather?"), decoder.message(), *results]
        assert built(provider, kind, prompt=prompt, tools=[get_weather]) is None
        # Without the results, the real API refuses the turn.
        found = built(provider, kind, prompt=prompt[:2], tools=[get_weather])
        assert found is not None and found.param in ("messages", "input")


def test_a_reasoning_turn_replayed_with_its_items_is_taken() -> None:
    decoder = decoded("openai-responses", "tools_parallel_reasoning.sse")
    results = [
        mal.Message(role="tool", content="18 C", tool_call_id=c.id) for c in decoder.tool_calls
    ]
    prompt = [mal.Message(role="user", content="Paris and Zürich?"), decoder.message(), *results]
    assert (
        built("openai-responses", "responses", model="o4-mini", prompt=prompt, tools=[get_weather])
        is None
    )


@pytest.mark.parametrize(
    ("texts", "dimensions"),
    [(["Hi"], None), (["a", "b", "c"], None), (["x"], 256), (["ünïcode", " spaced "], 1)],
)
@pytest.mark.parametrize("provider", ["openai", "azure"])
def test_mals_embeddings_requests_are_taken(
    provider: str, texts: list[str], dimensions: int | None
) -> None:
    base = (
        "https://api.openai.com/v1"
        if provider == "openai"
        else "https://r.openai.azure.com?api-version=2024-10-21"
    )
    request = embed_request(
        provider, "text-embedding-3-small", texts, dimensions=dimensions, base_url=base, api_key="k"
    )
    url = urlsplit(request.url)
    body = json.loads(request.body)
    assert (
        run("embeddings", body, path=url.path, query=url.query, azure=provider == "azure") is None
    )
