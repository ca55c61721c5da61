"""Structured output with Anthropic through the drivers, against the built-in
server: the schema sent is the subset Anthropic takes, and a bound left out
of it still holds: an answer that breaks it is re-asked (``schema_retries``)
or is an OutputValidationError, through structured outputs and through the
forced answer tool alike."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, Api

pytestmark = pytest.mark.anyio

MODEL = MODELS["anthropic"]


class Order(msgspec.Struct):
    item: str
    quantity: Annotated[int, msgspec.Meta(ge=1, le=100)]


ORDER_DICT = {
    "title": "Order",
    "type": "object",
    "properties": {
        "item": {"type": "string", "minLength": 1},
        "quantity": {"type": "integer", "minimum": 1, "maximum": 100},
    },
    "required": ["item", "quantity"],
}
GOOD = {"item": "tea", "quantity": 2}
BAD = {"item": "tea", "quantity": 0}  # breaks minimum: 1, which Anthropic is not sent


def config(server: MockServer, **fields: Any) -> mal.MALConfig:
    return mal.MALConfig(
        base_urls={"anthropic": server.url("anthropic")},
        max_retries=0,
        **fields,
    )


def answer(value: dict[str, Any], through_tool: bool) -> Reply:
    if through_tool:
        return Reply(tool_calls=[{"name": "Order", "arguments": value}])
    return Reply(text=msgspec.json.encode(value).decode())


async def complete(api: Api, client: Any, prompt: str, **options: Any) -> mal.Response:
    if api.sync:
        return client.raw.complete(prompt, **options)  # type: ignore[no-any-return]
    return await client.raw.complete(prompt, **options)  # type: ignore[no-any-return]


@pytest.mark.parametrize("through_tool", [False, True], ids=["output_config", "tool"])
@pytest.mark.parametrize("schema", [Order, ORDER_DICT], ids=["struct", "dict"])
async def test_a_dropped_bound_is_re_asked(
    api: Api, server: MockServer, schema: Any, through_tool: bool
) -> None:
    server.add(answer(BAD, through_tool), answer(GOOD, through_tool))
    seen: list[str] = []
    hooks = mal.Hooks(on_schema_retry=lambda n, exc: seen.append(str(exc)))
    mode = "tool" if through_tool else "output_config"
    async with api.client(config(server, anthropic_schema=mode), hooks=hooks) as client:
        r = await complete(api, client, "Order?", model=MODEL, schema=schema, schema_retries=1)
    assert r.parsed == (Order("tea", 2) if schema is Order else GOOD)
    assert r.stats is not None and r.stats.schema_retries == 1
    assert len(seen) == 1 and "$.quantity" in seen[0]
    first, second = (request.json for request in server.requests)
    if through_tool:
        # The forced tool takes the whole schema, bounds included.
        assert "output_config" not in first
        assert first["tools"][0]["input_schema"]["properties"]["quantity"]["minimum"] == 1
    else:
        sent = first["output_config"]["format"]["schema"]
        assert sent["additionalProperties"] is False
        assert "minimum" not in sent["properties"]["quantity"]
        assert "maximum" not in sent["properties"]["quantity"]
    # The re-ask tells the model what was wrong.
    assert "$.quantity" in str(second["messages"][-1]["content"])


@pytest.mark.parametrize("schema", [Order, ORDER_DICT], ids=["struct", "dict"])
async def test_a_dropped_bound_without_retries_is_an_error(
    api: Api, server: MockServer, schema: Any
) -> None:
    server.add(answer(BAD, False))
    async with api.client(config(server)) as client:
        with pytest.raises(mal.OutputValidationError) as info:
            await client.generate("Order?", model=MODEL, schema=schema)
    assert "$.quantity" in str(info.value) and ">= 1" in str(info.value)
    assert msgspec.json.decode(info.value.raw_text) == BAD


async def test_free_keys_go_through_the_forced_tool(api: Api, server: MockServer) -> None:
    class Stock(msgspec.Struct):
        counts: dict[str, int]

    server.add(Reply(tool_calls=[{"name": "Stock", "arguments": {"counts": {"tea": 3}}}]))
    async with api.client(config(server)) as client:
        stock = await client.generate("Stock?", model=MODEL, schema=Stock)
    assert stock == Stock({"tea": 3})
    (request,) = server.requests
    assert "output_config" not in request.json
    assert request.json["tool_choice"] == {"type": "tool", "name": "Stock"}
