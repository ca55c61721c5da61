"""Generate mal's sync code from its async code.

Each async source below is rewritten line by line into its sync target by
the word substitutions of SUBSTITUTIONS (``async def`` becomes ``def``,
``await x`` becomes ``x``, ``AsyncStream`` becomes ``Stream``...). What the
substitutions cannot express (how a wait is cut short, how tools run) lives
in a hand-written pair of helper modules, and the async source imports its
helpers from a module whose name ends in ``_async``, which becomes ``_sync``.

    python scripts/unasync.py          # write the sync targets
    python scripts/unasync.py --check  # exit 1 with a diff if one is out of date

The check runs in CI and in tests/test_generated.py.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (async source, sync target), relative to the repository root. Add a pair here.
FILES: list[tuple[str, str]] = [
    ("mal/_async.py", "mal/_sync.py"),
    ("mal/_http11_async.py", "mal/_http11_sync.py"),
]

#: (pattern, replacement): regular expressions, matched as whole words and
#: applied in this order to every line. Longer names come before their parts.
SUBSTITUTIONS: list[tuple[str, str]] = [
    # Syntax.
    (r"async def", "def"),
    (r"async for", "for"),
    (r"async with", "with"),
    (r"await\s+", ""),
    # Protocols and exceptions.
    (r"__aenter__", "__enter__"),
    (r"__aexit__", "__exit__"),
    (r"__aiter__", "__iter__"),
    (r"__anext__", "__next__"),
    (r"StopAsyncIteration", "StopIteration"),
    (r"AsyncIterator", "Iterator"),
    (r"AsyncIterable", "Iterable"),
    (r"anext", "next"),
    (r"aclose", "close"),
    # httpx and httpcore.
    (r"AsyncBaseTransport", "BaseTransport"),
    (r"handle_async_request", "handle_request"),
    (r"AsyncByteStream", "SyncByteStream"),
    (r"AsyncNetworkStream", "NetworkStream"),
    (r"AnyIOBackend", "SyncBackend"),
    (r"aiter_bytes", "iter_bytes"),
    (r"aiter_raw", "iter_raw"),
    # mal's own names.
    (r"AsyncStream", "Stream"),
    (r"AsyncClient", "Client"),
    (r"AsyncClosing", "Closing"),
    (r"AsyncHTTP11Transport", "HTTP11Transport"),
    (r"AsyncSignal", "Signal"),
    (r"AsyncIterBody", "IterBody"),
    (r"AsyncBody", "Body"),
    (r"atrace", "trace"),
    # Modules: a name ending in _async (mal._async, ._helpers_async).
    (r"(\w*)_async", r"\1_sync"),
    # Prose.
    (r"another task", "another thread"),
]

_END = re.compile(r"\w$")


def _compile(pattern: str) -> re.Pattern[str]:
    # A word boundary at the end too, unless the pattern ends in a space.
    end = r"\b" if _END.search(pattern) else ""
    return re.compile(rf"\b{pattern}{end}")


_COMPILED = [(_compile(pattern), repl) for pattern, repl in SUBSTITUTIONS]


def header(source: str) -> str:
    return (
        f"# Generated from {source} by `python scripts/unasync.py`: do not edit by hand.\n"
        f"# Edit {source} (or its helpers) and run the script again.\n"
    )


def unasync_line(line: str) -> str:
    for pattern, repl in _COMPILED:
        line = pattern.sub(repl, line)
    return line


# A "from module import a, b" statement, on one line or in parentheses with one
# name a line: renamed names may need sorting again, as ruff's isort sorts them.
_IMPORT = re.compile(
    r"^(?P<head> *from \S+ import )(?:\((?P<block>\n(?: +[\w ]+,\n)+) *\)|(?P<line>[\w ,]+))$",
    re.MULTILINE,
)


def _name_key(item: str) -> tuple[int, str, str]:
    # ruff's default order: CONSTANTS, then Classes, then everything else,
    # each case-insensitively.
    name = item.split(" as ")[0]
    kind = 0 if len(name) > 1 and name.isupper() else 1 if name[0].isupper() else 2
    return kind, name.lower(), name


def _sort_imports(text: str) -> str:
    def resort(match: re.Match[str]) -> str:
        if match["line"] is not None:
            names = sorted(match["line"].split(", "), key=_name_key)
            return match["head"] + ", ".join(names)
        lines = sorted(
            match["block"].strip("\n").split("\n"), key=lambda s: _name_key(s.strip(" ,"))
        )
        return match["head"] + "(\n" + "\n".join(lines) + "\n)"

    return _IMPORT.sub(resort, text)


def unasync(source: str, text: str) -> str:
    """The sync code for the async ``text`` of ``source``, header included."""
    lines = "".join(unasync_line(line) for line in text.splitlines(True))
    return header(source) + _sort_imports(lines)


def generate(pair: tuple[str, str], root: Path = ROOT) -> tuple[str, str | None]:
    """What the target of ``pair`` should hold, and what it holds (None: absent)."""
    source, target = pair
    expected = unasync(source, (root / source).read_text(encoding="utf-8"))
    path = root / target
    current = path.read_text(encoding="utf-8") if path.exists() else None
    return expected, current


def write(root: Path = ROOT) -> None:
    for pair in FILES:
        expected, current = generate(pair, root)
        if expected != current:
            (root / pair[1]).write_text(expected, encoding="utf-8")
            print(f"wrote {pair[1]}")


def check(root: Path = ROOT) -> str:
    """A unified diff from each checked-in target to what it should be; "" when all are."""
    diffs = []
    for source, target in FILES:
        expected, current = generate((source, target), root)
        if expected != current:
            diffs.append(
                "".join(
                    difflib.unified_diff(
                        (current or "").splitlines(True),
                        expected.splitlines(True),
                        fromfile=f"{target} (checked in)",
                        tofile=f"{target} (generated from {source})",
                    )
                )
            )
    return "".join(diffs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and print a diff if a target is out of date",
    )
    args = parser.parse_args(argv)
    if not args.check:
        write()
        return 0
    diff = check()
    if diff:
        sys.stdout.write(diff)
        print("\nThe sync code is out of date: run `python scripts/unasync.py`.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
