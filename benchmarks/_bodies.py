"""Realistic streamed response bodies, the same bytes for every benchmark.

Each provider's body is what its server sends for ``n`` text tokens: the real
ids, ``created``, ``model``, ``system_fingerprint``, usage objects, keep-alive
pings and end markers, with token texts of a few characters that include JSON
escapes (``\\"``, ``\\n``, ``\\u00e9``, a surrogate pair) and raw 2-, 3- and
4-byte UTF-8 (é, 漢, 😀). Everything is drawn from a seeded generator: every
process that builds a body with the same arguments gets the same bytes, so a
client in a subprocess can check its text against :attr:`Body.text`.

Bodies are lists of *events*: one SSE event (``...\\n\\n``) or one ndjson line,
each the bytes a server writes as one HTTP chunk.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import msgspec

__all__ = [
    "BODIES",
    "Body",
    "AGENT_BODIES",
    "END_TO_END_BODIES",
    "REASONING",
    "SHAPES",
    "TOOL_BODIES",
    "build",
    "tokens",
]

#: The body kinds: "ollama" is /api/generate, "ollama-chat" is /api/chat.
BODIES = ("ollama", "ollama-chat", "openai", "anthropic")
#: Bodies served end to end (``stream.py``) that ``decode.py`` does not decode:
#: Gemini's ``streamGenerateContent?alt=sse``, whose model is in the path.
END_TO_END_BODIES = ("gemini",)
#: Tool-call bodies: the same tokens as pieces of one call's arguments
#: (OpenAI, Anthropic), or one whole call per line (Ollama, which sends calls
#: whole). Their ``text`` is the arguments' JSON text, all calls joined.
TOOL_BODIES = ("ollama-chat-tools", "openai-tools", "anthropic-tools")
#: The first step of a tool loop (``agents.py``): the text body's tokens, then
#: one whole call of the tool ``search`` with the arguments ``{"q": "mal"}``,
#: and the turn's end as each provider ends a turn on a call. The second step
#: is the text body itself (``ollama-chat`` for Ollama). Their ``text`` is the
#: text body's.
AGENT_BODIES = ("ollama-chat-agent", "openai-agent", "anthropic-agent", "gemini-agent")
AGENT_ARGUMENTS = {"q": "mal"}

#: Where each body kind is served, and the mal model name that asks for it.
PATHS = {
    "ollama": "/api/generate",
    "ollama-chat": "/api/chat",
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/{model}:streamGenerateContent",
}
CONTENT_TYPES = {
    "ollama": "application/x-ndjson",
    "ollama-chat": "application/x-ndjson",
    "openai": "text/event-stream; charset=utf-8",
    "anthropic": "text/event-stream; charset=utf-8",
    "gemini": "text/event-stream",
}
for _kind in TOOL_BODIES:
    PATHS[_kind] = PATHS[_kind.removesuffix("-tools")]
    CONTENT_TYPES[_kind] = CONTENT_TYPES[_kind.removesuffix("-tools")]
for _kind in AGENT_BODIES:
    PATHS[_kind] = PATHS[_kind.removesuffix("-agent")]
    CONTENT_TYPES[_kind] = CONTENT_TYPES[_kind.removesuffix("-agent")]


def _crlf(event: bytes) -> bytes:
    return event.replace(b"\n", b"\r\n")


def _no_space(event: bytes) -> bytes:
    return event.replace(b"data: ", b"data:", 1)


def _no_event_line(event: bytes) -> bytes:
    return event.partition(b"\n")[2] if event.startswith(b"event: ") else event


def _reasoning_ollama(event: bytes) -> bytes:
    return event.replace(b'"response":', b'"response":"","thinking":', 1)


def _reasoning_openai(event: bytes) -> bytes:
    # DeepSeek's and vLLM's field for the thinking of a reasoning model.
    return event.replace(b'"delta":{"content":', b'"delta":{"reasoning_content":', 1)


def _thinking_anthropic(event: bytes) -> bytes:
    event = event.replace(
        b'"delta":{"type":"text_delta","text":', b'"delta":{"type":"thinking_delta","thinking":', 1
    )
    return event.replace(
        b'"content_block":{"type":"text","text":""}',
        b'"content_block":{"type":"thinking","thinking":"","signature":""}',
        1,
    )


#: Bodies of the same tokens as reasoning (thinking) text instead of text:
#: kind -> (the body it rewrites, how each event is rewritten, what it is).
REASONING = {
    "ollama-reasoning": ("ollama", _reasoning_ollama, "Ollama, `thinking`"),
    "openai-reasoning": ("openai", _reasoning_openai, "OpenAI-compatible, `reasoning_content`"),
    "anthropic-thinking": ("anthropic", _thinking_anthropic, "Anthropic, `thinking_delta`"),
}

#: Bodies that real servers send in another shape than the provider's own:
#: kind -> (the body it reshapes, how each event is rewritten, what it is).
#: The provider's own OpenAI body already ends with a usage-only chunk
#: (``"choices": []``, as ``stream_options.include_usage`` asks).
SHAPES = {
    "openai-crlf": ("openai", _crlf, "CRLF line ends (sse-starlette)"),
    "openai-nospace": ("openai", _no_space, "`data:` without a space"),
    "anthropic-noevent": ("anthropic", _no_event_line, "Anthropic without `event:` lines"),
}
SHAPES.update(REASONING)
for _kind, (_base, _, _) in SHAPES.items():
    PATHS[_kind] = PATHS[_base]
    CONTENT_TYPES[_kind] = CONTENT_TYPES[_base]

_WORDS = (
    " the",
    " model",
    " stream",
    "ing",
    " of",
    " text",
    ",",
    ".",
    " a",
    " token",
    " is",
    " small",
    " and",
    " fast",
    " data",
    " we",
    " read",
    " from",
    " HTTP",
    " it",
    " to",
    " in",
    " Python",
    " each",
    " chunk",
    " byte",
    " JSON",
    ":",
    " ser",
    "ver",
    " 42",
    "()",
    " `",
    "`",
    " -",
    " **",
)
# Tokens that exercise the decoders: JSON escapes and multi-byte UTF-8.
_SPECIAL = (
    '"',
    ' "quoted"',
    "\n",
    "\n\n",
    "\t",
    "\\",
    " café",
    "é",
    " 漢字",
    "漢",
    " 😀",
    "😀",
    " naïve",
    " Größe",
    " 東京",
    " ✓",
)
_PLACEHOLDER = "\x00TOKEN\x00"
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _ascii_json(text: str) -> bytes:
    # As Python's json module writes it: \u00e9, \ud83d\ude00, \", \n.
    return json.dumps(text, ensure_ascii=True).encode()


def tokens(n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """``n`` token texts with their JSON string literals (quotes included).

    About one token in seven is special; non-ASCII ones are written raw or
    escaped at random, as different servers do.
    """
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < 0.15:
            text = rng.choice(_SPECIAL)
            literal = msgspec.json.encode(text) if rng.random() < 0.5 else _ascii_json(text)
        else:
            text = rng.choice(_WORDS)
            literal = msgspec.json.encode(text)
        out.append((text, literal))
    return out


@dataclass
class Body:
    kind: str
    #: Number of text tokens: the chunks a client must yield.
    n: int
    #: The events, each written as one HTTP chunk.
    events: list[bytes]
    #: The JSON payload of every event (without SSE or ndjson framing).
    payloads: list[bytes]
    #: The text the tokens make.
    text: str
    content_type: str = ""
    path: str = ""

    @property
    def data(self) -> bytes:
        return b"".join(self.events)


def _template(obj: dict) -> tuple[bytes, bytes]:
    encoded = msgspec.json.encode(obj)
    head, _, tail = encoded.partition(msgspec.json.encode(_PLACEHOLDER))
    return head, tail


def _rand(rng: random.Random, n: int, alphabet: str = _ALNUM) -> str:
    return "".join(rng.choices(alphabet, k=n))


def build(kind: str, n: int, seed: int = 0) -> Body:
    """The body of ``kind`` (one of :data:`BODIES`) for ``n`` text tokens."""
    toks = tokens(n, seed)
    rng = random.Random(seed + 1)
    text = "".join(t for t, _ in toks)
    if kind in ("ollama", "ollama-chat"):
        events = _ollama(toks, rng, chat=kind == "ollama-chat")
        payloads = [e.rstrip(b"\n") for e in events]
    elif kind == "openai":
        events, payloads = _openai(toks, rng)
    elif kind == "anthropic":
        events, payloads = _anthropic(toks, rng)
    elif kind == "gemini":
        events, payloads = _gemini(toks, rng)
    elif kind in TOOL_BODIES:
        return _tool_body(kind, toks, rng)
    elif kind in AGENT_BODIES:
        return _agent_body(kind, n, seed, rng)
    elif kind in SHAPES:
        base, reshape, _ = SHAPES[kind]
        body = build(base, n, seed)
        events = [reshape(e) for e in body.events]
        return Body(kind, n, events, body.payloads, body.text, CONTENT_TYPES[kind], PATHS[kind])
    else:
        known = ", ".join(BODIES + END_TO_END_BODIES)
        raise ValueError(f"unknown body kind {kind!r}; known: {known}")
    return Body(kind, n, events, payloads, text, CONTENT_TYPES[kind], PATHS[kind])


def _ollama(toks: list[tuple[str, bytes]], rng: random.Random, *, chat: bool) -> list[bytes]:
    model = "llama3.2:3b"
    t = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=timezone.utc)
    step = timedelta(microseconds=21_337)

    def stamp() -> str:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"  # Go's nanoseconds

    events = []
    for _, literal in toks:
        t += step
        obj: dict = {"model": model, "created_at": stamp()}
        if chat:
            obj["message"] = {"role": "assistant", "content": _PLACEHOLDER}
        else:
            obj["response"] = _PLACEHOLDER
        obj["done"] = False
        head, tail = _template(obj)
        events.append(head + literal + tail + b"\n")
    t += step
    final: dict = {"model": model, "created_at": stamp()}
    if chat:
        final["message"] = {"role": "assistant", "content": ""}
        final["done_reason"] = "stop"
        final["done"] = True
    else:
        final["response"] = ""
        final["done"] = True
        final["done_reason"] = "stop"
        size = min(26 + len(toks), 4096)
        final["context"] = [rng.randrange(1, 128_000) for _ in range(size)]
    total = len(toks) * 21_337_000
    final.update(
        total_duration=total + 312_554_417,
        load_duration=18_334_125,
        prompt_eval_count=26,
        prompt_eval_duration=294_220_292,
        eval_count=len(toks),
        eval_duration=total,
    )
    events.append(msgspec.json.encode(final) + b"\n")
    return events


def _openai(toks: list[tuple[str, bytes]], rng: random.Random) -> tuple[list[bytes], list[bytes]]:
    base = {
        "id": "chatcmpl-" + _rand(rng, 29),
        "object": "chat.completion.chunk",
        "created": 1741944413,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "system_fingerprint": "fp_" + _rand(rng, 10, "0123456789abcdef"),
    }

    def chunk(delta: dict, finish: str | None = None) -> dict:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice], "usage": None}

    payloads = [msgspec.json.encode(chunk({"role": "assistant", "content": "", "refusal": None}))]
    for _, literal in toks:
        obj = chunk({"content": _PLACEHOLDER})
        obj["obfuscation"] = _rand(rng, rng.randrange(1, 8))
        head, tail = _template(obj)
        payloads.append(head + literal + tail)
    payloads.append(msgspec.json.encode(chunk({}, "stop")))
    usage = {
        "prompt_tokens": 26,
        "completion_tokens": len(toks),
        "total_tokens": 26 + len(toks),
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    payloads.append(msgspec.json.encode({**base, "choices": [], "usage": usage}))
    events = [b"data: " + p + b"\n\n" for p in payloads]
    events.append(b"data: [DONE]\n\n")
    return events, payloads


def _anthropic(
    toks: list[tuple[str, bytes]], rng: random.Random
) -> tuple[list[bytes], list[bytes]]:
    usage = {
        "input_tokens": 26,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 1,
        "service_tier": "standard",
    }
    message = {
        "model": "claude-sonnet-4-5-20250929",
        "id": "msg_01" + _rand(rng, 22),
        "type": "message",
        "role": "assistant",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    named: list[tuple[str, bytes]] = [
        ("message_start", msgspec.json.encode({"type": "message_start", "message": message})),
        (
            "content_block_start",
            msgspec.json.encode(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                }
            ),
        ),
        ("ping", b'{"type": "ping"}'),
    ]
    head, tail = _template(
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": _PLACEHOLDER},
        }
    )
    for _, literal in toks:
        named.append(("content_block_delta", head + literal + tail))
    named.append(
        ("content_block_stop", msgspec.json.encode({"type": "content_block_stop", "index": 0}))
    )
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {
            "input_tokens": 26,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": len(toks),
        },
    }
    named.append(("message_delta", msgspec.json.encode(delta)))
    named.append(("message_stop", msgspec.json.encode({"type": "message_stop"})))
    events = [b"event: " + name.encode() + b"\ndata: " + p + b"\n\n" for name, p in named]
    return events, [p for _, p in named]


def _gemini(toks: list[tuple[str, bytes]], rng: random.Random) -> tuple[list[bytes], list[bytes]]:
    """Gemini's ``streamGenerateContent?alt=sse``, in the shape of the API's own
    streams (tests/data/gemini/*.sse): LF line ends, ``data: ``, JSON written
    with ``": "`` after keys and ``","`` between members; every event is a whole
    ``GenerateContentResponse`` (one text part, running usage, ``modelVersion``,
    ``responseId``), the last one carries ``finishReason`` and there is no end
    marker."""
    response_id = _rand(rng, 23)

    def render(obj: dict) -> tuple[bytes, bytes]:
        text = json.dumps(obj, separators=(",", ": "), ensure_ascii=False)
        head, _, tail = text.partition(json.dumps(_PLACEHOLDER))
        return head.encode(), tail.encode()

    def response(i: int, last: bool) -> dict:
        candidate: dict = {"content": {"parts": [{"text": _PLACEHOLDER}], "role": "model"}}
        if last:
            candidate["finishReason"] = "STOP"
        candidate["index"] = 0
        usage: dict = {"promptTokenCount": 26}
        if last:
            usage["candidatesTokenCount"] = i + 1
        usage["totalTokenCount"] = 26 + i + 1
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": 26}]
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": "gemini-2.5-flash",
            "responseId": response_id,
        }

    payloads = []
    for i, (_, literal) in enumerate(toks):
        head, tail = render(response(i, i == len(toks) - 1))
        payloads.append(head + literal + tail)
    return [b"data: " + p + b"\n\n" for p in payloads], payloads


# --------------------------------------------------------------------------- tool calls

_TOOL_NAME = "search"


def _argument_pieces(toks: list[tuple[str, bytes]]) -> list[str]:
    """The tokens as pieces of one call's arguments text, ``{"q": "..."}``:
    each piece is a token's JSON string literal without its quotes (escapes
    and all, as a model writes JSON), the first opens the object and the last
    closes it."""
    pieces = [literal[1:-1].decode() for _, literal in toks]
    pieces[0] = '{"q": "' + pieces[0]
    pieces[-1] += '"}'
    return pieces


def _tool_body(kind: str, toks: list[tuple[str, bytes]], rng: random.Random) -> Body:
    if kind == "openai-tools":
        pieces = _argument_pieces(toks)
        events, payloads = _openai_tools(pieces, rng)
        text = "".join(pieces)
    elif kind == "anthropic-tools":
        pieces = _argument_pieces(toks)
        events, payloads = _anthropic_tools(pieces, rng)
        text = "".join(pieces)
    else:
        events, text = _ollama_tools(toks)
        payloads = [e.rstrip(b"\n") for e in events]
    return Body(kind, len(toks), events, payloads, text, CONTENT_TYPES[kind], PATHS[kind])


def _openai_tools(pieces: list[str], rng: random.Random) -> tuple[list[bytes], list[bytes]]:
    """One call streamed as OpenAI does: the first delta has the id, the name
    and ``""``; each later one has only the index and a piece."""
    _, payloads = _openai([], rng)
    first = msgspec.json.decode(payloads[0])
    head = msgspec.json.decode(payloads[1])  # the finish chunk, rebuilt below
    opening = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "index": 0,
                "id": "call_" + _rand(rng, 24),
                "type": "function",
                "function": {"name": _TOOL_NAME, "arguments": ""},
            }
        ],
        "refusal": None,
    }
    first["choices"][0]["delta"] = opening
    out = [msgspec.json.encode(first)]
    template = dict(first)
    template["choices"] = [
        {
            "index": 0,
            "delta": {"tool_calls": [{"index": 0, "function": {"arguments": _PLACEHOLDER}}]},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    before, after = _template(template)
    for piece in pieces:
        out.append(before + msgspec.json.encode(piece) + after)
    head["choices"][0]["finish_reason"] = "tool_calls"
    out.append(msgspec.json.encode(head))
    usage = msgspec.json.decode(payloads[2])
    usage["usage"]["completion_tokens"] = len(pieces)
    out.append(msgspec.json.encode(usage))
    return [b"data: " + p + b"\n\n" for p in out] + [b"data: [DONE]\n\n"], out


def _anthropic_tools(pieces: list[str], rng: random.Random) -> tuple[list[bytes], list[bytes]]:
    """One ``tool_use`` block: its start, an ``input_json_delta`` per piece, its stop."""
    _, text_payloads = _anthropic([], rng)
    start = msgspec.json.encode(
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_01" + _rand(rng, 22),
                "name": _TOOL_NAME,
                "input": {},
            },
        }
    )
    before, after = _template(
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": _PLACEHOLDER},
        }
    )
    message_delta = msgspec.json.decode(text_payloads[-2])
    message_delta["delta"]["stop_reason"] = "tool_use"
    message_delta["usage"]["output_tokens"] = len(pieces)
    named: list[tuple[str, bytes]] = [
        ("message_start", text_payloads[0]),
        ("content_block_start", start),
        ("ping", b'{"type": "ping"}'),
    ]
    named += [("content_block_delta", before + msgspec.json.encode(p) + after) for p in pieces]
    named += [
        ("content_block_stop", text_payloads[-3]),
        ("message_delta", msgspec.json.encode(message_delta)),
        ("message_stop", text_payloads[-1]),
    ]
    events = [b"event: " + name.encode() + b"\ndata: " + p + b"\n\n" for name, p in named]
    return events, [p for _, p in named]


def _ollama_tools(toks: list[tuple[str, bytes]]) -> tuple[list[bytes], str]:
    """A line per token, each with one whole call whose arguments hold the
    token (Ollama sends calls whole; it gives them no id)."""
    chat = _ollama(toks, random.Random(0), chat=True)
    events = []
    texts = []
    for line, (text, _) in zip(chat, toks, strict=False):
        obj = msgspec.json.decode(line)
        arguments = {"q": text}
        obj["message"] = {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": _TOOL_NAME, "arguments": arguments}}],
        }
        events.append(msgspec.json.encode(obj) + b"\n")
        texts.append(msgspec.json.encode(arguments).decode())
    events.append(chat[-1])
    return events, "".join(texts)


# --------------------------------------------------------------------------- a loop's first step


def _agent_body(kind: str, n: int, seed: int, rng: random.Random) -> Body:
    """The text body of ``n`` tokens, then one whole call of ``search``, as the
    provider ends a turn on a call."""
    base = kind.removesuffix("-agent")
    text = build(base, n, seed)
    events = list(text.events)
    arguments = msgspec.json.encode(AGENT_ARGUMENTS)
    if base == "openai":
        # The text chunks, a delta with the whole call (its id, name and
        # arguments: as servers that send calls whole write it), the finish
        # chunk ending on "tool_calls", the usage chunk, [DONE].
        first = msgspec.json.decode(text.payloads[0])
        first["choices"][0]["delta"] = {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_" + _rand(rng, 24),
                    "type": "function",
                    "function": {"name": _TOOL_NAME, "arguments": arguments.decode()},
                }
            ]
        }
        finish = msgspec.json.decode(text.payloads[-2])
        finish["choices"][0]["finish_reason"] = "tool_calls"
        added = [msgspec.json.encode(first), msgspec.json.encode(finish)]
        events[-3:-2] = [b"data: " + p + b"\n\n" for p in added]
    elif base == "anthropic":
        # After the text block: a tool_use block (its start, one
        # input_json_delta, its stop), then the turn ends on "tool_use".
        start = {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_01" + _rand(rng, 22),
                "name": _TOOL_NAME,
                "input": {},
            },
        }
        piece = {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": arguments.decode()},
        }
        delta = msgspec.json.decode(text.payloads[-2])
        delta["delta"]["stop_reason"] = "tool_use"
        named = [
            ("content_block_start", msgspec.json.encode(start)),
            ("content_block_delta", msgspec.json.encode(piece)),
            ("content_block_stop", b'{"type":"content_block_stop","index":1}'),
            ("message_delta", msgspec.json.encode(delta)),
        ]
        events[-2:-1] = [b"event: " + e.encode() + b"\ndata: " + p + b"\n\n" for e, p in named]
    elif base == "ollama-chat":
        # A line with the whole call (no id: Ollama gives none), then the final line.
        line = msgspec.json.decode(events[-2])
        line["message"] = {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": _TOOL_NAME, "arguments": AGENT_ARGUMENTS}}],
        }
        events.insert(-1, msgspec.json.encode(line) + b"\n")
    elif base == "gemini":
        # A last response whose part is the call; the text's last one loses
        # its finishReason (the turn ends with the call).
        last = msgspec.json.decode(text.payloads[-1])
        del last["candidates"][0]["finishReason"]
        call = msgspec.json.decode(text.payloads[-1])
        call["candidates"][0]["content"]["parts"] = [
            {"functionCall": {"name": _TOOL_NAME, "args": AGENT_ARGUMENTS}}
        ]
        events[-1:] = [
            b"data: " + json.dumps(o, separators=(",", ": "), ensure_ascii=False).encode() + b"\n\n"
            for o in (last, call)
        ]
    else:
        raise ValueError(f"no agent body for {kind!r}")
    payloads = [e.partition(b"data: ")[2].rstrip(b"\n") or e.rstrip(b"\n") for e in events]
    return Body(kind, n, events, payloads, text.text, CONTENT_TYPES[kind], PATHS[kind])
