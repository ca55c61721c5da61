"""The rules of Ollama's API that the strict built-in server checks: what the
real server's handlers reject, with their status and error text, and that
every request mal builds for Ollama goes through."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest

import mal
from mal.embeddings import embed_request
from mal.protocols import GenerateParams, get_protocol
from mal.schema import OutputSchema
from mal.testing._rules import Request, Violation, check

DATA = Path(__file__).resolve().parent.parent / "data" / "ollama"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 24
B64 = base64.b64encode(PNG).decode()

PATHS = {"generate": "/api/generate", "chat": "/api/chat", "embed": "/api/embed"}


def run(kind: str, body: Any) -> Violation | None:
    return check(Request(kind, PATHS[kind], "", {"content-type": "application/json"}, body))


def generate(**fields: Any) -> Violation | None:
    return run("generate", {"model": "llama3.2", "prompt": "Hi", **fields})


def chat(**fields: Any) -> Violation | None:
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "Hi"}], **fields}
    return run("chat", body)


def embed(**fields: Any) -> Violation | None:
    return run("embed", {"model": "all-minilm", "input": ["a", "b"], **fields})


def rejected(violation: Violation | None, message: str, status: int = 400) -> None:
    assert violation is not None, "the request was accepted"
    assert (violation.status, violation.message) == (status, message)


def test_plain_requests_are_accepted() -> None:
    assert generate() is None
    assert chat() is None
    assert embed() is None


# The model -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["", "  ", None])
def test_a_missing_model(model: Any) -> None:
    # Each handler answers it its own way; the 404s name the model as sent.
    rejected(run("chat", {"model": model, "messages": []}), "model is required")
    rejected(
        run("generate", {"model": model, "prompt": "Hi"}), f"model '{model or ''}' not found", 404
    )
    rejected(run("embed", {"model": model, "input": "x"}), f"model '{model or ''}' not found", 404)
    rejected(run("chat", {"messages": []}), "model is required")


# Decoding the body -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"prompt": 5},
            "json: cannot unmarshal number into Go struct field GenerateRequest.prompt of type "
            "string",
        ),
        (
            {"system": ["a"]},
            "json: cannot unmarshal array into Go struct field GenerateRequest.system of type "
            "string",
        ),
        (
            {"stream": "false"},
            "json: cannot unmarshal string into Go struct field GenerateRequest.stream of type "
            "bool",
        ),
        (
            {"context": [1, 2.5]},
            "json: cannot unmarshal number 2.5 into Go struct field GenerateRequest.context of "
            "type int",
        ),
        (
            {"options": ["temperature"]},
            "json: cannot unmarshal array into Go struct field GenerateRequest.options of type "
            "map[string]interface {}",
        ),
        (
            {"images": "AAAA"},
            "json: cannot unmarshal string into Go struct field GenerateRequest.images of type "
            "[]api.ImageData",
        ),
        # Images are base64, with no data: prefix, and never URLs.
        ({"images": ["https://example.com/cat.png"]}, "illegal base64 data at input byte 5"),
        ({"images": [f"data:image/png;base64,{B64}"]}, "illegal base64 data at input byte 4"),
        ({"images": ["AAA"]}, "illegal base64 data at input byte 0"),
        ({"images": [B64, "AA=A"]}, "illegal base64 data at input byte 2"),
        (
            {"think": "extreme"},
            'invalid think value: "extreme" (must be "high", "medium", "low", "max", true, or '
            "false)",
        ),
        (
            {"think": 1},
            'think must be a boolean or string ("high", "medium", "low", "max", true, or false)',
        ),
        ({"keep_alive": "5"}, 'time: missing unit in duration "5"'),
        ({"keep_alive": "5d"}, 'time: unknown unit "d" in duration "5d"'),
        ({"keep_alive": "soon"}, 'time: invalid duration "soon"'),
        ({"keep_alive": True}, "Unsupported type: 'bool'"),
        ({"keep_alive": [1]}, "Unsupported type: '[]interface {}'"),
        (
            {"top_logprobs": 1.0},
            "json: cannot unmarshal number 1.0 into Go struct field GenerateRequest.top_logprobs "
            "of type int",
        ),
    ],
)
def test_generate_fields_must_decode(fields: dict[str, Any], message: str) -> None:
    rejected(generate(**fields), message)


def test_an_error_of_a_type_of_its_own_wins() -> None:
    # Go's decoder saves a type mismatch and goes on, but stops at the error
    # of a type's own UnmarshalJSON (think, keep_alive, a chat message).
    rejected(
        generate(prompt=5, think="extreme"),
        'invalid think value: "extreme" (must be "high", "medium", "low", "max", true, or false)',
    )
    rejected(
        generate(prompt=5, system=6),
        "json: cannot unmarshal number into Go struct field GenerateRequest.prompt of type string",
    )


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            "json: cannot unmarshal array into Go struct field ChatRequest.messages.content of "
            "type string",
        ),
        (
            {"role": "user", "content": "?", "images": ["https://example.com/cat.png"]},
            "illegal base64 data at input byte 5",
        ),
        (
            {"role": "user", "content": "?", "images": [{"url": "x"}]},
            "json: cannot unmarshal object into Go struct field ChatRequest.messages.images of "
            "type api.ImageData",
        ),
        (
            "Hi",
            "json: cannot unmarshal string into Go struct field ChatRequest.messages of type "
            "api.Alias",
        ),
        (
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "f", "index": "0", "arguments": {}}}],
            },
            "json: cannot unmarshal string into Go struct field "
            "ChatRequest.messages.tool_calls.function.index of type int",
        ),
        (
            {"role": 1, "content": "Hi"},
            "json: cannot unmarshal number into Go struct field ChatRequest.messages.role of type "
            "string",
        ),
    ],
)
def test_chat_messages_must_decode(message: Any, error: str) -> None:
    rejected(chat(messages=[message]), error)


def test_chat_fields_must_decode() -> None:
    rejected(
        chat(messages={"role": "user"}),
        "json: cannot unmarshal object into Go struct field ChatRequest.messages of type "
        "[]api.Message",
    )
    rejected(
        chat(tools={"type": "function"}),
        "json: cannot unmarshal object into Go struct field ChatRequest.tools of type api.Tools",
    )
    rejected(
        chat(
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"required": "x"}}}]
        ),
        "json: cannot unmarshal string into Go struct field "
        "ToolFunctionParameters.tools.function.parameters.required of type []string",
    )
    rejected(
        chat(think="maximal"),
        'invalid think value: "maximal" (must be "high", "medium", "low", "max", true, or false)',
    )


def test_what_ollama_does_not_reject() -> None:
    # Unknown fields and options, any role, null fields, a negative dimensions.
    assert generate(n=2, options={"mirostat": 1, "bogus": "x"}, images=None) is None
    assert chat(messages=[{"role": "developer", "content": "Hi"}]) is None
    assert chat(messages=[{"role": "USER", "content": "Hi", "name": "bob"}]) is None
    assert embed(dimensions=-5, truncate=None) is None
    assert generate(think="max", keep_alive="1h30m") is None
    assert generate(think=False, keep_alive=-1, stream=None) is None
    assert chat(think=True, keep_alive="0.5s") is None


# The handlers' checks ----------------------------------------------------------------------


def test_raw_mode() -> None:
    message = "raw mode does not support template, system, or context"
    rejected(generate(raw=True, system="Be brief."), message)
    rejected(generate(raw=True, template="{{ .Prompt }}"), message)
    rejected(generate(raw=True, context=[1, 2]), message)
    assert generate(raw=True) is None
    assert generate(raw=False, system="Be brief.") is None
    assert generate(raw=True, system="", context=[]) is None


@pytest.mark.parametrize("kind", ["generate", "chat"])
def test_top_logprobs(kind: str) -> None:
    call = generate if kind == "generate" else chat
    rejected(call(top_logprobs=21), "top_logprobs must be between 0 and 20")
    rejected(call(top_logprobs=-1), "top_logprobs must be between 0 and 20")
    assert call(logprobs=True, top_logprobs=20) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
        ({"num_ctx": "4k"}, 'option "num_ctx" must be of type integer'),
        ({"seed": True}, 'option "seed" must be of type integer'),
        ({"use_mmap": 1}, 'option "use_mmap" must be of type boolean'),
        ({"stop": "END"}, 'option "stop" must be of type array'),
        ({"stop": ["END", 5]}, 'option "stop" must be of an array of strings'),
    ],
)
def test_option_types(options: dict[str, Any], message: str) -> None:
    # Options.FromMap's error comes through handleScheduleError's last branch: a 500.
    rejected(generate(options=options), message, 500)
    rejected(chat(options=options), message, 500)
    rejected(embed(options=options), message, 500)


def test_valid_options() -> None:
    options = {
        "temperature": 0,
        "top_p": 0.9,
        "top_k": 40.0,  # a number fits an integer option
        "seed": 42,
        "num_predict": 100,
        "stop": ["END"],
        "use_mmap": False,
        "main_gpu": None,
    }
    assert generate(options=options) is None
    assert chat(options=options) is None


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("yaml", '"\\"yaml\\""'),
        ("JSON", '"\\"JSON\\""'),
        (["json"], '"[\\"json\\"]"'),
        (True, '"true"'),
        (5, '"5"'),
    ],
)
def test_format(value: Any, shown: str) -> None:
    message = f'invalid format: {shown}; expected "json" or a valid JSON Schema object'
    rejected(generate(format=value), message, 500)
    rejected(chat(format=value), message, 500)


@pytest.mark.parametrize("value", ["json", "", None, {"type": "object"}, {}])
def test_valid_formats(value: Any) -> None:
    assert generate(format=value) is None
    assert chat(format=value) is None


def test_loading_and_unloading_skip_the_later_checks() -> None:
    # An empty prompt (no messages) only loads the model; with keep_alive 0 it
    # unloads it, before raw mode and options are looked at.
    assert generate(prompt="", format="yaml") is None
    assert generate(prompt="", keep_alive=0, raw=True, system="s") is None
    assert generate(prompt="", keep_alive="0s", options={"seed": "x"}) is None
    rejected(
        generate(prompt="", raw=True, system="s"),
        "raw mode does not support template, system, or context",
    )
    rejected(
        generate(prompt="", options={"seed": "x"}), 'option "seed" must be of type integer', 500
    )
    assert chat(messages=[], format="yaml") is None
    assert chat(messages=[], keep_alive=0, options={"seed": "x"}) is None
    rejected(chat(messages=[], options={"seed": "x"}), 'option "seed" must be of type integer', 500)


@pytest.mark.parametrize("value", [5, [1, 2], ["a", 3], {"text": "a"}, True])
def test_embed_input_types(value: Any) -> None:
    rejected(embed(input=value), "invalid input type")


@pytest.mark.parametrize("value", ["a", "", [], ["a", "b"], None])
def test_valid_embed_inputs(value: Any) -> None:
    assert embed(input=value) is None


def test_embed_fields_must_decode() -> None:
    rejected(
        embed(dimensions=2.5),
        "json: cannot unmarshal number 2.5 into Go struct field EmbedRequest.dimensions of type "
        "int",
    )
    rejected(
        embed(truncate="no"),
        "json: cannot unmarshal string into Go struct field EmbedRequest.truncate of type bool",
    )
    rejected(embed(keep_alive="ever"), 'time: invalid duration "ever"')
    assert embed(dimensions=256, truncate=False, keep_alive="5m") is None


def test_a_body_that_is_not_an_object() -> None:
    rejected(run("chat", []), "json: cannot unmarshal array into Go value of type api.ChatRequest")


# Requests that mal builds --------------------------------------------------------------------


def run_built(**kwargs: Any) -> Violation | None:
    kwargs.setdefault("model", "llama3.2")
    kwargs.setdefault("prompt", "Hi")
    request = get_protocol("ollama").build_request(GenerateParams(**kwargs))
    kind = urlsplit(request.url).path.rsplit("/", 1)[-1]
    assert kind in ("generate", "chat")
    headers = {k.lower(): v for k, v in request.headers.items()}
    return check(Request(kind, PATHS[kind], "", headers, json.loads(request.body)))


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"18C in {city}"


class City(msgspec.Struct):
    name: str
    population: int


IMAGE = mal.Image.from_bytes(PNG)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"stream": False},
        {"system": "Be brief.", "temperature": 0.2, "top_p": 0.9, "max_tokens": 50, "seed": 7},
        {"stop": "END"},
        {"stop": ["END", "STOP"], "temperature": 0},
        {"schema": OutputSchema(City)},
        {"schema": OutputSchema(list[City]), "stream": False},
        {"extra_body": {"think": True, "keep_alive": "10m", "options": {"num_ctx": 8192}}},
        {"extra_body": {"format": "json", "raw": True}},
        {"prompt": [{"role": "user", "content": "Hi"}], "system": "Be brief."},
        {
            "prompt": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                mal.Message("assistant", "Hello."),
                mal.Message("user", "Again"),
            ],
            "extra_body": {"think": "high"},
        },
        {"prompt": [mal.Message("user", ["What is this?", IMAGE])]},
        {"prompt": [mal.Message("user", [IMAGE, IMAGE])], "schema": OutputSchema(City)},
        {"tools": [get_weather]},
        {"prompt": "Weather in Oslo?", "tools": [get_weather], "stream": False},
    ],
)
def test_mal_requests_are_accepted(options: dict[str, Any]) -> None:
    if "tools" in options:
        options = {**options, "tools": [mal.Tool.from_function(f) for f in options["tools"]]}
    assert run_built(**options) is None


def decode(name: str) -> Any:
    decoder = get_protocol("ollama").decoder(True)
    decoder.feed((DATA / name).read_bytes())
    decoder.flush()
    return decoder


@pytest.mark.parametrize("stream", ["tools_three_calls.ndjson", "tools_docs_tool_call.ndjson"])
def test_mal_tool_round_trip(stream: str) -> None:
    turn = decode(stream).message()
    assert turn.tool_calls
    results = [mal.Message("tool", "18C", tool_call_id=c.id) for c in turn.tool_calls]
    prompt = [mal.Message("user", "Weather?"), turn, *results]
    assert run_built(prompt=prompt, tools=[mal.Tool.from_function(get_weather)]) is None
    later = [*prompt, mal.Message("assistant", "18C."), mal.Message("user", "Thanks")]
    assert run_built(prompt=later, tools=[mal.Tool.from_function(get_weather)]) is None


def test_mal_thinking_round_trip() -> None:
    turn = decode("chat_thinking.ndjson").message()
    prompt = [mal.Message("user", "Why?"), turn, mal.Message("user", "And then?")]
    assert run_built(prompt=prompt, extra_body={"think": True}) is None


@pytest.mark.parametrize(
    ("texts", "dimensions"),
    [(["a"], None), (["a", "b", ""], 256), (["x" * 10_000], 1)],
)
def test_mal_embeddings_are_accepted(texts: list[str], dimensions: int | None) -> None:
    request = embed_request(
        "ollama",
        "all-minilm",
        texts,
        dimensions=dimensions,
        base_url="http://localhost:11434",
        api_key=None,
    )
    assert urlsplit(request.url).path == "/api/embed"
    assert run("embed", json.loads(request.body)) is None
