"""The official SDKs' conventions through the drivers (sync, asyncio and
trio) against the strict built-in server: the error classes and request ids,
``extra_query``, the environment variables, the constructor's keywords,
``with_options`` and ``httpx.Timeout``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import mal
from mal.testing import MockServer, Reply

from ..support.adapters import MODELS, PROVIDERS, Api, ClientAdapter, collect

pytestmark = pytest.mark.anyio


async def run(client: Any, model: str, *, streamed: bool, **options: Any) -> str:
    """One call, streamed or not."""
    if streamed:
        stream = client.stream("Hi", model=model, **options)
        async with stream:
            return "".join(chunk.text for chunk in await collect(stream))
    return str(await client.generate("Hi", model=model, stream=False, **options))


# --------------------------------------------------------------------------- errors


async def test_a_rejected_request_is_a_bad_request_error_with_its_request_id(
    api: Api, server: MockServer
) -> None:
    # The strict server answers as Anthropic does a field it does not take.
    async with api.client_for(server) as client:
        with pytest.raises(mal.BadRequestError) as info:
            await client.generate("Hi", model=MODELS["anthropic"], extra_body={"bogus": 1})
    error = info.value
    assert error.status_code == 400 and not error.retryable
    assert error.request_id is not None and error.request_id.startswith("req_")
    assert error.request_id == error.headers["request-id"]


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, mal.BadRequestError), (409, mal.ConflictError), (422, mal.UnprocessableEntityError)],
)
async def test_the_three_classes_and_request_ids(
    api: Api, server: MockServer, status: int, cls: type[mal.APIStatusError]
) -> None:
    header = {"ollama": None, "openai": "x-request-id", "anthropic": "request-id"}
    async with api.client_for(server) as client:
        for provider in PROVIDERS:
            for streamed in (True, False):
                where = f"{provider}, {'stream' if streamed else 'generate'}"
                name = header[provider]
                given = f"req_{provider}_{status}_{streamed}"
                server.add(Reply(status=status, headers={name: given} if name else {}))
                with pytest.raises(mal.APIStatusError) as info:
                    await run(client, MODELS[provider], streamed=streamed)
                error = info.value
                assert type(error) is cls, where
                # Ollama sends no request id.
                assert error.request_id == (given if name else None), where


async def test_a_conflict_is_retried(api: Api, server: MockServer) -> None:
    server.add(Reply(status=409, headers={"retry-after": "0"}), Reply(text="After the conflict."))
    async with api.client_for(server, max_retries=1) as client:
        assert await client.generate("Hi", model=MODELS["openai"]) == "After the conflict."
    assert len(server.requests) == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_an_error_in_the_stream_carries_the_request_id(
    api: Api, server: MockServer, provider: str
) -> None:
    server.add(Reply(tokens=["Half", " an", " answer"], error_after=2))
    async with api.client_for(server) as client:
        stream = client.stream("Hi", model=MODELS[provider])
        with pytest.raises(mal.StreamError) as info:
            async with stream:
                await collect(stream)
    error = info.value
    assert error.partial_text == "Half an"
    assert error.request_id is not None and error.request_id.startswith("req_")


async def test_an_error_in_an_ollama_stream_has_no_request_id(api: Api, server: MockServer) -> None:
    server.add(Reply(tokens=["Half", " an", " answer"], error_after=2))
    async with api.client_for(server) as client:
        stream = client.stream("Hi", model=MODELS["ollama"])
        with pytest.raises(mal.StreamError) as info:
            async with stream:
                await collect(stream)
    assert info.value.request_id is None


# --------------------------------------------------------------------------- extra_query


async def call_kind(client: Any, kind: str, model: str, **options: Any) -> None:
    """One call of ``kind``: "generate", "stream", "complete" or "embed"."""
    raw = client.raw
    if kind == "stream":
        stream = client.stream("Hi", model=model, **options)
        async with stream:
            await collect(stream)
        return
    if kind == "generate":
        await client.generate("Hi", model=model, **options)
        return
    if kind == "complete":
        result = raw.complete("Hi", model=model, **options)
    else:
        result = raw.embed(["one", "two"], model=model, **options)
    if not isinstance(raw, mal.Client):
        await result


KINDS = ("generate", "stream", "complete", "embed")


@pytest.mark.parametrize("kind", KINDS)
async def test_extra_query_on_every_call_kind(api: Api, server: MockServer, kind: str) -> None:
    providers = ["ollama", "openai"] if kind == "embed" else list(PROVIDERS)
    async with api.client_for(server) as client:
        for provider in providers:
            await call_kind(
                client, kind, MODELS[provider], extra_query={"trace": "a b&c", "n": 2, "x": True}
            )
            request = server.requests[-1]
            assert request.violation is None, provider
            assert request.query == "trace=a%20b%26c&n=2&x=true", provider
    assert len(server.requests) == len(providers)


async def test_extra_query_keeps_the_urls_own_query_but_what_it_names(
    api: Api, server: MockServer
) -> None:
    config = mal.MALConfig(
        base_urls={"azure": server.url("azure") + "?tenant=t1"},
        api_keys={"azure": "k"},
        azure_api_version="2024-10-21",
        max_retries=0,
    )
    async with api.client(config, environ={}) as client:
        await client.generate("Hi", model="azure/dep", extra_query={"tenant": "t2", "k": "v"})
        await client.generate("Hi", model="azure/dep", extra_query={"tenant": None})
    assert [r.query for r in server.requests] == [
        "api-version=2024-10-21&tenant=t2&k=v",
        "api-version=2024-10-21",
    ]


@pytest.mark.parametrize("kind", ["generate", "embed"])
async def test_extra_query_replaces_azures_api_version(
    api: Api, server: MockServer, kind: str
) -> None:
    config = mal.MALConfig(
        base_urls={"azure": server.url("azure")}, api_keys={"azure": "k"}, max_retries=0
    )
    async with api.client(config, environ={}) as client:
        await call_kind(client, kind, "azure/dep", extra_query={"api-version": "2024-06-01"})
    request = server.requests[-1]
    assert request.violation is None
    assert request.query == "api-version=2024-06-01"


async def test_a_bad_extra_query_is_a_config_error_before_sending(
    api: Api, server: MockServer
) -> None:
    async with api.client_for(server) as client:
        for bad in ({"a": [1, 2]}, {"": "x"}, ["a"]):
            with pytest.raises(mal.ConfigError, match="extra_query"):
                await client.generate("Hi", model=MODELS["openai"], extra_query=bad)
    assert server.requests == []


# --------------------------------------------------------------------------- the constructor


def raw_client(api: Api, config: mal.MALConfig | None = None, **kwargs: Any) -> Any:
    return (mal.Client if api.sync else mal.AsyncClient)(config, **kwargs)


async def test_api_key_and_base_url_go_with_every_call(api: Api, server: MockServer) -> None:
    # As openai.OpenAI(api_key=..., base_url=...): the client's server and key,
    # before the environment's, for a call that gives none of its own.
    env = {"OPENAI_API_KEY": "from-env", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    raw = raw_client(
        api, api_key="sk-client", base_url=server.url("openai"), max_retries=0, environ=env
    )
    async with ClientAdapter(raw, sync=api.sync) as client:
        assert await client.generate("Hi", model="openai/gpt-mock", stream=False)
        await call_kind(client, "stream", "openai/gpt-mock")
        await call_kind(client, "embed", "openai/text-embedding-3-small")
        await client.generate("Hi", model="openai/gpt-mock", api_key="sk-call")
    assert [r.headers["authorization"] for r in server.requests] == [
        "Bearer sk-client",
        "Bearer sk-client",
        "Bearer sk-client",
        "Bearer sk-call",
    ]
    assert all(r.violation is None for r in server.requests)


async def test_api_key_and_base_url_for_anthropic(api: Api, server: MockServer) -> None:
    raw = raw_client(api, api_key="sk-ant-client", base_url=server.url("anthropic"), environ={})
    async with ClientAdapter(raw, sync=api.sync) as client:
        assert await client.generate("Hi", model=MODELS["anthropic"])
    request = server.requests[-1]
    assert request.violation is None
    assert request.headers["x-api-key"] == "sk-ant-client"


async def test_max_retries_and_timeout_replace_the_configs(api: Api, server: MockServer) -> None:
    base = mal.MALConfig(
        base_urls={"openai": server.url("openai")}, max_retries=0, read_timeout=600.0
    )
    raw = raw_client(
        api, base, max_retries=1, timeout=httpx.Timeout(5.0, read=0.3), random=lambda: 0.0
    )
    assert base.max_retries == 0 and base.read_timeout == 600.0  # the caller's is untouched
    assert raw.config.max_retries == 1
    assert raw.config.timeouts() == (5.0, 0.3, 5.0, 5.0)
    server.add(Reply(status=500), Reply(text="Second time."), Reply(headers_delay=2.0))
    async with ClientAdapter(raw, sync=api.sync) as client:
        assert await client.generate("Hi", model=MODELS["openai"]) == "Second time."
        with pytest.raises(mal.APITimeoutError) as info:
            await client.generate("Hi", model=MODELS["openai"], max_retries=0)
    assert info.value.phase == "read"


async def test_a_per_call_httpx_timeout(api: Api, server: MockServer) -> None:
    server.add(Reply(headers_delay=2.0), Reply(text="In time."))
    async with api.client_for(server) as client:
        with pytest.raises(mal.APITimeoutError) as info:
            await client.generate(
                "Hi", model=MODELS["openai"], timeout=httpx.Timeout(5.0, read=0.3)
            )
        assert info.value.phase == "read"
        stream = client.stream("Hi", model=MODELS["anthropic"], timeout=httpx.Timeout(0.5))
        async with stream:
            assert "".join(c.text for c in await collect(stream)) == "In time."


async def test_a_bad_keyword_is_a_config_error(api: Api) -> None:
    for kwargs in ({"api_key": ""}, {"base_url": 3}, {"max_retries": -1}, {"timeout": "5"}):
        with pytest.raises(mal.ConfigError):
            raw_client(api, **kwargs)


# --------------------------------------------------------------------------- with_options


async def test_with_options_replaces_fields_and_shares_the_pool(
    api: Api, server: MockServer
) -> None:
    config = mal.MALConfig(base_urls={"openai": server.url("openai")}, max_retries=2)
    original = raw_client(api, config, api_key="sk-one", random=lambda: 0.0)
    derived = original.with_options(max_retries=0, read_timeout=0.3)
    assert type(derived) is type(original)
    assert derived._http is original._http
    assert derived.config.max_retries == 0 and derived.config.read_timeout == 0.3
    assert original.config.max_retries == 2 and original.config.read_timeout == 600.0
    server.add(Reply(status=503), Reply(headers_delay=2.0), Reply(status=503), Reply(text="Ok."))
    async with ClientAdapter(derived, sync=api.sync) as client:
        with pytest.raises(mal.InternalServerError):  # not retried
            await client.generate("Hi", model=MODELS["openai"])
        with pytest.raises(mal.APITimeoutError):  # the shorter read timeout
            await client.generate("Hi", model=MODELS["openai"])
    # Closing the derived client left the shared pool open.
    assert not original._http.is_closed
    async with ClientAdapter(original, sync=api.sync) as client:
        assert await client.generate("Hi", model=MODELS["openai"]) == "Ok."  # retried once
    assert original._http.is_closed  # closing the original closes it
    assert [r.headers["authorization"] for r in server.requests] == ["Bearer sk-one"] * 4


async def test_with_options_keyword_arguments(api: Api, server: MockServer) -> None:
    config = mal.MALConfig(max_retries=0, timeout=7.0)
    original = raw_client(api, config, api_key="sk-one", base_url="http://127.0.0.1:9/v1")
    derived = original.with_options(
        api_key="sk-two", base_url=server.url("openai"), timeout=httpx.Timeout(3.0, connect=1.0)
    )
    assert derived.config.timeouts() == (1.0, 3.0, 3.0, 3.0)
    # A granular timeout replaces its part of the config's single one.
    assert original.with_options(read_timeout=2.0).config.timeouts() == (7.0, 2.0, 7.0, 7.0)
    again = derived.with_options(max_retries=1)
    assert again._http is original._http
    async with ClientAdapter(again, sync=api.sync) as client:
        await client.generate("Hi", model=MODELS["openai"])
    assert server.requests[-1].headers["authorization"] == "Bearer sk-two"
    with pytest.raises(mal.ConfigError, match="bogus"):
        original.with_options(bogus=1)
    with pytest.raises(mal.ConfigError, match="max_retries"):
        original.with_options(max_retries=-1)
    await ClientAdapter(original, sync=api.sync).aclose()


# --------------------------------------------------------------------------- environment


async def test_openai_organization_and_project_from_the_environment(
    api: Api, server: MockServer
) -> None:
    env = {"OPENAI_ORG_ID": "org-abc", "OPENAI_PROJECT_ID": "proj_xyz", "OPENAI_API_KEY": "k"}
    async with api.client(
        mal.MALConfig(base_urls={"openai": server.url("openai")}), environ=env
    ) as client:
        for kind in KINDS:
            await call_kind(client, kind, MODELS["openai"] if kind != "embed" else "openai/e")
        await call_kind(client, "generate", "openai-responses/gpt-mock")
        # A call's extra_headers replace them.
        await client.generate("Hi", model=MODELS["openai"], extra_headers={"OpenAI-Project": "p2"})
    for request in server.requests:
        assert request.violation is None
        assert request.headers["openai-organization"] == "org-abc"
        assert request.headers["authorization"] == "Bearer k"
    projects = [r.headers["openai-project"] for r in server.requests]
    assert projects == ["proj_xyz"] * 5 + ["p2"]


async def test_no_openai_headers_elsewhere_or_without_the_variables(
    api: Api, server: MockServer
) -> None:
    env = {"OPENAI_ORG_ID": "org-abc", "OPENAI_PROJECT_ID": "proj_xyz"}
    async with api.client_for(server) as client:  # an empty environment
        await client.generate("Hi", model=MODELS["openai"])
    async with api.client(
        mal.MALConfig(
            base_urls={"ollama": server.url("ollama"), "anthropic": server.url("anthropic")}
        ),
        environ=env,
    ) as client:
        await client.generate("Hi", model=MODELS["ollama"])
        await client.generate("Hi", model=MODELS["anthropic"])
    for request in server.requests:
        assert "openai-organization" not in request.headers
        assert "openai-project" not in request.headers


async def test_anthropic_auth_token_from_the_environment(api: Api, server: MockServer) -> None:
    config = mal.MALConfig(base_urls={"anthropic": server.url("anthropic")}, max_retries=0)
    # The token alone: a bearer token, no x-api-key.
    async with api.client(config, environ={"ANTHROPIC_AUTH_TOKEN": "tok-1"}) as client:
        await client.generate("Hi", model=MODELS["anthropic"])
    # Both: anthropic-python sends both headers, and so does mal.
    both = {"ANTHROPIC_AUTH_TOKEN": "tok-2", "ANTHROPIC_API_KEY": "sk-ant"}
    async with api.client(config, environ=both) as client:
        stream = client.stream("Hi", model=MODELS["anthropic"])
        async with stream:
            await collect(stream)
    first, second = server.requests
    assert first.violation is None and second.violation is None
    assert first.headers["authorization"] == "Bearer tok-1"
    assert "x-api-key" not in first.headers
    assert second.headers["authorization"] == "Bearer tok-2"
    assert second.headers["x-api-key"] == "sk-ant"


async def test_the_environment_is_read_when_the_client_is_made(
    api: Api, server: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-first")
    client = api.client(mal.MALConfig(base_urls={"openai": server.url("openai")}))
    monkeypatch.setenv("OPENAI_ORG_ID", "org-later")
    async with client:
        await client.generate("Hi", model=MODELS["openai"])
        derived = ClientAdapter(client.raw.with_options(max_retries=0), sync=api.sync)
        await derived.generate("Hi", model=MODELS["openai"])
    assert [r.headers["openai-organization"] for r in server.requests] == ["org-first"] * 2
