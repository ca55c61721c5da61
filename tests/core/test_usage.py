"""Usage under prompt caching and reasoning, provider by provider: what each
decoder makes of the usage fields a provider (or a compatible server) sends,
sent, left out or null. The recorded bodies under ``tests/data`` replay the
whole shapes; these are the cases around them."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import mal
from mal.protocols import get_protocol

_encode = msgspec.json.encode


def decode(provider: str, body: bytes, *, stream: bool = True) -> tuple[list[mal.Chunk], Any]:
    decoder = get_protocol(provider).decoder(stream)
    chunks = [*decoder.feed(body), *decoder.flush()]
    return chunks, decoder


def usages(chunks: list[mal.Chunk]) -> list[mal.Usage]:
    return [chunk.usage for chunk in chunks if chunk.usage is not None]


def test_usage_fields_keep_their_positional_order() -> None:
    usage = mal.Usage(10, 20, 3, 4, 5)
    assert usage.input_tokens == 10
    assert usage.output_tokens == 20
    assert usage.cache_read_tokens == 3
    assert usage.cache_write_tokens == 4
    assert usage.reasoning_tokens == 5
    assert mal.Usage(1, 2) == mal.Usage(1, 2, None, None, None)
    # None is left out of the encoded form, as before.
    assert (
        msgspec.json.encode(mal.Usage(1, 2, 0))
        == b'{"input_tokens":1,"output_tokens":2,"cache_read_tokens":0}'
    )


# Anthropic ------------------------------------------------------------------


def anthropic(start: dict[str, Any] | None, *deltas: dict[str, Any] | None) -> bytes:
    """A streamed message: ``start`` is message_start's usage, each of
    ``deltas`` a message_delta's (None: the event has no usage)."""
    message: dict[str, Any] = {"id": "msg_1", "type": "message", "role": "assistant", "content": []}
    if start is not None:
        message["usage"] = start
    events = [("message_start", {"type": "message_start", "message": message})]
    events.append(
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hi"},
            },
        )
    )
    for index, usage in enumerate(deltas):
        event: dict[str, Any] = {"type": "message_delta", "delta": {"stop_reason": None}}
        if index == len(deltas) - 1:
            event["delta"] = {"stop_reason": "end_turn", "stop_sequence": None}
        if usage is not None:
            event["usage"] = usage
        events.append(("message_delta", event))
    events.append(("message_stop", {"type": "message_stop"}))
    return b"".join(
        b"event: %s\ndata: %s\n\n" % (name.encode(), _encode(data)) for name, data in events
    )


CACHED_START = {
    "input_tokens": 1,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 38,
    "output_tokens": 1,
}


def test_anthropic_input_tokens_count_the_cached_input_too() -> None:
    # The same prompt was input_tokens=1 on /v1/messages and 39 on an
    # OpenAI-shaped endpoint: mal's input_tokens is 39 on both.
    chunks, decoder = decode("anthropic", anthropic(CACHED_START, {"output_tokens": 15}))
    assert decoder.usage == mal.Usage(39, 15, 38, 0)
    assert usages(chunks) == [mal.Usage(39, 1, 38, 0), mal.Usage(None, 15)]


def test_anthropic_message_delta_repeating_the_counts_changes_nothing() -> None:
    delta = {**CACHED_START, "output_tokens": 15}
    chunks, decoder = decode("anthropic", anthropic(CACHED_START, delta))
    assert decoder.usage == mal.Usage(39, 15, 38, 0)
    assert usages(chunks)[-1] == mal.Usage(39, 15, 38, 0)


@pytest.mark.parametrize(
    "delta",
    [
        {"output_tokens": 15},
        # MessageDeltaUsage's optional fields, sent as null.
        {
            "input_tokens": None,
            "cache_creation_input_tokens": None,
            "cache_read_input_tokens": None,
            "output_tokens": 15,
        },
    ],
)
def test_anthropic_message_delta_leaving_the_input_out_keeps_it(delta: dict[str, Any]) -> None:
    _, decoder = decode("anthropic", anthropic(CACHED_START, delta))
    assert decoder.usage == mal.Usage(39, 15, 38, 0)


def test_anthropic_message_delta_with_input_tokens_alone_keeps_the_cached_counts() -> None:
    # The cached counts of message_start still count: the whole input is the
    # sum of the latest value of each of the three fields.
    chunks, decoder = decode(
        "anthropic", anthropic(CACHED_START, {"input_tokens": 5, "output_tokens": 15})
    )
    assert decoder.usage == mal.Usage(43, 15, 38, 0)
    assert usages(chunks)[-1] == mal.Usage(43, 15)


def test_anthropic_message_delta_with_a_cache_count_alone_updates_the_input() -> None:
    delta = {"cache_read_input_tokens": 50, "output_tokens": 15}
    chunks, decoder = decode("anthropic", anthropic(CACHED_START, delta))
    assert decoder.usage == mal.Usage(51, 15, 50, 0)
    assert usages(chunks)[-1] == mal.Usage(51, 15, 50)


def test_anthropic_cumulative_counts_over_several_message_deltas() -> None:
    chunks, decoder = decode(
        "anthropic",
        anthropic(
            CACHED_START,
            {"cache_creation_input_tokens": 100, "output_tokens": 7},
            None,
            {"output_tokens": 15, "output_tokens_details": {"thinking_tokens": 9}},
        ),
    )
    assert decoder.usage == mal.Usage(139, 15, 38, 100, 9)
    # The stream's usage is the latest value reported for each field.
    merged: dict[str, int] = {}
    for usage in usages(chunks):
        for field in mal.Usage.__struct_fields__:
            if getattr(usage, field) is not None:
                merged[field] = getattr(usage, field)
    assert mal.Usage(**merged) == decoder.usage


def test_anthropic_without_cache_fields_reports_no_cache() -> None:
    # Older responses and compatible servers send input_tokens and output_tokens only.
    start = {"input_tokens": 25, "output_tokens": 1}
    _, decoder = decode("anthropic", anthropic(start, {"output_tokens": 27}))
    assert decoder.usage == mal.Usage(25, 27)


def test_anthropic_cache_counts_without_input_tokens_give_no_input_total() -> None:
    start = {"cache_read_input_tokens": 38, "output_tokens": 1}
    _, decoder = decode("anthropic", anthropic(start, {"output_tokens": 15}))
    assert decoder.usage == mal.Usage(None, 15, 38)


def test_anthropic_whole_message() -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "Hi"}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 4,
            "cache_creation_input_tokens": 1200,
            "cache_read_input_tokens": 0,
            "output_tokens": 80,
            "output_tokens_details": {"thinking_tokens": 60},
        },
    }
    (chunk,), decoder = decode("anthropic", _encode(body), stream=False)
    assert chunk.usage == decoder.usage == mal.Usage(1204, 80, 0, 1200, 60)


# OpenAI chat completions ----------------------------------------------------


def openai_stream(*usages: dict[str, Any] | None) -> bytes:
    """A streamed completion whose last chunks carry ``usages``."""
    events: list[Any] = [
        {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    events += [{"choices": [], "usage": usage} for usage in usages]
    return b"".join(b"data: %s\n\n" % _encode(event) for event in events) + b"data: [DONE]\n\n"


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {
                "prompt_tokens": 1136,
                "completion_tokens": 267,
                "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 192},
            },
            mal.Usage(1136, 267, 1024, 0, 192),
        ),
        # Compatible servers: the details null (vLLM), left out, empty, or null inside.
        (
            {"prompt_tokens": 30, "completion_tokens": 15, "prompt_tokens_details": None},
            mal.Usage(30, 15),
        ),
        (
            {
                "prompt_tokens": 30,
                "completion_tokens": 15,
                "prompt_tokens_details": None,
                "completion_tokens_details": None,
            },
            mal.Usage(30, 15),
        ),
        ({"prompt_tokens": 30, "completion_tokens": 15}, mal.Usage(30, 15)),
        (
            {
                "prompt_tokens": 30,
                "completion_tokens": 15,
                "prompt_tokens_details": {},
                "completion_tokens_details": {},
            },
            mal.Usage(30, 15),
        ),
        (
            {
                "prompt_tokens": 30,
                "completion_tokens": 15,
                "prompt_tokens_details": {"cached_tokens": None},
                "completion_tokens_details": {"reasoning_tokens": None},
            },
            mal.Usage(30, 15),
        ),
        # DeepSeek: its own count of the cached prompt tokens...
        (
            {
                "prompt_tokens": 76,
                "completion_tokens": 52,
                "prompt_cache_hit_tokens": 64,
                "prompt_cache_miss_tokens": 12,
                "completion_tokens_details": {"reasoning_tokens": 40},
            },
            mal.Usage(76, 52, 64, None, 40),
        ),
        # ...beside OpenAI's, in its newer responses (the same count)...
        (
            {
                "prompt_tokens": 102056,
                "completion_tokens": 252,
                "prompt_cache_hit_tokens": 94464,
                "prompt_cache_miss_tokens": 7592,
                "prompt_tokens_details": {"cached_tokens": 94464},
            },
            mal.Usage(102056, 252, 94464),
        ),
        # ...and where the two differ, DeepSeek's own field is the one read.
        (
            {
                "prompt_tokens": 76,
                "completion_tokens": 52,
                "prompt_cache_hit_tokens": 64,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
            mal.Usage(76, 52, 64),
        ),
    ],
)
@pytest.mark.parametrize("stream", [True, False])
def test_openai_usage(usage: dict[str, Any], expected: mal.Usage, stream: bool) -> None:
    if stream:
        chunks, decoder = decode("openai", openai_stream(usage))
    else:
        body = {
            "choices": [{"index": 0, "message": {"content": "Hi"}, "finish_reason": "stop"}],
            "usage": usage,
        }
        chunks, decoder = decode("openai", _encode(body), stream=False)
    assert decoder.usage == expected
    assert usages(chunks) == [expected]


def test_openai_usage_on_every_chunk_keeps_the_latest() -> None:
    # vLLM's continuous_usage_stats: cumulative usage on each chunk.
    first = {
        "prompt_tokens": 30,
        "completion_tokens": 1,
        "prompt_tokens_details": {"cached_tokens": 16},
    }
    last = {"prompt_tokens": 30, "completion_tokens": 9, "prompt_tokens_details": None}
    _, decoder = decode("openai", openai_stream(first, last))
    assert decoder.usage == mal.Usage(30, 9, 16)


# Responses API --------------------------------------------------------------


def responses_body(usage: dict[str, Any]) -> bytes:
    return _encode(
        {
            "id": "resp_1",
            "object": "response",
            "status": "completed",
            "output": [
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hi"}],
                }
            ],
            "usage": usage,
        }
    )


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {
                "input_tokens": 1900,
                "input_tokens_details": {"cached_tokens": 1792, "cache_write_tokens": 64},
                "output_tokens": 310,
                "output_tokens_details": {"reasoning_tokens": 256},
                "total_tokens": 2210,
            },
            mal.Usage(1900, 310, 1792, 64, 256),
        ),
        # Compatible servers leave the details out, or send them null.
        ({"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}, mal.Usage(5, 3)),
        (
            {
                "input_tokens": 5,
                "input_tokens_details": None,
                "output_tokens": 3,
                "output_tokens_details": None,
            },
            mal.Usage(5, 3),
        ),
    ],
)
def test_responses_usage(usage: dict[str, Any], expected: mal.Usage) -> None:
    (chunk,), decoder = decode("openai-responses", responses_body(usage), stream=False)
    assert chunk.usage == decoder.usage == expected


# Ollama ---------------------------------------------------------------------


def test_ollama_reports_no_cache_unless_the_server_does() -> None:
    done = {"model": "m", "message": {"content": "Hi"}, "done": True, "done_reason": "stop"}
    older = _encode({**done, "prompt_eval_count": 21, "eval_count": 9}) + b"\n"
    _, decoder = decode("ollama", older)
    assert decoder.usage == mal.Usage(21, 9)
    newer = _encode(
        {**done, "prompt_eval_count": 21, "prompt_eval_cached_count": 16, "eval_count": 9}
    )
    _, decoder = decode("ollama", newer + b"\n")
    assert decoder.usage == mal.Usage(21, 9, 16)
