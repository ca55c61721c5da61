"""In-memory decode throughput: mal's protocol decoders against the floors and the SDKs.

No network: each provider's realistic body (see ``_bodies.py``: real ids,
``created``, ``model``, ``system_fingerprint``, usage, pings and end markers;
token texts with JSON escapes and raw 2-4-byte UTF-8) is fed as network-sized
pieces, (a) one event per piece (one SSE event or ndjson line, as a paced
stream arrives) and (b) 4 KiB pieces (as a fast stream or a busy socket
delivers it, cutting events and UTF-8 characters anywhere).

Contenders, each checking that its text equals the body's text:

* ``msgspec floor``: ``msgspec.json.Decoder(<small Struct>)`` over the JSON
  payloads, split in advance (no framing, no chunk objects): the cost of JSON
  decoding alone, the least a decoder can do;
* ``json.loads`` and ``orjson.loads`` over the same pre-split payloads;
* ``bare framing + msgspec floor``: the least framing these bodies need,
  written by hand (split at the separator, carry the rest, cut out the JSON,
  check nothing), then the floor: what framing alone costs in Python;
* ``mal``: ``mal.protocols.get_protocol(p).decoder(stream=True)``, ``feed`` per
  piece, then ``flush``;
* each official SDK's own decoding path over the same pieces: ollama's per-line
  path (``Response.iter_lines`` + ``json.loads`` + its pydantic
  ``GenerateResponse``/``ChatResponse``, as ``ollama.Client`` does), openai's
  ``Stream[ChatCompletionChunk]`` and anthropic's ``Stream`` and
  ``MessageStream`` over an in-memory HTTP response.

The contenders run in alternation (A B C ... A B C ...) ``--repeat`` times after
one warm-up; the table gives the median cost per text chunk (µs) with its
min-max, and its ratio to the msgspec floor measured in the same round. The
clock is the process's CPU time (``time.process_time``): the work is one
thread with no I/O, and CPU time leaves out the time the process spent
preempted on a busy machine (``--clock wall`` for ``time.perf_counter``).

Tool calls: each tool-call body (``_bodies.TOOL_BODIES``) is decoded by mal
beside the text body of the same number of chunks, in alternation, and the
table gives mal's cost per chunk on it as a ratio to the text body's.

    python benchmarks/decode.py [--chunks 20000] [--repeat 5] [--json out.json] [--png out.png]
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import _bodies
import _common
import msgspec

import mal.protocols

PIECE = 4096
MODES = ("event", "4k")
MODE_TITLES = {"event": "one event per piece", "4k": "4 KiB pieces"}
#: The targets, as ratios to the bare-framing contender of the same round (the
#: msgspec floor is printed beside, for scale).
TARGET = {"event": 1.2, "4k": 1.2}
FLOOR = "msgspec floor"
BARE = "bare framing + msgspec floor"


# --------------------------------------------------------------------------- floors


class _ODelta(msgspec.Struct):
    content: str | None = None


class _OChoice(msgspec.Struct):
    delta: _ODelta | None = None


class _OChunk(msgspec.Struct):
    choices: list[_OChoice] = []


class _ADelta(msgspec.Struct):
    text: str = ""


class _AEvent(msgspec.Struct):
    type: str
    delta: _ADelta | None = None


class _LMessage(msgspec.Struct):
    content: str = ""


class _LLine(msgspec.Struct):
    response: str = ""
    message: _LMessage | None = None


def msgspec_floor(kind: str) -> Callable[[list[bytes]], str]:
    if kind == "openai":
        decode = msgspec.json.Decoder(_OChunk).decode

        def run(payloads: list[bytes]) -> str:
            parts = []
            for p in payloads:
                choices = decode(p).choices
                if choices and choices[0].delta is not None and choices[0].delta.content:
                    parts.append(choices[0].delta.content)
            return "".join(parts)

    elif kind == "anthropic":
        decode = msgspec.json.Decoder(_AEvent).decode

        def run(payloads: list[bytes]) -> str:
            parts = []
            for p in payloads:
                event = decode(p)
                if event.type == "content_block_delta" and event.delta is not None:
                    parts.append(event.delta.text)
            return "".join(parts)

    else:
        decode = msgspec.json.Decoder(_LLine).decode
        chat = kind == "ollama-chat"

        def run(payloads: list[bytes]) -> str:
            parts = []
            for p in payloads:
                line = decode(p)
                if chat:
                    if line.message is not None:
                        parts.append(line.message.content)
                else:
                    parts.append(line.response)
            return "".join(parts)

    return run


def loads_floor(kind: str, loads: Callable[[bytes], Any]) -> Callable[[list[bytes]], str]:
    if kind == "openai":

        def run(payloads: list[bytes]) -> str:
            parts = []
            for p in payloads:
                choices = loads(p)["choices"]
                if choices:
                    content = choices[0]["delta"].get("content")
                    if content:
                        parts.append(content)
            return "".join(parts)

    elif kind == "anthropic":

        def run(payloads: list[bytes]) -> str:
            parts = []
            for p in payloads:
                event = loads(p)
                if event["type"] == "content_block_delta":
                    parts.append(event["delta"].get("text", ""))
            return "".join(parts)

    else:
        key = "message" if kind == "ollama-chat" else "response"

        def run(payloads: list[bytes]) -> str:
            parts = []
            for p in payloads:
                value = loads(p).get(key)
                if value is not None:
                    parts.append(value["content"] if key == "message" else value)
            return "".join(parts)

    return run


def bare_framing(kind: str) -> Callable[[list[bytes]], str]:
    """The least framing these bodies need, written by hand, then the floor.

    Each piece is split at the frame separator (LF LF, or LF for ndjson) with
    the unfinished rest carried to the next piece, and the JSON is cut out of
    each frame; the payloads then go through the msgspec floor. It checks
    nothing that mal checks (UTF-8, size limits, CR line ends, other SSE
    fields, the end marker) and builds no chunk objects: the cost of framing
    alone in Python, for scale.
    """
    floor = msgspec_floor(kind)
    sse = not kind.startswith("ollama")
    sep = b"\n\n" if sse else b"\n"

    def run(pieces: list[bytes]) -> str:
        payloads = []
        rest = b""
        for piece in pieces:
            frames = (rest + piece).split(sep)
            rest = frames.pop()
            for frame in frames:
                if sse:
                    start = frame.find(b"data: ") + 6
                    if frame[start:] != b"[DONE]":
                        payloads.append(frame[start:])
                elif frame:
                    payloads.append(frame)
        return floor(payloads)

    return run


# --------------------------------------------------------------------------- mal and the SDKs


def mal_decoder(kind: str, *, tool_calls: bool = False) -> Callable[[list[bytes]], str]:
    """mal's decoder over a body: the text of every chunk, or with
    ``tool_calls`` every argument piece of every call, joined."""
    protocol = mal.protocols.get_protocol(kind.split("-")[0])

    def run(pieces: list[bytes]) -> str:
        decoder = protocol.decoder(True)
        feed = decoder.feed
        parts = []
        for piece in pieces:
            for chunk in feed(piece):
                if chunk.text:
                    parts.append(chunk.text)
        for chunk in decoder.flush():
            if chunk.text:
                parts.append(chunk.text)
        return "".join(parts)

    def run_tools(pieces: list[bytes]) -> str:
        decoder = protocol.decoder(True)
        feed = decoder.feed
        parts = []
        for piece in pieces:
            for chunk in feed(piece):
                for delta in chunk.tool_calls:
                    parts.append(delta.arguments)
        for chunk in decoder.flush():
            for delta in chunk.tool_calls:
                parts.append(delta.arguments)
        return "".join(parts)

    return run_tools if tool_calls else run


def ollama_sdk(kind: str) -> Callable[[list[bytes]], str]:
    import httpx  # ollama's own HTTP client
    import ollama

    cls = ollama.ChatResponse if kind == "ollama-chat" else ollama.GenerateResponse
    request = httpx.Request("POST", "http://127.0.0.1:11434" + _bodies.PATHS[kind])
    chat = kind == "ollama-chat"

    def run(pieces: list[bytes]) -> str:
        # What ollama.Client._request(stream=True) does with each line.
        response = httpx.Response(200, content=iter(pieces), request=request)
        parts = []
        for line in response.iter_lines():
            part = json.loads(line)
            if err := part.get("error"):
                raise RuntimeError(err)
            obj = cls(**part)
            text = obj.message.content if chat else obj.response
            if text:
                parts.append(text)
        return "".join(parts)

    return run


def _sdk_http(module: Any) -> Any:
    """The HTTP library the SDK's streams are built on (httpx2 in recent SDKs)."""
    streaming = module._streaming
    return getattr(streaming, "httpx2", None) or streaming.httpx


def openai_sdk(kind: str, *, tool_calls: bool = False) -> Callable[[list[bytes]], str]:
    """openai's ``Stream``: the text of every chunk, or with ``tool_calls``
    every argument piece."""
    import openai
    from openai.types.chat import ChatCompletionChunk

    http = _sdk_http(openai)
    client = openai.OpenAI(api_key="x", base_url="http://127.0.0.1:1/v1", max_retries=0)
    request = http.Request("POST", "http://127.0.0.1:1/v1/chat/completions")

    def run(pieces: list[bytes]) -> str:
        response = http.Response(200, content=iter(pieces), request=request)
        stream = openai.Stream(cast_to=ChatCompletionChunk, response=response, client=client)
        parts = []
        for chunk in stream:
            if chunk.choices and tool_calls:
                for call in chunk.choices[0].delta.tool_calls or ():
                    if call.function is not None and call.function.arguments:
                        parts.append(call.function.arguments)
            elif chunk.choices:
                content = chunk.choices[0].delta.content
                if content:
                    parts.append(content)
        return "".join(parts)

    return run


def anthropic_sdk(
    kind: str, *, message_stream: bool, tool_calls: bool = False
) -> Callable[[list[bytes]], str]:
    """anthropic's ``Stream`` or ``MessageStream``: the text, or with
    ``tool_calls`` (MessageStream only) its ``input_json`` pieces; it parses
    the partial JSON of the call after every piece."""
    import anthropic
    from anthropic.lib.streaming import MessageStream
    from anthropic.types import RawMessageStreamEvent

    http = _sdk_http(anthropic)
    client = anthropic.Anthropic(api_key="x", base_url="http://127.0.0.1:1", max_retries=0)
    request = http.Request("POST", "http://127.0.0.1:1/v1/messages")

    def run(pieces: list[bytes]) -> str:
        response = http.Response(200, content=iter(pieces), request=request)
        raw = anthropic.Stream(cast_to=RawMessageStreamEvent, response=response, client=client)
        parts = []
        if message_stream:
            for event in MessageStream(raw, output_format=anthropic.NOT_GIVEN):
                if event.type == "text" and not tool_calls:
                    parts.append(event.text)
                elif event.type == "input_json" and tool_calls:
                    parts.append(event.partial_json)
        else:
            for event in raw:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    parts.append(event.delta.text)
        return "".join(parts)

    return run


@dataclass
class Contender:
    name: str
    #: True: fed the pre-split payloads, the same in every mode.
    payloads: bool
    run: Callable[[list[bytes]], str]


def contenders(kind: str) -> tuple[list[Contender], list[str]]:
    """The contenders for a body kind, and notes on the ones that are missing."""
    out = [
        Contender(FLOOR, True, msgspec_floor(kind)),
        Contender("json.loads", True, loads_floor(kind, json.loads)),
    ]
    notes = []
    try:
        import orjson

        out.append(Contender("orjson.loads", True, loads_floor(kind, orjson.loads)))
    except ImportError:
        notes.append("orjson is not installed")
    out.append(Contender(BARE, False, bare_framing(kind)))
    out.append(Contender("mal", False, mal_decoder(kind)))
    sdks: list[tuple[str, Callable[[], Callable[[list[bytes]], str]]]] = []
    if kind.startswith("ollama"):
        sdks.append(("ollama SDK (per line)", lambda: ollama_sdk(kind)))
    elif kind == "openai":
        sdks.append(("openai SDK Stream", lambda: openai_sdk(kind)))
    else:
        sdks.append(("anthropic SDK Stream", lambda: anthropic_sdk(kind, message_stream=False)))
        sdks.append(
            ("anthropic SDK MessageStream", lambda: anthropic_sdk(kind, message_stream=True))
        )
    for name, make in sdks:
        try:
            out.append(Contender(name, False, make()))
        except ImportError as exc:
            notes.append(f"{name}: {exc.name} is not installed")
    return out, notes


# --------------------------------------------------------------------------- measuring


def pieces_of(body: _bodies.Body, mode: str) -> list[bytes]:
    if mode == "event":
        return list(body.events)
    data = body.data
    return [data[i : i + PIECE] for i in range(0, len(data), PIECE)]


#: The clock: process CPU time (the default) leaves out the time this process
#: spent preempted on a busy machine; "wall" is time.perf_counter.
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]


def timed(run: Callable[[list[bytes]], str], arg: list[bytes], expected: str, name: str) -> float:
    gc.collect()
    start = clock()
    text = run(arg)
    elapsed = clock() - start
    if text != expected:
        raise SystemExit(f"{name}: wrong text ({len(text)} chars, expected {len(expected)})")
    return elapsed


def bench_kind(kind: str, n: int, repeat: int) -> dict[str, Any]:
    body = _bodies.build(kind, n)
    small = _bodies.build(kind, min(n, 200), seed=1)
    inputs = {mode: pieces_of(body, mode) for mode in MODES}
    cs, notes = contenders(kind)
    # Warm-up: imports, pydantic's lazy model building, caches.
    for c in cs:
        for mode in MODES:
            arg = small.payloads if c.payloads else pieces_of(small, mode)
            timed(c.run, arg, small.text, c.name)
            if c.payloads:
                break
    times: dict[str, dict[str, list[float]]] = {c.name: {m: [] for m in MODES} for c in cs}
    for _ in range(repeat):
        for c in cs:
            if c.payloads:
                t = timed(c.run, body.payloads, body.text, c.name) / n * 1e6
                for mode in MODES:
                    times[c.name][mode].append(t)
            else:
                for mode in MODES:
                    t = timed(c.run, inputs[mode], body.text, c.name) / n * 1e6
                    times[c.name][mode].append(t)
    floor = times[FLOOR]
    result: dict[str, Any] = {
        "kind": kind,
        "chunks": n,
        "bytes": len(body.data),
        "events": len(body.events),
        "pieces": {mode: len(inputs[mode]) for mode in MODES},
        "notes": notes,
        "contenders": {},
    }
    for c in cs:
        result["contenders"][c.name] = {
            "pre_split_payloads": c.payloads,
            **{
                mode: {
                    "us_per_chunk": times[c.name][mode],
                    "summary": _common.summarize(times[c.name][mode]),
                    "ratio_to_floor": _common.paired_ratios(times[c.name][mode], floor[mode]),
                }
                for mode in MODES
            },
        }
    mal_times = times["mal"]
    result["mal_over_bare"] = {
        mode: _common.paired_ratios(mal_times[mode], times[BARE][mode]) for mode in MODES
    }
    result["mal_4k_over_event"] = _common.paired_ratios(mal_times["4k"], mal_times["event"])
    return result


# --------------------------------------------------------------------------- tool calls

#: The issue's target: a tool-call chunk costs at most this many text chunks.
TOOL_TARGET = 1.2
TEXT_TWIN = {
    "ollama-chat-tools": "ollama-chat",
    "openai-tools": "openai",
    "anthropic-tools": "anthropic",
}
MAL_TEXT = "mal, text body"
MAL_TOOLS = "mal, tool-call body"


def tool_contenders(
    kind: str,
) -> tuple[list[tuple[str, bool, Callable[[list[bytes]], str]]], list[str]]:
    """(name, runs on the text body, run) for a tool body kind."""
    out: list[tuple[str, bool, Callable[[list[bytes]], str]]] = [
        (MAL_TEXT, True, mal_decoder(TEXT_TWIN[kind])),
        (MAL_TOOLS, False, mal_decoder(kind, tool_calls=True)),
    ]
    notes = []
    sdk: tuple[str, Callable[[], Callable[[list[bytes]], str]]] | None = None
    if kind == "openai-tools":
        sdk = ("openai SDK Stream, tool-call body", lambda: openai_sdk(kind, tool_calls=True))
    elif kind == "anthropic-tools":
        sdk = (
            "anthropic SDK MessageStream, tool-call body",
            lambda: anthropic_sdk(kind, message_stream=True, tool_calls=True),
        )
    if sdk is not None:
        try:
            out.append((sdk[0], False, sdk[1]()))
        except ImportError as exc:
            notes.append(f"{sdk[0]}: {exc.name} is not installed")
    return out, notes


def bench_tools(kind: str, n: int, repeat: int) -> dict[str, Any]:
    """A tool-call body against the text body of the same number of chunks,
    both through mal's decoder, in alternation; the ratio is paired per round."""
    bodies = {False: _bodies.build(kind, n), True: _bodies.build(TEXT_TWIN[kind], n)}
    small = {
        False: _bodies.build(kind, min(n, 200), 1),
        True: _bodies.build(TEXT_TWIN[kind], min(n, 200), 1),
    }
    cs, notes = tool_contenders(kind)
    for name, text, run in cs:
        for mode in MODES:
            timed(run, pieces_of(small[text], mode), small[text].text, name)
    inputs = {text: {mode: pieces_of(bodies[text], mode) for mode in MODES} for text in bodies}
    times: dict[str, dict[str, list[float]]] = {name: {m: [] for m in MODES} for name, _, _ in cs}
    for _ in range(repeat):
        for name, text, run in cs:
            for mode in MODES:
                t = timed(run, inputs[text][mode], bodies[text].text, name) / n * 1e6
                times[name][mode].append(t)
    result: dict[str, Any] = {
        "kind": kind,
        "text_kind": TEXT_TWIN[kind],
        "chunks": n,
        "bytes": len(bodies[False].data),
        "text_bytes": len(bodies[True].data),
        "notes": notes,
        "contenders": {},
    }
    for name, _, _ in cs:
        result["contenders"][name] = {
            mode: {
                "us_per_chunk": times[name][mode],
                "summary": _common.summarize(times[name][mode]),
                "ratio_to_mal_text": _common.paired_ratios(
                    times[name][mode], times[MAL_TEXT][mode]
                ),
            }
            for mode in MODES
        }
    return result


def print_tools(results: list[dict[str, Any]]) -> None:
    print(
        "\n## Tool calls: a tool-call body against a text body of the same number of "
        f"chunks (target: mal ≤ {TOOL_TARGET:.1f}x its text cost per chunk)\n"
    )
    header = ["body", "contender"]
    for mode in MODES:
        header += [f"{MODE_TITLES[mode]} µs/chunk", "× mal text"]
    rows = []
    for r in results:
        for name, c in r["contenders"].items():
            row = [r["kind"], f"**{name}**" if name == MAL_TOOLS else name]
            for mode in MODES:
                ratio = c[mode]["ratio_to_mal_text"]
                cell = _common.fmt(ratio, 2, suffix="x")
                if name == MAL_TOOLS:
                    cell += " meets" if ratio["median"] <= TOOL_TARGET else " MISSES"
                row += [_common.fmt(c[mode]["summary"], 2), cell]
            rows.append(row)
    print(_common.md_table(header, rows))
    for r in results:
        for note in r["notes"]:
            print(f"\n(skipped: {note})")
    print(
        "\nOpenAI and Anthropic: one call whose arguments come in one piece per chunk; "
        "Ollama: one whole call per line (it sends calls whole)."
    )


# --------------------------------------------------------------------------- reporting


def print_kind(r: dict[str, Any]) -> None:
    print(
        f"\n### {r['kind']}: {r['chunks']} chunks, {r['bytes'] / 1e6:.2f} MB, "
        f"{r['events']} events, {r['pieces']['4k']} pieces of 4 KiB\n"
    )
    header = ["contender"]
    for mode in MODES:
        header += [f"{MODE_TITLES[mode]} µs/chunk", "× floor"]
    rows = []
    for name, c in r["contenders"].items():
        label = f"**{name}**" if name == "mal" else name
        if c["pre_split_payloads"]:
            label += " (pre-split)"
        row = [label]
        for mode in MODES:
            row += [_common.fmt(c[mode]["summary"], 2), _common.fmt(c[mode]["ratio_to_floor"], 2)]
        rows.append(row)
    print(_common.md_table(header, rows))
    for note in r["notes"]:
        print(f"\n(skipped: {note})")


def print_targets(results: list[dict[str, Any]]) -> None:
    print(
        "\n## mal / bare framing (paired per round; target ≤ "
        f"{TARGET['event']:.1f}x for one event per piece, ≤ {TARGET['4k']:.1f}x "
        "for 4 KiB pieces), with the msgspec floor for scale\n"
    )
    rows = []
    for r in results:
        row = [r["kind"]]
        for mode in MODES:
            s = r["mal_over_bare"][mode]
            verdict = "meets" if s["median"] <= TARGET[mode] else "MISSES"
            row.append(f"**{s['median']:.2f}x** ({s['min']:.2f}-{s['max']:.2f}) {verdict}")
        for name in ("mal", BARE):
            for mode in MODES:
                ratio = r["contenders"][name][mode]["ratio_to_floor"]
                row.append(_common.fmt(ratio, 2, suffix="x"))
        row.append(_common.fmt(r["mal_4k_over_event"], 2, suffix="x"))
        rows.append(row)
    header = ["body", "mal / bare, one event per piece", "mal / bare, 4 KiB pieces"]
    header += [f"mal / msgspec floor, {MODE_TITLES[m]}" for m in MODES]
    header += [f"bare / msgspec floor, {MODE_TITLES[m]}" for m in MODES]
    header.append("mal 4 KiB / mal one event")
    print(_common.md_table(header, rows))
    print(
        "\nbare framing: split at the separator and decode, checking nothing and "
        "building no chunk, written by hand (what framing alone costs in Python). "
        "mal also checks UTF-8, size limits, CR line ends, other SSE fields and the "
        "end marker, keeps the text, and builds a Chunk per token."
    )


def plot(path: str, results: list[dict[str, Any]]) -> None:
    groups = [f"{r['kind']}\n{MODE_TITLES[m]}" for r in results for m in MODES]
    names: list[str] = []
    for r in results:
        for name in r["contenders"]:
            if name not in names:
                names.append(name)
    series: dict[str, list[Any]] = {name: [] for name in names}
    for r in results:
        for mode in MODES:
            for name in names:
                c = r["contenders"].get(name)
                series[name].append(c[mode]["summary"] if c else None)
    _common.bar_chart(
        path,
        f"In-memory decode, {results[0]['chunks']} chunks (median, min-max)",
        groups,
        series,
        "µs per chunk (log)",
        log=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=20_000, help="text chunks per body (20000)")
    ap.add_argument("--repeat", type=int, default=5, help="alternating rounds (5)")
    ap.add_argument(
        "--bodies",
        default=",".join(_bodies.BODIES),
        help=f"comma-separated body kinds ({','.join(_bodies.BODIES)})",
    )
    ap.add_argument(
        "--tool-bodies",
        default=",".join(_bodies.TOOL_BODIES),
        help=f"comma-separated tool-call body kinds, '' for none ({','.join(_bodies.TOOL_BODIES)})",
    )
    ap.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="cpu: process CPU time (default, robust to a busy machine); wall: perf_counter",
    )
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    ap.add_argument("--png", metavar="PATH", help="draw a bar chart (needs matplotlib)")
    args = ap.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    kinds = [k.strip() for k in args.bodies.split(",") if k.strip()]
    started = time.perf_counter()
    print(
        f"# In-memory decode: {args.chunks} chunks per body, {args.repeat} alternating rounds "
        f"after a warm-up\n\nµs per text chunk ({args.clock} time), median (min-max); × floor "
        "is the ratio to the msgspec floor of the same round, median (min-max)."
    )
    results = []
    for kind in kinds:
        r = bench_kind(kind, args.chunks, args.repeat)
        print_kind(r)
        results.append(r)
    print_targets(results)
    tool_results = []
    for kind in [k.strip() for k in args.tool_bodies.split(",") if k.strip()]:
        tool_results.append(bench_tools(kind, args.chunks, args.repeat))
    if tool_results:
        print_tools(tool_results)
    elapsed = time.perf_counter() - started
    print(f"\n(ran in {elapsed:.0f} s)")
    if args.json:
        _common.write_json(
            args.json,
            {
                "benchmark": "decode",
                "chunks": args.chunks,
                "repeat": args.repeat,
                "clock": args.clock,
                "piece_size": PIECE,
                "targets": TARGET,
                "seconds": elapsed,
                "results": results,
                "tool_target": TOOL_TARGET,
                "tool_results": tool_results,
            },
        )
    if args.png:
        plot(args.png, results)


if __name__ == "__main__":
    main()
