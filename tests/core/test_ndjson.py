"""NDJSONSplitter: lines end at LF or CRLF, blank lines are skipped, the last
line may lack its line end; strict UTF-8 and bounded buffering.

Every case is fed whole, one byte at a time, cut at every single point, and
cut at random points; every way must give the same lines.
"""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mal
from mal.framing import NDJSONSplitter
from mal.protocols import get_protocol

SETTINGS = settings(max_examples=40, deadline=None, database=None)


def run(pieces: list[bytes], max_size: int | None = None) -> list[bytes]:
    splitter = NDJSONSplitter() if max_size is None else NDJSONSplitter(max_size)
    lines: list[bytes] = []
    for piece in pieces:
        lines.extend(splitter.feed(piece))
    lines.extend(splitter.flush())
    return lines


def pieces_at(body: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(points)]


def every_way(body: bytes) -> list[list[bytes]]:
    ways = [[body], [body[i : i + 1] for i in range(len(body))]]
    ways += [pieces_at(body, [cut]) for cut in range(1, len(body))]
    ways.append(pieces_at(body, list(range(1, len(body), 2))))
    ways.append(pieces_at(body, list(range(2, len(body), 3))))
    return ways


A = b'{"a":1}'
B = b'{"b":"x y"}'

CASES: dict[str, tuple[bytes, list[bytes]]] = {
    "lf": (A + b"\n" + B + b"\n", [A, B]),
    "crlf": (A + b"\r\n" + B + b"\r\n", [A, B]),
    "mixed lf and crlf": (A + b"\r\n" + B + b"\n" + A + b"\r\n", [A, B, A]),
    "blank lines skipped": (
        b"\n" + A + b"\n\n\r\n  \n\t\r\n" + B + b"\n\n",
        [A, B],
    ),
    "last line without newline": (A + b"\n" + B, [A, B]),
    "last line ends with a lone cr": (A + b"\n" + B + b"\r", [A, B]),
    "only line without newline": (A, [A]),
    "empty body": (b"", []),
    "blank body": (b"\n\r\n \n", []),
    "cr inside a line is not a line end": (b"a\rb\n", [b"a\rb"]),
    "multi-byte utf-8": (
        '{"t":"café — 東京 😀"}\n{"t":"\\u00e9\\ud83d\\ude00"}\n'.encode(),
        ['{"t":"café — 東京 😀"}'.encode(), b'{"t":"\\u00e9\\ud83d\\ude00"}'],
    ),
    "many lines": (
        b"".join(b'{"i":%d}\n' % i for i in range(30)),
        [b'{"i":%d}' % i for i in range(30)],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_rule(name: str) -> None:
    body, lines = CASES[name]
    for pieces in every_way(body):
        assert run(pieces) == lines, pieces


@pytest.mark.parametrize("name", list(CASES))
@SETTINGS
@given(data=st.data())
def test_rule_random_cuts(name: str, data: st.DataObject) -> None:
    body, lines = CASES[name]
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12), label="cuts")
    assert run(pieces_at(body, cuts)) == lines


@SETTINGS
@given(
    lines=st.lists(
        st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]))
        .filter(lambda s: s.strip() != "")
        .map(lambda s: s.encode()),
        max_size=8,
    ),
    crlf=st.lists(st.booleans(), min_size=8, max_size=8),
    data=st.data(),
)
def test_any_lines_any_cuts(lines: list[bytes], crlf: list[bool], data: st.DataObject) -> None:
    body = b"".join(line + (b"\r\n" if crlf[i] else b"\n") for i, line in enumerate(lines))
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=10), label="cuts")
    expected = [line for line in lines if not line.isspace()]
    assert run(pieces_at(body, cuts)) == expected


@pytest.mark.parametrize(
    "body",
    [
        b'{"response":"a",\n"done":false}\n',  # a value over two lines
        b'{"response":"a"} {"response":"b"}\n',  # two values on one line
        b'{"response":"a",\n"done":false} {"response":"b"}\n',  # both: as many values as lines
    ],
    ids=["value over two lines", "two values on a line", "both"],
)
def test_decoder_reads_one_value_per_line_whatever_the_split(body: bytes) -> None:
    good = b'{"response":"ok"}\n'
    end = b'{"response":"","done":true}\n'
    for pieces in ([good + body + end], [good, body, end], [good + body, end]):
        decoder = get_protocol("ollama").decoder(True)
        chunks: list[mal.Chunk] = []
        with pytest.raises(mal.DecodeError, match="invalid JSON") as info:
            for piece in pieces:
                chunks += decoder.feed(piece)
            decoder.flush()
        # The line before the bad one still counts, whether it came in a
        # piece of its own or beside the bad one (then with the error).
        got = chunks + list(info.value.chunks)
        assert "".join(c.text for c in got) == "ok"
        assert info.value.partial_text == "ok"


def test_lines_are_returned_by_the_feed_that_completes_them() -> None:
    splitter = NDJSONSplitter()
    assert splitter.feed(b'{"a"') == []
    assert splitter.feed(b":1}\r") == []
    assert splitter.feed(b"\n") == [A]
    assert splitter.feed(A + b"\n" + B + b"\n" + b"{") == [A, B]
    assert splitter.feed(b"}") == []
    assert splitter.flush() == [b"{}"]


def test_feed_of_nothing() -> None:
    splitter = NDJSONSplitter()
    assert splitter.feed(b"") == []
    assert splitter.feed(A) == []
    assert splitter.feed(b"") == []
    assert splitter.flush() == [A]


# Size limits ----------------------------------------------------------------


def test_pending_line_over_max_size() -> None:
    splitter = NDJSONSplitter(max_size=16)
    assert splitter.feed(b"x" * 16) == []  # at the limit: fine
    with pytest.raises(mal.DecodeError, match="max_event_size"):
        splitter.feed(b"x")


def test_pending_line_over_max_size_in_one_feed() -> None:
    with pytest.raises(mal.DecodeError) as info:
        NDJSONSplitter(max_size=16).feed(b"x" * 17)
    assert isinstance(info.value, mal.StreamError)
    assert "16" in str(info.value)


def test_pending_line_grows_over_max_size_across_feeds() -> None:
    splitter = NDJSONSplitter(max_size=16)
    assert splitter.feed(A + b"\n" + b"x" * 10) == [A]
    with pytest.raises(mal.DecodeError, match="max_event_size"):
        splitter.feed(b"x" * 10 + b"\n")


def test_short_lines_never_hit_max_size() -> None:
    body = (A + b"\n") * 100
    assert run([body], max_size=len(A) + 1) == [A] * 100
    assert run([body[i : i + 5] for i in range(0, len(body), 5)], max_size=len(A) + 1) == [A] * 100


def test_decoder_max_size_keeps_partial_text() -> None:
    decoder = get_protocol("ollama").decoder(True, max_size=200)
    chunks = decoder.feed(b'{"model":"m","response":"caf\xc3\xa9","done":false}\n')
    assert [c.text for c in chunks] == ["café"]
    with pytest.raises(mal.DecodeError) as info:
        decoder.feed(b'{"model":"m","response":"' + b"x" * 300)
    assert info.value.partial_text == "café"


# Strict UTF-8 -----------------------------------------------------------------


def offset_of(exc: BaseException) -> int:
    found = re.search(r"\bbyte (\d+)\b", str(exc))
    assert found, str(exc)
    return int(found.group(1))


BAD_UTF8 = {
    "invalid byte": (A + b'\n{"a":"\xff"}\n', 14),
    "lone continuation byte": (b'{"a":"\x80"}\n', 6),
    "invalid continuation": (b'{"a":"\xc3("}\n', 6),
    "encoded surrogate": (b'{"a":"\xed\xa0\x80"}\n', 6),
    "overlong": (b'{"a":"\xc0\xaf"}\n', 6),
    "code point over U+10FFFF": (b'{"a":"\xf4\x90\x80\x80"}\n', 6),
    "after a split character": (b'{"a":"\xc3\xa9 \xe2\x80\x94"}\n{"b":"\xfe"}\n', 21),
    "body ends inside a character": (A + b'\n{"a":"\xe2\x82', 14),
    "body ends inside a 4-byte character": (b'{"a":"\xf0\x9f\x98', 6),
    "bad byte in a blank line": (A + b"\n \xff \n", 9),
}


@pytest.mark.parametrize("name", list(BAD_UTF8))
def test_invalid_utf8_names_the_byte_offset(name: str) -> None:
    body, offset = BAD_UTF8[name]
    for pieces in every_way(body):
        splitter = NDJSONSplitter()
        with pytest.raises(mal.DecodeError) as info:
            for piece in pieces:
                splitter.feed(piece)
            splitter.flush()
        assert offset_of(info.value) == offset, pieces
        assert "UTF-8" in str(info.value)


def test_bad_byte_in_a_later_feed_after_a_split_character() -> None:
    splitter = NDJSONSplitter()
    assert splitter.feed(b'{"t":"caf\xc3') == []
    assert splitter.feed(b'\xa9"}\n') == ['{"t":"café"}'.encode()]
    assert splitter.feed(b'{"t":"\xf0\x9f') == []
    with pytest.raises(mal.DecodeError) as info:
        splitter.feed(b'\x98\x80 \xc0"}\n')
    # 10 + 4 bytes of the first line, 8 of the second piece, then "\x98\x80 ".
    assert offset_of(info.value) == 25


def test_body_ending_inside_a_character_fails_at_flush() -> None:
    splitter = NDJSONSplitter()
    assert splitter.feed(A + b"\n" + b'{"t":"\xe6\x9d') == [A]
    with pytest.raises(mal.DecodeError) as info:
        splitter.flush()
    assert offset_of(info.value) == len(A) + 1 + 6


def test_decoder_invalid_utf8_keeps_partial_text() -> None:
    decoder = get_protocol("ollama").decoder(True)
    first = b'{"model":"m","response":"\xc3\xa9t\xc3\xa9","done":false}\n'
    assert [c.text for c in decoder.feed(first)] == ["été"]
    second = b'{"model":"m","response":"\xe9t\xe9","done":false}\n'  # Latin-1
    with pytest.raises(mal.DecodeError) as info:
        decoder.feed(second)
    assert info.value.partial_text == "été"
    assert offset_of(info.value) == len(first) + second.index(b"\xe9")


def test_non_streamed_body_invalid_utf8() -> None:
    decoder = get_protocol("openai").decoder(False)
    body = b'{"choices":[{"index":0,"message":{"content":"caf\xe9"},"finish_reason":"stop"}]}'
    decoder.feed(body[:30])
    decoder.feed(body[30:])
    with pytest.raises(mal.DecodeError) as info:
        decoder.flush()
    assert offset_of(info.value) == body.index(b"\xe9")
