"""OpenAI structured output, strict tools and Responses conversations through
the drivers, against the strict built-in server (it answers 400 what OpenAI
would): the schema sent is in strict mode's subset and is taken, a bound left
out of it still holds (an answer that breaks it is re-asked), a tuple of mixed
types goes non-strict, a strict tool round is taken (a null optional argument
gets its default), and an assistant turn with list content is taken by the
Responses API."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import msgspec
import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import Api
from ..support.shapes import Circle, Point, Square

pytestmark = pytest.mark.anyio

MODELS = {"openai": "openai/gpt-4o-mini", "openai-responses": "openai-responses/gpt-4o-mini"}


def sent_format(provider: str, body: dict[str, Any]) -> dict[str, Any]:
    if provider == "openai":
        spec: dict[str, Any] = body["response_format"]["json_schema"]
        return spec
    return dict(body["text"]["format"])


class Sketch(msgspec.Struct):
    title: Annotated[str, msgspec.Meta(min_length=1)]
    thumbnail: bytes
    tags: set[str]
    shape: Circle | Square
    origin: Annotated[Point, msgspec.Meta(description="Where it starts.")]
    size: tuple[float, float]


GOOD = {
    "title": "Sun",
    "thumbnail": "aGk=",
    "tags": ["warm"],
    "shape": {"type": "circle", "radius": 1.0},
    "origin": {"x": 0.0, "y": 0.0},
    "size": [2.0, 2.0],
}
EXPECTED = Sketch("Sun", b"hi", {"warm"}, Circle(1.0), Point(0.0, 0.0), (2.0, 2.0))


@pytest.mark.parametrize("provider", list(MODELS))
async def test_a_strict_schema_is_taken_and_a_dropped_bound_re_asked(
    api: Api, server: MockServer, provider: str
) -> None:
    assert server.strict
    # The first answer breaks minLength, which strict mode is not sent.
    server.add(Reply(text=json.dumps({**GOOD, "title": ""})), Reply(text=json.dumps(GOOD)))
    async with api.client_for(server) as client:
        sketch = await client.generate(
            "Draw.", model=MODELS[provider], schema=Sketch, schema_retries=1
        )
    assert sketch == EXPECTED
    first, second = server.requests
    spec = sent_format(provider, first.json)
    assert spec["strict"] is True
    assert spec["schema"]["properties"]["title"] == {
        "type": "string",
        "description": "(minLength: 1)",
    }
    # The re-ask names what was wrong.
    assert "$.title" in second.body.decode()


class Located(msgspec.Struct):
    name: str
    where: tuple[float, str]


@pytest.mark.parametrize("provider", list(MODELS))
async def test_a_tuple_of_mixed_types_goes_non_strict(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(Reply(text='{"name": "Oslo", "where": [59.9, "N"]}'))
    async with api.client_for(server) as client:
        found = await client.generate("Where?", model=MODELS[provider], schema=Located)
    assert found == Located("Oslo", (59.9, "N"))
    (request,) = server.requests
    spec = sent_format(provider, request.json)
    assert spec["strict"] is False
    assert "prefixItems" in spec["schema"]["properties"]["where"]


def draw(
    title: Annotated[str, msgspec.Meta(min_length=1)],
    shape: Circle | Square,
    origin: Annotated[Point, msgspec.Meta(description="Where it starts.")],
    unit: Literal["cm", "in"] = "cm",
) -> str:
    """Draw a shape."""
    return f"drew {title} in {unit}"


@pytest.mark.parametrize("provider", list(MODELS))
async def test_a_strict_tool_round_is_taken(api: Api, server: MockServer, provider: str) -> None:
    # A strict tool's optional parameter is nullable: null stands for its default.
    arguments = {
        "title": "Sun",
        "shape": {"type": "square", "side": 1.0},
        "origin": GOOD["origin"],
        "unit": None,
    }
    server.add(Reply(tool_calls=[{"name": "draw", "arguments": arguments}]), Reply(text="Done."))
    tool = mal.Tool.from_function(draw, strict=True)
    async with api.client_for(server) as client:
        text = await client.generate(
            "Draw the sun.", model=MODELS[provider], tools=[tool], tool_rounds=1
        )
    assert text == "Done."
    first, second = server.requests
    (declared,) = first.json["tools"]
    function = declared.get("function", declared)  # Chat Completions nests it
    assert function["strict"] is True
    assert function["parameters"]["properties"]["origin"]["description"] == "Where it starts."
    assert "drew Sun in cm" in second.body.decode()


async def test_an_assistant_turn_with_list_content_goes_to_the_responses_api(
    api: Api, server: MockServer
) -> None:
    server.add(Reply(text="Three."))
    conversation = [
        mal.Message("user", "Count."),
        mal.Message("assistant", ["One.", "Two."]),
        mal.Message("user", ["Go", "on."]),
    ]
    async with api.client_for(server) as client:
        text = await client.generate(conversation, model=MODELS["openai-responses"])
    assert text == "Three."
    (request,) = server.requests
    assert request.json["input"][1] == {
        "role": "assistant",
        "content": [
            {"type": "output_text", "text": "One."},
            {"type": "output_text", "text": "Two."},
        ],
    }
    assert request.json["input"][2]["content"][0] == {"type": "input_text", "text": "Go"}
