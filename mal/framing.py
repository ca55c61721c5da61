"""Incremental framing of response bodies: ndjson lines and server-sent events.

This module contains no networking code at all: feed it the bytes of a body as
they arrive, in pieces of any size, and it returns what those bytes completed.

Both parsers have the shape ``feed(data: bytes) -> list[...]`` plus
``flush() -> list[...]`` at the end of the body. They return lists because one
network read usually completes many lines, and a list amortises the call.

Guarantees, whatever the split of the body into pieces:

* the same output as feeding the whole body at once;
* linear time: a byte is searched for line ends once, when it is fed; an
  unfinished line is kept as a list of pieces and joined once, when it ends;
* bounded memory: an unfinished line or event longer than ``max_size`` raises
  :class:`mal.DecodeError` instead of growing without end;
* strict UTF-8: invalid UTF-8 raises :class:`mal.DecodeError` naming the byte
  offset in the body. ASCII pieces, the common case, cost one ``isascii()``.
"""

from __future__ import annotations

import codecs
import contextlib

import msgspec

from .errors import DecodeError

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "Utf8Validator",
    "NDJSONSplitter",
    "SSEParser",
    "ServerSentEvent",
]

#: The most bytes one unfinished line or event may hold. A streamed chunk is a
#: few hundred bytes and a whole non-streamed generation rarely passes a few
#: megabytes; a body that sends more without a line end is broken or hostile,
#: and must not make the client buffer it without end. ``MALConfig.max_event_size``
#: overrides it.
DEFAULT_MAX_EVENT_SIZE = 16 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_BLANK = [b""]


class Utf8Validator:
    """Checks that a body is UTF-8 across feeds, and says where it is not."""

    __slots__ = ("_decoder", "_carry", "offset")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        # True while the last piece ended inside a multi-byte character.
        self._carry = False
        #: Bytes of the body checked so far.
        self.offset = 0

    def check(self, data: bytes, final: bool = False) -> None:
        carry = self._carry or final
        if carry or not data.isascii():
            if not carry:
                # Most pieces hold whole characters: one C call checks them.
                try:
                    data.decode()
                except UnicodeDecodeError:
                    pass  # a character cut at the end, or invalid: see below
                else:
                    self.offset += len(data)
                    return
            try:
                self._decoder.decode(data, final)
            except UnicodeDecodeError as exc:
                # exc.object is the carried bytes of an unfinished character
                # followed by this piece: locate the bad byte in the body.
                carried = len(exc.object) - len(data)
                error = DecodeError(
                    "invalid UTF-8 at byte "
                    f"{self.offset - carried + exc.start} of the response body ({exc.reason})"
                )
                #: How many bytes of this piece come before the bad ones.
                error.valid = max(exc.start - carried, 0)
                raise error from None
            self._carry = bool(self._decoder.getstate()[0])
        self.offset += len(data)


def _is_utf8(data: bytes) -> bool:
    """Whether ``data`` is whole, valid UTF-8 (one C call)."""
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _too_large(what: str, limit: int) -> DecodeError:
    return DecodeError(
        f"{what} longer than {limit} bytes without an end; "
        "raise MALConfig.max_event_size if this is expected"
    )


class _LineBuffer:
    """Splits bytes into lines and carries an unfinished line across feeds.

    With ``cr_ends_line`` (server-sent events) a line ends at CR, LF or CRLF,
    including a CR that ends one piece and an LF that starts the next; without
    it (ndjson) a line ends at LF only, and the caller strips a CR before it.
    """

    __slots__ = ("_pending", "_pending_size", "_max_size", "_cr_ends_line", "_after_cr")

    def __init__(self, max_size: int, cr_ends_line: bool) -> None:
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._max_size = max_size
        self._cr_ends_line = cr_ends_line
        self._after_cr = False

    def split(self, data: bytes) -> list[bytes]:
        """Return the lines that ``data`` completes, without their line ends."""
        if self._cr_ends_line:
            if self._after_cr:
                # WHATWG: a CRLF pair split across two pieces is one line end.
                self._after_cr = False
                if data[:1] == b"\n":
                    data = data[1:]
                    if not data:
                        return []
            # bytes.splitlines() splits at CR, LF and CRLF, and nothing else.
            lines = data.splitlines()
            last = data[-1]
            if last == 13:
                self._after_cr = True
                tail = b""
            else:
                tail = b"" if last == 10 else lines.pop()
        else:
            lines = data.split(b"\n")
            tail = lines.pop()  # b"" when data ends with LF
        if self._pending and lines:
            self._pending.append(lines[0])
            self._pending_size += len(lines[0])
            if self._pending_size > self._max_size:
                raise _too_large("a line", self._max_size)
            lines[0] = b"".join(self._pending)
            self._pending = []
            self._pending_size = 0
        if tail:
            self._pending.append(tail)
            self._pending_size += len(tail)
            if self._pending_size > self._max_size:
                raise _too_large("a line", self._max_size)
        return lines

    def take_pending(self) -> bytes:
        """Return the unfinished line (at the end of the body) and forget it."""
        line = b"".join(self._pending)
        self._pending = []
        self._pending_size = 0
        return line


class NDJSONSplitter:
    """Splits a newline-delimited JSON body into its lines.

    Lines end at LF or CRLF; blank lines are skipped. ``feed`` returns the
    complete lines as bytes, ready for a ``msgspec`` decoder; ``flush`` returns
    a last line that had no line end.
    """

    __slots__ = ("_idle", "_lines", "_max_size", "_utf8")

    def __init__(self, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        self._max_size = max_size
        self._lines = _LineBuffer(max_size, cr_ends_line=False)
        self._utf8 = Utf8Validator()
        # Nothing carried over from earlier pieces: no unfinished line (and so
        # no unfinished UTF-8 character either).
        self._idle = True

    def feed(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        try:
            self._utf8.check(data)
        except DecodeError as exc:
            # The lines before the bad bytes still count: their text is kept.
            with contextlib.suppress(DecodeError):
                exc.frames = self._split(data[: exc.valid])
            raise
        return self._split(data)

    def whole_line(self, data: bytes) -> bytes | None:
        """Take ``data`` at once when it is exactly one line: the common case
        of a paced stream, where each network read is one line.

        When nothing is carried over from earlier pieces and ``data`` is one
        valid UTF-8 line that ends with LF and starts with a byte that is not
        whitespace (so it is not blank), it is consumed and returned with its
        line end (which JSON decoders skip); otherwise nothing is consumed and
        the result is None, and ``data`` goes to :meth:`feed`. Both give the
        same line.
        """
        if (
            self._idle
            and data[-1:] == b"\n"
            and data[0] > 32
            and 10 not in data[:-1]
            and len(data) <= self._max_size
            and (data.isascii() or _is_utf8(data))
        ):
            self._utf8.offset += len(data)
            return data
        return None

    def _split(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        lines = self._lines.split(data)
        self._idle = not self._lines._pending
        limit = self._max_size
        for line in lines:
            if not line or line[-1] == 13 or line.isspace() or len(line) > limit:
                return self._clean(lines)
        return lines

    def _clean(self, lines: list[bytes]) -> list[bytes]:
        for line in lines:
            if len(line) > self._max_size + 1:  # a CR before the LF is not content
                raise _too_large("a line", self._max_size)
        return [_strip_cr(x) for x in lines if x and not x.isspace()]

    def flush(self) -> list[bytes]:
        self._utf8.check(b"", final=True)
        line = _strip_cr(self._lines.take_pending())
        return [line] if line and not line.isspace() else []


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line[-1:] == b"\r" else line


class ServerSentEvent(msgspec.Struct, gc=False):
    """One dispatched server-sent event.

    ``data`` is the event's data lines joined with LF, as UTF-8 bytes (already
    checked), so that a JSON decoder can take it without a copy. ``id`` is the
    last event ID seen so far in the stream, ``retry`` the last reconnection
    time in milliseconds, as the WHATWG rules keep them.
    """

    event: str = "message"
    data: bytes = b""
    id: str = ""
    retry: int | None = None


class SSEParser:
    """Parses a ``text/event-stream`` body into :class:`ServerSentEvent` objects.

    Follows the WHATWG HTML "event stream interpretation" rules (section
    9.2.6): one leading UTF-8 BOM is dropped; lines end at CR, LF or CRLF;
    lines starting with ``:`` are comments; ``field:value`` loses one space
    after the colon; a line with no colon is a field with an empty value;
    ``data`` lines are joined with LF; ``event``, ``id`` and ``retry`` are kept;
    other fields are ignored; a blank line dispatches the event, and an event
    with no ``data`` field, or one left unfinished at the end, is not
    dispatched. ``comments`` counts comment lines (keep-alive pings).

    The lines of an unfinished event may be read only when it ends (or at
    ``flush``): ``last_event_id``, ``retry`` and ``comments`` are exact for
    every dispatched event and at the end of the body, not between.
    """

    __slots__ = (
        "_idle",
        "_clean",
        "_deferred",
        "_deferred_size",
        "_lines",
        "_utf8",
        "_max_size",
        "_started",
        "_head",
        "_data",
        "_data_size",
        "_event",
        "_names",
        "last_event_id",
        "retry",
        "comments",
    )

    def __init__(self, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        self._lines = _LineBuffer(max_size, cr_ends_line=True)
        self._utf8 = Utf8Validator()
        self._max_size = max_size
        self._started = False
        # The line machine (``_lines``, ``_data``, ``_event``) holds nothing,
        # and the BOM is behind us.
        self._clean = False
        # The start of an unfinished event, with LF line ends only, kept as it
        # came while the machine is clean: it is cut into lines once, when the
        # piece that ends it arrives. Bounded by max_size: past it, the bytes
        # go to the line machine, which applies its own limits.
        self._deferred: list[bytes] = []
        self._deferred_size = 0
        # Nothing at all carried over from earlier pieces.
        self._idle = False
        self._head = b""  # the first bytes while they may still be a split BOM
        self._data: list[bytes] = []
        self._data_size = 0
        self._event = ""
        # Event names decoded once: a stream repeats a handful of them.
        self._names: dict[bytes, str] = {}
        self.last_event_id = ""
        self.retry: int | None = None
        self.comments = 0

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        if not data:
            return []
        utf8 = self._utf8
        if utf8._carry or not data.isascii():
            try:
                utf8.check(data)
            except DecodeError as exc:
                # The events before the bad bytes still count: their text is kept.
                with contextlib.suppress(DecodeError):
                    exc.frames = self._split(data[: exc.valid])
                raise
        else:
            utf8.offset += len(data)
        return self._split(data)

    def whole_event(self, data: bytes, head: bytes = b"data: ") -> bytes | None:
        """Take ``data`` at once when it is exactly one simple event: the
        common case of a paced stream, where each network read is one event.

        ``head`` is what comes before the data value: ``b"data: "``, or
        ``b"event: NAME\\ndata: "`` for a named event; it must end with
        ``data: ``, whose one space is not part of the value (a ``data:``
        with no space after it is taken too). When nothing is carried
        over from earlier pieces and ``data`` is ``head``, a data value of
        valid UTF-8 with no CR or LF, and LF LF (or CRLF CRLF, as some servers
        write it), it is consumed and the data value is returned; otherwise
        nothing is consumed and the result is None, and ``data`` goes to
        :meth:`feed`. The event is the one ``feed`` would dispatch, with the
        same ``last_event_id`` and ``retry``.
        """
        start = len(head)
        if data[:start] != head:
            # ``data:`` without its space (llama.cpp and others write it so).
            start -= 1
            if data[:start] != head[:start] or data[start : start + 1] == b" ":
                return None
        if data[-2:] == b"\n\n":
            value = data[start:-2]
        elif data[-4:] == b"\r\n\r\n":
            value = data[start:-4]
        else:
            return None
        # ``in`` with an int is one memchr, without the argument parsing of find().
        if (
            self._idle
            and 10 not in value
            and 13 not in value
            and len(value) <= self._max_size
            and (value.isascii() or _is_utf8(value))
        ):
            self._utf8.offset += len(data)
            return value
        return None

    def _split(self, data: bytes) -> list[ServerSentEvent]:
        if not data:
            return []
        if 13 not in data and self._started:
            if self._clean:
                return self._split_lf(data)
            if not self._lines._after_cr:
                end = data.rfind(b"\n\n") + 2
                if end >= 2:
                    # The line machine finishes the events it holds, which
                    # leaves it clean; the rest takes the common path.
                    events = self._machine(data[:end])
                    if end < len(data):
                        events += self._split_lf(data[end:])
                    return events
        if not self._started:
            data = self._head + data
            if len(data) < 3 and _BOM.startswith(data):
                self._head = data
                return []
            self._started = True
            self._head = b""
            if data.startswith(_BOM):
                data = data[3:]
                if not data:
                    return []
        return self._machine(data)

    def _split_lf(self, data: bytes) -> list[ServerSentEvent]:
        """The common case: LF line ends and a clean line machine. The events
        that ``data`` completes are cut out of the bytes at once, by
        :meth:`_whole_events`; the unfinished rest is deferred."""
        deferred = self._deferred
        end = data.rfind(b"\n\n") + 2
        if end < 2:
            if deferred and data[0] == 10 and deferred[-1][-1] == 10:
                end = 1  # this LF is the blank line that ends the deferred event
            elif self._deferred_size + len(data) <= self._max_size:
                deferred.append(data)
                self._deferred_size += len(data)
                self._idle = False
                return []
            else:
                return self._machine(data)
        whole = data[:end] if end < len(data) else data
        if deferred:
            deferred.append(whole)
            whole = b"".join(deferred)
            deferred.clear()
            self._deferred_size = 0
        events = self._whole_events(whole)
        if end == len(data):
            self._idle = True
            return events
        rest = data[end:]
        if len(rest) <= self._max_size:
            deferred.append(rest)
            self._deferred_size = len(rest)
            self._idle = False
        else:
            events += self._machine(rest)
        return events

    def _machine(self, data: bytes) -> list[ServerSentEvent]:
        """Run ``data``, after anything deferred, through the line machine."""
        if self._deferred:
            data = b"".join(self._deferred) + data
            self._deferred.clear()
            self._deferred_size = 0
        events: list[ServerSentEvent] = []
        lines = self._lines
        self._process(lines.split(data), events)
        self._idle = self._clean = not (
            lines._pending or lines._after_cr or self._data or self._event
        )
        return events

    def _whole_events(self, data: bytes) -> list[ServerSentEvent]:
        """The common case: nothing carried over, and ``data`` is whole events
        with LF line ends. The usual shapes (``data: ...`` and ``event: ...``
        then ``data: ...``) are cut out directly, without the line machine."""
        events: list[ServerSentEvent] = []
        last_id, retry, names = self.last_event_id, self.retry, self._names
        if data.startswith(b"event: "):
            # Named events (Anthropic's): one C split cuts the piece into
            # "NAME\ndata: VALUE" blocks; it is used when every block is
            # exactly that (one LF in it, after the name).
            limit = self._max_size
            for block in data[7:-2].split(b"\n\nevent: "):
                head, sep, payload = block.partition(b"\ndata: ")
                if not sep or 10 in payload or 10 in head or len(payload) > limit:
                    break
                name = names.get(head) or self._name(head)
                events.append(ServerSentEvent(name, payload, last_id, retry))
            else:
                return events
            events.clear()
        elif data.startswith(b"data: "):
            # Unnamed one-line events (OpenAI's): one C split cuts out every
            # value. When none holds an LF, each was exactly one "data: "
            # line and a blank line (there is no CR: see _split).
            values = data[6:-2].split(b"\n\ndata: ")
            for value in values:
                if 10 in value or len(value) > self._max_size:
                    break
            else:
                return [ServerSentEvent("message", value, last_id, retry) for value in values]
        limit = self._max_size + 6  # the data, and "data: "
        last_head, last_name = b"\0", ""
        pos = 0
        end = len(data)
        while pos < end:
            nl = data.find(b"\n", pos)
            if nl + 1 < end and data[nl + 1] == 10:  # a one-line event
                if data.startswith(b"data: ", pos):
                    if nl - pos > limit:
                        raise _too_large("an event", self._max_size)
                    events.append(ServerSentEvent("message", data[pos + 6 : nl], last_id, retry))
                    pos = nl + 2
                    continue
            elif data.startswith(b"event: ", pos) and data.startswith(b"data: ", nl + 1):
                nl2 = data.find(b"\n", nl + 1)
                if nl2 + 1 < end and data[nl2 + 1] == 10:  # a two-line event
                    if nl2 - nl - 1 > limit:
                        raise _too_large("an event", self._max_size)
                    # Events in a row mostly share their name: compare in place.
                    if nl - pos - 7 == len(last_head) and data.startswith(last_head, pos + 7):
                        name = last_name
                    else:
                        last_head = data[pos + 7 : nl]
                        last_name = name = names.get(last_head) or self._name(last_head)
                    events.append(ServerSentEvent(name, data[nl + 7 : nl2], last_id, retry))
                    pos = nl2 + 2
                    continue
            # Any other shape: the rest goes through the line machine. It ends
            # with a blank line, so nothing is left carried over.
            self._process(data[pos:].split(b"\n")[:-1], events)
            break
        return events

    def _process(self, lines: list[bytes], events: list[ServerSentEvent]) -> None:
        """Interpret complete lines (without their line ends)."""
        for line in lines:
            if not line:
                if self._data:
                    events.append(self._dispatch())
                else:
                    self._event = ""
            elif line.startswith(b"data:"):
                value = line[6:] if line[5:6] == b" " else line[5:]
                self._data.append(value)
                self._data_size += len(value) + 1
                if self._data_size > self._max_size:
                    raise _too_large("an event", self._max_size)
            elif len(line) > self._max_size:
                raise _too_large("a line", self._max_size)
            elif line[0] == 58:  # b":"
                self.comments += 1
            else:
                self._field(line)

    def _name(self, value: bytes) -> str:
        name = self._names.get(value)
        if name is None:
            name = value.decode()
            if len(self._names) < 64:
                self._names[value] = name
        return name

    def flush(self) -> list[ServerSentEvent]:
        """End of body: an event without its blank line is discarded (WHATWG)."""
        self._utf8.check(b"", final=True)
        if self._deferred:
            # Its complete lines still count: an id, a retry, comments.
            self._machine(b"")
        self._lines.take_pending()
        self._data = []
        self._data_size = 0
        self._event = ""
        return []

    def _dispatch(self) -> ServerSentEvent:
        data = self._data
        payload = data[0] if len(data) == 1 else b"\n".join(data)
        event = ServerSentEvent(self._event or "message", payload, self.last_event_id, self.retry)
        data.clear()
        self._data_size = 0
        self._event = ""
        return event

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._event = self._name(value)
        elif name == b"data":  # "data" with no colon: an empty data line
            self._data.append(value)
            self._data_size += 1
            if self._data_size > self._max_size:
                raise _too_large("an event", self._max_size)
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode()
        elif name == b"retry" and value.isdigit():
            self.retry = int(value)
