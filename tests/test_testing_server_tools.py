"""Tool calls, JSON output, refusals and thinking signatures of the mock server.

The raw bytes are read off a socket and parsed with plain `json`, never with
mal's own decoders, so these tests check the wire shapes themselves against the
providers' official formats (openai-python stream snapshots, anthropic-sdk-python
stream fixtures, Ollama's api.md and api/types.go).
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from mal.testing import MockServer, Reply, ScriptedToolCall
from tests.support.requests import (
    ANTHROPIC_HEADERS,
    anthropic_messages,
    ollama_chat,
    ollama_generate,
    openai_chat,
    png,
)
from tests.test_testing_server import Conn, Raw, call, call_chat, call_messages, sse

WEATHER = {"name": "get_weather", "arguments": {"city": "Paris"}}
STOCK = {"name": "get_stock_price", "arguments": {"ticker": "AAPL", "exchange": "NASDAQ"}}
OPENAI_ID = re.compile(r"call_[A-Za-z0-9]{24}")
ANTHROPIC_ID = re.compile(r"toolu_[A-Za-z0-9]{24}")
OLLAMA_ID = re.compile(r"call_[a-z0-9]{8}")


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


def compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def openai_events(r: Raw) -> list[Any]:
    assert r.status == 200 and r.complete
    return [sse(c)[1] for c in r.chunks]


def anthropic_events(r: Raw) -> list[tuple[str | None, Any]]:
    assert r.status == 200 and r.complete
    return [sse(c) for c in r.chunks]


def ollama_lines(r: Raw) -> list[Any]:
    assert r.status == 200 and r.complete
    return [json.loads(c) for c in r.chunks]


def one_body(r: Raw) -> Any:
    assert r.status == 200 and r.complete, r.body
    assert "transfer-encoding" not in r.headers
    return json.loads(r.body)


def assert_pieces(pieces: list[str], whole: str) -> None:
    """Argument pieces join to the arguments and are 3 to 8 characters (the last may be shorter)."""
    assert "".join(pieces) == whole
    assert pieces, "no pieces"
    assert all(3 <= len(p) <= 8 for p in pieces[:-1]), pieces
    assert 1 <= len(pieces[-1]) <= 8


# --------------------------------------------------------------------------- Reply


def test_dict_calls_become_scripted_tool_calls_and_text_defaults_to_empty() -> None:
    reply = Reply(tool_calls=[WEATHER, ScriptedToolCall("f", "{}", id="x")])
    assert reply.tool_calls == [
        ScriptedToolCall("get_weather", {"city": "Paris"}),
        ScriptedToolCall("f", "{}", "x"),
    ]
    assert reply.text == ""
    assert Reply(text="Let me check.", tool_calls=[WEATHER]).text == "Let me check."
    assert Reply(json={"a": [1, "é"]}).text == '{"a":[1,"é"]}'
    assert Reply(refusal="No.").text == ""


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tool_calls": [{"arguments": {}}]},
        {"tool_calls": [{"name": "f", "args": {}}]},
        {"tool_calls": [{"name": "f", "arguments": 3}]},
        {"tool_calls": [{"name": ""}]},
        {"tool_calls": ["f"]},
        {"tool_calls": WEATHER},
        {"tool_calls": [WEATHER], "tool_calls_per_chunk": 0},
        {"json": {"a": 1}, "text": "x"},
        {"json": {"a": 1}, "tokens": ["x"]},
        {"refusal": "No.", "text": "x"},
        {"refusal": "No.", "tool_calls": [WEATHER]},
        {"refusal": "No.", "json": [1]},
        {"embedding_dim": 0},
    ],
)
def test_reply_rejects_bad_scripts(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Reply(**kwargs)


def test_replace_keeps_a_json_or_refusal_reply_valid() -> None:
    reply = Reply(json={"a": 1})
    assert dataclasses.replace(reply, chunk_delay=0.5).text == '{"a":1}'
    assert dataclasses.replace(Reply(refusal="No."), refusal="Never.").text == ""
    with pytest.raises(ValueError, match="cannot be encoded"):
        Reply(json={"a": object()})


# --------------------------------------------------------------------------- OpenAI


def test_openai_stream_two_calls(server: MockServer) -> None:
    server.add(Reply(tool_calls=[WEATHER, STOCK], input_tokens=44))
    events = openai_events(
        call_chat(server, model="gpt-4o", stream=True, stream_options={"include_usage": True})
    )
    assert events[-1] == "[DONE]"
    usage_chunk, finish_chunk = events[-2], events[-3]
    chunks = events[:-3]
    assert all(c["usage"] is None for c in [*chunks, finish_chunk])
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)

    # The very first delta carries the role and the first call's header.
    first = deltas[0]
    assert list(first) == ["role", "content", "tool_calls", "refusal"]
    assert first["role"] == "assistant" and first["content"] is None and first["refusal"] is None
    ids: list[str] = []
    pieces: dict[int, list[str]] = {0: [], 1: []}
    order: list[int] = []
    for delta in deltas:
        (entry,) = delta["tool_calls"]
        order.append(entry["index"])
        if "id" in entry:
            assert list(entry) == ["index", "id", "type", "function"]
            assert entry["type"] == "function" and entry["function"]["arguments"] == ""
            assert OPENAI_ID.fullmatch(entry["id"])
            ids.append(entry["id"])
            assert entry["function"]["name"] == ("get_weather", "get_stock_price")[entry["index"]]
        else:
            assert list(entry) == ["index", "function"] and list(entry["function"]) == ["arguments"]
            pieces[entry["index"]].append(entry["function"]["arguments"])
    assert "role" not in deltas[order.index(1)]
    assert order == sorted(order), "calls come one after the other"
    assert len(set(ids)) == 2
    assert_pieces(pieces[0], '{"city":"Paris"}')
    assert_pieces(pieces[1], compact(STOCK["arguments"]))

    assert finish_chunk["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}
    ]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == 44
    assert usage_chunk["usage"]["completion_tokens"] > 0


def test_openai_stream_text_then_call_without_usage(server: MockServer) -> None:
    server.add(Reply(text="Let me check.", tool_calls=[WEATHER]))
    events = openai_events(call_chat(server, model="gpt-4o", stream=True))
    assert events[-1] == "[DONE]"
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert all("usage" not in e for e in events[:-1])
    deltas = [e["choices"][0]["delta"] for e in events[:-2]]
    assert deltas[0] == {"role": "assistant", "content": "", "refusal": None}
    texts = [d["content"] for d in deltas if "content" in d][1:]
    assert "".join(texts) == "Let me check."
    tools = [d for d in deltas if "tool_calls" in d]
    assert deltas[-len(tools) :] == tools, "the call comes after the text"
    assert list(tools[0]) == ["tool_calls"] and tools[0]["tool_calls"][0]["id"].startswith("call_")


def test_openai_stream_raw_arguments_id_and_finish_override(server: MockServer) -> None:
    broken = '{"city": "Par'
    server.add(
        Reply(
            tool_calls=[ScriptedToolCall("get_weather", broken, id="call_fixed")],
            finish_reason="stop",
        )
    )
    events = openai_events(call_chat(server, stream=True))
    entries = [e["choices"][0]["delta"]["tool_calls"][0] for e in events[:-2]]
    assert entries[0]["id"] == "call_fixed"
    assert_pieces([x["function"]["arguments"] for x in entries[1:]], broken)
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


def test_openai_complete_tool_calls(server: MockServer) -> None:
    server.add(
        Reply(tool_calls=[WEATHER, STOCK]), Reply(text="Let me check.", tool_calls=[WEATHER])
    )
    obj = one_body(call_chat(server, model="gpt-4o"))
    (choice,) = obj["choices"]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["role"] == "assistant" and message["content"] is None
    calls = message["tool_calls"]
    assert [c["type"] for c in calls] == ["function", "function"]
    assert all(OPENAI_ID.fullmatch(c["id"]) for c in calls)
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert json.loads(calls[1]["function"]["arguments"]) == STOCK["arguments"]

    message = one_body(call_chat(server))["choices"][0]["message"]
    assert message["content"] == "Let me check."
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["get_weather"]


def test_openai_refusal(server: MockServer) -> None:
    refusal = "I'm sorry, I can't help with that request."
    server.add(Reply(refusal=refusal), Reply(refusal=refusal))
    events = openai_events(call_chat(server, stream=True))
    deltas = [e["choices"][0]["delta"] for e in events[:-2]]
    assert deltas[0] == {"role": "assistant", "content": None, "refusal": ""}
    assert all(list(d) == ["refusal"] for d in deltas[1:]) and len(deltas) > 2
    assert "".join(d["refusal"] for d in deltas[1:]) == refusal
    assert events[-2]["choices"][0]["finish_reason"] == "stop"

    obj = one_body(call_chat(server))
    message = obj["choices"][0]["message"]
    assert message["content"] is None and message["refusal"] == refusal
    assert obj["choices"][0]["finish_reason"] == "stop"


def test_json_reply_streams_compact_json_as_text(server: MockServer) -> None:
    data = {"city": "San Francisco", "temperature": 61, "units": "f"}
    server.add(Reply(json=data), Reply(json=data), Reply(json=data))
    events = openai_events(call_chat(server, stream=True))
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == compact(data)
    anthropic = anthropic_events(call_messages(server, stream=True))
    text = "".join(d["delta"].get("text", "") for _, d in anthropic if "delta" in d)
    assert json.loads(text) == data
    lines = ollama_lines(call(server, "/api/chat", ollama_chat(format="json")))
    assert json.loads("".join(x["message"]["content"] for x in lines)) == data


def test_openai_complete_message_keys_in_the_api_order(server: MockServer) -> None:
    server.add(Reply(tool_calls=[WEATHER]), Reply(text="Hi"), Reply(refusal=""))
    message = one_body(call_chat(server))["choices"][0]["message"]
    assert list(message) == ["role", "content", "tool_calls", "refusal"]
    assert message["refusal"] is None
    message = one_body(call_chat(server))["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "Hi", "refusal": None}
    # An empty refusal is still a refusal: content null, refusal "".
    obj = one_body(call_chat(server))
    assert obj["choices"][0]["message"] == {"role": "assistant", "content": None, "refusal": ""}


def test_openai_error_in_the_middle_of_the_arguments(server: MockServer) -> None:
    # Events: the call's opening delta, then its pieces; the error replaces the second piece.
    server.add(Reply(tool_calls=[WEATHER], error_after=2))
    events = openai_events(call_chat(server, stream=True))
    assert "tool_calls" in events[0]["choices"][0]["delta"]
    piece = events[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
    assert '{"city":"Paris"}'.startswith(piece) and piece != '{"city":"Paris"}'
    assert set(events[2]) == {"error"} and len(events) == 3


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_stream_thinking_text_and_calls(server: MockServer) -> None:
    server.add(
        Reply(
            reasoning="The user wants weather.",
            signature="EvMCCkYICxgCKkCHP2cSuEdc",
            text="Let me check.",
            tool_calls=[WEATHER, STOCK],
        )
    )
    events = anthropic_events(call_messages(server, model="claude", stream=True))
    assert all(name == data["type"] for name, data in events)
    kinds = [d["type"] for _, d in events]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert events[-2][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}

    blocks: dict[int, dict[str, Any]] = {}
    deltas: dict[int, list[dict[str, Any]]] = {}
    open_index: int | None = None
    for _, data in events[1:-2]:
        if data["type"] == "ping":
            continue
        index = data["index"]
        if data["type"] == "content_block_start":
            assert open_index is None and index == len(blocks)
            blocks[index], deltas[index], open_index = data["content_block"], [], index
        elif data["type"] == "content_block_delta":
            assert index == open_index
            deltas[index].append(data["delta"])
        else:
            assert data["type"] == "content_block_stop" and index == open_index
            open_index = None
    assert open_index is None

    assert blocks[0] == {"type": "thinking", "thinking": "", "signature": ""}
    thinking = deltas[0]
    assert thinking[-1] == {"type": "signature_delta", "signature": "EvMCCkYICxgCKkCHP2cSuEdc"}
    assert all(d["type"] == "thinking_delta" for d in thinking[:-1])
    assert "".join(d["thinking"] for d in thinking[:-1]) == "The user wants weather."
    assert blocks[1] == {"type": "text", "text": ""}
    assert "".join(d["text"] for d in deltas[1]) == "Let me check."
    for index, spec in ((2, WEATHER), (3, STOCK)):
        block = blocks[index]
        assert list(block) == ["type", "id", "name", "input"]
        assert block["type"] == "tool_use" and block["name"] == spec["name"]
        assert block["input"] == {} and ANTHROPIC_ID.fullmatch(block["id"])
        assert deltas[index][0] == {"type": "input_json_delta", "partial_json": ""}
        assert all(d["type"] == "input_json_delta" for d in deltas[index])
        assert_pieces([d["partial_json"] for d in deltas[index][1:]], compact(spec["arguments"]))
    assert blocks[2]["id"] != blocks[3]["id"]


def test_anthropic_stream_only_a_call_starts_at_block_zero(server: MockServer) -> None:
    server.add(Reply(tool_calls=[{"name": "ping", "arguments": {}, "id": "toolu_given"}]))
    events = anthropic_events(call_messages(server, stream=True))
    kinds = [d["type"] for _, d in events]
    assert kinds == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[2][1]
    assert start["index"] == 0
    block = {"type": "tool_use", "id": "toolu_given", "name": "ping", "input": {}}
    assert start["content_block"] == block
    assert [d["delta"]["partial_json"] for _, d in events[3:5]] == ["", "{}"]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_anthropic_default_signature_is_base64(server: MockServer) -> None:
    server.add(Reply(reasoning="Hmm.", text="Hi"), Reply(reasoning="Hmm.", text="Hi"))
    events = anthropic_events(call_messages(server, stream=True))
    sig = [d["delta"] for _, d in events if d.get("delta", {}).get("type") == "signature_delta"]
    assert len(sig) == 1 and len(sig[0]["signature"]) > 100
    base64.b64decode(sig[0]["signature"], validate=True)
    stop_at = next(i for i, (_, d) in enumerate(events) if d["type"] == "content_block_stop")
    assert events[stop_at - 1][1]["delta"]["type"] == "signature_delta"
    obj = one_body(call_messages(server))
    assert obj["content"][0]["type"] == "thinking"
    base64.b64decode(obj["content"][0]["signature"], validate=True)


def test_anthropic_complete_tool_use_blocks(server: MockServer) -> None:
    server.add(
        Reply(reasoning="Hmm.", signature="sig-1", text="Let me check.", tool_calls=[WEATHER]),
        Reply(tool_calls=[WEATHER, STOCK]),
        Reply(tool_calls=[{"name": "f", "arguments": '{"a": '}]),
    )
    obj = one_body(call_messages(server, model="claude"))
    assert obj["stop_reason"] == "tool_use"
    thinking, text, tool = obj["content"]
    assert thinking == {"type": "thinking", "thinking": "Hmm.", "signature": "sig-1"}
    assert text == {"type": "text", "text": "Let me check."}
    assert list(tool) == ["type", "id", "name", "input"]
    assert tool["type"] == "tool_use" and ANTHROPIC_ID.fullmatch(tool["id"])
    assert tool["name"] == "get_weather" and tool["input"] == {"city": "Paris"}

    obj = one_body(call_messages(server))
    assert [b["type"] for b in obj["content"]] == ["tool_use", "tool_use"]
    assert obj["content"][1]["input"] == STOCK["arguments"]
    # Arguments that are not JSON cannot be an object: they go as the string.
    obj = one_body(call_messages(server))
    assert obj["content"][0]["input"] == '{"a": '


def test_anthropic_refusal(server: MockServer) -> None:
    refusal = "I can't help with that."
    server.add(Reply(refusal=refusal), Reply(refusal=refusal))
    events = anthropic_events(call_messages(server, stream=True))
    text = "".join(d["delta"]["text"] for _, d in events if d["type"] == "content_block_delta")
    assert text == refusal
    assert events[-2][1]["delta"]["stop_reason"] == "refusal"
    obj = one_body(call_messages(server))
    assert obj["content"] == [{"type": "text", "text": refusal}]
    assert obj["stop_reason"] == "refusal"


# --------------------------------------------------------------------------- Ollama


def test_ollama_stream_one_call_per_chunk(server: MockServer) -> None:
    server.add(Reply(text="Let me check.", tool_calls=[WEATHER, STOCK]))
    lines = ollama_lines(call(server, "/api/chat", ollama_chat(model="llama3.2")))
    final = lines[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["message"] == {"role": "assistant", "content": ""}
    text = [x for x in lines[:-1] if "tool_calls" not in x["message"]]
    tools = [x for x in lines[:-1] if "tool_calls" in x["message"]]
    assert lines[: len(text)] == text, "the text comes first"
    assert "".join(x["message"]["content"] for x in text) == "Let me check."
    assert len(tools) == 2
    for i, (line, spec) in enumerate(zip(tools, (WEATHER, STOCK), strict=True)):
        assert line["done"] is False
        message = line["message"]
        assert message["role"] == "assistant" and message["content"] == ""
        (entry,) = message["tool_calls"]
        assert list(entry) == ["id", "function"] and OLLAMA_ID.fullmatch(entry["id"])
        function = {"index": i, "name": spec["name"], "arguments": spec["arguments"]}
        assert entry["function"] == function


def test_ollama_stream_calls_per_chunk(server: MockServer) -> None:
    calls = [WEATHER, STOCK, {"name": "get_weather", "arguments": {"city": "Paris"}}]
    server.add(Reply(tool_calls=calls, tool_calls_per_chunk=2))
    lines = ollama_lines(call(server, "/api/chat", ollama_chat(model="llama3.2")))
    assert [len(x["message"]["tool_calls"]) for x in lines[:-1]] == [2, 1]
    entries = [e for x in lines[:-1] for e in x["message"]["tool_calls"]]
    assert [e["function"]["index"] for e in entries] == [0, 1, 2]
    # Two identical calls are legal and stay two calls, with their own ids.
    assert entries[0]["function"] == entries[2]["function"] | {"index": 0}
    assert len({e["id"] for e in entries}) == 3
    assert lines[-1]["done_reason"] == "stop"


def test_ollama_complete_and_generate(server: MockServer) -> None:
    server.add(
        Reply(reasoning="Hmm.", tool_calls=[WEATHER]),
        Reply(tool_calls=[WEATHER]),
        Reply(refusal="No."),
    )
    obj = one_body(call(server, "/api/chat", ollama_chat(stream=False)))
    assert obj["done"] is True and obj["done_reason"] == "stop"
    message = obj["message"]
    assert message["content"] == "" and message["thinking"] == "Hmm."
    (entry,) = message["tool_calls"]
    assert OLLAMA_ID.fullmatch(entry["id"])
    assert entry["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}

    r = call(server, "/api/generate", ollama_generate(model="llama3.2"))
    assert r.status == 400
    assert r.headers["content-type"].startswith("application/json")
    assert set(json.loads(r.body)) == {"error"}

    lines = ollama_lines(call(server, "/api/generate", ollama_generate()))
    assert "".join(x["response"] for x in lines) == "No."
    assert lines[-1]["done_reason"] == "stop"


# --------------------------------------------------------------------------- requests

#: A strict JSON schema both providers' structured outputs take: every property
#: required, no other allowed (OpenAI's structured-outputs guide, "Supported
#: schemas"; Anthropic's structured-outputs page, "JSON Schema limitations").
CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}


def test_big_requests_are_recorded_intact(server: MockServer) -> None:
    picture = png(2500, 2550)
    assert len(picture) < 20_000_000  # OpenAI's vision guide: up to 20 MB per image
    image = base64.b64encode(picture).decode()
    assert len(image) > 25_000_000
    body = {
        "model": "gpt-4o",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + image}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": CITY, "strict": True},
            }
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "W", "schema": CITY, "strict": True},
        },
    }
    server.add(Reply(text="A picture."))
    r = call(server, "/v1/chat/completions", body)
    assert r.status == 200
    (recorded,) = server.requests
    assert recorded.json == body
    assert recorded.body == json.dumps(body).encode()


def test_chunked_requests_with_images_and_formats_are_recorded(server: MockServer) -> None:
    image = base64.b64encode(png(1100, 1000)).decode()
    # Anthropic's limit is 5 MB of base64 text; the body still goes in several 1 MiB pieces.
    assert 2 << 20 < len(image) < 5 << 20
    anthropic = {
        "model": "claude",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "What is the weather in Paris, and what is this?"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "22C"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": image},
                    },
                ],
            },
        ],
        "tools": [{"name": "get_weather", "input_schema": CITY}],
        "output_config": {"format": {"type": "json_schema", "schema": CITY}},
    }
    ollama = {
        "model": "llava",
        "messages": [{"role": "user", "content": "?", "images": [image]}],
        "format": CITY,
        "stream": False,
    }
    for path, body, headers in (
        ("/v1/messages", anthropic, ANTHROPIC_HEADERS),
        ("/api/chat", ollama, {}),
    ):
        data = json.dumps(body).encode()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            pieces = (data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20))
            conn.request("POST", path, pieces, {"Content-Type": "application/json", **headers})
            response = conn.getresponse()
            assert response.status == 200
            response.read()
        finally:
            conn.close()
        assert server.requests[-1].headers["transfer-encoding"] == "chunked"
        assert server.requests[-1].json == body


# --------------------------------------------------------------------------- tool loops

#: The loop's two calls, with the ids the history sends back.
LOOP_CALLS = [{**WEATHER, "id": "call_weather"}, {**STOCK, "id": "call_stock"}]
#: Each turn's text before its call, and the result of its call.
LOOP_TURNS = [("", LOOP_CALLS[0], "22C"), ("Let me check.", LOOP_CALLS[1], "190.5")]
LOOP_SCHEMAS = {
    "get_weather": {"type": "object", "properties": {"city": {"type": "string"}}},
    "get_stock_price": {
        "type": "object",
        "properties": {"ticker": {"type": "string"}, "exchange": {"type": "string"}},
    },
}


def tool_loop_body(path: str, turn: int, extra: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    """The body and headers of request `turn` of a tool loop on `path`: the
    question, then each earlier turn's call and its result, in the provider's
    own form, with the tools declared as a real loop sends them (a history of
    tool use without tools was refused: anthropics/anthropic-sdk-python#494)."""
    done = LOOP_TURNS[:turn]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather and AAPL, please."}]
    if path == "/v1/messages":
        for text, spec, result in done:
            use = {"type": "tool_use", "id": spec["id"], "name": spec["name"]}
            blocks = [{"type": "text", "text": text}] if text else []
            blocks.append({**use, "input": spec["arguments"]})
            messages.append({"role": "assistant", "content": blocks})
            answer = {"type": "tool_result", "tool_use_id": spec["id"], "content": result}
            messages.append({"role": "user", "content": [answer]})
        tools = [{"name": n, "input_schema": s} for n, s in LOOP_SCHEMAS.items()]
        body = anthropic_messages(messages=messages, tools=tools, **extra)
        return body, ANTHROPIC_HEADERS
    functions = [{"name": n, "parameters": s} for n, s in LOOP_SCHEMAS.items()]
    tools = [{"type": "function", "function": f} for f in functions]
    if path == "/v1/chat/completions":
        for text, spec, result in done:
            function = {"name": spec["name"], "arguments": compact(spec["arguments"])}
            entry = {"id": spec["id"], "type": "function", "function": function}
            messages.append({"role": "assistant", "content": text or None, "tool_calls": [entry]})
            messages.append({"role": "tool", "tool_call_id": spec["id"], "content": result})
        return openai_chat(messages=messages, tools=tools, **extra), {}
    for text, spec, result in done:
        entry = {"function": {"name": spec["name"], "arguments": spec["arguments"]}}
        messages.append({"role": "assistant", "content": text, "tool_calls": [entry]})
        messages.append({"role": "tool", "content": result, "tool_name": spec["name"]})
    return ollama_chat(messages=messages, tools=tools, **extra), {}


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/v1/chat/completions", {"stream": True}),
        ("/v1/chat/completions", {}),
        ("/v1/messages", {"stream": True}),
        ("/v1/messages", {}),
        ("/api/chat", {}),
        ("/api/chat", {"stream": False}),
    ],
)
def test_tool_loop_over_one_keep_alive_connection(
    server: MockServer, path: str, extra: dict[str, Any]
) -> None:
    server.add(
        Reply(tool_calls=[LOOP_CALLS[0]]),
        Reply(text="Let me check.", tool_calls=[LOOP_CALLS[1]]),
        Reply(text="done"),
    )
    conn = Conn(server.port)
    bodies: list[bytes] = []
    try:
        for turn in range(3):
            body, headers = tool_loop_body(path, turn, extra)
            conn.send(path, body, **headers)
            r = conn.response()
            assert r.status == 200 and r.complete and not r.eof
            assert r.headers.get("connection", "").lower() != "close"
            bodies.append(r.body)
    finally:
        conn.close()
    assert server.connections == 1 and server.pending == 0
    # Each turn adds the assistant's call and its result to the history.
    assert [len(q.json["messages"]) for q in server.requests] == [1, 3, 5]
    assert b"get_weather" in bodies[0] and b"get_stock_price" in bodies[1]
    assert b"done" in bodies[2] and b"get_" not in bodies[2]
