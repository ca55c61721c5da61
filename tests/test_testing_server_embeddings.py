"""The mock server's embedding endpoints: OpenAI ``/v1/embeddings`` and Ollama ``/api/embed``.

Bodies are read off a socket and parsed with plain `json`, and checked against
the shapes of the OpenAI embeddings reference and Ollama's docs/api.md.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from mal.testing import MockServer, Reply
from tests.test_testing_server import Conn, call


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


def body_of(r: Any) -> Any:
    assert r.status == 200 and r.complete, r.body
    assert "content-length" in r.headers
    return json.loads(r.body)


def test_openai_embeddings_shape_and_determinism(server: MockServer) -> None:
    request = {"model": "text-embedding-3-small", "input": ["a cat", "a dog", "a cat"]}
    obj = body_of(call(server, "/v1/embeddings", request))
    assert list(obj) == ["object", "data", "model", "usage"]
    assert obj["object"] == "list" and obj["model"] == "text-embedding-3-small"
    assert [list(d) for d in obj["data"]] == [["object", "index", "embedding"]] * 3
    assert [d["index"] for d in obj["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" for d in obj["data"])
    vectors = [d["embedding"] for d in obj["data"]]
    assert all(len(v) == 8 and all(isinstance(x, float) for x in v) for v in vectors)
    assert all(math.isclose(math.hypot(*v), 1.0, rel_tol=1e-5) for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    usage = obj["usage"]
    assert list(usage) == ["prompt_tokens", "total_tokens"]
    assert usage["prompt_tokens"] == usage["total_tokens"] == 6
    # The same text gives the same vector in a later request, and on Ollama.
    again = body_of(call(server, "/v1/embeddings", {"model": "m", "input": "a cat"}))
    assert again["data"][0]["embedding"] == vectors[0]
    ollama = body_of(call(server, "/api/embed", {"model": "m", "input": "a cat"}))
    assert ollama["embeddings"] == [vectors[0]]
    (recorded, *_) = server.requests
    assert recorded.path == "/v1/embeddings" and recorded.json == request
    assert recorded.provider == "openai"


def test_openai_base64_dimensions_and_token_arrays(server: MockServer) -> None:
    floats = body_of(call(server, "/v1/embeddings", {"model": "m", "input": "x"}))
    request = {"model": "m", "input": "x", "encoding_format": "base64"}
    packed = body_of(call(server, "/v1/embeddings", request))["data"][0]["embedding"]
    assert isinstance(packed, str)
    # Little-endian float32, as openai-python decodes it.
    assert list(struct.unpack("<8f", base64.b64decode(packed))) == floats["data"][0]["embedding"]

    server.add(Reply(embedding_dim=3))
    obj = body_of(call(server, "/v1/embeddings", {"model": "m", "input": "x"}))
    assert len(obj["data"][0]["embedding"]) == 3
    obj = body_of(call(server, "/v1/embeddings", {"model": "m", "input": "x", "dimensions": 5}))
    assert len(obj["data"][0]["embedding"]) == 5

    obj = body_of(call(server, "/v1/embeddings", {"model": "m", "input": [[1, 2], [3]]}))
    assert len(obj["data"]) == 2
    obj = body_of(call(server, "/v1/embeddings", {"model": "m", "input": [1, 2, 3]}))
    assert len(obj["data"]) == 1


def test_ollama_embed_shape(server: MockServer) -> None:
    server.add(Reply(embedding_dim=4))
    obj = body_of(call(server, "/api/embed", {"model": "all-minilm", "input": ["Why?", "Sky"]}))
    assert list(obj) == [
        "model",
        "embeddings",
        "total_duration",
        "load_duration",
        "prompt_eval_count",
    ]
    assert obj["model"] == "all-minilm"
    assert [len(v) for v in obj["embeddings"]] == [4, 4]
    assert obj["embeddings"][0] != obj["embeddings"][1]
    assert obj["prompt_eval_count"] == 3
    assert isinstance(obj["total_duration"], int) and obj["total_duration"] > 0
    assert 0 <= obj["load_duration"] <= obj["total_duration"]
    assert body_of(call(server, "/api/embed", {"model": "m", "input": []}))["embeddings"] == []
    assert server.requests[0].provider == "ollama"


#: Well-formed JSON bodies whose input neither API embeds: none, an object, an
#: empty list (OpenAI requires one input at least), a number (Ollama).
BAD_INPUTS = [
    ("/v1/embeddings", {"model": "m"}),
    ("/v1/embeddings", {"model": "m", "input": [{"text": "x"}]}),
    ("/v1/embeddings", {"model": "m", "input": []}),
    ("/api/embed", {"model": "m", "input": 3}),
]


@pytest.mark.parametrize(("path", "body"), BAD_INPUTS)
def test_bad_inputs_are_400s_with_the_providers_error_bodies(
    server: MockServer, path: str, body: Any
) -> None:
    server.add(Reply(embedding_dim=2))
    r = call(server, path, body)
    assert r.status == 400
    # The provider's rules refuse the request, and its error body says why.
    (recorded,) = server.requests
    violation = recorded.violation
    assert violation is not None
    error = json.loads(r.body)["error"]
    if path == "/v1/embeddings":
        assert error["type"] == "invalid_request_error" and "input" in error["message"]
        assert error == {
            "message": violation.message,
            "type": violation.error_type,
            "param": violation.param,
            "code": violation.code,
        }
    else:
        assert isinstance(error, str) and "input" in error and error == violation.message
    # A request the API refuses takes no reply: the queued one waits for the next.
    assert server.pending == 1


def test_a_body_that_is_no_json_is_a_400_and_takes_no_reply(server: MockServer) -> None:
    server.add(Reply(embedding_dim=2))
    r = call(server, "/api/embed", b"not json")
    assert r.status == 400
    error = json.loads(r.body)["error"]
    assert isinstance(error, str) and error
    assert server.pending == 1
    assert server.requests[-1].violation is None  # no JSON object: the rules never see it


@pytest.mark.parametrize(("path", "body"), BAD_INPUTS)
def test_a_server_without_the_rules_still_refuses_what_it_cannot_embed(
    path: str, body: Any
) -> None:
    # strict=False on purpose: this is about the server's own answer to an input it
    # has no vector for, the answer it gives when the providers' rules are off (with
    # them on, the rules answer first, as the test above shows).
    with MockServer(strict=False) as server:
        server.add(Reply(embedding_dim=2))
        r = call(server, path, body)
        assert r.status == 400
        error = json.loads(r.body)["error"]
        if path == "/v1/embeddings":
            assert error["type"] == "invalid_request_error" and "input" in error["message"]
        else:
            assert isinstance(error, str) and error
        # A well-formed request takes the queued reply.
        assert server.pending == 0
        assert server.requests[-1].violation is None


def test_scripted_errors_and_keep_alive(server: MockServer) -> None:
    server.add(
        Reply(status=429, headers={"retry-after": "2"}),
        Reply(status=500, error_message="boom"),
        Reply(raw=b'{"embeddings": "garbage"}'),
    )
    conn = Conn(server.port)
    try:
        conn.send("/v1/embeddings", {"model": "m", "input": "x"})
        r = conn.response()
        assert r.status == 429 and r.headers["retry-after"] == "2"
        assert json.loads(r.body)["error"]["code"] == "rate_limit_exceeded"
        conn.send("/api/embed", {"model": "m", "input": "x"})
        r = conn.response()
        assert r.status == 500 and json.loads(r.body) == {"error": "boom"}
        conn.send("/api/embed", {"model": "m", "input": "x"})
        assert conn.response().body == b'{"embeddings": "garbage"}'
        conn.send("/api/embed", {"model": "m", "input": "x"})
        assert len(json.loads(conn.response().body)["embeddings"][0]) == 8
    finally:
        conn.close()
    assert server.connections == 1


def test_drop_after_cuts_the_body(server: MockServer) -> None:
    server.add(Reply(drop_after=10))
    r = call(server, "/v1/embeddings", {"model": "m", "input": "x"})
    assert r.status == 200 and not r.complete and len(r.body) == 10


def test_gemini_batch_embed_contents_shape(server: MockServer) -> None:
    def item(text: str) -> dict[str, Any]:
        return {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": text}]}}

    path = "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    requests = [item("a cat"), {**item("a dog"), "outputDimensionality": 3}, item("a cat")]
    obj = body_of(call(server, path, {"requests": requests}))
    # BatchEmbedContentsResponse: embeddings[] of ContentEmbedding {"values"}, nothing else.
    assert list(obj) == ["embeddings"] and [list(e) for e in obj["embeddings"]] == [["values"]] * 3
    first, second, third = (e["values"] for e in obj["embeddings"])
    assert len(first) == 8 and len(second) == 3 and first == third
    assert math.isclose(sum(v * v for v in first), 1.0, rel_tol=1e-5)
    (recorded,) = server.requests
    assert recorded.provider == "gemini" and recorded.violation is None


def test_gemini_embed_content_shape(server: MockServer) -> None:
    path = "/v1beta/models/gemini-embedding-001:embedContent"
    body = {"content": {"parts": [{"text": "a cat"}]}, "outputDimensionality": 4}
    obj = body_of(call(server, path, body))
    # EmbedContentResponse: one ContentEmbedding under "embedding".
    assert list(obj) == ["embedding"] and len(obj["embedding"]["values"]) == 4


def test_gemini_embedding_errors(server: MockServer) -> None:
    path = "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    refused = call(server, path, {"requests": [{"content": {"parts": [{"text": "x"}]}}]})
    assert refused.status == 400
    error = json.loads(refused.body)["error"]
    assert error["status"] == "INVALID_ARGUMENT" and "model" in error["message"]
    server.add(Reply(status=429))
    item = {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "x"}]}}
    limited = call(server, path, {"requests": [item]})
    assert limited.status == 429
    assert json.loads(limited.body)["error"]["status"] == "RESOURCE_EXHAUSTED"
