"""Tests of the built-in mock model server (mal.testing), driven with http.client and sockets."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mal.testing import DEFAULT_TEXT, MockServer, Reply, split_tokens
from tests.support.requests import (
    ANTHROPIC_HEADERS,
    anthropic_messages,
    ollama_chat,
    ollama_generate,
    openai_chat,
)


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


# --------------------------------------------------------------------------- helpers


@dataclass
class Raw:
    """A response read off a raw socket, chunk by chunk."""

    status: int
    headers: dict[str, str]
    chunks: list[bytes]
    complete: bool  # the terminating 0-chunk (or the full Content-Length) arrived
    eof: bool  # the server closed the connection

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


class Conn:
    """A minimal HTTP/1.1 client over one socket that keeps the chunk boundaries."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, path: str, body: Any, method: str = "POST", **headers: str) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(data)}"]
        named = {name.lower().replace("_", "-") for name in headers}
        if not isinstance(body, bytes) and "content-type" not in named:
            lines.append("Content-Type: application/json")  # as every JSON client sends it
        lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def _line(self) -> bytes | None:
        while b"\r\n" not in self.buf:
            if not self._fill():
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def head(self) -> tuple[int, dict[str, str]]:
        status_line = self._line()
        assert status_line is not None, "connection closed before the status line"
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while True:
            line = self._line()
            assert line is not None
            if not line:
                return status, headers
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()

    def chunk(self) -> bytes | None:
        """The next chunk's payload; b"" for the last chunk, None on EOF/truncation."""
        line = self._line()
        if line is None:
            return None
        size = int(line, 16)
        while len(self.buf) < size + 2:
            if not self._fill():
                partial, self.buf = self.buf[:size], b""
                return None if not partial else b"\x00TRUNCATED" + partial
        data, self.buf = self.buf[:size], self.buf[size + 2 :]
        return data

    def response(self) -> Raw:
        status, headers = self.head()
        chunks: list[bytes] = []
        if "content-length" in headers:
            size = int(headers["content-length"])
            while len(self.buf) < size and self._fill():
                pass
            body, self.buf = self.buf[:size], self.buf[size:]
            return Raw(status, headers, [body], len(body) == size, False)
        while True:
            data = self.chunk()
            if data == b"":
                return Raw(status, headers, chunks, True, False)
            if data is None:
                return Raw(status, headers, chunks, False, True)
            if data.startswith(b"\x00TRUNCATED"):
                chunks.append(data[len(b"\x00TRUNCATED") :])
                return Raw(status, headers, chunks, False, True)
            chunks.append(data)

    def at_eof(self) -> bool:
        return not self.buf and not self._fill()


def call(server: MockServer, path: str, body: Any, **headers: str) -> Raw:
    conn = Conn(server.port)
    try:
        conn.send(path, body, **headers)
        return conn.response()
    finally:
        conn.close()


def call_chat(server: MockServer, **fields: Any) -> Raw:
    """Send a valid Chat Completions request with `fields` (see `openai_chat`)."""
    return call(server, "/v1/chat/completions", openai_chat(**fields))


def call_messages(server: MockServer, **fields: Any) -> Raw:
    """Send a valid Messages API request with `fields` (see `anthropic_messages`),
    with the version header the API requires."""
    return call(server, "/v1/messages", anthropic_messages(**fields), **ANTHROPIC_HEADERS)


def sse(chunk: bytes) -> tuple[str | None, Any]:
    """Parse one SSE event: (event name, parsed data or the raw data string)."""
    text = chunk.decode()
    assert text.endswith("\n\n"), text
    name = None
    data = None
    for line in text.strip("\n").split("\n"):
        key, _, value = line.partition(": ")
        if key == "event":
            name = value
        elif key == "data":
            data = value if value == "[DONE]" else json.loads(value)
    return name, data


# --------------------------------------------------------------------------- basics


def test_urls(server: MockServer) -> None:
    base = server.base_url
    assert base == f"http://127.0.0.1:{server.port}"
    assert server.url("ollama") == base
    assert server.url("anthropic") == base
    assert server.url("openai") == base + "/v1"
    with pytest.raises(ValueError):
        server.url("nope")


def test_split_tokens_examples() -> None:
    assert split_tokens("Hello there, world!") == ["Hello", " there", ",", " world", "!"]
    assert split_tokens("a\n\nb") == ["a", "\n\n", "b"]
    assert all(len(t.strip()) <= 6 for t in split_tokens("extraordinarily long words"))
    assert split_tokens("") == []


@settings(max_examples=60, deadline=None)
@given(st.text())
def test_split_tokens_round_trip(text: str) -> None:
    tokens = split_tokens(text)
    assert "".join(tokens) == text
    assert all(tokens)


def test_reply_validation() -> None:
    with pytest.raises(ValueError):
        Reply(chunk_delay=-1)
    with pytest.raises(ValueError):
        Reply(ping_interval=0)
    with pytest.raises(ValueError):
        Reply(status=100)


# --------------------------------------------------------------------------- ollama


def test_ollama_chat_stream(server: MockServer) -> None:
    server.add(Reply(text="Hi there", reasoning="Think", input_tokens=5))
    r = call(server, "/api/chat", ollama_chat(model="llama3.2"))
    assert r.status == 200 and r.complete
    assert r.headers["content-type"] == "application/x-ndjson"
    assert r.headers["transfer-encoding"] == "chunked"
    lines = [json.loads(c) for c in r.chunks]
    assert all(c.endswith(b"\n") and c.count(b"\n") == 1 for c in r.chunks)
    assert [x["message"].get("thinking", "") for x in lines[:-1]] == ["Think", "", ""]
    assert [x["message"]["content"] for x in lines[:-1]] == ["", "Hi", " there"]
    assert all(x["model"] == "llama3.2" and x["created_at"].endswith("Z") for x in lines)
    assert all(x["done"] is False for x in lines[:-1])
    final = lines[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["message"] == {"role": "assistant", "content": ""}
    assert final["prompt_eval_count"] == 5 and final["eval_count"] == 3
    for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(final[key], int) and final[key] >= 0
    assert "context" not in final


def test_ollama_generate_streams_by_default(server: MockServer) -> None:
    server.add(Reply(tokens=["A", "B"], finish_reason="length"))
    r = call(server, "/api/generate", ollama_generate(prompt="x"))
    lines = [json.loads(c) for c in r.chunks]
    assert [x["response"] for x in lines] == ["A", "B", ""]
    assert lines[-1]["done_reason"] == "length"
    assert isinstance(lines[-1]["context"], list)


def test_ollama_non_stream(server: MockServer) -> None:
    server.add(Reply(text="Fine.", reasoning="ok"))
    r = call(server, "/api/generate", ollama_generate(prompt="x", stream=False))
    assert "content-length" in r.headers and r.headers["content-type"].startswith(
        "application/json"
    )
    obj = json.loads(r.body)
    assert obj["response"] == "Fine." and obj["thinking"] == "ok" and obj["done"] is True
    assert obj["done_reason"] == "stop" and obj["model"] == "m" and "context" in obj
    server.add(Reply(text="Chat."))
    obj = json.loads(call(server, "/api/chat", ollama_chat(stream=False)).body)
    assert obj["message"] == {"role": "assistant", "content": "Chat."} and obj["done"] is True


# --------------------------------------------------------------------------- openai


def test_openai_stream_with_usage(server: MockServer) -> None:
    server.add(Reply(tokens=["Hel", "lo"], reasoning_tokens=["hm"], input_tokens=7))
    r = call_chat(server, model="gpt-x", stream=True, stream_options={"include_usage": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [sse(c)[1] for c in r.chunks]
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    for c in chunks:
        assert c["object"] == "chat.completion.chunk" and c["model"] == "gpt-x"
        assert isinstance(c["created"], int) and c["system_fingerprint"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["choices"][0]["delta"]["content"] == ""
    assert chunks[1]["choices"][0]["delta"] == {"reasoning_content": "hm"}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[2:4]] == ["Hel", "lo"]
    assert chunks[4]["choices"][0]["finish_reason"] == "stop"
    assert chunks[4]["choices"][0]["delta"] == {}
    assert chunks[5]["choices"] == []
    usage = chunks[5]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (7, 3, 10)
    assert all(c["usage"] is None for c in chunks[:5])


def test_openai_stream_without_usage(server: MockServer) -> None:
    server.add(Reply(tokens=["x"]))
    r = call(server, "/chat/completions", openai_chat(stream=True))
    events = [sse(c)[1] for c in r.chunks]
    assert events[-1] == "[DONE]" and len(events) == 4
    assert all("usage" not in e for e in events[:-1])


def test_openai_non_stream(server: MockServer) -> None:
    server.add(Reply(text="Yes.", reasoning="why not", finish_reason="length"))
    r = call_chat(server, model="gpt-x")
    obj = json.loads(r.body)
    assert obj["object"] == "chat.completion" and obj["model"] == "gpt-x"
    choice = obj["choices"][0]
    assert choice["message"]["content"] == "Yes." and choice["message"]["role"] == "assistant"
    assert choice["message"]["reasoning_content"] == "why not"
    assert choice["finish_reason"] == "length"
    assert obj["usage"]["total_tokens"] == obj["usage"]["prompt_tokens"] + 4


# --------------------------------------------------------------------------- anthropic


def test_anthropic_stream(server: MockServer) -> None:
    server.add(Reply(tokens=["Hi", "!"], reasoning_tokens=["a", "b"], input_tokens=9))
    r = call_messages(server, model="claude-x", stream=True)
    events = [sse(c) for c in r.chunks]
    names = [name for name, _ in events]
    assert names == [
        "message_start", "content_block_start", "ping",
        "content_block_delta", "content_block_delta",  # thinking
        "content_block_delta", "content_block_stop",  # signature, stop thinking
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    assert all(name == data["type"] for name, data in events)
    start = events[0][1]["message"]
    assert start["model"] == "claude-x" and start["id"].startswith("msg_")
    assert start["usage"]["input_tokens"] == 9 and start["content"] == []
    assert events[1][1]["content_block"]["type"] == "thinking"
    assert events[3][1]["delta"] == {"type": "thinking_delta", "thinking": "a"}
    assert events[5][1]["delta"]["type"] == "signature_delta"
    assert events[7][1] == {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "text", "text": ""},
    }
    assert [e[1]["delta"]["text"] for e in events[8:10]] == ["Hi", "!"]
    assert all(e[1]["index"] == 1 for e in events[8:11])
    assert events[11][1]["delta"]["stop_reason"] == "end_turn"
    assert events[11][1]["usage"]["output_tokens"] == 4
    assert r.chunks[2] == b'event: ping\ndata: {"type": "ping"}\n\n'


def test_anthropic_stream_without_thinking(server: MockServer) -> None:
    server.add(Reply(tokens=["x"]))
    r = call_messages(server, model="c", stream=True)
    events = [sse(c)[1] for c in r.chunks]
    assert events[1]["content_block"] == {"type": "text", "text": ""}
    assert events[3]["index"] == 0 and events[3]["delta"] == {"type": "text_delta", "text": "x"}


def test_anthropic_non_stream(server: MockServer) -> None:
    server.add(Reply(text="Sure.", reasoning="hm", finish_reason="max_tokens"))
    obj = json.loads(call_messages(server, model="claude-x").body)
    assert obj["type"] == "message" and obj["role"] == "assistant" and obj["model"] == "claude-x"
    assert [b["type"] for b in obj["content"]] == ["thinking", "text"]
    assert obj["content"][1]["text"] == "Sure." and obj["content"][0]["thinking"] == "hm"
    assert obj["stop_reason"] == "max_tokens"
    assert obj["usage"]["input_tokens"] == 11 and obj["usage"]["output_tokens"] == 3


# --------------------------------------------------------------------------- behaviour


def test_non_ascii_is_utf8(server: MockServer) -> None:
    server.add(Reply(text="héllo 世界 🎉"))
    r = call_chat(server)
    assert "héllo 世界 🎉".encode() in r.body and b"\\u" not in r.body


def test_keep_alive_one_connection(server: MockServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for i in range(10):
        server.add(Reply(text=f"reply {i}"))
        stream = i % 2 == 0
        body = json.dumps(openai_chat(stream=stream))
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200 and f"reply {i}".split()[1].encode() in body
    conn.close()
    assert server.connections == 1
    assert len(server.requests) == 10


def test_queue_order_then_default(server: MockServer) -> None:
    server.add(Reply(text="first"), "second")
    server.default = Reply(text="fallback")
    assert server.pending == 2
    texts = []
    for _ in range(3):
        obj = json.loads(call_messages(server).body)
        texts.append(obj["content"][0]["text"])
    assert texts == ["first", "second", "fallback"]
    assert server.pending == 0


def test_builtin_default() -> None:
    with MockServer() as server:
        obj = json.loads(call(server, "/api/chat", ollama_chat(stream=False)).body)
        assert obj["message"]["content"] == DEFAULT_TEXT


def test_requests_are_recorded(server: MockServer) -> None:
    body = anthropic_messages()
    version = "2023-06-01"
    call(server, "/v1/messages?beta=true", body, X_Api_Key="k", Anthropic_Version=version)
    call(server, "/api/generate", ollama_generate(stream=False))
    first, second = server.requests
    assert first.method == "POST" and first.path == "/v1/messages" and first.query == "beta=true"
    assert first.headers["x-api-key"] == "k" and first.headers["anthropic-version"] == version
    assert first.json == body and first.body == json.dumps(body).encode()
    assert first.provider == "anthropic" and second.provider == "ollama"
    assert first.violation is None and second.violation is None
    server.reset()
    assert server.requests == [] and server.connections == 0 and server.disconnects == 0


def test_requests_record_when_they_came(server: MockServer) -> None:
    server.add(Reply(text="a", headers_delay=0.05), Reply(text="b"))
    before = time.monotonic()
    call(server, "/api/generate", ollama_generate(stream=False))
    between = time.monotonic()
    call(server, "/api/generate", ollama_generate(stream=False))
    after = time.monotonic()
    first, second = server.requests
    # On the monotonic clock of the process: before the reply's delay.
    assert before <= first.received_at <= between - 0.05
    assert between <= second.received_at <= after


def test_unknown_path_and_method(server: MockServer) -> None:
    r = call(server, "/v2/whatever", {"model": "m"})
    assert r.status == 404 and json.loads(r.body)
    conn = Conn(server.port)
    conn.send("/api/chat", b"", method="GET")
    assert conn.response().status == 405
    conn.close()
    r = call(server, "/v1/chat/completions", b"{not json")
    assert r.status == 400 and "error" in json.loads(r.body)


def test_info_endpoints(server: MockServer) -> None:
    conn = Conn(server.port)
    conn.send("/api/tags", b"", method="GET")
    assert json.loads(conn.response().body)["models"][0]["name"] == "mock-model:latest"
    conn.send("/v1/models", b"", method="GET")
    assert json.loads(conn.response().body)["data"][0]["id"] == "mock-model"
    conn.close()


def test_status_errors(server: MockServer) -> None:
    server.add(Reply(status=429, headers={"retry-after": "1"}))
    r = call_chat(server, stream=True)
    assert r.status == 429 and r.headers["retry-after"] == "1"
    error = json.loads(r.body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]

    server.add(Reply(status=529))
    obj = json.loads(call_messages(server, stream=True).body)
    assert obj["type"] == "error" and obj["error"]["type"] == "overloaded_error"

    server.add(Reply(status=401))
    obj = json.loads(call_messages(server).body)
    assert obj["error"]["type"] == "authentication_error"

    server.add(Reply(status=500, error_message="boom"))
    r = call(server, "/api/chat", ollama_chat())
    assert r.status == 500 and json.loads(r.body) == {"error": "boom"}

    server.add(Reply(status=502, error_body=b"<html>bad gateway</html>", content_type="text/html"))
    r = call(server, "/api/chat", ollama_chat())
    assert r.status == 502 and r.body == b"<html>bad gateway</html>"
    assert r.headers["content-type"] == "text/html"


def test_inband_errors(server: MockServer) -> None:
    server.add(Reply(tokens=["a", "b", "c"], error_after=2, error_message="gpu on fire"))
    r = call(server, "/api/chat", ollama_chat())
    lines = [json.loads(c) for c in r.chunks]
    assert r.complete and lines[-1] == {"error": "gpu on fire"} and len(lines) == 3

    server.add(Reply(tokens=["a", "b"], error_after=1))
    r = call_chat(server, stream=True)
    events = [sse(c)[1] for c in r.chunks]
    assert r.complete and "[DONE]" not in events
    assert set(events[-1]["error"]) >= {"message", "type", "code"}

    server.add(Reply(tokens=["a", "b"], error_after=1))
    r = call_messages(server, stream=True)
    name, data = sse(r.chunks[-1])
    assert name == "error" and data["error"]["type"] == "overloaded_error"

    server.add(Reply(tokens=["a"], error_after=0, error_type="overloaded_error"))
    assert call_messages(server).status == 529


def test_omit_end(server: MockServer) -> None:
    server.add(Reply(tokens=["a"], omit_end=True))
    r = call(server, "/api/generate", ollama_generate())
    assert r.complete and all(json.loads(c)["done"] is False for c in r.chunks)

    server.add(Reply(tokens=["a"], omit_end=True))
    r = call_chat(server, stream=True)
    events = [sse(c)[1] for c in r.chunks]
    assert r.complete and "[DONE]" not in events
    assert events[-1]["choices"][0]["finish_reason"] == "stop"

    server.add(Reply(tokens=["a"], omit_end=True))
    r = call_messages(server, stream=True)
    names = [sse(c)[0] for c in r.chunks]
    assert r.complete and names[-1] == "message_delta" and "message_stop" not in names


def test_drop_after_streaming(server: MockServer) -> None:
    server.add(Reply(tokens=["aaaa", "bbbb"], drop_after=70))
    conn = Conn(server.port)
    conn.send("/api/generate", ollama_generate())
    r = conn.response()
    conn.close()
    assert r.status == 200 and not r.complete and r.eof
    assert len(r.body) == 70
    assert server.disconnects == 0


def test_drop_after_zero_and_content_length(server: MockServer) -> None:
    server.add(Reply(drop_after=0))
    conn = Conn(server.port)
    conn.send("/v1/messages", anthropic_messages(stream=True), **ANTHROPIC_HEADERS)
    r = conn.response()
    assert r.status == 200 and r.chunks == [] and r.eof
    conn.close()

    server.add(Reply(drop_after=5))
    conn = Conn(server.port)
    conn.send("/v1/messages", anthropic_messages(), **ANTHROPIC_HEADERS)
    status, headers = conn.head()
    assert status == 200 and int(headers["content-length"]) > 5
    while conn._fill():
        pass
    assert conn.buf == b'{"id"'
    conn.close()


def test_stall_and_client_disconnect(server: MockServer) -> None:
    server.add(Reply(tokens=["a", "b"], stall_after=1))
    conn = Conn(server.port)
    conn.send("/api/chat", ollama_chat())
    conn.head()
    first = conn.chunk()
    assert first is not None and json.loads(first)["message"]["content"] == "a"
    start = time.monotonic()
    conn.close()
    assert server.wait_for_disconnect(timeout=2.0)
    assert time.monotonic() - start < 1.0
    assert server.disconnects == 1


def test_write_failure_counts_as_disconnect(server: MockServer) -> None:
    server.add(Reply(tokens=["x" * 1000] * 500, chunk_delay=0.001))
    conn = Conn(server.port)
    conn.send("/v1/chat/completions", openai_chat(stream=True))
    conn.head()
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    assert server.wait_for_disconnect(timeout=2.0)


def test_stall_resumes_with_pings(server: MockServer) -> None:
    server.add(Reply(tokens=["a", "b"], stall_after=1, stall=0.25, ping_interval=0.05))
    r = call_chat(server, stream=True)
    assert r.complete
    pings = [c for c in r.chunks if c == b": ping\n\n"]
    assert 2 <= len(pings) <= 6
    content = [sse(c)[1] for c in r.chunks if c.startswith(b"data: {")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in content) == "ab"

    server.add(Reply(tokens=["a"], first_delay=0.12, ping_interval=0.05))
    r = call_messages(server, stream=True)
    names = [sse(c)[0] for c in r.chunks]
    assert names.count("ping") >= 2 and names[-1] == "message_stop"


def test_delays(server: MockServer) -> None:
    server.add(Reply(tokens=["a", "b", "c"], headers_delay=0.1, first_delay=0.05, chunk_delay=0.05))
    conn = Conn(server.port)
    start = time.monotonic()
    conn.send("/api/chat", ollama_chat())
    conn.head()
    t_head = time.monotonic() - start
    assert conn.chunk() is not None
    t_first = time.monotonic() - start
    while conn.chunk():
        pass
    t_end = time.monotonic() - start
    conn.close()
    assert 0.09 <= t_head < 0.5
    assert t_first >= 0.14
    assert t_end >= 0.24


def test_raw_bodies(server: MockServer) -> None:
    server.add(Reply(raw=b"\xff\xfe garbage", content_type="text/plain"))
    r = call_chat(server, stream=True)
    assert r.chunks == [b"\xff\xfe garbage"] and r.headers["content-type"] == "text/plain"

    server.add(Reply(raw_chunks=[b"data: {", b'"x": 1}\n\n']))
    r = call_chat(server)
    assert r.chunks == [b"data: {", b'"x": 1}\n\n'] and r.complete

    server.add(Reply(raw=b"<html>hi</html>", content_type="text/html"))
    r = call_messages(server)
    assert "content-length" in r.headers and r.body == b"<html>hi</html>"


def test_stop_is_prompt_with_stalled_handler() -> None:
    server = MockServer().start()
    server.add(Reply(tokens=["a"], stall_after=0))
    conn = Conn(server.port)
    conn.send("/api/chat", ollama_chat())
    conn.head()
    idle = Conn(server.port)  # an idle keep-alive connection too
    assert server.wait_for_requests(1)
    deadline = time.monotonic() + 2
    while server.connections < 2 and time.monotonic() < deadline:
        time.sleep(0.005)  # let the server accept the idle connection
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 1.0
    assert conn.chunk() is None  # EOF, no terminating chunk
    assert idle.at_eof()
    conn.close()
    idle.close()
    assert server.disconnects == 0


def test_many_servers() -> None:
    servers = [MockServer().start() for _ in range(4)]
    try:
        assert len({s.port for s in servers}) == 4
        for i, s in enumerate(servers):
            s.add(f"server {i}")
        for i, s in enumerate(servers):
            obj = json.loads(call_messages(s).body)
            assert obj["content"][0]["text"] == f"server {i}"
    finally:
        for s in servers:
            s.stop()
