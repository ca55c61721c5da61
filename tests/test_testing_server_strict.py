"""The strict built-in server: a request the provider's rules reject gets that
provider's own error, takes no reply and is recorded with its violation.

The rules themselves live in ``mal.testing._rules`` and are tested on their
own; here ``check`` is replaced by a stub, so these tests are about the hook:
which requests reach the rules, and how a rejection goes over the wire.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import mal.testing._rules as rules
from mal.testing import MockServer, Reply
from mal.testing._rules import Request, Violation
from tests.support.requests import ANTHROPIC_HEADERS
from tests.test_testing_server import Conn, Raw, call


class Rules:
    """A stand-in for ``mal.testing._rules.check``: it answers `violation`
    (None accepts) and keeps every request it was asked about."""

    def __init__(self) -> None:
        self.violation: Violation | None = None
        self.seen: list[Request] = []

    def __call__(self, request: Request) -> Violation | None:
        self.seen.append(request)
        return self.violation


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Rules:
    stub = Rules()
    monkeypatch.setattr(rules, "check", stub)
    return stub


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


def get(server: MockServer, path: str) -> Raw:
    conn = Conn(server.port)
    try:
        conn.send(path, b"", method="GET")
        return conn.response()
    finally:
        conn.close()


BROKEN = Violation(
    "Invalid type for 'messages[0].content': expected a string, but got an object.",
    param="messages[0].content",
    status=400,
    error_type="invalid_request_error",
    code="invalid_type",
)

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC = {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}

#: (path, body, the kind the rules see, Azure) of each endpoint the rules check.
OPENAI_ENDPOINTS = [
    ("/v1/chat/completions", CHAT, "openai", False),
    ("/chat/completions", CHAT, "openai", False),
    ("/v1/responses", {"model": "m", "input": "hi"}, "responses", False),
    ("/v1/embeddings", {"model": "m", "input": "hi"}, "embeddings", False),
    ("/openai/deployments/d/chat/completions?api-version=2024-10-21", CHAT, "openai", True),
    (
        "/openai/deployments/d/embeddings?api-version=2024-10-21",
        {"input": "hi"},
        "embeddings",
        True,
    ),
    ("/openai/v1/chat/completions", CHAT, "openai", True),
    ("/openai/v1/embeddings", {"model": "m", "input": "hi"}, "embeddings", True),
]
OLLAMA_ENDPOINTS = [
    ("/api/chat", CHAT, "chat"),
    ("/api/generate", {"model": "m", "prompt": "hi"}, "generate"),
    ("/api/embed", {"model": "m", "input": "hi"}, "embed"),
]


@pytest.mark.parametrize(("path", "body", "kind", "azure"), OPENAI_ENDPOINTS)
def test_openai_and_azure_answer_a_violation_with_openais_error(
    server: MockServer, stub: Rules, path: str, body: dict[str, Any], kind: str, azure: bool
) -> None:
    stub.violation = BROKEN
    raw = call(server, path, {**body, "stream": kind != "embeddings"}, Authorization="Bearer k")

    assert raw.status == 400
    assert raw.headers["content-type"] == "application/json"
    assert raw.headers["content-length"] == str(len(raw.body))
    assert raw.headers["x-request-id"].startswith("req_")
    assert json.loads(raw.body) == {
        "error": {
            "message": BROKEN.message,
            "type": "invalid_request_error",
            "param": "messages[0].content",
            "code": "invalid_type",
        }
    }
    [seen] = stub.seen
    url_path, _, query = path.partition("?")
    assert (seen.kind, seen.path, seen.query, seen.azure) == (kind, url_path, query, azure)
    assert seen.body == {**body, "stream": kind != "embeddings"}
    assert seen.headers["authorization"] == "Bearer k"


def test_openai_error_keeps_a_null_param_and_code(server: MockServer, stub: Rules) -> None:
    stub.violation = Violation("Missing required parameter: 'model'.")
    raw = call(server, "/v1/chat/completions", {"messages": []})
    assert raw.status == 400
    error = json.loads(raw.body)["error"]
    assert error == {
        "message": "Missing required parameter: 'model'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_anthropic_answers_a_violation_with_its_error(server: MockServer, stub: Rules) -> None:
    stub.violation = Violation(
        "max_tokens: Field required", param="max_tokens", code="ignored by Anthropic"
    )
    raw = call(
        server, "/v1/messages", {**ANTHROPIC, "stream": True}, anthropic_version="2023-06-01"
    )

    assert raw.status == 400
    assert raw.headers["content-type"] == "application/json"
    request_id = raw.headers["request-id"]
    assert request_id.startswith("req_")
    assert json.loads(raw.body) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
        "request_id": request_id,
    }
    [seen] = stub.seen
    assert (seen.kind, seen.path, seen.azure) == ("anthropic", "/v1/messages", False)
    assert seen.headers["anthropic-version"] == "2023-06-01"


@pytest.mark.parametrize(("path", "body", "kind"), OLLAMA_ENDPOINTS)
def test_ollama_answers_a_violation_with_its_error(
    server: MockServer, stub: Rules, path: str, body: dict[str, Any], kind: str
) -> None:
    stub.violation = Violation("json: cannot unmarshal string into Go value of type []api.Message")
    raw = call(server, path, body)

    assert raw.status == 400
    assert raw.headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(raw.body) == {"error": stub.violation.message}
    [seen] = stub.seen
    assert (seen.kind, seen.path, seen.azure) == (kind, path, False)


def test_the_violation_sets_the_status_and_type(server: MockServer, stub: Rules) -> None:
    stub.violation = Violation("model: nope", status=404, error_type="not_found_error")
    raw = call(server, "/v1/messages", ANTHROPIC)
    assert raw.status == 404
    assert json.loads(raw.body)["error"] == {"type": "not_found_error", "message": "model: nope"}

    stub.violation = Violation("too large", status=413, error_type="invalid_request_error")
    raw = call(server, "/v1/chat/completions", CHAT)
    assert raw.status == 413
    assert json.loads(raw.body)["error"]["type"] == "invalid_request_error"

    stub.violation = Violation('model "m" not found, try pulling it first', status=404)
    raw = call(server, "/api/chat", CHAT)
    assert raw.status == 404
    assert json.loads(raw.body) == {"error": 'model "m" not found, try pulling it first'}


@pytest.mark.parametrize(
    ("path", "body"),
    [("/v1/chat/completions", CHAT), ("/v1/messages", ANTHROPIC), ("/api/embed", {"input": "a"})],
)
def test_a_rejected_request_takes_no_reply_and_is_recorded(
    server: MockServer, stub: Rules, path: str, body: dict[str, Any]
) -> None:
    server.add(Reply(text="kept for later"))
    stub.violation = BROKEN
    assert call(server, path, body).status == 400
    assert server.pending == 1
    rejected = server.requests[-1]
    assert rejected.violation is BROKEN
    assert rejected.path == path
    assert rejected.json == body

    stub.violation = None
    raw = call(server, path, body)
    assert raw.status == 200
    assert server.pending == 0
    assert server.requests[-1].violation is None
    if path != "/api/embed":
        assert b"kept for later" in raw.body


def test_the_next_reply_answers_after_a_rejection(server: MockServer, stub: Rules) -> None:
    server.add(Reply(text="first"), Reply(text="second"))
    stub.violation = BROKEN
    call(server, "/v1/chat/completions", CHAT)
    stub.violation = None
    answer = json.loads(call(server, "/v1/chat/completions", CHAT).body)
    assert answer["choices"][0]["message"]["content"] == "first"
    assert server.pending == 1


def test_strict_false_skips_the_rules(stub: Rules) -> None:
    stub.violation = BROKEN
    # strict=False is what this test is about: the rules are not consulted.
    with MockServer(strict=False) as server:
        server.add(Reply(text="accepted"))
        raw = call(server, "/v1/chat/completions", CHAT)
        assert raw.status == 200
        assert json.loads(raw.body)["choices"][0]["message"]["content"] == "accepted"
        assert server.requests[-1].violation is None
    assert stub.seen == []


def test_strict_is_the_default() -> None:
    assert MockServer().strict is True
    assert MockServer(strict=False).strict is False  # the switch itself, off


def test_requests_the_rules_do_not_see(server: MockServer, stub: Rules) -> None:
    stub.violation = BROKEN
    # A body that is not a JSON object keeps its own answer.
    assert call(server, "/v1/chat/completions", b"not json").status == 400
    assert call(server, "/v1/chat/completions", [1, 2]).status == 400
    # Model lists, unknown paths, wrong methods.
    assert get(server, "/v1/models").status == 200
    assert call(server, "/v1/nowhere", CHAT).status == 404
    assert get(server, "/v1/chat/completions").status == 405
    assert stub.seen == []
    assert all(r.violation is None for r in server.requests)


@pytest.mark.parametrize("path", ["chat/completions", "embeddings"])
def test_azure_answers_a_deployment_url_without_its_api_version_404(path: str) -> None:
    body = CHAT if path == "chat/completions" else {"model": "m", "input": "Hi"}
    with MockServer() as server:
        raw = call(server, f"/openai/deployments/d/{path}", body)
        assert raw.status == 404
        gateway = {"error": {"code": "404", "message": "Resource not found"}}
        assert json.loads(raw.body) == gateway
        violation = server.requests[-1].violation
        assert violation is not None and violation.status == 404
        assert (
            call(server, f"/openai/deployments/d/{path}?api-version=2024-10-21", body).status == 200
        )
        assert call(server, f"/openai/v1/{path}", body).status == 200
    with MockServer(strict=False) as server:  # accepts any request, this one too
        assert call(server, f"/openai/deployments/d/{path}", body).status == 200


def test_the_rules_as_shipped_accept_an_ordinary_request(server: MockServer) -> None:
    raw = call(server, "/v1/chat/completions", CHAT)
    assert raw.status == 200
    assert server.requests[-1].violation is None


def test_anthropic_error_bodies_repeat_the_request_id(server: MockServer) -> None:
    # A scripted status error carries the same id in its header and its body.
    server.add(Reply(status=529))
    raw = call(server, "/v1/messages", ANTHROPIC, **ANTHROPIC_HEADERS)
    assert raw.status == 529
    answer = json.loads(raw.body)
    assert answer["error"]["type"] == "overloaded_error"
    assert answer["request_id"] == raw.headers["request-id"]
