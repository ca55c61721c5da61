"""SSEParser: the WHATWG event-stream interpretation rules, one at a time.

Every case is fed whole, one byte at a time, cut at every single point, and
cut at random points; every way must give the same events and the same end
state (last event ID, retry, comment count).
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mal
from mal.framing import ServerSentEvent, SSEParser
from mal.protocols import get_protocol

SETTINGS = settings(max_examples=40, deadline=None, database=None)


def E(data: bytes, event: str = "message", id: str = "", retry: int | None = None) -> Any:
    return ServerSentEvent(event=event, data=data, id=id, retry=retry)


def run(pieces: list[bytes], max_size: int | None = None) -> tuple[list[Any], tuple[Any, ...]]:
    parser = SSEParser() if max_size is None else SSEParser(max_size)
    events: list[Any] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    events.extend(parser.flush())
    return events, (parser.last_event_id, parser.retry, parser.comments)


def pieces_at(body: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(points)]


def every_way(body: bytes) -> list[list[bytes]]:
    ways = [[body], [body[i : i + 1] for i in range(len(body))]]
    ways += [pieces_at(body, [cut]) for cut in range(1, len(body))]
    ways.append(pieces_at(body, list(range(1, len(body), 2))))
    ways.append(pieces_at(body, list(range(2, len(body), 3))))
    return ways


# (body, events, (last_event_id, retry, comments))
CASES: dict[str, tuple[bytes, list[Any], tuple[Any, ...]]] = {
    "one event": (b"data: hello\n\n", [E(b"hello")], ("", None, 0)),
    "empty body": (b"", [], ("", None, 0)),
    "blank lines only": (b"\n\r\n\r\n\n", [], ("", None, 0)),
    "bom dropped": (b"\xef\xbb\xbfdata: x\n\n", [E(b"x")], ("", None, 0)),
    "bom only": (b"\xef\xbb\xbf", [], ("", None, 0)),
    # Only one BOM is dropped: the second makes the first field "\ufeffdata".
    "second bom kept": (
        b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n",
        [E(b"y")],
        ("", None, 0),
    ),
    "bom not at start is data": (
        b"data: \xef\xbb\xbfx\n\n",
        [E(b"\xef\xbb\xbfx")],
        ("", None, 0),
    ),
    "lf": (b"data: a\ndata: b\n\ndata: c\n\n", [E(b"a\nb"), E(b"c")], ("", None, 0)),
    "cr": (b"data: a\rdata: b\r\rdata: c\r\r", [E(b"a\nb"), E(b"c")], ("", None, 0)),
    "crlf": (
        b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n",
        [E(b"a\nb"), E(b"c")],
        ("", None, 0),
    ),
    # CRLF, CR, LF, CRLF: two line ends after "a", two after "b".
    "mixed line ends": (b"data: a\r\n\rdata: b\n\r\n", [E(b"a"), E(b"b")], ("", None, 0)),
    "cr then crlf": (b"data: a\r\r\ndata: b\n\n", [E(b"a"), E(b"b")], ("", None, 0)),
    "body ends with cr": (b"data: a\r\r", [E(b"a")], ("", None, 0)),
    "comments counted": (
        b": ping\n:\n: keep-alive\r\ndata: x\n: in the middle\ndata: y\n\n",
        [E(b"x\ny")],
        ("", None, 4),
    ),
    "comment alone does not dispatch": (b": ping\n\n", [], ("", None, 1)),
    "one space stripped": (
        b"data:x\n\ndata: x\n\ndata:  x\n\ndata:\tx\n\n",
        [E(b"x"), E(b"x"), E(b" x"), E(b"\tx")],
        ("", None, 0),
    ),
    "colon in value": (b"data: a: b:c\n\n", [E(b"a: b:c")], ("", None, 0)),
    "data with no colon": (b"data\n\n", [E(b"")], ("", None, 0)),
    "two data lines with no colon": (b"data\ndata\n\n", [E(b"\n")], ("", None, 0)),
    "empty data value": (b"data:\n\n", [E(b"")], ("", None, 0)),
    "multi-line data": (
        b"data: first\ndata: second\ndata:\ndata: fourth\n\n",
        [E(b"first\nsecond\n\nfourth")],
        ("", None, 0),
    ),
    "json split over lines": (
        b'data: {"a":\ndata: 1}\n\n',
        [E(b'{"a":\n1}')],
        ("", None, 0),
    ),
    "event names": (
        b"event: add\ndata: 1\n\nevent: remove\ndata: 2\n\ndata: 3\n\n",
        [E(b"1", "add"), E(b"2", "remove"), E(b"3")],
        ("", None, 0),
    ),
    "event name one space stripped": (
        b"event:  spaced\ndata: x\n\nevent:tight\ndata: y\n\n",
        [E(b"x", " spaced"), E(b"y", "tight")],
        ("", None, 0),
    ),
    "event name last one wins": (
        b"event: a\nevent: b\ndata: x\n\n",
        [E(b"x", "b")],
        ("", None, 0),
    ),
    "empty event name is message": (
        b"event\ndata: x\n\nevent:\ndata: y\n\n",
        [E(b"x"), E(b"y")],
        ("", None, 0),
    ),
    "event name reset by blank line without data": (
        b"event: lost\n\ndata: 1\n\n",
        [E(b"1")],
        ("", None, 0),
    ),
    "utf-8 event name": (
        "event: café\ndata: x\n\n".encode(),
        [E(b"x", "café")],
        ("", None, 0),
    ),
    "ids kept, id with nul ignored, empty id resets": (
        b"id: 1\ndata: a\n\ndata: b\n\nid: 7\x00x\ndata: c\n\nid\ndata: d\n\n",
        [E(b"a", id="1"), E(b"b", id="1"), E(b"c", id="1"), E(b"d", id="")],
        ("", None, 0),
    ),
    "id without data is kept": (b"id: 42\n\n", [], ("42", None, 0)),
    "retry digits only": (
        b"retry: 3000\ndata: a\n\nretry: 12a\ndata: b\n\nretry:\ndata: c\n\n"
        b"retry: -5\ndata: d\n\nretry: 1.5\ndata: e\n\nretry: 10\n\n",
        [
            E(b"a", retry=3000),
            E(b"b", retry=3000),
            E(b"c", retry=3000),
            E(b"d", retry=3000),
            E(b"e", retry=3000),
        ],
        ("", 10, 0),
    ),
    "unknown fields ignored": (
        b"foo: bar\nData: no\nDATA: no\n data: leading space\ndata : space\ndata: ok\n\n",
        [E(b"ok")],
        ("", None, 0),
    ),
    "event without data not dispatched": (
        b"event: x\nid: 3\nretry: 5\n\ndata: y\n\n",
        [E(b"y", id="3", retry=5)],
        ("3", 5, 0),
    ),
    "unfinished event discarded at flush": (
        b"data: a\n\ndata: b\n",
        [E(b"a")],
        ("", None, 0),
    ),
    "unfinished line discarded at flush": (
        b"data: a\n\ndata: b",
        [E(b"a")],
        ("", None, 0),
    ),
    "multi-byte utf-8 kept as bytes": (
        "data: café — 東京 😀\n\n".encode(),
        [E("café — 東京 😀".encode())],
        ("", None, 0),
    ),
    "nul in data kept": (b"data: a\x00b\n\n", [E(b"a\x00b")], ("", None, 0)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_rule(name: str) -> None:
    body, events, state = CASES[name]
    for pieces in every_way(body):
        assert run(pieces) == (events, state), pieces


@pytest.mark.parametrize("name", list(CASES))
@SETTINGS
@given(data=st.data())
def test_rule_random_cuts(name: str, data: st.DataObject) -> None:
    body, events, state = CASES[name]
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12), label="cuts")
    assert run(pieces_at(body, cuts)) == (events, state)


def test_event_defaults() -> None:
    event = E(b"x")
    assert (event.event, event.data, event.id, event.retry) == ("message", b"x", "", None)


def test_bom_split_across_feeds() -> None:
    for pieces in (
        [b"\xef", b"\xbb", b"\xbfdata: x\n\n"],
        [b"\xef\xbb", b"\xbf", b"data: x\n\n"],
        [b"\xef", b"\xbb\xbfdata: x\n\n"],
        [b"", b"\xef", b"", b"\xbb\xbf", b"data: x\n\n"],
    ):
        assert run(pieces) == ([E(b"x")], ("", None, 0))


def test_cr_at_end_of_one_feed_and_lf_at_start_of_the_next() -> None:
    # Were the CR and LF two line ends, "a" would be dispatched on its own.
    pieces = [b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]
    assert run(pieces) == ([E(b"a\nb")], ("", None, 0))


def test_cr_at_end_of_feed_then_another_cr() -> None:
    assert run([b"data: a\r", b"\r", b"data: b\r", b"\r"]) == ([E(b"a"), E(b"b")], ("", None, 0))


def test_events_are_returned_by_the_feed_that_completes_them() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n") == []
    assert parser.feed(b"\n") == [E(b"a")]
    assert parser.feed(b"data: b\n\ndata: c\n\nda") == [E(b"b"), E(b"c")]
    assert parser.feed(b"ta: d\n") == []
    assert parser.feed(b"\n") == [E(b"d")]
    assert parser.flush() == []


def test_flush_discards_and_resets() -> None:
    parser = SSEParser()
    assert parser.feed(b"event: x\ndata: a\n") == []
    assert parser.flush() == []


# Size limits ----------------------------------------------------------------


def test_pending_line_over_max_size() -> None:
    parser = SSEParser(max_size=16)
    assert parser.feed(b"x" * 16) == []  # at the limit: fine
    with pytest.raises(mal.DecodeError, match="max_event_size"):
        parser.feed(b"x")


@pytest.mark.parametrize("cut", [None, 3, 10])
def test_pending_data_line_over_max_size(cut: int | None) -> None:
    body = b"data: " + b"x" * 20
    pieces = [body] if cut is None else pieces_at(body, [cut])
    parser = SSEParser(max_size=16)
    with pytest.raises(mal.DecodeError) as info:
        for piece in pieces:
            parser.feed(piece)
    assert isinstance(info.value, mal.StreamError)
    assert "16" in str(info.value)


def test_multi_line_event_over_max_size() -> None:
    # Each line is short; the event's data together is not.
    body = b"data: 0123456789\n" * 2 + b"\n"
    for pieces in every_way(body):
        parser = SSEParser(max_size=20)
        with pytest.raises(mal.DecodeError, match="max_event_size"):
            for piece in pieces:
                parser.feed(piece)


@pytest.mark.parametrize("line", [b"data:\n", b"data\n", b"data: \n"])
def test_event_of_empty_data_lines_over_max_size(line: bytes) -> None:
    # Each empty data line still adds an LF to the event's data: an endless
    # run of them must hit the limit like any other event, colon or not.
    parser = SSEParser(max_size=16)
    with pytest.raises(mal.DecodeError, match="max_event_size"):
        parser.feed(line * 100)


def test_multi_line_event_at_max_size() -> None:
    body = b"data: 0123456789\n" * 2 + b"\n"
    # 2 x (10 bytes + the joining LF) = 22: at the limit, dispatched.
    assert run([body], max_size=22) == ([E(b"0123456789\n0123456789")], ("", None, 0))


def test_many_events_each_under_max_size() -> None:
    body = b"data: 0123456789\n\n" * 50
    events, _ = run([body], max_size=20)
    assert events == [E(b"0123456789")] * 50


def test_decoder_max_size_keeps_partial_text() -> None:
    decoder = get_protocol("anthropic").decoder(True, max_size=200)
    decoder.feed(
        b"event: content_block_delta\n"
        b'data: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hi \\u00e9"}}\n\n'
    )
    with pytest.raises(mal.DecodeError) as info:
        decoder.feed(b"data: " + b"x" * 300)
    assert info.value.partial_text == "Hi é"


# Strict UTF-8 -----------------------------------------------------------------


def offset_of(exc: BaseException) -> int:
    found = re.search(r"\bbyte (\d+)\b", str(exc))
    assert found, str(exc)
    return int(found.group(1))


BAD_UTF8 = {
    "invalid byte": (b"data: ok\n\ndata: \xff\n\n", 16),
    "lone continuation byte": (b"data: \x80\n\n", 6),
    "invalid continuation": (b"data: \xc3(\n\n", 6),
    "encoded surrogate": (b"data: \xed\xa0\x80\n\n", 6),
    "overlong": (b"data: \xc0\xaf\n\n", 6),
    "after a split character": (b"data: \xc3\xa9 \xe2\x80\x94 ok \xfe\n\n", 16),
    "body ends inside a character": (b"data: ok\n\ndata: \xe2\x82", 16),
    "body ends inside a 4-byte character": (b"data: \xf0\x9f\x98", 6),
    "body ends inside a bom": (b"\xef\xbb", 0),
    "in a comment": (b": \xff\n", 2),
    "in an event name": (b"event: \xc3\n", 7),
}


@pytest.mark.parametrize("name", list(BAD_UTF8))
def test_invalid_utf8_names_the_byte_offset(name: str) -> None:
    body, offset = BAD_UTF8[name]
    for pieces in every_way(body):
        parser = SSEParser()
        with pytest.raises(mal.DecodeError) as info:
            for piece in pieces:
                parser.feed(piece)
            parser.flush()
        assert offset_of(info.value) == offset, pieces
        assert "UTF-8" in str(info.value)


def test_bad_byte_in_a_later_feed_after_a_split_character() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: caf\xc3") == []
    assert parser.feed(b"\xa9\n\n") == [E("café".encode())]
    parser.feed(b"data: \xe6\x9d")
    with pytest.raises(mal.DecodeError) as info:
        parser.feed(b"\xb1 \xff\n\n")
    # "data: caf\xc3" is 10 bytes, "\xa9\n\n" 3, "data: \xe6\x9d" 8, then "\xb1 " 2.
    assert offset_of(info.value) == 23


def test_decoder_invalid_utf8_keeps_partial_text() -> None:
    decoder = get_protocol("openai").decoder(True)
    first = b'data: {"choices":[{"index":0,"delta":{"content":"caf\xc3\xa9"}}]}\n\n'
    decoder.feed(first)
    second = b'data: {"choices":[{"index":0,"delta":{"content":"\xc3"}}]}\n\n'
    with pytest.raises(mal.DecodeError) as info:
        decoder.feed(second)
    assert info.value.partial_text == "café"
    assert offset_of(info.value) == len(first) + second.index(b"\xc3")


def test_lines_of_an_unfinished_event_still_count_at_flush() -> None:
    # After a clean event, an unfinished one is deferred as bytes; at the end
    # of the body it is discarded, but its id, retry and comment lines count.
    parser = SSEParser()
    assert parser.feed(b"data: a\n\n") == [E(b"a")]
    assert parser.feed(b"id: 7\n: ping\nretry: 5\ndata: lost\n") == []
    assert parser.flush() == []
    assert (parser.last_event_id, parser.retry, parser.comments) == ("7", 5, 1)


def test_event_cut_into_many_pieces_after_a_clean_one() -> None:
    parser = SSEParser()
    parser.feed(b"data: a\n\n")
    value = b"x" * 1000
    body = b"event: big\ndata: " + value + b"\n\ndata: b\n\n"
    events = []
    for i in range(0, len(body), 7):
        events += parser.feed(body[i : i + 7])
    assert events == [E(value, "big"), E(b"b")]


def test_deferred_event_past_max_size_goes_to_the_line_machine() -> None:
    parser = SSEParser(max_size=64)
    parser.feed(b"data: a\n\n")
    parser.feed(b"data: " + b"x" * 40)
    with pytest.raises(mal.DecodeError, match="a line longer than 64 bytes"):
        parser.feed(b"y" * 40)
