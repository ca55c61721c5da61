"""Output schemas: the schema each provider is sent (strict for OpenAI where
it can be), and decoding that names what does not match."""

from __future__ import annotations

import dataclasses
import enum
from typing import Literal, TypedDict

import msgspec
import pytest

import mal
from mal.schema import OutputSchema, partial_json


class Address(msgspec.Struct):
    street: str
    zip: str | None = None


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class City(msgspec.Struct):
    name: str
    population: int
    kind: Literal["capital", "town"] = "town"
    color: Color = Color.RED
    address: Address | None = None
    tags: list[str] = []


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


class Pair(TypedDict):
    a: int
    b: str


def walk(node: object) -> list[dict[str, object]]:
    out = []
    if isinstance(node, dict):
        out.append(node)
        for value in node.values():
            out += walk(value)
    elif isinstance(node, list):
        for value in node:
            out += walk(value)
    return out


def objects(schema: dict[str, object]) -> list[dict[str, object]]:
    return [n for n in walk(schema) if n.get("type") == "object"]


def test_a_struct_is_sent_as_an_object_with_its_defs() -> None:
    schema = OutputSchema.of(City)
    assert schema.name == "City"
    top = schema.json_schema
    assert top["type"] == "object"
    assert set(top["properties"]) == {"name", "population", "kind", "color", "address", "tags"}
    assert top["required"] == ["name", "population"]
    assert "Address" in top["$defs"]
    assert OutputSchema.of(City) is schema  # built once per type


def test_strict_form_for_openai() -> None:
    schema = OutputSchema.of(City)
    assert schema.strict
    strict = schema.strict_schema
    assert strict is not None
    for node in objects(strict):
        assert node["additionalProperties"] is False
        assert node["required"] == list(node["properties"])  # every property required
    props = strict["properties"]
    # Optional fields are nullable and keep no default (strict mode refuses it: it
    # is named in the description instead); an already nullable one is not
    # wrapped twice.
    assert props["kind"] == {
        "anyOf": [
            {"enum": ["capital", "town"], "description": '(default: "town")'},
            {"type": "null"},
        ]
    }
    assert all("default" not in node for node in walk(strict))
    assert props["address"]["anyOf"].count({"type": "null"}) == 1
    # The plain schema is untouched.
    assert "additionalProperties" not in schema.json_schema


def test_nulls_for_optional_fields_give_the_defaults() -> None:
    schema = OutputSchema.of(City)
    city = schema.decode(
        '{"name":"Paris","population":2,"kind":null,"color":null,"address":null,"tags":null}'
    )
    assert city == City("Paris", 2)
    nested = schema.decode(
        '{"name":"P","population":1,"address":{"street":"Main","zip":null},"tags":["a"]}'
    )
    assert nested.address == Address("Main") and nested.tags == ["a"]


def test_a_list_is_wrapped_in_an_object_and_unwrapped() -> None:
    schema = OutputSchema.of(list[Point])
    assert schema.name == "PointList"
    top = schema.json_schema
    assert top["type"] == "object" and top["required"] == ["items"]
    assert top["properties"]["items"]["type"] == "array"
    assert schema.decode('{"items":[{"x":1},{"x":2,"y":3}]}') == [Point(1), Point(2, 3)]
    with pytest.raises(mal.OutputValidationError, match=r"\$\.items\[1\]"):
        schema.decode('{"items":[{"x":1},{"x":"no"}]}')
    with pytest.raises(mal.OutputValidationError, match="'items'"):
        schema.decode("[]")


def test_dataclass_and_typeddict() -> None:
    assert OutputSchema.of(Point).decode('{"x": 4}') == Point(4)
    pair = OutputSchema.of(Pair)
    assert pair.decode('{"a": 1, "b": "x"}') == {"a": 1, "b": "x"}
    with pytest.raises(mal.OutputValidationError, match=r"\$\.b"):
        pair.decode('{"a": 1, "b": 2}')


def test_a_dict_schema_decodes_plain_json() -> None:
    raw = {"title": "Answer", "type": "object", "properties": {"n": {"type": "integer"}}}
    schema = OutputSchema.of(raw)
    assert schema.name == "Answer"
    assert schema.decode('{"n": 1}') == {"n": 1}
    # Checked against the schema, as a type's output is (see test_fidelity_schema.py).
    with pytest.raises(mal.OutputValidationError, match=r"\$\.n"):
        schema.decode('{"n": "a string"}')
    assert schema.strict_schema is not None
    assert raw == {"title": "Answer", "type": "object", "properties": {"n": {"type": "integer"}}}


def test_free_keys_cannot_be_strict() -> None:
    schema = OutputSchema.of(dict[str, int])
    assert not schema.strict and schema.strict_schema is None
    assert schema.decode('{"a": 1}') == {"a": 1}


def test_validation_errors_name_the_path_and_keep_the_raw_text() -> None:
    schema = OutputSchema.of(City)
    raw = '{"name": "Tokyo", "population": "many"}'
    with pytest.raises(mal.OutputValidationError) as info:
        schema.decode(raw)
    assert "$.population" in str(info.value)
    assert info.value.raw_text == raw
    assert not info.value.retryable
    for bad in ("", "   ", "not json", '{"name": "x"'):
        with pytest.raises(mal.OutputValidationError) as info:
            schema.decode(bad)
        assert info.value.raw_text == bad
    assert "population" in schema.reask_message(info.value) or schema.reask_message(info.value)


def test_whitespace_and_one_fence_are_tolerated() -> None:
    schema = OutputSchema.of(Point)
    assert schema.decode('\n  {"x": 1}\n') == Point(1)
    assert schema.decode('```json\n{"x": 2}\n```') == Point(2)
    assert schema.decode('```\n{"x": 3}\n```') == Point(3)


@pytest.mark.parametrize("bad", ["City", City("a", 1), 3, None])
def test_what_is_not_a_schema_is_a_config_error(bad: object) -> None:
    with pytest.raises(mal.ConfigError, match="schema"):
        OutputSchema.of(bad)


def test_partial_json() -> None:
    assert partial_json("") is None
    assert partial_json("```json\n") is None
    assert partial_json('{"name": "Tok') == {"name": "Tok"}
    assert partial_json('{"name": "Tokyo", "popu') == {"name": "Tokyo"}


# Anthropic: the answer through a forced tool ---------------------------------------------


class Answer(msgspec.Struct):
    city: str
    rank: int


def anthropic_request(**kwargs: object) -> dict[str, object]:
    import json

    from mal.protocols import GenerateParams, get_protocol

    params = GenerateParams(
        model="claude-3-5-haiku-latest",
        prompt="?",
        schema=OutputSchema.of(Answer),
        schema_tool=True,
        **kwargs,  # type: ignore[arg-type]
    )
    body: dict[str, object] = json.loads(get_protocol("anthropic").build_request(params).body)
    return body


def test_the_answer_tool_request() -> None:
    body = anthropic_request()
    assert "output_config" not in body
    assert body["tools"] == [
        {
            "name": "Answer",
            "description": mal.protocols.anthropic.ANSWER_TOOL_DESCRIPTION,
            "input_schema": OutputSchema.of(Answer).json_schema,
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "Answer"}


def test_the_answer_tool_beside_the_callers_tools() -> None:
    from mal.tools import as_tools

    body = anthropic_request(tools=as_tools([mal.Tool("lookup")]), parallel_tool_calls=False)
    assert [t["name"] for t in body["tools"]] == ["lookup", "Answer"]  # type: ignore[attr-defined]
    # The model must call a tool: one of the caller's, or the answer.
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    with pytest.raises(mal.ConfigError, match="tool_choice='lookup' cannot be combined"):
        anthropic_request(tools=as_tools([mal.Tool("lookup")]), tool_choice="lookup")
    with pytest.raises(mal.ConfigError, match="a tool is named 'Answer'"):
        anthropic_request(tools=as_tools([mal.Tool("Answer")]))


def test_the_answer_tool_cannot_be_used_with_thinking() -> None:
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    with pytest.raises(mal.ConfigError, match="thinking"):
        anthropic_request(extra_body=thinking)


def answer_stream(*blocks: tuple[dict[str, object], list[str]]) -> bytes:
    import json

    events: list[dict[str, object]] = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 1}}}
    ]
    for index, (start, pieces) in enumerate(blocks):
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        for piece in pieces:
            delta = {"type": "input_json_delta", "partial_json": piece}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta", "delta": {"stop_reason": "tool_use"}})
    events.append({"type": "message_stop"})
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def test_the_answer_tool_streams_as_text() -> None:
    from mal.protocols import GenerateParams, get_protocol

    params = GenerateParams(model="m", prompt="?", schema=OutputSchema.of(Answer), schema_tool=True)
    answer = {"type": "tool_use", "id": "toolu_1", "name": "Answer", "input": {}}
    other = {"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {}}
    body = answer_stream((other, ['{"q": 1}']), (answer, ['{"city": "Ky', 'oto", "rank": 2}']))
    for pieces in ([body], [body[i : i + 1] for i in range(len(body))]):
        decoder = get_protocol("anthropic").decoder_for(params, True)
        chunks = [c for piece in pieces for c in decoder.feed(piece)] + decoder.flush()
        assert "".join(c.text for c in chunks) == '{"city": "Kyoto", "rank": 2}'
        assert [call.name for call in decoder.tool_calls] == ["lookup"]  # a real call stays one
        assert decoder.finish_reason == "tool_calls"
    # The answer alone: the turn ended with the answer, not with a call.
    decoder = get_protocol("anthropic").decoder_for(params, True)
    decoder.feed(answer_stream((answer, ['{"city": "Nara", "rank": 3}'])))
    decoder.flush()
    assert decoder.text == '{"city": "Nara", "rank": 3}'
    assert decoder.finish_reason == "stop" and decoder.raw_finish_reason == "tool_use"
    assert decoder.tool_calls == []
    assert OutputSchema.of(Answer).decode(decoder.text) == Answer("Nara", 3)
    # Without the option, the same body is a tool call.
    plain = get_protocol("anthropic").decoder(True)
    plain.feed(answer_stream((answer, ['{"city": "Nara", "rank": 3}'])))
    plain.flush()
    assert plain.text == "" and plain.tool_calls[0].arguments == {"city": "Nara", "rank": 3}


def test_anthropic_schema_config() -> None:
    assert mal.MALConfig().anthropic_schema == "auto"
    with pytest.raises(mal.ConfigError, match="anthropic_schema"):
        mal.MALConfig(anthropic_schema="json")
