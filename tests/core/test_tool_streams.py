"""Tool-call streams the recorded corpus does not hold: the deviations real
servers make (the mutations of the interleaved OpenAI stream), arguments that
are not JSON, calls cut off by the token limit, Anthropic server tools, and
non-streamed bodies. Each body is decoded whole and one byte at a time."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mal
from mal.protocols import get_protocol
from mal.protocols._base import ResponseDecoder
from mal.protocols._tools import ToolCallAssembler

DATA = Path(__file__).resolve().parent.parent / "data"
INTERLEAVED = (DATA / "openai" / "tools_interleaved.sse").read_bytes()
EXPECTED_A = ("call_A", "search", {"q": 'café "x" 日本', "n": 1})
EXPECTED_B = ("call_B", "read", {"path": "C:\\tmp"})


def decode(provider: str, body: bytes, *, stream: bool = True) -> tuple[list[mal.Chunk], Any]:
    """The chunks and decoder of ``body`` fed whole; fed one byte at a time
    must give the same calls and the same argument pieces per call."""
    results = []
    for pieces in ([body], [body[i : i + 1] for i in range(len(body))]):
        decoder: ResponseDecoder = get_protocol(provider).decoder(stream)
        chunks: list[mal.Chunk] = []
        for piece in pieces:
            chunks.extend(decoder.feed(piece))
        chunks.extend(decoder.flush())
        results.append((chunks, decoder))
    (whole, decoder), (bytewise, other) = results
    assert pieces_of(whole) == pieces_of(bytewise)
    assert [(c.name, c.arguments_json) for c in decoder.tool_calls] == [
        (c.name, c.arguments_json) for c in other.tool_calls
    ]
    return whole, decoder


def pieces_of(chunks: list[mal.Chunk]) -> dict[int, str]:
    out: dict[int, str] = {}
    for chunk in chunks:
        for delta in chunk.tool_calls:
            out[delta.index] = out.get(delta.index, "") + delta.arguments
    return out


def calls_of(decoder: Any) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c.id, c.name, c.arguments) for c in decoder.tool_calls]


def check_joined(chunks: list[mal.Chunk], decoder: Any) -> None:
    joined = pieces_of(chunks)
    assert [joined[i] for i in range(len(decoder.tool_calls))] == [
        c.arguments_json for c in decoder.tool_calls
    ]


# OpenAI: the interleaved stream and its mutations ------------------------------------


def events(body: bytes) -> list[dict[str, Any]]:
    out = []
    for block in body.decode().split("\n\n"):
        if block.startswith("data: {"):
            out.append(json.loads(block[len("data: ") :]))
    return out


def sse(chunks: list[dict[str, Any]]) -> bytes:
    lines = [f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in chunks]
    return ("".join(lines) + "data: [DONE]\n\n").encode()


def entries(chunk: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = chunk["choices"][0]["delta"].get("tool_calls", [])
    return result


def mutate(change: Callable[[dict[str, Any], dict[str, str]], None]) -> bytes:
    """The interleaved stream with ``change(entry, first)`` applied to each
    tool entry; ``first`` maps an index to its call's id and name."""
    chunks = events(INTERLEAVED)
    known: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for entry in entries(chunk):
            fn = entry.get("function", {})
            if "id" in entry:
                known[entry["index"]] = {"id": entry["id"], "name": fn["name"]}
            change(entry, known[entry["index"]])
    return sse(chunks)


def test_the_interleaved_stream() -> None:
    chunks, decoder = decode("openai", INTERLEAVED)
    assert calls_of(decoder) == [EXPECTED_A, EXPECTED_B]
    assert decoder.tool_calls[0].arguments_json == '{"q":"caf\\u00e9 \\"x\\" 日本","n":1}'
    assert decoder.finish_reason == "tool_calls"
    check_joined(chunks, decoder)


def repeat_everything(entry: dict[str, Any], first: dict[str, str]) -> None:
    entry["id"] = first["id"]
    entry["type"] = "function"
    entry["function"]["name"] = first["name"]


def null_continuations(entry: dict[str, Any], first: dict[str, str]) -> None:
    if entry.get("id") is None:
        entry.update(id=None, type=None)
        entry["function"]["name"] = None


def empty_continuations(entry: dict[str, Any], first: dict[str, str]) -> None:
    if "id" not in entry:
        entry.update(id="", type="")
        entry["function"]["name"] = ""


@pytest.mark.parametrize("change", [repeat_everything, null_continuations, empty_continuations])
def test_servers_that_repeat_or_null_the_id_and_name(
    change: Callable[[dict[str, Any], dict[str, str]], None],
) -> None:
    chunks, decoder = decode("openai", mutate(change))
    assert calls_of(decoder) == [EXPECTED_A, EXPECTED_B]
    check_joined(chunks, decoder)
    # id and name come once per call, however often the server sent them.
    firsts = [(d.index, d.id, d.name) for c in chunks for d in c.tool_calls if d.id or d.name]
    assert firsts == [(0, "call_A", "search"), (1, "call_B", "read")]


def test_a_finish_of_stop_with_calls_is_tool_calls() -> None:
    chunks = events(INTERLEAVED)
    chunks[-1]["choices"][0]["finish_reason"] = "stop"
    _, decoder = decode("openai", sse(chunks))
    assert decoder.finish_reason == "tool_calls" and decoder.raw_finish_reason == "stop"
    assert calls_of(decoder) == [EXPECTED_A, EXPECTED_B]


def one_call(arguments: list[str], *, index: bool, finish: str = "tool_calls") -> bytes:
    """A single call streamed in ``arguments`` pieces, with or without index."""
    chunks = []
    for i, piece in enumerate(arguments):
        entry: dict[str, Any] = {"function": {"arguments": piece}}
        if i == 0:
            entry.update(id="call_1", type="function")
            entry["function"]["name"] = "lookup"
        if index:
            entry["index"] = 0
        chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [entry]}}]})
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return sse(chunks)


@pytest.mark.parametrize("index", [True, False])
def test_a_call_without_index(index: bool) -> None:
    chunks, decoder = decode("openai", one_call(['{"k": ', '"v', '"}'], index=index))
    assert calls_of(decoder) == [("call_1", "lookup", {"k": "v"})]
    check_joined(chunks, decoder)


def test_whole_arguments_in_one_delta() -> None:
    chunks, decoder = decode("openai", one_call(['{"k": "v", "n": [1, 2]}'], index=True))
    assert calls_of(decoder) == [("call_1", "lookup", {"k": "v", "n": [1, 2]})]
    check_joined(chunks, decoder)


@pytest.mark.parametrize("arguments", [[""], ["", ""], [" "]])
def test_no_arguments_is_an_empty_object(arguments: list[str]) -> None:
    chunks, decoder = decode("openai", one_call(arguments, index=True))
    (call,) = decoder.tool_calls
    assert call.arguments == {} and call.complete
    assert json.loads(call.arguments_json) == {}
    check_joined(chunks, decoder)


def test_arguments_null_are_nothing() -> None:
    body = one_call(["", '{"a": 1}'], index=True).replace(b'"arguments": ""', b'"arguments": null')
    assert b"null" in body
    chunks, decoder = decode("openai", body)
    assert calls_of(decoder) == [("call_1", "lookup", {"a": 1})]
    check_joined(chunks, decoder)


def test_a_new_id_on_a_known_index_is_a_new_call() -> None:
    # Servers that put every call on index 0.
    chunks = [
        {"choices": [{"index": 0, "delta": {"tool_calls": [entry]}}]}
        for entry in (
            {"index": 0, "id": "c1", "function": {"name": "a", "arguments": '{"x":'}},
            {"index": 0, "function": {"arguments": "1}"}},
            {"index": 0, "id": "c2", "function": {"name": "b", "arguments": "{}"}},
        )
    ]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    got, decoder = decode("openai", sse(chunks))
    assert calls_of(decoder) == [("c1", "a", {"x": 1}), ("c2", "b", {})]
    check_joined(got, decoder)


def test_a_call_without_an_id_is_given_one() -> None:
    body = one_call(['{"k": 1}'], index=True).replace(b'"id": "call_1", ', b"")
    _, decoder = decode("openai", body)
    (call,) = decoder.tool_calls
    assert call.id.startswith("call_") and len(call.id) == 29
    assert call.arguments == {"k": 1}


@pytest.mark.parametrize(
    "arguments",
    [['{"k": 1'], ['{"k": 1}}'], ["[1, 2]"], ['"text"'], ["{'k': 1}"]],
)
def test_arguments_that_are_not_an_object_are_a_decode_error(arguments: list[str]) -> None:
    decoder = get_protocol("openai").decoder(True)
    text = decoder.feed(b'data: {"choices":[{"index":0,"delta":{"content":"Calling."}}]}\n\n')
    assert text[0].text == "Calling."
    decoder.feed(one_call(arguments, index=True))
    with pytest.raises(mal.DecodeError, match="'lookup'") as info:
        decoder.flush()
    assert info.value.raw_text == arguments[0]
    assert info.value.partial_text == "Calling."


def test_a_call_cut_off_by_the_token_limit_is_incomplete() -> None:
    chunks, decoder = decode("openai", one_call(['{"k": "lo'], index=True, finish="length"))
    (call,) = decoder.tool_calls
    assert decoder.finish_reason == "length"
    assert call.complete is False and call.arguments == {}
    assert call.arguments_json == '{"k": "lo'
    check_joined(chunks, decoder)
    # Cut off before any argument at all: not complete either.
    _, decoder = decode("openai", one_call([""], index=True, finish="length"))
    assert decoder.tool_calls[0].complete is False


def test_a_nonstreamed_body_with_calls() -> None:
    body = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "a", "arguments": '{"x": 1}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "b", "arguments": ""},
                        },
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7},
    }
    chunks, decoder = decode("openai", json.dumps(body).encode(), stream=False)
    assert calls_of(decoder) == [("call_1", "a", {"x": 1}), ("call_2", "b", {})]
    assert len(chunks) == 1
    check_joined(chunks, decoder)
    assert decoder.message() == mal.Message("assistant", "", tool_calls=decoder.tool_calls)


# Anthropic --------------------------------------------------------------------------


def anthropic(blocks: list[list[dict[str, Any]]], stop: str = "tool_use") -> bytes:
    """A message whose content blocks are given as their start, delta... events."""
    out = [{"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 1}}}]
    for index, (start, *deltas) in enumerate(blocks):
        out.append({"type": "content_block_start", "index": index, "content_block": start})
        out.extend({"type": "content_block_delta", "index": index, "delta": d} for d in deltas)
        out.append({"type": "content_block_stop", "index": index})
    out.append(
        {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 9}}
    )
    out.append({"type": "message_stop"})
    return "".join(
        f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n" for e in out
    ).encode()


def json_delta(text: str) -> dict[str, str]:
    return {"type": "input_json_delta", "partial_json": text}


def test_anthropic_server_tools_are_not_calls() -> None:
    body = anthropic(
        [
            [
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
                json_delta('{"query": "mal"}'),
            ],
            [{"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}],
            [{"type": "text", "text": ""}, {"type": "text_delta", "text": "Found it."}],
            [
                {"type": "tool_use", "id": "toolu_1", "name": "save", "input": {}},
                json_delta('{"note": "ok"}'),
            ],
        ]
    )
    chunks, decoder = decode("anthropic", body)
    assert calls_of(decoder) == [("toolu_1", "save", {"note": "ok"})]
    assert decoder.text == "Found it."
    check_joined(chunks, decoder)
    # The server tool's blocks go back verbatim, its input assembled.
    blocks = decoder.message().blocks
    assert blocks[0] == {
        "type": "server_tool_use",
        "id": "srvtoolu_1",
        "name": "web_search",
        "input": {"query": "mal"},
    }
    assert blocks[1]["type"] == "web_search_tool_result"
    assert blocks[2] == {"type": "text", "text": "Found it."}
    assert blocks[3] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "save",
        "input": {"note": "ok"},
    }


def test_anthropic_redacted_thinking_goes_back_verbatim() -> None:
    body = anthropic(
        [
            [{"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}],
            [{"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}, json_delta("")],
        ]
    )
    chunks, decoder = decode("anthropic", body)
    assert calls_of(decoder) == [("toolu_1", "now", {})]
    check_joined(chunks, decoder)
    assert decoder.message().blocks == [
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
        {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}},
    ]


def test_anthropic_no_argument_call_gets_its_pieces_at_block_stop() -> None:
    body = anthropic([[{"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}]])
    decoder = get_protocol("anthropic").decoder(True)
    stop = body.index(b"event: content_block_stop")
    before = decoder.feed(body[:stop])
    assert pieces_of(before) == {0: ""}
    at_stop = decoder.feed(body[stop : body.index(b"event: message_delta")])
    assert pieces_of(at_stop) == {0: "{}"}


def test_anthropic_cut_off_in_the_middle_of_a_call() -> None:
    # The shape of anthropic-sdk-python's incomplete_partial_json fixture.
    body = anthropic(
        [
            [{"type": "text", "text": ""}, {"type": "text_delta", "text": "Saving it now."}],
            [
                {"type": "tool_use", "id": "toolu_1", "name": "make_file", "input": {}},
                json_delta('{"filename": "taxes.txt", "lines_of_text": ["W2s'),
                json_delta(" are"),
            ],
        ],
        stop="max_tokens",
    )
    chunks, decoder = decode("anthropic", body)
    (call,) = decoder.tool_calls
    assert call.complete is False and call.name == "make_file"
    assert call.arguments_json == '{"filename": "taxes.txt", "lines_of_text": ["W2s are'
    assert decoder.finish_reason == "length" and decoder.text == "Saving it now."
    check_joined(chunks, decoder)


def test_anthropic_invalid_input_is_a_decode_error() -> None:
    body = anthropic(
        [[{"type": "tool_use", "id": "toolu_1", "name": "save", "input": {}}, json_delta("{nope")]]
    )
    decoder = get_protocol("anthropic").decoder(True)
    decoder.feed(body)
    with pytest.raises(mal.DecodeError, match="'save'") as info:
        decoder.flush()
    assert info.value.raw_text == "{nope"


def test_anthropic_nonstreamed_tool_use() -> None:
    body = {
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Zürich"},
            },
            {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 7},
    }
    chunks, decoder = decode("anthropic", json.dumps(body).encode(), stream=False)
    assert calls_of(decoder) == [
        ("toolu_1", "get_weather", {"city": "Zürich"}),
        ("toolu_2", "now", {}),
    ]
    assert decoder.text == "Checking." and decoder.finish_reason == "tool_calls"
    check_joined(chunks, decoder)
    assert decoder.message().blocks is None  # text and calls: rebuilt from the fields


# Ollama -----------------------------------------------------------------------------


def test_ollama_string_arguments_and_missing_ones() -> None:
    # Some servers send the arguments as JSON text, or leave them out.
    lines = [
        {
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "a", "arguments": '{"x": 1}'}},
                    {"function": {"name": "b"}},
                    {"function": {"name": "c", "arguments": None}},
                ],
            },
            "done": False,
        },
        {"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"},
    ]
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    chunks, decoder = decode("ollama", body)
    assert [(c.name, c.arguments) for c in decoder.tool_calls] == [
        ("a", {"x": 1}),
        ("b", {}),
        ("c", {}),
    ]
    assert len({c.id for c in decoder.tool_calls}) == 3
    assert decoder.finish_reason == "tool_calls"
    check_joined(chunks, decoder)


# The assembler itself ----------------------------------------------------------------


def test_a_call_without_a_name_is_a_decode_error() -> None:
    tools = ToolCallAssembler()
    tools.piece(0, "call_1", None, '{"a": 1}')
    with pytest.raises(mal.DecodeError, match="no name"):
        tools.finish(cut_off=False)


def test_more_for_an_unknown_key_is_nothing() -> None:
    tools = ToolCallAssembler()
    assert tools.more(5, '{"a": 1}') is None
    assert not tools and tools.finish(cut_off=False) == []
