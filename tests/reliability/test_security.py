"""Secrets: an API key, however it is given, never shows in a repr, an error, a
log record or the stats; and a redirect is never followed to another host."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import mal
from mal.protocols import GenerateParams, get_protocol
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, Api, make_config
from ._support import SECRET, SHORT_TEXT, SHORT_TOKENS, Recorder, run

pytestmark = pytest.mark.anyio

KEY_PROVIDERS = ("openai", "anthropic")
ENV_VARS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


def assert_no_secret(*objects: Any) -> None:
    for obj in objects:
        for shown in (repr(obj), str(obj)):
            assert SECRET not in shown, f"the API key leaked: {shown}"


def assert_error_keeps_secret(error: BaseException | None) -> None:
    assert isinstance(error, mal.MALError), error
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:  # the whole cause chain
        seen.add(id(current))
        assert_no_secret(current, *current.args)
        for name in ("body", "headers", "partial_text", "message"):
            assert_no_secret(getattr(current, name, None))
        current = current.__cause__ or current.__context__


def key_sent(server: MockServer, provider: str) -> str | None:
    headers = server.requests[-1].headers
    if provider == "openai":
        value = headers.get("authorization")
        return value.removeprefix("Bearer ") if value else None
    return headers.get("x-api-key")


@pytest.mark.parametrize("how", ["per_call", "config", "environment"])
async def test_api_key_never_shows(
    api: Api,
    server: MockServer,
    closed_port: int,
    how: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: mal's, httpx's, httpcore's
    options: dict[str, Any] = {}
    fields: dict[str, Any] = {"max_retries": 0, "first_token_timeout": 0.1}
    if how == "per_call":
        options["api_key"] = SECRET
    elif how == "config":
        fields["api_keys"] = dict.fromkeys(KEY_PROVIDERS, SECRET)
    else:
        for name in ENV_VARS.values():
            monkeypatch.setenv(name, SECRET)
    config = make_config(server, **fields)
    recorder = Recorder()
    async with api.client(config, hooks=recorder.hooks()) as client:
        assert_no_secret(config, client.raw)
        for provider in KEY_PROVIDERS:
            model = MODELS[provider]
            # A call that works: the key did reach the server.
            server.add(Reply(tokens=SHORT_TOKENS))
            outcome = await run(client, model, **options)
            assert outcome.error is None, outcome.error
            assert outcome.text == SHORT_TEXT
            assert key_sent(server, provider) == SECRET
            assert_no_secret(outcome.stream.raw, outcome.stream.stats, *outcome.chunks)

            server.add(Reply(status=401))
            outcome = await run(client, model, **options)
            assert isinstance(outcome.error, mal.AuthenticationError)
            assert_error_keeps_secret(outcome.error)

            server.add(Reply(headers_delay=5))
            outcome = await run(client, model, **options)
            assert isinstance(outcome.error, mal.APITimeoutError)
            assert_error_keeps_secret(outcome.error)

            base_url = f"http://127.0.0.1:{closed_port}" + ("/v1" if provider == "openai" else "")
            outcome = await run(client, model, **options, base_url=base_url)
            assert type(outcome.error) is mal.APIConnectionError
            assert_error_keeps_secret(outcome.error)
        assert_no_secret(client.metrics, client.raw)
    assert_no_secret(*recorder.requests, *recorder.completes, *recorder.chunks)
    for _, _, error in recorder.retries + recorder.fallbacks:  # type: ignore[operator]
        assert_error_keeps_secret(error)
    assert any(r.name.startswith("httpx") for r in caplog.records), "httpx logged nothing"
    assert any(r.levelno == logging.DEBUG for r in caplog.records), "DEBUG was not on"
    for record in caplog.records:
        assert_no_secret(record.getMessage(), record.args, vars(record))
    assert SECRET not in caplog.text


def test_http_request_repr_hides_the_key() -> None:
    for provider in KEY_PROVIDERS:
        request = get_protocol(provider).build_request(
            GenerateParams(model="m", prompt="Hi"), base_url="http://127.0.0.1:1", api_key=SECRET
        )
        assert SECRET in str(request.headers), provider  # it is there, to be sent
        assert_no_secret(request)


def test_config_repr_hides_the_keys() -> None:
    config = mal.MALConfig(api_keys={"openai": SECRET, "anthropic": SECRET})
    assert_no_secret(config)
    assert config.api_keys["openai"] == SECRET


async def test_redirect_to_another_host_is_not_followed(api: Api, server: MockServer) -> None:
    config = make_config(server, api_keys=dict.fromkeys(KEY_PROVIDERS, SECRET))
    with MockServer() as elsewhere:
        async with api.client(config) as client:
            for provider in KEY_PROVIDERS:
                for status in (302, 307):
                    where = f"{provider} {status}"
                    server.reset()
                    location = elsewhere.url(provider) + "/steal"
                    server.add(Reply(status=status, raw=b"", headers={"Location": location}))
                    outcome = await run(client, MODELS[provider])
                    error = outcome.error
                    assert type(error) is mal.APIStatusError, f"{where}: {error!r}"
                    assert error.status_code == status, where
                    assert not error.retryable, where
                    assert "redirect" in str(error), where
                    assert location in str(error), where
                    assert_error_keeps_secret(error)
                    assert len(server.requests) == 1, where
        assert elsewhere.requests == []
        assert elsewhere.connections == 0
