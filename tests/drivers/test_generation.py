"""Generations against the local server, for each provider, streamed and not:
text, chunks, finish reasons, usage, reasoning, progress callbacks and the
automatic choice between streaming and not."""

from __future__ import annotations

import pytest

import mal
from mal.testing import MockServer, Reply, split_tokens

from ..support.adapters import MODELS, PROVIDERS, Api, collect
from ._support import was_streamed

pytestmark = pytest.mark.anyio

TEXTS = [
    pytest.param("Hello", id="short"),
    pytest.param(
        "Hello, wörld! Ünïcödé 🌍 and 中文 too.\n\nSecond paragraph:\n- one\n- two — done.",
        id="unicode",
    ),
    pytest.param("", id="empty"),
]

#: Each provider's own stop reason for "the max_tokens limit was hit".
MAX_TOKENS_REASON = {"ollama": "length", "openai": "length", "anthropic": "max_tokens"}


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_text_is_the_scripted_text(
    api: Api, server: MockServer, provider: str, text: str
) -> None:
    model = MODELS[provider]
    server.add(Reply(text=text), Reply(text=text), Reply(text=text))
    async with api.client_for(server) as client:
        streamed = await client.generate("Hi", model=model, stream=True)
        whole = await client.generate("Hi", model=model, stream=False)
        async with client.stream("Hi", model=model) as stream:
            chunks = await collect(stream)
    assert streamed == text
    assert whole == text
    assert "".join(chunk.text for chunk in chunks) == text
    assert stream.text == text
    assert stream.finish_reason == "stop"
    assert [was_streamed(r) for r in server.requests] == [True, False, True]
    assert all(isinstance(chunk, mal.Chunk) for chunk in chunks)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_chunks_follow_the_tokens(api: Api, server: MockServer, provider: str) -> None:
    tokens = ["The", " sky", " is", " blue", "."]
    server.add(Reply(tokens=tokens, input_tokens=7, output_tokens=13))
    async with api.client_for(server) as client:
        stream = client.stream("Why is the sky blue?", model=MODELS[provider])
        async with stream:
            assert stream.text == ""
            chunks = await collect(stream)
    assert [chunk.text for chunk in chunks if chunk.text] == tokens
    assert stream.text == "The sky is blue."
    assert stream.finish_reason == "stop"
    # The stop reason is on exactly one chunk.
    assert [chunk.finish_reason for chunk in chunks if chunk.finish_reason] == ["stop"]
    # The server's cache and reasoning counts are its own; input and output are the reply's.
    assert stream.usage is not None
    assert (stream.usage.input_tokens, stream.usage.output_tokens) == (7, 13)
    assert any(chunk.usage is not None for chunk in chunks)
    assert all(chunk.reasoning == "" for chunk in chunks)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_finish_reason_length(api: Api, server: MockServer, provider: str) -> None:
    server.add(Reply(text="Cut short", finish_reason=MAX_TOKENS_REASON[provider]))
    async with (
        api.client_for(server) as client,
        client.stream("Hi", model=MODELS[provider], max_tokens=2) as stream,
    ):
        chunks = await collect(stream)
    assert stream.finish_reason == "length"
    assert stream.raw_finish_reason == MAX_TOKENS_REASON[provider]
    assert [chunk.finish_reason for chunk in chunks if chunk.finish_reason] == ["length"]
    assert stream.text == "Cut short"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_reasoning_is_not_text(api: Api, server: MockServer, provider: str) -> None:
    reasoning = "The user greets me. I should greet back, briefly."
    text = "Hello! How can I help?"
    server.add(*[Reply(text=text, reasoning=reasoning)] * 3)
    seen: list[str] = []
    async with api.client_for(server) as client:
        async with client.stream("Hi", model=MODELS[provider], progress_callback=seen.append) as s:
            chunks = await collect(s)
        streamed = await client.generate("Hi", model=MODELS[provider], stream=True)
        whole = await client.generate("Hi", model=MODELS[provider], stream=False)
    assert "".join(chunk.reasoning for chunk in chunks) == reasoning
    assert "".join(chunk.text for chunk in chunks) == text
    assert s.text == text
    assert streamed == text
    assert whole == text
    assert "".join(seen) == text
    # Reasoning comes first, on chunks of its own.
    first_text = next(i for i, chunk in enumerate(chunks) if chunk.text)
    assert "".join(chunk.reasoning for chunk in chunks[:first_text]) == reasoning


# --------------------------------------------------------------------------- progress_callback


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_progress_callback_once_per_delta_in_order(
    api: Api, server: MockServer, provider: str
) -> None:
    tokens = split_tokens("One, two, three: the callback sees every delta in order.")
    server.add(Reply(tokens=tokens), Reply(tokens=tokens))
    by_generate: list[str] = []
    by_stream: list[str] = []
    async with api.client_for(server) as client:
        text = await client.generate(
            "Hi", model=MODELS[provider], progress_callback=by_generate.append
        )
        async with client.stream(
            "Hi", model=MODELS[provider], progress_callback=by_stream.append
        ) as stream:
            chunks = await collect(stream)
    assert by_generate == tokens
    assert text == "".join(tokens)
    assert by_stream == [chunk.text for chunk in chunks if chunk.text] == tokens
    assert all(by_generate)  # never called with ""
    assert was_streamed(server.requests[0])  # a callback makes generate stream


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_progress_callback_not_streamed_gets_the_whole_text(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(Reply(text="All of it at once."))
    seen: list[str] = []
    async with api.client_for(server) as client:
        text = await client.generate(
            "Hi", model=MODELS[provider], stream=False, progress_callback=seen.append
        )
    assert text == "All of it at once."
    assert seen == ["All of it at once."]
    assert not was_streamed(server.requests[0])


# --------------------------------------------------------------------------- automatic streaming


@pytest.mark.parametrize(
    ("prompt", "system", "expected"),
    [
        pytest.param("x" * 10, None, False, id="at-threshold"),
        pytest.param("x" * 11, None, True, id="above-threshold"),
        pytest.param("x" * 5, "y" * 5, False, id="system-at-threshold"),
        pytest.param("x" * 5, "y" * 6, True, id="system-counts"),
        pytest.param(
            [{"role": "user", "content": "x" * 4}, {"role": "assistant", "content": "y" * 4}],
            None,
            False,
            id="messages-below",
        ),
        pytest.param(
            [
                {"role": "user", "content": "x" * 4},
                mal.Message(role="assistant", content="y" * 4),
                {"role": "user", "content": "z" * 3},
            ],
            None,
            True,
            id="every-message-counts",
        ),
        pytest.param(
            [{"role": "user", "content": "x" * 4}, {"role": "assistant", "content": "y" * 4}],
            "zzz",
            True,
            id="messages-and-system",
        ),
    ],
)
async def test_streams_when_the_prompt_is_long(
    api: Api, server: MockServer, prompt: object, system: str | None, expected: bool
) -> None:
    async with api.client_for(server, streaming_threshold=10) as client:
        for provider in PROVIDERS:
            text = await client.generate(prompt, model=MODELS[provider], system=system)
            assert text == Reply().text
    requests = server.requests
    assert [r.provider for r in requests] == list(PROVIDERS)
    for request in requests:
        assert was_streamed(request) is expected, request.provider


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_default_threshold(api: Api, server: MockServer, provider: str) -> None:
    async with api.client_for(server) as client:
        await client.generate("x" * 5000, model=MODELS[provider])
        await client.generate("x" * 5001, model=MODELS[provider])
    short, long = server.requests
    assert not was_streamed(short)
    assert was_streamed(long)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_use_streaming_false_never_streams(
    api: Api, server: MockServer, provider: str
) -> None:
    seen: list[str] = []
    async with api.client_for(server, use_streaming=False, streaming_threshold=0) as client:
        first = await client.generate("x" * 100, model=MODELS[provider])
        second = await client.generate("Hi", model=MODELS[provider], progress_callback=seen.append)
    assert first == second == Reply().text
    assert seen == [Reply().text]
    assert [was_streamed(r) for r in server.requests] == [False, False]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_argument_forces(api: Api, server: MockServer, provider: str) -> None:
    seen: list[str] = []
    async with api.client_for(server, streaming_threshold=10) as client:
        await client.generate("Hi", model=MODELS[provider], stream=True)
        await client.generate("x" * 100, model=MODELS[provider], stream=False)
        await client.generate(
            "Hi", model=MODELS[provider], stream=False, progress_callback=seen.append
        )
    async with api.client_for(server, use_streaming=False) as client:
        await client.generate("Hi", model=MODELS[provider], stream=True)
    assert [was_streamed(r) for r in server.requests] == [True, False, False, True]
    assert seen == [Reply().text]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_method_always_streams(api: Api, server: MockServer, provider: str) -> None:
    async with (
        api.client_for(server, use_streaming=False) as client,
        client.stream("Hi", model=MODELS[provider]) as stream,
    ):
        await collect(stream)
    assert stream.text == Reply().text
    assert was_streamed(server.requests[0])
