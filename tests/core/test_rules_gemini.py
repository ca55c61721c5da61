"""The strict server's Gemini rules: what the API takes, and what it refuses with its own words."""

from __future__ import annotations

from typing import Any

import pytest

from mal.protocols import GenerateParams, get_protocol
from mal.testing._rules import Request, check


def violation(body: dict[str, Any]) -> Any:
    return check(Request("gemini", "/v1beta/models/m:generateContent", "", {}, body))


def ok_body(**extra: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}], **extra}


def test_what_mal_sends_is_taken() -> None:
    import json

    request = get_protocol("gemini").build_request(
        GenerateParams(model="m", prompt="Hi", system="S", temperature=1.0, max_tokens=5, seed=1)
    )
    assert violation(json.loads(request.body)) is None
    assert violation(ok_body(system_instruction={"parts": [{"text": "snake names too"}]})) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (ok_body(temprature=1), 'Unknown name "temprature": Cannot find field.'),
        (
            ok_body(generationConfig={"maxTokens": 5}),
            "Unknown name \"maxTokens\" at 'generation_config': Cannot find field.",
        ),
        ({}, "contents is not specified"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [{"role": "user", "parts": []}]}, "must not be empty"),
        (
            {
                "contents": [
                    {"parts": [{"text": "a", "inlineData": {"mimeType": "x", "data": "y"}}]}
                ]
            },
            "oneof field 'data'",
        ),
        (ok_body(generationConfig={"temperature": "hot"}), "(TYPE_FLOAT)"),
        (ok_body(generationConfig={"temperature": 3}), "must be in [0.0, 2.0]"),
        (ok_body(generationConfig={"maxOutputTokens": 1.5}), "(TYPE_INT32)"),
        (ok_body(generationConfig={"responseJsonSchema": {}}), "application/json"),
        (ok_body(toolConfig={"functionCallingConfig": {"mode": "REQUIRED"}}), "Mode"),
        (ok_body(tools=[{"functionDeclarations": [{"name": "1bad"}]}]), "Invalid function name"),
    ],
)
def test_refused_as_google_refuses(body: dict[str, Any], message: str) -> None:
    found = violation(body)
    assert found is not None and message in found.message
    assert found.status == 400 and found.error_type == "INVALID_ARGUMENT"


# Embeddings: batchEmbedContents and embedContent ----------------------------------------

EMBED_PATH = "/v1beta/models/gemini-embedding-001:batchEmbedContents"


def embed_violation(body: Any, kind: str = "gemini_embeds") -> Any:
    path = (
        EMBED_PATH
        if kind == "gemini_embeds"
        else EMBED_PATH.replace("batchEmbedContents", "embedContent")
    )
    return check(Request(kind, path, "", {}, body))


def item(text: str = "Hi", **extra: Any) -> dict[str, Any]:
    return {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": text}]}, **extra}


def test_the_embedding_requests_mal_sends_are_taken() -> None:
    import json

    from mal.embeddings import embed_request

    request = embed_request(
        "gemini", "gemini-embedding-001", ["a", "b"], dimensions=3, base_url="http://h", api_key="k"
    )
    assert embed_violation(json.loads(request.body)) is None
    snake = {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "x"}]}}
    snake |= {"task_type": "CLUSTERING", "output_dimensionality": 8}
    assert embed_violation({"requests": [snake]}) is None
    assert embed_violation({"content": {"parts": [{"text": "x"}]}}, "gemini_embed") is None


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        ({}, "requests is not specified", "requests"),
        ({"requests": []}, "requests is not specified", "requests"),
        ({"requests": [item()] * 101}, "at most 100 requests can be in one batch", "requests"),
        ({"requests": [item()], "model": "m"}, 'Unknown name "model"', "model"),
        (
            {"requests": [item(dimensions=3)]},
            "Unknown name \"dimensions\" at 'requests[0]'",
            "requests[0].dimensions",
        ),
        (
            {"requests": [item(), {**item(), "model": "models/other"}]},
            "must be models/gemini-embedding-001",
            "requests[1].model",
        ),
        (
            {"requests": [{"model": "models/gemini-embedding-001"}]},
            "content is not specified",
            None,
        ),
        ({"requests": [item("")]}, "contains an empty Part", "requests[0].content"),
        ({"requests": [item(taskType="SEARCH")]}, "TaskType", "requests[0].task_type"),
        ({"requests": [item(outputDimensionality="8")]}, "TYPE_INT32", None),
        ({"requests": [item(title=3)]}, "TYPE_STRING", "requests[0].title"),
    ],
)
def test_embedding_requests_the_api_refuses(body: Any, message: str, param: str | None) -> None:
    found = embed_violation(body)
    assert found is not None and message in found.message
    assert found.status == 400 and found.error_type == "INVALID_ARGUMENT"
    if param is not None:
        assert found.param == param


def test_one_embed_content_request_is_checked_too() -> None:
    found = embed_violation({"content": {"parts": []}}, "gemini_embed")
    assert found is not None and "EmbedContentRequest.content.parts" in found.message
    found = embed_violation({"requests": [item()]}, "gemini_embed")
    assert found is not None and 'Unknown name "requests"' in found.message
