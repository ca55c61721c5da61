"""Linear framing: one 64 MiB event costs about as much as 64 MiB of small ones.

Feeds the same number of bytes, in 64 KiB pieces as a socket delivers them,
to mal's SSE parser and ndjson splitter: once as a single huge event or line,
once as many small ones. A parser that searched its buffer again on every
piece would take time quadratic in the event size; mal's searches each byte
once. The two cases run in alternation and the table reports the median of
each and their ratio, measured in the same run.

    python benchmarks/framing_linear.py [--mib 64] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from mal.framing import NDJSONSplitter, SSEParser

PIECE = 64 * 1024


def pieces(body: bytes) -> list[bytes]:
    return [body[i : i + PIECE] for i in range(0, len(body), PIECE)]


def sse_bodies(size: int) -> tuple[bytes, bytes]:
    big = b"data: " + b"x" * size + b"\n\n"
    small_event = b'data: {"choices":[{"delta":{"content":"tok"}}]}\n\n'
    small = small_event * (size // len(small_event))
    return big, small


def ndjson_bodies(size: int) -> tuple[bytes, bytes]:
    big = b'{"response":"' + b"x" * size + b'"}\n'
    line = b'{"response":"tok","done":false}\n'
    return big, line * (size // len(line))


def run(make: Callable[[int], object], body: list[bytes]) -> float:
    parser = make(len(body) * PIECE * 2)
    feed = parser.feed  # type: ignore[attr-defined]
    start = time.perf_counter()
    count = 0
    for piece in body:
        count += len(feed(piece))
    parser.flush()  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - start
    assert count > 0
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=64, help="body size in MiB (default 64)")
    ap.add_argument("--repeat", type=int, default=5, help="alternating runs (default 5)")
    args = ap.parse_args()
    size = args.mib * 1024 * 1024
    print(f"framing {args.mib} MiB in {PIECE // 1024} KiB pieces, {args.repeat} runs each\n")
    print("| parser | one event (s) | small events (s) | ratio one/small |")
    print("|---|---|---|---|")
    for name, make, bodies in (
        ("SSEParser", SSEParser, sse_bodies),
        ("NDJSONSplitter", NDJSONSplitter, ndjson_bodies),
    ):
        big, small = (pieces(b) for b in bodies(size))
        big_times, small_times = [], []
        for _ in range(args.repeat):
            big_times.append(run(make, big))
            small_times.append(run(make, small))
        b, s = statistics.median(big_times), statistics.median(small_times)
        print(f"| {name} | {b:.3f} | {s:.3f} | {b / s:.2f} |")


if __name__ == "__main__":
    main()
