"""Usage under prompt caching, as the built-in server reports it on each wire.

`Reply.input_tokens` is the whole input; `cache_read_tokens` and
`cache_write_tokens` say how much of it came from or went to the prompt cache.
OpenAI (chat completions and Responses) report the whole input with the cached
part inside it, Anthropic reports the uncached part and the two cache counts
beside it, Ollama reports the whole input only.  Every body is read off a raw
HTTP response and checked field by field, streamed and not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from mal.testing import MockServer, Reply
from tests.support.requests import openai_chat
from tests.test_testing_server import call, call_messages, sse


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


def cached(**overrides: Any) -> Reply:
    """100 input tokens, 60 read from the cache and 25 written to it; two
    reasoning token events and three text token events."""
    fields: dict[str, Any] = {
        "input_tokens": 100,
        "cache_read_tokens": 60,
        "cache_write_tokens": 25,
        "reasoning_tokens": ["let", " me"],
        "tokens": ["Hi", " there", "!"],
    }
    return Reply(**{**fields, **overrides})


CHAT = openai_chat()


# --------------------------------------------------------------------------- Reply


def test_cache_counts_default_to_zero() -> None:
    reply = Reply()
    assert (reply.cache_read_tokens, reply.cache_write_tokens) == (0, 0)


@pytest.mark.parametrize(
    "fields",
    [
        {"cache_read_tokens": -1},
        {"cache_write_tokens": -1},
        {"input_tokens": 10, "cache_read_tokens": 11},
        {"input_tokens": 10, "cache_read_tokens": 6, "cache_write_tokens": 5},
    ],
)
def test_cache_counts_are_checked(fields: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="cache_"):
        Reply(**fields)


def test_the_whole_input_may_be_cached() -> None:
    reply = Reply(input_tokens=10, cache_read_tokens=4, cache_write_tokens=6)
    assert reply.input_tokens == 10


# --------------------------------------------------------------------------- OpenAI


def check_openai_usage(usage: dict[str, Any]) -> None:
    assert usage["prompt_tokens"] == 100
    assert usage["completion_tokens"] == 5  # two reasoning and three text tokens
    assert usage["total_tokens"] == 105
    assert usage["prompt_tokens_details"] == {"cached_tokens": 60}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 2}


def test_openai_reports_cached_and_reasoning_tokens(server: MockServer) -> None:
    server.add(cached())
    raw = call(server, "/v1/chat/completions", CHAT)
    assert raw.status == 200
    check_openai_usage(json.loads(raw.body)["usage"])


def test_openai_stream_reports_them_in_its_usage_chunk(server: MockServer) -> None:
    server.add(cached())
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    raw = call(server, "/v1/chat/completions", body)
    events = [sse(chunk)[1] for chunk in raw.chunks]
    assert events[-1] == "[DONE]"
    last = events[-2]
    assert last["choices"] == []
    check_openai_usage(last["usage"])
    assert all(event["usage"] is None for event in events[:-2])


def test_azure_reports_them_as_openai(server: MockServer) -> None:
    server.add(cached())
    raw = call(server, "/openai/deployments/d/chat/completions?api-version=2024-10-21", CHAT)
    check_openai_usage(json.loads(raw.body)["usage"])


def test_openai_without_caching_reports_zero_cached_tokens(server: MockServer) -> None:
    server.add(Reply(tokens=["a", "b"], input_tokens=7))
    usage = json.loads(call(server, "/v1/chat/completions", CHAT).body)["usage"]
    assert usage["prompt_tokens"] == 7
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}


# --------------------------------------------------------------------------- Responses


def check_responses_usage(usage: dict[str, Any]) -> None:
    assert usage["input_tokens"] == 100
    assert usage["input_tokens_details"] == {"cached_tokens": 60}
    assert usage["output_tokens"] == 5
    assert usage["output_tokens_details"] == {"reasoning_tokens": 2}
    assert usage["total_tokens"] == 105


def test_responses_reports_cached_and_reasoning_tokens(server: MockServer) -> None:
    server.add(cached())
    raw = call(server, "/v1/responses", {"model": "m", "input": "hi"})
    answer = json.loads(raw.body)
    assert answer["status"] == "completed"
    check_responses_usage(answer["usage"])


def test_responses_stream_reports_them_when_completed(server: MockServer) -> None:
    server.add(cached())
    raw = call(server, "/v1/responses", {"model": "m", "input": "hi", "stream": True})
    events = [sse(chunk) for chunk in raw.chunks]
    name, last = events[-1]
    assert name == "response.completed"
    check_responses_usage(last["response"]["usage"])
    created = events[0][1]
    assert created["type"] == "response.created" and created["response"]["usage"] is None


def test_responses_incomplete_reports_them_too(server: MockServer) -> None:
    server.add(cached(finish_reason="length"))
    raw = call(server, "/v1/responses", {"model": "m", "input": "hi", "stream": True})
    name, last = sse(raw.chunks[-1])
    assert name == "response.incomplete"
    check_responses_usage(last["response"]["usage"])


# --------------------------------------------------------------------------- Anthropic


def check_anthropic_usage(usage: dict[str, Any], output_tokens: int) -> None:
    assert usage["input_tokens"] == 15  # 100 - 60 read - 25 written
    assert usage["cache_read_input_tokens"] == 60
    assert usage["cache_creation_input_tokens"] == 25
    assert usage["output_tokens"] == output_tokens


def test_anthropic_reports_the_uncached_input_and_both_cache_counts(server: MockServer) -> None:
    server.add(cached())
    raw = call_messages(server)
    assert raw.status == 200
    check_anthropic_usage(json.loads(raw.body)["usage"], 5)


def test_anthropic_stream_reports_them_at_start_and_in_message_delta(server: MockServer) -> None:
    server.add(cached())
    raw = call_messages(server, stream=True)
    events = dict(map(sse, raw.chunks))  # the last event of each name
    check_anthropic_usage(events["message_start"]["message"]["usage"], 1)
    check_anthropic_usage(events["message_delta"]["usage"], 5)
    assert events["message_delta"]["delta"]["stop_reason"] == "end_turn"


def test_anthropic_without_caching_reports_the_whole_input(server: MockServer) -> None:
    server.add(Reply(tokens=["x"], input_tokens=9))
    raw = call_messages(server, stream=True)
    events = dict(map(sse, raw.chunks))  # the last event of each name
    for usage in (events["message_start"]["message"]["usage"], events["message_delta"]["usage"]):
        assert usage["input_tokens"] == 9
        assert usage["cache_read_input_tokens"] == 0
        assert usage["cache_creation_input_tokens"] == 0


# --------------------------------------------------------------------------- Ollama


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
@pytest.mark.parametrize("stream", [True, False])
def test_ollama_reports_the_whole_input_and_no_cache_fields(
    server: MockServer, path: str, stream: bool
) -> None:
    server.add(cached())
    raw = call(server, path, {**CHAT, "prompt": "hi", "stream": stream})
    lines = raw.body.decode().splitlines()
    final = json.loads(lines[-1])
    assert final["done"] is True
    assert final["prompt_eval_count"] == 100
    assert final["eval_count"] == 5
    assert not [key for key in final if "cache" in key or key.endswith("_details")]
