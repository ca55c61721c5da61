"""The one-frame fast paths: ``SSEParser.whole_event`` and ``NDJSONSplitter.whole_line``.

A paced stream arrives one event (or line) per network read, and the provider
decoders take such a piece at once, without the line machine. The fast path
must be invisible: whenever it takes a piece, ``feed`` on a parser in the same
state would have given exactly that one event; whenever it declines, it must
not have consumed anything. Each property is checked against ``feed`` on a
twin parser, over hand-picked pieces and over generated ones.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mal
from mal.framing import NDJSONSplitter, ServerSentEvent, SSEParser

SETTINGS = settings(max_examples=300, deadline=None, database=None)

NAMED = b"event: content_block_delta\ndata: "
#: Bodies that leave a parser idle (nothing carried over) or not.
PRIMERS = [b"", b"data: {}\n\n", b"data: {}\n\ndata: par", b"data: {}\r", b"\xef\xbb"]


Framer = SSEParser | NDJSONSplitter


def try_whole(
    framer_type: type[Framer], primer: bytes, piece: bytes, take: Any, max_size: int
) -> tuple[Any, Any, Any, Any]:
    """Feed ``primer`` to twin framers, then ``piece`` to one through ``feed``
    and to the other through ``take`` (its one-frame method). Return what
    ``take`` gave, both framers and what ``feed`` gave (or raised). When the
    fast path declines, check it consumed nothing and that ``feed`` of the
    piece still gives the twin's result."""
    fast, slow = framer_type(max_size), framer_type(max_size)
    fast.feed(primer)
    slow.feed(primer)
    before = fast._utf8.offset
    try:
        expected: Any = slow.feed(piece)
    except mal.DecodeError as exc:
        expected = exc
    taken = take(fast, piece)
    if taken is None:
        assert fast._utf8.offset == before  # nothing consumed...
        try:  # ... so the piece can still go to feed, with the twin's result
            assert fast.feed(piece) == expected
        except mal.DecodeError as exc:
            assert isinstance(expected, mal.DecodeError)
            assert str(exc) == str(expected)
    else:
        assert fast._utf8.offset == slow._utf8.offset
    return taken, fast, slow, expected


def check_sse(primer: bytes, piece: bytes, head: bytes, max_size: int = 1 << 20) -> bytes | None:
    taken, fast, slow, expected = try_whole(
        SSEParser, primer, piece, lambda p, d: p.whole_event(d, head), max_size
    )
    if taken is not None:
        name = head[7:-7].decode() if head.startswith(b"event: ") else "message"
        assert expected == [ServerSentEvent(name, taken, slow.last_event_id, slow.retry)]
        # Both parsers go on alike.
        follow = b"data: next\n\n"
        assert fast.feed(follow) == slow.feed(follow)
    assert taken is None or isinstance(taken, bytes)
    return taken


@pytest.mark.parametrize(
    ("piece", "payload"),
    [
        (b'data: {"a":1}\n\n', b'{"a":1}'),
        (b"data: \n\n", b""),
        (b'data: {"a":1}\r\n\r\n', b'{"a":1}'),  # CRLF line ends
        (b"data: \r\n\r\n", b""),
        (b"data:  two spaces\n\n", b" two spaces"),
        (b'data:{"a":1}\n\n', b'{"a":1}'),  # no space after the colon (llama.cpp)
        (b"data:\n\n", b""),
        ("data: é漢😀\n\n".encode(), "é漢😀".encode()),
    ],
)
def test_whole_event_takes_one_data_event(piece: bytes, payload: bytes) -> None:
    assert check_sse(b"data: {}\n\n", piece, b"data: ") == payload


def test_whole_event_takes_a_named_event() -> None:
    piece = NAMED + b'{"x":1}\n\n'
    assert check_sse(b"data: {}\n\n", piece, NAMED) == b'{"x":1}'
    assert check_sse(b"data: {}\n\n", piece.replace(b"data: ", b"data:"), NAMED) == b'{"x":1}'


@pytest.mark.parametrize(
    "piece",
    [
        b"",
        b"data: a\n\ndata: b\n\n",  # two events
        b"data: a\n",  # unfinished
        b"data: a\n\n\n",  # an extra blank line
        b"data: a\r\n\n",  # mixed line ends
        b"data: a\n\r\n",
        b"data: a\rb\n\n",  # a CR ends a line in the middle
        b"data: a\ndata: b\n\n",  # two data lines
        b"event: x\ndata: a\n\n",  # a name this head does not have
        b": ping\n\n",
        b"id: 7\ndata: a\n\n",
        b"data: \xff\n\n",  # invalid UTF-8: feed raises, with its offset
        b"data: \xe6\xbc\n\n",  # a cut character
    ],
)
def test_whole_event_declines_anything_else(piece: bytes) -> None:
    assert check_sse(b"data: {}\n\n", piece, b"data: ") is None


@pytest.mark.parametrize("primer", [b"", b"data: {}\n\ndata: par", b"data: {}\r", b"\xef\xbb"])
def test_whole_event_declines_while_something_is_carried_over(primer: bytes) -> None:
    # Before the first feed (a BOM may follow), after an unfinished line, after
    # a CR whose LF may come next, after part of a BOM.
    assert check_sse(primer, b"data: x\n\n", b"data: ") is None


def test_whole_event_declines_an_event_over_max_size() -> None:
    # feed raises for it; the fast path leaves it to feed.
    assert check_sse(b"data: {}\n\n", b"data: " + b"x" * 11 + b"\n\n", b"data: ", 10) is None
    assert check_sse(b"data: {}\n\n", b"data: " + b"x" * 10 + b"\n\n", b"data: ", 10) == b"x" * 10


_SSE_BYTES = st.sampled_from(
    [
        b"data: ",
        b"data:",
        b"event: content_block_delta\n",
        b"event: x\n",
        b"id: 1\n",
        b"retry: 5\n",
        b": c\n",
        b"\n",
        b"\r",
        b"\r\n",
        b"a",
        b"{}",
        b" ",
        b"\xc3\xa9",
        b"\xc3",
        b"\xff",
        b"\xef\xbb\xbf",
    ]
)


@SETTINGS
@given(
    primer=st.sampled_from(PRIMERS),
    head=st.sampled_from([b"data: ", NAMED]),
    parts=st.lists(_SSE_BYTES, max_size=8),
    end=st.sampled_from([None, b"\n\n", b"\r\n\r\n"]),
)
def test_whole_event_agrees_with_feed(
    primer: bytes, head: bytes, parts: list[bytes], end: bytes | None
) -> None:
    # Most pieces have the head and the end of an event, so that the fast
    # path is taken often, not only declined.
    piece = b"".join(parts)
    if end is not None:
        piece = head + piece + end
    check_sse(primer, piece, head)


# ndjson ----------------------------------------------------------------------


def check_line(primer: bytes, piece: bytes, max_size: int = 1 << 20) -> bytes | None:
    taken, fast, slow, expected = try_whole(
        NDJSONSplitter, primer, piece, lambda p, d: p.whole_line(d), max_size
    )
    if taken is not None:
        # The line comes with its line end, which JSON decoders skip.
        assert expected == [taken[:-2] if taken.endswith(b"\r\n") else taken[:-1]]
        assert fast.feed(b"{}\n") == slow.feed(b"{}\n")
    assert taken is None or isinstance(taken, bytes)
    return taken


@pytest.mark.parametrize(
    "piece", [b'{"a":1}\n', b'{"a":1}\r\n', '{"t":"é漢😀"}\n'.encode(), b"x\n"]
)
def test_whole_line_takes_one_line(piece: bytes) -> None:
    assert check_line(b"{}\n", piece) == piece


@pytest.mark.parametrize(
    "piece",
    [
        b"",
        b"\n",
        b"\r\n",
        b"  \n",
        b" {}\n",
        b"{}\n{}\n",
        b"{}",
        b"{}\n\n",
        b"{\xff}\n",
        b"{\xc3\n",
    ],
)
def test_whole_line_declines_anything_else(piece: bytes) -> None:
    assert check_line(b"{}\n", piece) is None


def test_whole_line_declines_while_a_line_is_unfinished() -> None:
    assert check_line(b"{}\n{", b"}\n") is None
    assert check_line(b"{}\n\xe6", b"\xbc\n") is None


def test_whole_line_declines_a_line_over_max_size() -> None:
    assert check_line(b"", b"x" * 10 + b"\n", 10) is None
    assert check_line(b"", b"x" * 9 + b"\n", 10) == b"x" * 9 + b"\n"


@SETTINGS
@given(
    primer=st.sampled_from([b"", b"{}\n", b"{}\n{", b"\xc3"]),
    parts=st.lists(
        st.sampled_from([b"{", b"}", b"\n", b"\r", b" ", b"a", b"\xc3\xa9", b"\xc3", b"\xff"]),
        max_size=8,
    ),
    shape=st.booleans(),
)
def test_whole_line_agrees_with_feed(primer: bytes, parts: list[bytes], shape: bool) -> None:
    piece = b"".join(parts)
    if shape:
        piece = b"{" + piece + b"\n"
    check_line(primer, piece)


def test_whole_line_declines_after_a_bad_piece_left_a_line_unfinished() -> None:
    # A piece with invalid UTF-8 still frames the bytes before the bad one
    # (their text is kept); the unfinished line they end with is carried.
    splitter = NDJSONSplitter()
    with pytest.raises(mal.DecodeError) as info:
        splitter.feed(b'{"a":1}\n{"b"\xff')
    assert info.value.frames == [b'{"a":1}']
    assert splitter.whole_line(b"}\n") is None


def test_whole_event_declines_after_a_bad_piece_left_an_event_unfinished() -> None:
    parser = SSEParser()
    parser.feed(b"data: {}\n\n")
    with pytest.raises(mal.DecodeError) as info:
        parser.feed(b"data: a\n\ndata: b\xff")
    assert info.value.frames == [ServerSentEvent("message", b"a")]
    assert parser.whole_event(b"data: c\n\n") is None
