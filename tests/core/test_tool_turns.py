"""Tool turns as they go back to the provider: which calls a token limit cut
off, every call of a Responses turn whose server reuses an ``output_index``,
and Anthropic's blocks in the order they came. Each stream is decoded whole
and one byte at a time (the Responses recording at every two-piece cut too);
the turn is then put through the provider's own request builder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import mal
from mal.protocols import get_protocol
from mal.protocols._base import GenerateParams, ResponseDecoder

DATA = Path(__file__).resolve().parent.parent / "data"
REUSED = DATA / "openai-responses" / "tools_reused_output_index.sse"


def decoded(provider: str, pieces: list[bytes], *, stream: bool = True) -> ResponseDecoder:
    decoder = get_protocol(provider).decoder(stream)
    for piece in pieces:
        decoder.feed(piece)
    decoder.flush()
    return decoder


def both_ways(provider: str, body: bytes, *, stream: bool = True) -> ResponseDecoder:
    """The decoder of ``body`` fed whole; fed one byte at a time, it must end
    with the same calls and the same turn."""
    whole = decoded(provider, [body], stream=stream)
    bytewise = decoded(provider, [body[i : i + 1] for i in range(len(body))], stream=stream)
    assert completeness(bytewise) == completeness(whole)
    assert [c.id for c in bytewise.tool_calls if c.id.encode() in body] == [
        c.id for c in whole.tool_calls if c.id.encode() in body
    ]
    assert bytewise.text == whole.text
    assert bytewise.message().blocks == whole.message().blocks
    return whole


def completeness(decoder: ResponseDecoder) -> list[tuple[str, str, bool]]:
    return [(c.name, c.arguments_json, c.complete) for c in decoder.tool_calls]


def sent(provider: str, prompt: list[Any]) -> dict[str, Any]:
    """The body of the request that continues ``prompt``."""
    request = get_protocol(provider).build_request(
        GenerateParams(model="m", prompt=prompt, stream=True)
    )
    body: dict[str, Any] = json.loads(request.body)
    return body


def results(calls: list[mal.ToolCall]) -> list[mal.Message]:
    return [mal.Message("tool", f"result {c.id}", tool_call_id=c.id) for c in calls]


# 1. A token limit cuts off the last call only ------------------------------------------


def anthropic(blocks: list[list[dict[str, Any]]], stop: str = "tool_use") -> bytes:
    """An Anthropic stream whose content blocks are given as their start,
    delta... events; each block gets its content_block_stop, as Anthropic
    sends one even for the block a token limit cut off."""
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 1}}}
    ]
    for index, (start, *deltas) in enumerate(blocks):
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        events.extend({"type": "content_block_delta", "index": index, "delta": d} for d in deltas)
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 9}}
    )
    events.append({"type": "message_stop"})
    return "".join(
        f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n" for e in events
    ).encode()


def tool_use(id: str, name: str, *pieces: str) -> list[dict[str, Any]]:
    start = {"type": "tool_use", "id": id, "name": name, "input": {}}
    return [start, *({"type": "input_json_delta", "partial_json": p} for p in pieces)]


def text(value: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": ""}, {"type": "text_delta", "text": value}]


CUT = ('{"path": "notes.txt", "lines": ["W2s', " are")
CUT_JSON = "".join(CUT)


@pytest.mark.parametrize(
    "first",
    [
        tool_use("toolu_1", "now"),  # no input_json_delta at all
        tool_use("toolu_1", "now", ""),  # Anthropic's own shape for a tool without input
        tool_use("toolu_1", "now", "{}"),
    ],
    ids=["no-delta", "empty-delta", "braces"],
)
def test_anthropic_only_the_call_cut_off_is_incomplete(first: list[dict[str, Any]]) -> None:
    body = anthropic([first, tool_use("toolu_2", "save", *CUT)], stop="max_tokens")
    decoder = both_ways("anthropic", body)
    assert decoder.finish_reason == "length"
    assert completeness(decoder) == [("now", "{}", True), ("save", CUT_JSON, False)]
    assert decoder.tool_calls[0].arguments == {}


def test_anthropic_calls_before_cut_text_are_complete() -> None:
    body = anthropic(
        [tool_use("toolu_1", "now"), tool_use("toolu_2", "save", '{"a": 1}'), text("And th")],
        stop="max_tokens",
    )
    decoder = both_ways("anthropic", body)
    assert completeness(decoder) == [("now", "{}", True), ("save", '{"a": 1}', True)]


def test_anthropic_a_call_cut_before_its_input_is_incomplete() -> None:
    # The last block, cut before any of its input came: the model may have meant some.
    body = anthropic([tool_use("toolu_1", "now"), tool_use("toolu_2", "save")], stop="max_tokens")
    decoder = both_ways("anthropic", body)
    assert completeness(decoder) == [("now", "{}", True), ("save", "{}", False)]


def openai_chat(deltas: list[list[dict[str, Any]]], finish: str) -> bytes:
    """A chat completions stream: one chunk per list of tool-call deltas."""
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]}
    ]
    for calls in deltas:
        chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": calls}}]})
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    lines = [f"data: {json.dumps(c)}\n\n" for c in chunks]
    return ("".join(lines) + "data: [DONE]\n\n").encode()


def opened(index: int, id: str, name: str, arguments: str | None = "") -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    if arguments is not None:
        function["arguments"] = arguments
    return {"index": index, "id": id, "type": "function", "function": function}


def more(index: int, arguments: str) -> dict[str, Any]:
    return {"index": index, "function": {"arguments": arguments}}


@pytest.mark.parametrize("no_arguments", [None, ""], ids=["absent", "empty"])
def test_openai_chat_only_the_call_cut_off_is_incomplete(no_arguments: str | None) -> None:
    # A server that sends no arguments text for a tool without parameters.
    body = openai_chat(
        [[opened(0, "call_1", "now", no_arguments)], [opened(1, "call_2", "save")]]
        + [[more(1, piece)] for piece in CUT],
        "length",
    )
    decoder = both_ways("openai", body)
    assert decoder.finish_reason == "length"
    assert completeness(decoder) == [("now", "{}", True), ("save", CUT_JSON, False)]


def test_openai_chat_a_call_cut_before_its_arguments_is_incomplete() -> None:
    body = openai_chat(
        [[opened(0, "call_1", "now", "")], [opened(1, "call_2", "save", None)]], "length"
    )
    decoder = both_ways("openai", body)
    assert completeness(decoder) == [("now", "{}", True), ("save", "{}", False)]


def responses_stream(events: list[dict[str, Any]]) -> bytes:
    return "".join(
        f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n" for e in events
    ).encode()


def function_call(index: int, item_id: str, call_id: str, name: str, *pieces: str) -> list[Any]:
    item = {"type": "function_call", "id": item_id, "call_id": call_id, "name": name}
    events: list[dict[str, Any]] = [
        {
            "type": "response.output_item.added",
            "output_index": index,
            "item": {**item, "arguments": "", "status": "in_progress"},
        }
    ]
    events += [
        {
            "type": "response.function_call_arguments.delta",
            "item_id": item_id,
            "output_index": index,
            "delta": piece,
        }
        for piece in pieces
    ]
    return events


def function_call_done(index: int, item_id: str, call_id: str, name: str, arguments: str) -> Any:
    item = {"type": "function_call", "id": item_id, "call_id": call_id, "name": name}
    return {
        "type": "response.output_item.done",
        "output_index": index,
        "item": {**item, "arguments": arguments, "status": "completed"},
    }


INCOMPLETE = {
    "type": "response.incomplete",
    "response": {
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "usage": {"input_tokens": 5, "output_tokens": 16},
    },
}


def test_responses_only_the_call_cut_off_is_incomplete() -> None:
    # The first call's item is done with no arguments text streamed.
    body = responses_stream(
        [
            *function_call(0, "fc_1", "call_1", "now"),
            function_call_done(0, "fc_1", "call_1", "now", ""),
            *function_call(1, "fc_2", "call_2", "save", *CUT),
            INCOMPLETE,
        ]
    )
    decoder = both_ways("openai-responses", body)
    assert decoder.finish_reason == "length"
    assert completeness(decoder) == [("now", "{}", True), ("save", CUT_JSON, False)]


def test_responses_a_call_before_cut_text_is_complete() -> None:
    message = {"type": "message", "id": "msg_1", "role": "assistant", "content": []}
    body = responses_stream(
        [
            *function_call(0, "fc_1", "call_1", "now"),
            function_call_done(0, "fc_1", "call_1", "now", ""),
            {"type": "response.output_item.added", "output_index": 1, "item": message},
            {"type": "response.output_text.delta", "output_index": 1, "delta": "And th"},
            INCOMPLETE,
        ]
    )
    decoder = both_ways("openai-responses", body)
    assert completeness(decoder) == [("now", "{}", True)]


def test_ollama_whole_calls_stay_complete_at_a_length_finish() -> None:
    # Ollama's calls arrive whole (each parsed by the server): a token limit
    # cannot cut one, not even one without arguments.
    lines = [
        {
            "model": "m",
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "now", "arguments": {}}}],
            },
            "done": False,
        },
        {
            "model": "m",
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "save", "arguments": {"a": 1}}}],
            },
            "done": False,
        },
        {
            "model": "m",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "length",
        },
    ]
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    decoder = both_ways("ollama", body)
    assert decoder.finish_reason == "length"
    assert completeness(decoder) == [("now", "{}", True), ("save", '{"a": 1}', True)]


# 2. A Responses turn whose server reuses an output_index ----------------------------------


def check_reused_turn(decoder: ResponseDecoder) -> None:
    """The recorded Ollama turn: both calls, and both function_call items
    sent back in order, each before its function_call_output."""
    ids = ["call_k3x9q2mz", "call_7fh2lw0a"]
    assert [c.id for c in decoder.tool_calls] == ids
    assert [c.arguments for c in decoder.tool_calls] == [{"city": "Paris"}, {"city": "Zürich"}]
    message = decoder.message()
    assert message.blocks is not None
    assert [b["type"] for b in message.blocks] == ["reasoning", "function_call", "function_call"]
    prompt = [mal.Message("user", "Weather in Paris and Zürich?"), message]
    items = sent("openai-responses", prompt + results(decoder.tool_calls))["input"]
    calls = [item["call_id"] for item in items if item.get("type") == "function_call"]
    outputs = [item["call_id"] for item in items if item.get("type") == "function_call_output"]
    assert calls == ids and outputs == ids
    for call_id in outputs:
        made = next(i for i, item in enumerate(items) if item.get("call_id") == call_id)
        assert items[made]["type"] == "function_call"


def test_responses_reused_output_index_whole_and_bytewise() -> None:
    body = REUSED.read_bytes()
    check_reused_turn(both_ways("openai-responses", body))


def test_responses_reused_output_index_at_every_two_piece_cut() -> None:
    body = REUSED.read_bytes()
    whole = decoded("openai-responses", [body])
    check_reused_turn(whole)
    for cut in range(1, len(body)):
        decoder = decoded("openai-responses", [body[:cut], body[cut:]])
        assert decoder.tool_calls == whole.tool_calls, cut
        assert decoder.message() == whole.message(), cut


def events_of(body: bytes) -> list[dict[str, Any]]:
    return [
        json.loads(block.partition("data: ")[2])
        for block in body.decode().split("\n\n")
        if block.strip()
    ]


def test_responses_reused_output_index_deltas_without_item_ids() -> None:
    # A server that leaves item_id out of the argument deltas: they go to the
    # latest item opened at their output_index.
    events = events_of(REUSED.read_bytes())
    for event in events:
        if event["type"] == "response.function_call_arguments.delta":
            del event["item_id"]
    check_reused_turn(both_ways("openai-responses", responses_stream(events)))


def test_responses_reused_output_index_without_reasoning() -> None:
    # No reasoning item: the turn goes back as its text and calls.
    events = [
        e
        for e in events_of(REUSED.read_bytes())
        if "reasoning" not in e["type"] and (e.get("item") or {}).get("type") != "reasoning"
    ]
    decoder = both_ways("openai-responses", responses_stream(events))
    assert decoder.message().blocks is None
    items = sent(
        "openai-responses",
        [mal.Message("user", "?"), decoder.message(), *results(decoder.tool_calls)],
    )
    assert [(i.get("type"), i.get("call_id")) for i in items["input"][1:]] == [
        (None, None),  # the text
        ("function_call", "call_k3x9q2mz"),
        ("function_call", "call_7fh2lw0a"),
        ("function_call_output", "call_k3x9q2mz"),
        ("function_call_output", "call_7fh2lw0a"),
    ]


def test_responses_items_without_ids_at_one_output_index() -> None:
    # Neither item ids nor distinct output indexes: the items keep the order
    # in which they were added.
    events = [
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"type": "reasoning", "summary": []},
        },
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {"type": "reasoning", "summary": [], "encrypted_content": "e"},
        },
    ]
    for n in (1, 2):
        added: dict[str, Any] = {"type": "function_call", "call_id": f"call_{n}", "name": "now"}
        events += [
            {"type": "response.output_item.added", "output_index": 1, "item": added},
            {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": "{}"},
            {
                "type": "response.output_item.done",
                "output_index": 1,
                "item": {**added, "arguments": "{}"},
            },
        ]
    events.append({"type": "response.completed", "response": {"status": "completed"}})
    decoder = both_ways("openai-responses", responses_stream(events))
    assert [c.id for c in decoder.tool_calls] == ["call_1", "call_2"]
    blocks = decoder.message().blocks
    assert blocks is not None
    assert [b.get("call_id") for b in blocks] == [None, "call_1", "call_2"]


# 3. An Anthropic turn goes back block by block ---------------------------------------------

INTERLEAVED_BLOCKS = [
    {"type": "text", "text": "First Paris."},
    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    {"type": "text", "text": "Then Zürich."},
    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Zürich"}},
]


def interleaved_stream() -> bytes:
    return anthropic(
        [
            text("First Paris."),
            tool_use("toolu_1", "get_weather", '{"city": ', '"Paris"}'),
            text("Then Zürich."),
            tool_use("toolu_2", "get_weather", '{"city": "Z', 'ürich"}'),
        ]
    )


def interleaved_body() -> bytes:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-mock",
        "content": INTERLEAVED_BLOCKS,
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 30},
    }
    return json.dumps(message, ensure_ascii=False).encode()


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_anthropic_turn_goes_back_block_by_block(stream: bool) -> None:
    body = interleaved_stream() if stream else interleaved_body()
    decoder = both_ways("anthropic", body, stream=stream)
    assert decoder.text == "First Paris.Then Zürich."
    prompt = [mal.Message("user", "Weather?"), decoder.message()]
    messages = sent("anthropic", prompt + results(decoder.tool_calls))["messages"]
    assert messages[1] == {"role": "assistant", "content": INTERLEAVED_BLOCKS}
    assert messages[2]["role"] == "user"
    assert [b["tool_use_id"] for b in messages[2]["content"]] == ["toolu_1", "toolu_2"]


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_anthropic_two_text_blocks_are_not_merged(stream: bool) -> None:
    blocks = [
        {"type": "text", "text": "One."},
        {"type": "text", "text": "Two."},
        {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}},
    ]
    if stream:
        body = anthropic([text("One."), text("Two."), tool_use("toolu_1", "now")])
    else:
        message = {"type": "message", "content": blocks, "stop_reason": "tool_use"}
        body = json.dumps(message).encode()
    decoder = both_ways("anthropic", body, stream=stream)
    messages = sent(
        "anthropic", [mal.Message("user", "?"), decoder.message(), *results(decoder.tool_calls)]
    )
    assert messages["messages"][1]["content"] == blocks


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_anthropic_text_then_calls_goes_back_in_its_order(stream: bool) -> None:
    # The common turn, one text block then the calls: rebuilt from the fields,
    # which is the order it came in.
    blocks = [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Oslo"}},
    ]
    if stream:
        body = anthropic(
            [
                text("Checking."),
                tool_use("toolu_1", "now", ""),
                tool_use("toolu_2", "get_weather", '{"city": "Oslo"}'),
            ]
        )
    else:
        message = {"type": "message", "content": blocks, "stop_reason": "tool_use"}
        body = json.dumps(message).encode()
    decoder = both_ways("anthropic", body, stream=stream)
    assert decoder.message().blocks is None
    messages = sent(
        "anthropic", [mal.Message("user", "?"), decoder.message(), *results(decoder.tool_calls)]
    )
    assert messages["messages"][1]["content"] == blocks
