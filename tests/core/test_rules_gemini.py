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
