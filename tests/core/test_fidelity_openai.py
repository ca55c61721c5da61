"""OpenAI requests the hosted API would reject, built right, each one also run
through the strict server's rules (``mal.testing._rules``):

* strict schemas (structured outputs and strict tools) in the subset strict
  mode takes: the keywords it refuses are left out and named in the
  description, and still hold when the output is decoded; a shape with no
  strict form is sent with ``strict: false``;
* a strict tool's optional parameter that comes back null takes its default;
* an assistant turn's text parts on the Responses API are ``output_text``;
* a function tool on the Responses API says ``strict: false`` when it is not
  strict (there, a tool that leaves ``strict`` out is made strict);
* an empty text to embed is refused before anything is sent.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mal
from mal._prepare import prepare_embed_calls
from mal.config import Endpoint
from mal.embeddings import embed_request
from mal.protocols import GenerateParams, get_protocol
from mal.schema import OPENAI_FORMATS, OPENAI_STRICT_KEYWORDS, OutputSchema, strict_form
from mal.testing._rules import Request, Violation, check, openai_common
from mal.tools import as_tools
from tests.support.shapes import Circle, Point, Square

KINDS = {"openai": "openai", "openai-responses": "responses"}
OPENAI_APIS = list(KINDS)


def built(provider: str, **params: Any) -> tuple[dict[str, Any], Violation | None]:
    """mal's request body for ``params``, and what the rules say of it."""
    params.setdefault("model", "gpt-4o-mini")
    params.setdefault("prompt", "Hi")
    if params.get("tools") is not None:
        params["tools"] = as_tools(params["tools"])
    if params.get("schema") is not None:
        params["schema"] = OutputSchema.of(params["schema"])
    request = get_protocol(provider).build_request(GenerateParams(**params))
    url = urlsplit(request.url)
    body: dict[str, Any] = json.loads(request.body)
    headers = {"content-type": "application/json"}
    return body, check(Request(KINDS[provider], url.path, url.query, headers, body))


def taken(provider: str, **params: Any) -> dict[str, Any]:
    body, violation = built(provider, **params)
    assert violation is None, violation
    return body


def format_of(provider: str, body: dict[str, Any]) -> dict[str, Any]:
    """The json_schema spec a body carries: name, schema and strict."""
    if provider == "openai":
        spec: dict[str, Any] = body["response_format"]["json_schema"]
        return spec
    return {k: v for k, v in body["text"]["format"].items() if k != "type"}


def walk(node: Any) -> list[dict[str, Any]]:
    """Every schema in ``node`` (not the names under ``properties``, not data)."""
    if isinstance(node, list):
        return [n for item in node for n in walk(item)]
    if not isinstance(node, dict):
        return []
    out = [node]
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions", "patternProperties"):
            out += [n for sub in value.values() for n in walk(sub)]
        elif key in ("items", "prefixItems", "additionalProperties", "anyOf", "allOf", "oneOf"):
            out += walk(value)
    return out


# Strict schemas: OpenAI's subset -------------------------------------------------------------


def test_the_keywords_sent_are_the_ones_the_rules_take() -> None:
    # One source, two readers: the request builder and the strict server agree.
    assert OPENAI_STRICT_KEYWORDS == openai_common.STRICT_KEYWORDS
    assert OPENAI_FORMATS == openai_common.STRICT_FORMATS


class Drawing(msgspec.Struct):
    """Everything msgspec describes with a keyword strict mode refuses."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    thumbnail: bytes
    tags: set[str]
    layers: frozenset[int]
    shape: Circle | Square
    origin: Annotated[Point, msgspec.Meta(description="Where it starts.")]
    size: tuple[float, float]
    price: decimal.Decimal
    id: uuid.UUID
    when: Annotated[datetime.datetime, msgspec.Meta(tz=True)]
    wait: datetime.timedelta
    note: Annotated[str, msgspec.Meta(examples=["nice"])] = ""


DRAWING = {
    "title": "Sun",
    "thumbnail": "aGk=",
    "tags": ["a", "b"],
    "layers": [1],
    "shape": {"type": "square", "side": 2.0},
    "origin": {"x": 0.0, "y": 1.0},
    "size": [3.0, 4.0],
    "price": "1.50",
    "id": "c0a8f3a4-5b6e-4f7a-8d9c-0e1f2a3b4c5d",
    "when": "2025-01-02T03:04:05Z",
    "wait": "PT1M",
    "note": None,
}


@pytest.mark.parametrize("provider", OPENAI_APIS)
def test_a_struct_with_refused_keywords_is_strict_and_taken(provider: str) -> None:
    spec = format_of(provider, taken(provider, schema=Drawing))
    assert spec["strict"] is True
    schema = spec["schema"]
    for node in walk(schema):
        assert set(node) <= OPENAI_STRICT_KEYWORDS, node
        assert node.get("format", "uuid") in OPENAI_FORMATS, node
        if "$ref" in node:
            assert set(node) == {"$ref"}, node
    props = schema["properties"]
    # What is left out is named in the description, for the model to follow.
    assert props["title"] == {"type": "string", "description": "(maxLength: 40; minLength: 1)"}
    assert props["thumbnail"] == {"type": "string", "description": '(contentEncoding: "base64")'}
    assert props["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "(uniqueItems: true)",
    }
    assert props["price"] == {"type": "string", "description": '(format: "decimal")'}
    assert props["id"] == {"type": "string", "format": "uuid"}
    assert props["when"] == {"type": "string", "format": "date-time"}
    assert props["wait"] == {"type": "string", "format": "duration"}
    # The tagged union keeps its variants, not its discriminator.
    shape = props["shape"]
    assert [v["$ref"] for v in shape["anyOf"]] == ["#/$defs/Circle", "#/$defs/Square"]
    assert shape["description"].startswith('(discriminator: {"propertyName":"type"')
    # A reference with a description beside it is inlined, made strict too.
    assert props["origin"] == {
        "title": "Point",
        "description": "Where it starts.",
        "type": "object",
        "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
        "required": ["x", "y"],
        "additionalProperties": False,
    }
    # A tuple of one type is an array of it, of that length.
    assert props["size"] == {
        "type": "array",
        "minItems": 2,
        "maxItems": 2,
        "items": {"type": "number"},
    }
    # An optional field is nullable; its default (and examples) named.
    assert props["note"] == {
        "anyOf": [
            {"type": "string", "description": '(examples: ["nice"]; default: "")'},
            {"type": "null"},
        ]
    }
    assert schema["required"] == list(props)
    assert schema["$defs"]["Square"]["additionalProperties"] is False


def test_what_is_left_out_still_holds_on_decode() -> None:
    schema = OutputSchema.of(Drawing)
    good = schema.decode(json.dumps(DRAWING))
    assert good.size == (3.0, 4.0) and good.thumbnail == b"hi" and good.note == ""
    assert good.price == decimal.Decimal("1.50") and good.shape == Square(2.0)
    for field, value, where in [
        ("title", "", "$.title"),
        ("title", "x" * 41, "$.title"),
        ("thumbnail", "not base64!", "$.thumbnail"),
        ("size", [1.0, 2.0, 3.0], "$.size"),
        ("price", "a lot", "$.price"),
        ("shape", {"type": "hexagon", "side": 1.0}, "$.shape"),
    ]:
        text = json.dumps({**DRAWING, field: value})
        with pytest.raises(mal.OutputValidationError) as info:
            schema.decode(text)
        assert where in str(info.value), (field, str(info.value))


class Located(msgspec.Struct):
    name: str
    where: tuple[float, str]


@pytest.mark.parametrize("provider", OPENAI_APIS)
def test_a_tuple_of_mixed_types_has_no_strict_form(provider: str) -> None:
    # prefixItems is not in strict mode's subset: the schema is sent whole, not strict.
    output = OutputSchema.of(Located)
    assert output.strict_schema is None and not output.strict
    spec = format_of(provider, taken(provider, schema=Located))
    assert spec["strict"] is False
    assert spec["schema"] == output.json_schema
    assert spec["schema"]["properties"]["where"]["prefixItems"] == [
        {"type": "number"},
        {"type": "string"},
    ]
    # ...and the output is still checked, position by position.
    assert output.decode('{"name": "a", "where": [1.5, "N"]}') == Located("a", (1.5, "N"))
    with pytest.raises(mal.OutputValidationError, match=r"\$\.where\[1\]"):
        output.decode('{"name": "a", "where": [1.5, 2]}')


@pytest.mark.parametrize(
    "schema",
    [
        # A free-keyed object: an object without properties is one, too.
        {"type": "object", "properties": {"meta": {"type": "object"}}},
        {"type": "object", "properties": {"a": {"allOf": [{"type": "string"}]}}},
        {"type": "object", "properties": {"a": {"not": {"type": "string"}}}},
        {
            "type": "object",
            "properties": {"a": {"type": "array", "items": [{"type": "string"}]}},
        },
        {
            "type": "object",
            "properties": {"a": {"type": "array", "prefixItems": [{"type": "string"}]}},
        },
        {
            "type": "object",
            "properties": {"a": {"if": {"type": "string"}, "then": {"minLength": 1}}},
        },
        {
            "type": "object",
            "properties": {"a": {"anyOf": [{"type": "string"}], "oneOf": [{"type": "integer"}]}},
        },
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/Gone", "description": "x"}}},
    ],
)
@pytest.mark.parametrize("provider", OPENAI_APIS)
def test_shapes_without_a_strict_form_are_sent_not_strict(
    provider: str, schema: dict[str, Any]
) -> None:
    assert strict_form(schema) is None
    spec = format_of(provider, taken(provider, schema=schema))
    assert spec["strict"] is False


def test_a_dict_schema_loses_only_what_strict_mode_refuses() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Pick",
        "type": "object",
        "properties": {
            "word": {"type": "string", "minLength": 2, "pattern": "^[a-z]+$"},
            "site": {"type": "string", "format": "uri", "description": "A page."},
            "n": {"type": "integer", "minimum": 1, "default": 1},
            "kind": {"oneOf": [{"const": "a"}, {"const": "b"}]},
            "codes": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
            "extra": {
                "type": "object",
                "properties": {"k": {"type": "string"}},
                "minProperties": 1,
                "default": None,
            },
        },
        "required": ["word", "site", "kind", "codes"],
    }
    strict = strict_form(schema)
    assert strict == {
        "title": "Pick",
        "type": "object",
        "properties": {
            "word": {"type": "string", "pattern": "^[a-z]+$", "description": "(minLength: 2)"},
            "site": {"type": "string", "description": 'A page. (format: "uri")'},
            "n": {
                "anyOf": [
                    {"type": "integer", "minimum": 1, "description": "(default: 1)"},
                    {"type": "null"},
                ]
            },
            "kind": {"anyOf": [{"const": "a"}, {"const": "b"}]},
            "codes": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "(uniqueItems: true)",
            },
            "extra": {
                "anyOf": [
                    {
                        "type": "object",
                        "properties": {"k": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
                        "additionalProperties": False,
                        "required": ["k"],
                        "description": "(minProperties: 1)",
                    },
                    {"type": "null"},
                ]
            },
        },
        "required": ["word", "site", "n", "kind", "codes", "extra"],
        "additionalProperties": False,
    }
    for provider in OPENAI_APIS:
        spec = format_of(provider, taken(provider, schema=schema))
        assert spec["strict"] is True and spec["schema"] == strict
    # The whole schema still holds on decode, the keywords left out among them.
    output = OutputSchema.of(schema)
    ok = {"word": "ab", "site": "x", "kind": "a", "codes": [1, 2], "n": None, "extra": None}
    assert output.decode(json.dumps(ok)) == {
        "word": "ab",
        "site": "x",
        "kind": "a",
        "codes": [1, 2],
    }
    given = {"word": "ab", "site": "x", "kind": "a", "codes": [1, 2]}
    for bad, where in [
        ({"word": "a"}, "$.word"),
        ({"codes": [1, 1]}, "$.codes"),
        ({"n": 0}, "$.n"),
        ({"extra": {}}, "$.extra"),
    ]:
        with pytest.raises(mal.OutputValidationError, match=where.replace("$", r"\$")):
            output.decode(json.dumps({**given, **bad}))


class Tree(msgspec.Struct):
    name: str
    children: list[Tree] = []


@pytest.mark.parametrize("provider", OPENAI_APIS)
def test_a_recursive_schema_stays_strict(provider: str) -> None:
    # Strict mode takes recursion through $defs ("Recursive schemas are supported").
    spec = format_of(provider, taken(provider, schema=Tree))
    assert spec["strict"] is True
    assert spec["schema"]["properties"]["children"]["anyOf"][0]["items"] == {"$ref": "#/$defs/Tree"}


#: Schemas of every kind strict mode takes, refuses or cannot say, nested.
_LEAVES = st.sampled_from(
    [
        {"type": "string"},
        {"type": "string", "minLength": 1, "maxLength": 9},
        {"type": "string", "format": "uri"},
        {"type": "string", "format": "date"},
        {"type": "string", "contentEncoding": "base64"},
        {"type": "integer", "minimum": 0, "default": 3},
        {"type": "number", "multipleOf": 0.5, "examples": [1.5]},
        {"enum": ["a", "b"]},
        {"const": None},
        {"type": ["string", "null"]},
        {"$ref": "#/$defs/Leaf"},
        {"$ref": "#/$defs/Leaf", "description": "a leaf"},
        {"type": "object"},
        {"not": {"type": "string"}},
        True,
    ]
)


def _nest(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    names = st.sampled_from(["a", "b", "minimum", "type"])
    return st.one_of(
        st.builds(lambda i: {"type": "array", "items": i, "uniqueItems": True}, children),
        st.builds(lambda i: {"type": "array", "prefixItems": [i, i], "items": False}, children),
        st.builds(
            lambda a, b: {"anyOf": [a, b], "discriminator": {"propertyName": "t"}},
            children,
            children,
        ),
        st.builds(lambda a, b: {"oneOf": [a, b]}, children, children),
        st.builds(
            lambda props, req: {"type": "object", "properties": props, "required": req},
            st.dictionaries(names, children, max_size=3),
            st.lists(names, max_size=2, unique=True),
        ),
    )


@given(
    st.dictionaries(
        st.sampled_from(["x", "y", "z"]), st.recursive(_LEAVES, _nest, max_leaves=8), min_size=1
    )
)
@settings(max_examples=300, deadline=None, database=None)
def test_every_strict_form_is_taken_by_the_rules(properties: dict[str, Any]) -> None:
    schema = {
        "type": "object",
        "properties": properties,
        "$defs": {"Leaf": {"type": "object", "properties": {"v": {"type": "string"}}}},
    }
    strict = strict_form(schema)
    if strict is not None:
        assert openai_common.strict_schema_problem(strict) is None, strict


def test_the_plain_schema_is_untouched() -> None:
    output = OutputSchema.of(Drawing)
    props = output.json_schema["properties"]
    assert props["title"]["minLength"] == 1 and props["tags"]["uniqueItems"] is True
    assert "prefixItems" in props["size"] and props["origin"]["$ref"] == "#/$defs/Point"


# Strict tools ---------------------------------------------------------------------------------


def draw(
    title: Annotated[str, msgspec.Meta(min_length=1)],
    size: tuple[float, float],
    tags: set[str],
    shape: Circle | Square,
    origin: Annotated[Point, msgspec.Meta(description="Where it starts.")],
    unit: Literal["cm", "in"] = "cm",
) -> str:
    """Draw a shape."""
    return "ok"


@pytest.mark.parametrize("provider", OPENAI_APIS)
def test_a_strict_tool_with_refused_keywords_is_taken(provider: str) -> None:
    tool = mal.Tool.from_function(draw, strict=True)
    body = taken(provider, tools=[tool])
    (sent,) = body["tools"]
    declared = sent if provider == "openai-responses" else sent["function"]
    assert declared["strict"] is True
    props = declared["parameters"]["properties"]
    assert props["title"] == {"type": "string", "description": "(minLength: 1)"}
    assert props["size"]["items"] == {"type": "number"}
    assert props["origin"]["description"] == "Where it starts."
    # The tool's own schema is untouched, for the providers that take it whole.
    assert tool.parameters["properties"]["title"]["minLength"] == 1


def locate(place: tuple[float, str]) -> str:
    """Locate a place."""
    return "ok"


@pytest.mark.parametrize("provider", OPENAI_APIS)
def test_a_strict_tool_without_a_strict_form_is_a_config_error(provider: str) -> None:
    tool = mal.Tool.from_function(locate, strict=True)
    with pytest.raises(mal.ConfigError, match=r"'locate' cannot be strict: .*prefixItems"):
        built(provider, tools=[tool])
    # Not strict, it is sent whole and taken.
    taken(provider, tools=[mal.Tool.from_function(locate)])


def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
    """Current weather in a city."""
    return "18 C"


def test_a_strict_tool_takes_a_null_optional_parameter_as_its_default() -> None:
    # Strict mode makes an optional parameter nullable: the model sends null for it.
    tool = mal.Tool.from_function(get_weather, strict=True)
    assert tool.bind({"city": "Paris", "unit": None}) == ((), {"city": "Paris", "unit": "c"})
    # A null where no default stands behind it is still wrong.
    with pytest.raises(msgspec.ValidationError, match=r"\$\.city"):
        tool.bind({"city": None, "unit": "f"})
    # A tool that is not strict was not told a null would do.
    with pytest.raises(msgspec.ValidationError, match=r"\$\.unit"):
        mal.Tool.from_function(get_weather).bind({"city": "Paris", "unit": None})


# The Responses API: an assistant turn's parts, a tool's strict ----------------------------------


def test_an_assistant_turn_with_list_content_is_output_text() -> None:
    prompt = [
        mal.Message(role="user", content=["Say", "two things."]),
        mal.Message(role="assistant", content=["One.", "Two."]),
        {"role": "assistant", "content": [{"type": "text", "text": "Three."}]},
        mal.Message(role="user", content="Again?"),
    ]
    body = taken("openai-responses", prompt=prompt)
    assert body["input"] == [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Say"},
                {"type": "input_text", "text": "two things."},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "One."},
                {"type": "output_text", "text": "Two."},
            ],
        },
        {"role": "assistant", "content": [{"type": "output_text", "text": "Three."}]},
        {"role": "user", "content": "Again?"},
    ]


def test_an_assistant_turn_cannot_carry_an_image_on_the_responses_api() -> None:
    png = mal.Image.from_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 8)
    prompt = [mal.Message(role="assistant", content=["Here:", png])]
    with pytest.raises(mal.ConfigError, match="assistant"):
        built("openai-responses", prompt=prompt)


def test_a_responses_tool_that_is_not_strict_says_so() -> None:
    body = taken("openai-responses", tools=[get_weather])
    (tool,) = body["tools"]
    assert tool["strict"] is False
    # Its optional parameter stays optional.
    assert tool["parameters"]["required"] == ["city"]
    assert "anyOf" not in tool["parameters"]["properties"]["unit"]
    strict = taken("openai-responses", tools=[mal.Tool.from_function(get_weather, strict=True)])
    assert strict["tools"][0]["strict"] is True
    # Chat Completions takes a tool without strict as not strict: nothing is added.
    chat = taken("openai", tools=[get_weather])
    assert "strict" not in chat["tools"][0]["function"]


# Embeddings: no empty text ---------------------------------------------------------------------


def embeddings_violation(provider: str, texts: list[str]) -> Violation | None:
    base = (
        "https://r.openai.azure.com?api-version=2024-10-21"
        if provider == "azure"
        else "https://api.openai.com/v1"
    )
    request = embed_request(provider, "text-embedding-3-small", texts, base_url=base, api_key="k")
    url = urlsplit(request.url)
    body = json.loads(request.body)
    headers = {"content-type": "application/json"}
    return check(Request("embeddings", url.path, url.query, headers, body, provider == "azure"))


@pytest.mark.parametrize("provider", ["openai", "azure"])
def test_an_empty_text_is_refused_before_it_is_sent(provider: str) -> None:
    with pytest.raises(mal.ConfigError, match=r"texts\[1\] is empty"):
        embeddings_violation(provider, ["a", "", "c"])
    # A text of spaces is not empty: it is sent, and taken.
    assert embeddings_violation(provider, ["a", " ", "c"]) is None


def test_the_empty_text_is_named_by_its_place_in_the_whole_call() -> None:
    config = mal.MALConfig()
    endpoints = {"openai": Endpoint("https://api.openai.com/v1", "k")}
    texts = ["a", "b", "c", "", "e"]
    with pytest.raises(mal.ConfigError, match=r"texts\[3\] is empty"):
        prepare_embed_calls(config, endpoints, texts, "openai/m", {"batch_size": 2})


def test_ollama_embeds_an_empty_text() -> None:
    # Ollama's EmbedHandler (server/routes.go) embeds each string of a list as it
    # is, "" among them; only a bare "" (not a list) is dropped.
    request = embed_request(
        "ollama", "all-minilm", ["a", ""], base_url="http://localhost:11434", api_key=None
    )
    body = json.loads(request.body)
    assert body["input"] == ["a", ""]
    headers = {"content-type": "application/json"}
    assert check(Request("embed", "/api/embed", "", headers, body)) is None
