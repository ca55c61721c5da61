"""What a provider is not sent of a schema still holds: an output that breaks
a bound left out of Anthropic's schema (or any other part of a JSON schema
dict) is an OutputValidationError, as a type's mismatch is."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import pytest

import mal
from mal._jsonschema import first_error
from mal.schema import OutputSchema


class Bounded(msgspec.Struct):
    n: Annotated[int, msgspec.Meta(ge=1, le=10)]
    word: Annotated[str, msgspec.Meta(min_length=2, max_length=5)] = "ab"


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


def test_a_type_keeps_its_bounds_through_msgspec() -> None:
    schema = OutputSchema.of(Bounded)
    assert schema.decode('{"n": 3}') == Bounded(3)
    for text in ('{"n": 0}', '{"n": 11}', '{"n": 3, "word": "a"}', '{"n": 3, "word": "abcdef"}'):
        with pytest.raises(mal.OutputValidationError) as info:
            schema.decode(text)
        assert info.value.raw_text == text
        assert "$.n" in str(info.value) or "$.word" in str(info.value)


@pytest.mark.parametrize(
    ("node", "good", "bad", "words"),
    [
        ({"type": "integer", "minimum": 1}, 1, 0, ">= 1"),
        ({"type": "integer", "maximum": 10}, 10, 11, "<= 10"),
        ({"type": "number", "exclusiveMinimum": 0}, 0.5, 0, "> 0"),
        ({"type": "number", "exclusiveMaximum": 1}, 0.5, 1, "< 1"),
        ({"type": "integer", "multipleOf": 5}, 15, 16, "multiple of 5"),
        ({"type": "number", "multipleOf": 0.1}, 0.3, 0.35, "multiple of 0.1"),
        ({"type": "string", "minLength": 2}, "ab", "a", "length >= 2"),
        ({"type": "string", "maxLength": 2}, "ab", "abc", "length <= 2"),
        ({"type": "string", "pattern": "^[a-z]+$"}, "abc", "ab1", "matching"),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 2}, [1, 2], [1], ">= 2"),
        ({"type": "array", "items": {"type": "integer"}, "maxItems": 1}, [1], [1, 2], "<= 1"),
        ({"type": "array", "uniqueItems": True}, [1, 2], [1, 1], "unique"),
        ({"type": "object", "minProperties": 1}, {"a": 1}, {}, ">= 1 fields"),
        ({"type": "object", "maxProperties": 1}, {"a": 1}, {"a": 1, "b": 2}, "<= 1 fields"),
        ({"type": "string", "enum": ["a", "b"]}, "a", "c", "one of"),
        ({"const": 1}, 1, True, "Expected 1"),
        ({"type": "integer"}, 1.0, True, "`integer`"),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, None, 1, "anyOf"),
        ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 1.5, 1, "exactly one"),
        ({"not": {"type": "string"}}, 1, "a", "`not`"),
    ],
)
def test_a_json_schema_dict_is_checked_when_decoded(
    node: dict[str, Any], good: Any, bad: Any, words: str
) -> None:
    schema = OutputSchema.of(obj(v=node))
    good_text = msgspec.json.encode({"v": good}).decode()
    assert schema.decode(good_text) == {"v": good}
    bad_text = msgspec.json.encode({"v": bad}).decode()
    with pytest.raises(mal.OutputValidationError) as info:
        schema.decode(bad_text)
    assert info.value.raw_text == bad_text
    assert words in str(info.value) and "$.v" in str(info.value)


def test_objects_refs_and_wrapped_outputs() -> None:
    schema = OutputSchema.of(
        {
            "type": "object",
            "properties": {"city": {"$ref": "#/$defs/City"}},
            "required": ["city"],
            "additionalProperties": False,
            "$defs": {"City": obj(pop={"type": "integer", "minimum": 0})},
        }
    )
    assert schema.decode('{"city": {"pop": 5}}') == {"city": {"pop": 5}}
    bad = {
        '{"city": {"pop": -1}}': "$.city.pop",
        '{"city": {}}': "missing required field `pop`",
        '{"city": {"pop": 1}, "x": 1}': "unknown field `x`",
        '{"city": 3}': "got `int`",
    }
    for text, words in bad.items():
        with pytest.raises(mal.OutputValidationError, match=words.replace("$", r"\$")):
            schema.decode(text)
    # An array schema is sent wrapped in an object; its bounds hold inside.
    listed = OutputSchema.of({"type": "array", "items": {"type": "integer"}, "maxItems": 2})
    assert listed.decode('{"items": [1, 2]}') == [1, 2]
    with pytest.raises(mal.OutputValidationError, match=r"\$\.items"):
        listed.decode('{"items": [1, 2, 3]}')
    with pytest.raises(mal.OutputValidationError, match="'items' key"):
        listed.decode("[1, 2]")


def test_a_null_optional_field_is_dropped_as_for_a_type() -> None:
    # OpenAI's strict form makes optional fields nullable: null means absent.
    schema = OutputSchema.of(
        {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}
    )
    assert schema.decode('{"a": null, "b": 1}') == {"b": 1}
    with pytest.raises(mal.OutputValidationError):
        schema.decode('{"a": 1, "b": null}')


def test_first_error_edges() -> None:
    assert first_error({"type": ["integer", "null"]}, None) is None
    assert first_error({"items": False, "prefixItems": [{"type": "integer"}]}, [1]) is None
    assert first_error({"items": False, "prefixItems": [{"type": "integer"}]}, [1, 2])
    assert first_error({"$ref": "#/definitions/X", "definitions": {"X": {"type": "string"}}}, 1)
    assert first_error({"$ref": "https://example.com/x.json"}, 1) is None  # not followed
    assert first_error({"pattern": "(?<=["}, "a") is None  # not compilable: not checked
    assert first_error({"type": "string", "format": "email"}, "not an email") is None
    # A schema that refers to itself checks a value of any depth, and stops.
    tree = {
        "type": "object",
        "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}},
        "additionalProperties": False,
    }
    assert first_error(tree, {"kids": [{"kids": []}]}) is None
    assert "unknown field `x`" in str(first_error(tree, {"kids": [{"x": 1}]}))
    assert first_error({"$ref": "#"}, 1) is None
    # if / then / else
    cond = {"if": {"type": "integer"}, "then": {"minimum": 0}, "else": {"type": "string"}}
    assert first_error(cond, 1) is None and first_error(cond, -1)
    assert first_error(cond, "a") is None and first_error(cond, None)
