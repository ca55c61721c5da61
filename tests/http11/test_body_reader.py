"""The body framing of mal's HTTP/1.1 transport, sans I/O: chunked (RFC 9112
section 7.1), Content-Length and read-until-close bodies, fed whole, byte by
byte and split at every place; what is an error; when a connection may be
reused (nothing after the body)."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mal._http11 import (
    CHUNKED,
    LENGTH,
    NO_BODY,
    UNTIL_CLOSE,
    BodyError,
    BodyReader,
    body_framing,
    keeps_alive,
)

CHUNKED_BODY = (
    b"5\r\nhello\r\n"
    b"1;name=value\r\n,\r\n"  # a chunk extension: ignored
    b"6 ; x\r\n world\r\n"  # whitespace before the extension (BWS)
    b"A\r\n0123456789\r\n"
    b"0\r\n"
    b"Expires: never\r\n"  # a trailer field: read and dropped
    b"\r\n"
)
CHUNKED_TEXT = b"hello, world0123456789"


def read_all(reader: BodyReader, parts: list[bytes], eof: bool = False) -> bytes:
    """Feed ``parts`` (an empty one is skipped: ``feed(b"")`` means the
    close), then the close if ``eof``; the body's pieces joined."""
    pieces = []
    todo = [p for p in parts if p] + ([b""] if eof else [])
    while (piece := reader.next()) != b"":
        if piece is None:
            assert todo, f"the body did not end: {pieces}"
            reader.feed(todo.pop(0))
        else:
            pieces.append(piece)
    return b"".join(pieces)


def test_chunked_whole() -> None:
    reader = BodyReader(CHUNKED, 0, b"")
    assert read_all(reader, [CHUNKED_BODY]) == CHUNKED_TEXT
    assert reader.done and reader.clean
    assert reader.next() == b""  # and stays at its end


def test_chunked_byte_by_byte() -> None:
    reader = BodyReader(CHUNKED, 0, b"")
    parts = [CHUNKED_BODY[i : i + 1] for i in range(len(CHUNKED_BODY))]
    assert read_all(reader, parts) == CHUNKED_TEXT
    assert reader.clean


def test_chunked_split_anywhere() -> None:
    for cut in range(len(CHUNKED_BODY) + 1):
        reader = BodyReader(CHUNKED, 0, CHUNKED_BODY[:cut])
        assert read_all(reader, [b"", CHUNKED_BODY[cut:]]) == CHUNKED_TEXT, cut
        assert reader.clean, cut


@given(st.lists(st.binary(min_size=1, max_size=40), max_size=8), st.data())
def test_chunked_any_chunks_any_splits(chunks: list[bytes], data: st.DataObject) -> None:
    wire = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    parts = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    reader = BodyReader(CHUNKED, 0, b"")
    assert read_all(reader, parts) == b"".join(chunks)
    assert reader.clean


def test_a_piece_is_at_most_one_chunk() -> None:
    reader = BodyReader(CHUNKED, 0, b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n")
    assert [reader.next(), reader.next(), reader.next()] == [b"abc", b"def", b""]


def test_bytes_after_the_body_are_not_clean() -> None:
    reader = BodyReader(CHUNKED, 0, b"")
    assert read_all(reader, [b"0\r\n\r\nHTTP/1.1 200 OK\r\n"]) == b""
    assert reader.done and not reader.clean


@pytest.mark.parametrize(
    "wire",
    [
        b"zz\r\nhello\r\n",  # not hexadecimal
        b"\r\nhello\r\n",  # no size
        b"-5\r\nhello\r\n",
        b"0x5\r\nhello\r\n",
        b"11111111111111111\r\n",  # 17 digits
        b"5\r\nhelloXX",  # no CRLF after the data
    ],
)
def test_broken_chunked_framing(wire: bytes) -> None:
    reader = BodyReader(CHUNKED, 0, wire)
    with pytest.raises(BodyError):
        while reader.next():
            pass


def test_a_size_line_that_never_ends() -> None:
    reader = BodyReader(CHUNKED, 0, b"5" * 70_000)
    with pytest.raises(BodyError, match="too long"):
        reader.next()


@pytest.mark.parametrize("cut", [0, 3, 8, 10, 13])
def test_a_chunked_body_cut_by_the_close(cut: int) -> None:
    reader = BodyReader(CHUNKED, 0, b"")
    with pytest.raises(BodyError, match="closed before the end"):
        read_all(reader, [b"5\r\nhello\r\n0\r\n\r\n"[:cut]], eof=True)


def test_content_length() -> None:
    reader = BodyReader(LENGTH, 10, b"01234")
    assert reader.next() == b"01234"
    assert reader.next() is None
    reader.feed(b"56789")
    assert reader.next() == b"56789"
    assert reader.done and reader.clean
    assert reader.next() == b""


def test_content_length_with_bytes_after_it() -> None:
    reader = BodyReader(LENGTH, 3, b"abcdef")
    assert reader.next() == b"abc"
    assert reader.done and not reader.clean


def test_content_length_cut_by_the_close() -> None:
    reader = BodyReader(LENGTH, 10, b"01234")
    assert reader.next() == b"01234"
    reader.feed(b"")
    with pytest.raises(BodyError, match="5 bytes before the end"):
        reader.next()


def test_empty_bodies() -> None:
    for reader in (BodyReader(LENGTH, 0, b""), BodyReader(NO_BODY, 0, b"")):
        assert reader.done and reader.clean
        assert reader.next() == b""


def test_until_close() -> None:
    reader = BodyReader(UNTIL_CLOSE, 0, b"abc")
    assert read_all(reader, [b"def"], eof=True) == b"abcdef"
    assert reader.done and not reader.clean  # the connection is gone


def _response(status: int = 200, version: bytes = b"1.1", **headers: str) -> h11.Response:
    return h11.Response(
        status_code=status,
        http_version=version,
        headers=[(k.replace("_", "-"), v) for k, v in headers.items()],
    )


def test_body_framing() -> None:
    assert body_framing("POST", _response(transfer_encoding="chunked")) == (CHUNKED, 0)
    assert body_framing("POST", _response(content_length="12")) == (LENGTH, 12)
    assert body_framing("POST", _response()) == (UNTIL_CLOSE, 0)
    assert body_framing("HEAD", _response(content_length="12")) == (NO_BODY, 0)
    assert body_framing("GET", _response(204)) == (NO_BODY, 0)
    assert body_framing("GET", _response(304, content_length="12")) == (NO_BODY, 0)


def test_keeps_alive() -> None:
    assert keeps_alive(_response())
    assert keeps_alive(_response(connection="keep-alive"))
    assert not keeps_alive(_response(connection="Keep-Alive, Close"))
    assert not keeps_alive(_response(version=b"1.0"))
