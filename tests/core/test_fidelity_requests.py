"""Requests the hosted APIs would reject, built right: the token limit's field
for OpenAI's reasoning models, OpenAI's own API and Azure; Azure's
api-version on every base URL; Anthropic's subset of JSON Schema for
structured outputs."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from typing import Annotated, Any

import msgspec
import pytest

import mal
from mal.config import Endpoint, with_api_version
from mal.protocols import GenerateParams, get_protocol
from mal.protocols.openai import AZURE_API_VERSION, reasoning_model
from mal.schema import OutputSchema

VLLM = "http://localhost:8000/v1"
AZURE = "https://r.openai.azure.com"


def body_of(provider: str, base_url: str | None = None, **params: Any) -> dict[str, Any]:
    params.setdefault("prompt", "Hi")
    request = get_protocol(provider).build_request(GenerateParams(**params), base_url=base_url)
    body: dict[str, Any] = json.loads(request.body)
    return body


def token_fields(body: dict[str, Any]) -> dict[str, Any]:
    names = ("max_tokens", "max_completion_tokens", "max_output_tokens")
    return {key: body[key] for key in names if key in body}


# The token limit: max_tokens or max_completion_tokens ----------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "o1",
        "o1-mini",
        "o1-2024-12-17",
        "o3",
        "o3-mini",
        "o4-mini",
        "O3-MINI",
        "gpt-5",
        "gpt-5-nano",
        "gpt-5.1",
        "openai/o3-mini",
        "openai/o1:free",
    ],
)
def test_reasoning_models_get_max_completion_tokens_on_any_server(model: str) -> None:
    assert reasoning_model(model)
    body = body_of("openai", VLLM, model=model, max_tokens=100)
    assert token_fields(body) == {"max_completion_tokens": 100}


@pytest.mark.parametrize(
    "model",
    ["gpt-4o", "gpt-4o-mini", "qwen2.5-coder:7b", "omni-moderation", "gpt-50", "llama3:o1"],
)
def test_other_models_on_other_servers_keep_max_tokens(model: str) -> None:
    assert not reasoning_model(model)
    body = body_of("openai", VLLM, model=model, max_tokens=100)
    assert token_fields(body) == {"max_tokens": 100}


@pytest.mark.parametrize(
    "base_url", [None, "https://api.openai.com/v1", "https://api.openai.com/v1/"]
)
def test_openai_own_api_gets_max_completion_tokens_for_every_model(base_url: str | None) -> None:
    body = body_of("openai", base_url, model="gpt-4o-mini", max_tokens=64)
    assert token_fields(body) == {"max_completion_tokens": 64}


def test_no_limit_sends_neither_field() -> None:
    assert token_fields(body_of("openai", VLLM, model="o3-mini")) == {}
    assert token_fields(body_of("openai", None, model="gpt-4o")) == {}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"max_tokens": 5}, {"max_tokens": 5}),
        ({"max_completion_tokens": 7}, {"max_completion_tokens": 7}),
    ],
)
@pytest.mark.parametrize(("base_url", "model"), [(None, "o3"), (VLLM, "o3"), (VLLM, "gpt-4o")])
def test_an_explicit_extra_body_wins(
    extra: dict[str, int], expected: dict[str, int], base_url: str | None, model: str
) -> None:
    body = body_of("openai", base_url, model=model, max_tokens=100, extra_body=extra)
    assert token_fields(body) == expected


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (f"{AZURE}?api-version={AZURE_API_VERSION}", "max_completion_tokens"),
        (f"{AZURE}?api-version=2024-09-01-preview", "max_completion_tokens"),
        (f"{AZURE}?api-version=2025-04-01-preview", "max_completion_tokens"),
        (f"{AZURE}/openai/v1", "max_completion_tokens"),
        (f"{AZURE}/openai/deployments/d?api-version=2024-08-01-preview", "max_tokens"),
        (f"{AZURE}?api-version=2024-06-01", "max_tokens"),
    ],
)
def test_azure_takes_max_completion_tokens_since_2024_09_01(base_url: str, expected: str) -> None:
    # A deployment's name says nothing of its model: the api-version decides.
    for deployment in ("my-gpt-4o", "o3-mini"):
        body = body_of("azure", base_url, model=deployment, max_tokens=10)
        assert token_fields(body) == {expected: 10}


def test_the_responses_api_takes_max_output_tokens() -> None:
    for base_url in (None, VLLM):
        for model in ("o3", "gpt-4o"):
            body = body_of("openai-responses", base_url, model=model, max_tokens=32)
            assert token_fields(body) == {"max_output_tokens": 32}


# Azure's api-version on every base URL --------------------------------------------------


def test_with_api_version() -> None:
    assert with_api_version(AZURE, "2024-10-21") == f"{AZURE}?api-version=2024-10-21"
    assert with_api_version(f"{AZURE}?a=1", "v") == f"{AZURE}?a=1&api-version=v"
    assert with_api_version(f"{AZURE}?api-version=x", "v") == f"{AZURE}?api-version=x"
    assert with_api_version(AZURE, None) == AZURE
    assert with_api_version("", "v") == ""


def test_a_replaced_endpoint_keeps_the_version_of_the_resolved_one() -> None:
    resolved = Endpoint(f"{AZURE}?api-version=2024-06-01", "k", "2024-06-01")
    other = "https://other.openai.azure.com"
    assert resolved.replaced(None, None) is resolved
    assert resolved.replaced(other, None) == Endpoint(
        f"{other}?api-version=2024-06-01", "k", "2024-06-01"
    )
    assert resolved.replaced(None, "k2") == Endpoint(resolved.base_url, "k2", "2024-06-01")
    plain = Endpoint("https://api.openai.com/v1", "k")
    assert plain.replaced("http://localhost:8000/v1", None).base_url == "http://localhost:8000/v1"


# Anthropic's structured outputs: its subset of JSON Schema ------------------------------

#: What Anthropic's structured outputs reject ("JSON Schema limitations").
REJECTED = {
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
}
FORMATS = {
    "date-time",
    "time",
    "date",
    "duration",
    "email",
    "hostname",
    "uri",
    "ipv4",
    "ipv6",
    "uuid",
}


class Address(msgspec.Struct):
    street: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    # A property whose name is a keyword is a property, not a keyword.
    minimum: int = 0


class Order(msgspec.Struct):
    id: uuid.UUID
    quantity: Annotated[int, msgspec.Meta(ge=1, le=100, description="How many.")]
    price: Annotated[float, msgspec.Meta(gt=0, multiple_of=0.01)]
    tags: Annotated[list[str], msgspec.Meta(min_length=2, max_length=5)]
    notes: Annotated[list[str], msgspec.Meta(min_length=1)]
    codes: set[int]
    total: decimal.Decimal
    wait: datetime.timedelta
    address: Address
    backup: Address | None = None


def schema_nodes(node: Any) -> list[dict[str, Any]]:
    """Every schema in ``node`` (not the names of ``properties``, not enum data)."""
    if isinstance(node, list):
        return [n for item in node for n in schema_nodes(item)]
    if not isinstance(node, dict):
        return []
    out = [node]
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions", "patternProperties"):
            out += [n for sub in value.values() for n in schema_nodes(sub)]
        elif key in ("items", "additionalProperties", "not", "anyOf", "allOf", "oneOf"):
            out += schema_nodes(value)
    return out


def sent_to_anthropic(schema: Any, **params: Any) -> dict[str, Any]:
    return body_of("anthropic", model="claude-sonnet-4-5", schema=OutputSchema.of(schema), **params)


def test_anthropic_gets_its_subset_of_json_schema() -> None:
    body = sent_to_anthropic(Order)
    sent = body["output_config"]["format"]["schema"]
    nodes = schema_nodes(sent)
    assert len(nodes) > 10
    for node in nodes:
        assert not REJECTED & set(node), node
        assert node.get("minItems", 0) in (0, 1), node
        assert node.get("format", "uuid") in FORMATS, node
        if node.get("type") == "object":
            assert node["additionalProperties"] is False, node
    properties = sent["properties"]
    # The exact 400 of the report: "For 'integer' type, property 'minimum' is not supported".
    assert properties["quantity"]["type"] == "integer"
    assert "minimum" not in properties["quantity"]
    # What is left out is named in the description, for the model to follow.
    assert properties["quantity"]["description"] == "How many. (minimum: 1; maximum: 100)"
    assert properties["tags"]["description"] == "(maxItems: 5; minItems: 2)"
    assert properties["notes"]["minItems"] == 1
    assert properties["id"]["format"] == "uuid" and properties["wait"]["format"] == "duration"
    assert "format" not in properties["total"]  # "decimal" is not a format Anthropic takes
    address = sent["$defs"]["Address"]
    assert address["properties"]["minimum"] == {"type": "integer", "default": 0}
    assert address["additionalProperties"] is False
    # The schema itself is untouched: OpenAI and Ollama are still sent every bound.
    assert OutputSchema.of(Order).json_schema["properties"]["quantity"]["minimum"] == 1


def test_anthropic_schema_for_a_json_schema_dict() -> None:
    schema = {
        "type": "object",
        "properties": {
            "kind": {"oneOf": [{"const": "a"}, {"type": "integer", "minimum": 0}]},
            "meta": {
                "type": "object",
                "properties": {"x": {"type": "string", "maxLength": 3}},
                "default": {"type": "object", "minimum": 1},
            },
        },
    }
    sent = sent_to_anthropic(schema)["output_config"]["format"]["schema"]
    assert sent == {
        "type": "object",
        "properties": {
            "kind": {"anyOf": [{"const": "a"}, {"type": "integer", "description": "(minimum: 0)"}]},
            "meta": {
                "type": "object",
                "properties": {"x": {"type": "string", "description": "(maxLength: 3)"}},
                # Data is data: a default is sent as it is.
                "default": {"type": "object", "minimum": 1},
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    }


class Node(msgspec.Struct):
    name: str
    children: list[Node] = []


@pytest.mark.parametrize(
    "schema",
    [
        dict[str, int],
        {"type": "object", "properties": {"m": {"type": "object"}}},
        {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": True},
        {"type": "object", "patternProperties": {"^x": {"type": "integer"}}},
        {"type": "object", "properties": {"m": {"additionalProperties": {"type": "integer"}}}},
        Node,
        {"type": "object", "properties": {"e": {"enum": [{"a": 1}]}}},
        {"type": "object", "properties": {"r": {"$ref": "https://example.com/s.json"}}},
        {
            "type": "object",
            "properties": {"a": {"allOf": [{"$ref": "#/$defs/A"}]}},
            "$defs": {"A": {"type": "string"}},
        },
    ],
)
def test_a_schema_without_an_anthropic_form_goes_through_the_forced_tool(schema: Any) -> None:
    output = OutputSchema.of(schema)
    assert output.anthropic_schema is None
    body = sent_to_anthropic(schema)
    assert "output_config" not in body
    (tool,) = body["tools"]
    # A tool without strict takes any JSON schema: it is sent whole.
    assert tool["name"] == output.name and tool["input_schema"] == output.json_schema
    assert body["tool_choice"] == {"type": "tool", "name": output.name}
    protocol = get_protocol("anthropic")
    params = GenerateParams(model="claude-sonnet-4-5", prompt="Hi", schema=output)
    for stream in (True, False):
        assert protocol.decoder_for(params, stream).answer_tool == output.name  # type: ignore[attr-defined]
    with pytest.raises(mal.ConfigError, match="no form in Anthropic's structured outputs"):
        sent_to_anthropic(
            schema, extra_body={"thinking": {"type": "enabled", "budget_tokens": 1024}}
        )


def test_the_forced_tool_sends_the_whole_schema() -> None:
    # anthropic_schema="tool": a tool without strict takes every keyword, bounds included.
    output = OutputSchema.of(Order)
    body = sent_to_anthropic(Order, schema_tool=True)
    assert body["tools"][0]["input_schema"] == output.json_schema
    assert body["tools"][0]["input_schema"]["properties"]["quantity"]["minimum"] == 1


def test_tools_are_sent_as_given() -> None:
    # Only strict tools share the limitations, and mal sends no strict tool to Anthropic.
    tool = mal.Tool(
        name="pick",
        description="Pick.",
        parameters=obj(n={"type": "integer", "minimum": 1}),
    )
    body = body_of("anthropic", model="claude-sonnet-4-5", tools=[tool])
    assert body["tools"] == [
        {"name": "pick", "description": "Pick.", "input_schema": tool.parameters}
    ]


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}
