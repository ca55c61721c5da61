"""Requests the hosted APIs would reject, built right: the token limit's field
for OpenAI's reasoning models, OpenAI's own API and Azure; Azure's
api-version on every base URL; Anthropic's subset of JSON Schema for
structured outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mal.config import Endpoint, with_api_version
from mal.protocols import GenerateParams, get_protocol
from mal.protocols.openai import AZURE_API_VERSION, reasoning_model

VLLM = "http://localhost:8000/v1"
AZURE = "https://r.openai.azure.com"


def body_of(provider: str, base_url: str | None = None, **params: Any) -> dict[str, Any]:
    params.setdefault("prompt", "Hi")
    request = get_protocol(provider).build_request(GenerateParams(**params), base_url=base_url)
    body: dict[str, Any] = json.loads(request.body)
    return body


def token_fields(body: dict[str, Any]) -> dict[str, Any]:
    names = ("max_tokens", "max_completion_tokens", "max_output_tokens")
    return {key: body[key] for key in names if key in body}


# The token limit: max_tokens or max_completion_tokens ----------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "o1",
        "o1-mini",
        "o1-2024-12-17",
        "o3",
        "o3-mini",
        "o4-mini",
        "O3-MINI",
        "gpt-5",
        "gpt-5-nano",
        "gpt-5.1",
        "openai/o3-mini",
        "openai/o1:free",
    ],
)
def test_reasoning_models_get_max_completion_tokens_on_any_server(model: str) -> None:
    assert reasoning_model(model)
    body = body_of("openai", VLLM, model=model, max_tokens=100)
    assert token_fields(body) == {"max_completion_tokens": 100}


@pytest.mark.parametrize(
    "model",
    ["gpt-4o", "gpt-4o-mini", "qwen2.5-coder:7b", "omni-moderation", "gpt-50", "llama3:o1"],
)
def test_other_models_on_other_servers_keep_max_tokens(model: str) -> None:
    assert not reasoning_model(model)
    body = body_of("openai", VLLM, model=model, max_tokens=100)
    assert token_fields(body) == {"max_tokens": 100}


@pytest.mark.parametrize(
    "base_url", [None, "https://api.openai.com/v1", "https://api.openai.com/v1/"]
)
def test_openai_own_api_gets_max_completion_tokens_for_every_model(base_url: str | None) -> None:
    body = body_of("openai", base_url, model="gpt-4o-mini", max_tokens=64)
    assert token_fields(body) == {"max_completion_tokens": 64}


def test_no_limit_sends_neither_field() -> None:
    assert token_fields(body_of("openai", VLLM, model="o3-mini")) == {}
    assert token_fields(body_of("openai", None, model="gpt-4o")) == {}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"max_tokens": 5}, {"max_tokens": 5}),
        ({"max_completion_tokens": 7}, {"max_completion_tokens": 7}),
    ],
)
@pytest.mark.parametrize(("base_url", "model"), [(None, "o3"), (VLLM, "o3"), (VLLM, "gpt-4o")])
def test_an_explicit_extra_body_wins(
    extra: dict[str, int], expected: dict[str, int], base_url: str | None, model: str
) -> None:
    body = body_of("openai", base_url, model=model, max_tokens=100, extra_body=extra)
    assert token_fields(body) == expected


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (f"{AZURE}?api-version={AZURE_API_VERSION}", "max_completion_tokens"),
        (f"{AZURE}?api-version=2024-09-01-preview", "max_completion_tokens"),
        (f"{AZURE}?api-version=2025-04-01-preview", "max_completion_tokens"),
        (f"{AZURE}/openai/v1", "max_completion_tokens"),
        (f"{AZURE}/openai/deployments/d?api-version=2024-08-01-preview", "max_tokens"),
        (f"{AZURE}?api-version=2024-06-01", "max_tokens"),
    ],
)
def test_azure_takes_max_completion_tokens_since_2024_09_01(base_url: str, expected: str) -> None:
    # A deployment's name says nothing of its model: the api-version decides.
    for deployment in ("my-gpt-4o", "o3-mini"):
        body = body_of("azure", base_url, model=deployment, max_tokens=10)
        assert token_fields(body) == {expected: 10}


def test_the_responses_api_takes_max_output_tokens() -> None:
    for base_url in (None, VLLM):
        for model in ("o3", "gpt-4o"):
            body = body_of("openai-responses", base_url, model=model, max_tokens=32)
            assert token_fields(body) == {"max_output_tokens": 32}


# Azure's api-version on every base URL --------------------------------------------------


def test_with_api_version() -> None:
    assert with_api_version(AZURE, "2024-10-21") == f"{AZURE}?api-version=2024-10-21"
    assert with_api_version(f"{AZURE}?a=1", "v") == f"{AZURE}?a=1&api-version=v"
    assert with_api_version(f"{AZURE}?api-version=x", "v") == f"{AZURE}?api-version=x"
    assert with_api_version(AZURE, None) == AZURE
    assert with_api_version("", "v") == ""


def test_a_replaced_endpoint_keeps_the_version_of_the_resolved_one() -> None:
    resolved = Endpoint(f"{AZURE}?api-version=2024-06-01", "k", "2024-06-01")
    other = "https://other.openai.azure.com"
    assert resolved.replaced(None, None) is resolved
    assert resolved.replaced(other, None) == Endpoint(
        f"{other}?api-version=2024-06-01", "k", "2024-06-01"
    )
    assert resolved.replaced(None, "k2") == Endpoint(resolved.base_url, "k2", "2024-06-01")
    plain = Endpoint("https://api.openai.com/v1", "k")
    assert plain.replaced("http://localhost:8000/v1", None).base_url == "http://localhost:8000/v1"
