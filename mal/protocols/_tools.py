"""Tool calls assembled from their streamed pieces, the same way for every
provider. This module contains no networking code at all.

The providers' wire formats disagree, and real servers bend each of them, so
the assembler follows a few rules, each the fix of a bug users reported
against the official SDKs and their peers:

* A call is keyed by what the wire format keys it by (the OpenAI tool
  ``index``, or its position in the delta list when a server leaves the index
  out; the Anthropic content-block index); Ollama's calls come whole, each a
  call of its own, never deduplicated.
* ``id`` and ``name`` are set once: ``None`` and ``""`` are ignored, and so is
  the same value again (servers that repeat them on every delta); they are
  never concatenated. A *different* id on a known key starts a new call
  (servers that put every call on index 0).
* Arguments are JSON text appended in order; ``None`` counts as ``""``.
  Nothing parses them before the call is complete: a piece may end inside an
  escape or a character. A call that closes with no arguments text (a tool
  without parameters; Anthropic sends ``""``) gets one last piece, ``{}``, so
  that its pieces still join to its ``arguments_json``.
* When the response ends, the text must be a JSON object, or the call is a
  :class:`mal.DecodeError` that keeps the raw text. A call the response cut
  off (``finish_reason == "length"``) is kept with ``complete=False``.
* Only the call the response was in the middle of when it was cut off can be
  cut off: the last call that got a piece, unless other output (a text or
  thinking block, another output item) came after it. A call before it that
  came without arguments is complete, ``{}``; one whose arguments are not
  JSON stays incomplete (OpenAI servers may interleave the pieces of calls).
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from typing import Any

import msgspec

from ..errors import DecodeError
from ..types import ToolCall, ToolCallDelta

__all__ = ["ToolCallAssembler"]

_arguments = msgspec.json.Decoder(dict[str, Any])


class _CallIds:
    """Ids for the calls of one response that came without one, unique and in
    OpenAI's style (``call_`` and 24 hex digits): a random prefix drawn once
    per response, then a counter."""

    __slots__ = ("_n", "_prefix")

    def __init__(self) -> None:
        self._prefix = ""
        self._n = 0

    def __call__(self) -> str:
        if not self._prefix:
            self._prefix = "call_" + os.urandom(8).hex()
        self._n += 1
        return f"{self._prefix}{self._n:08x}"


class ToolCallAssembler:
    """The tool calls of one response, as their pieces arrive."""

    __slots__ = ("_closed", "_ids", "_keys", "_last", "_make_id", "_names", "_parts")

    def __init__(self) -> None:
        self._ids: list[str | None] = []
        self._names: list[str | None] = []
        self._parts: list[list[str]] = []
        self._keys: dict[Hashable, int] = {}
        # Calls given "{}" by close(): no arguments text of their own arrived.
        self._closed: set[int] = set()
        # The call the response is in the middle of: the one a token limit cuts off.
        self._last: int | None = None
        self._make_id = _CallIds()

    def __bool__(self) -> bool:
        return bool(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys

    def piece(
        self, key: Hashable, id: str | None, name: str | None, arguments: str | None
    ) -> ToolCallDelta | None:
        """Add a piece of the call keyed ``key``; its delta, or None when the
        piece brings nothing new."""
        id = id or None
        name = name or None
        i = self._keys.get(key)
        if i is not None and id is not None:
            known = self._ids[i]
            if known is not None and known != id:
                i = None  # another call on the same key
        if i is None:
            return self._open(key, id, name, arguments or "")
        self._last = i
        new_id = new_name = None
        if id is not None and self._ids[i] is None:
            self._ids[i] = new_id = id
        if name is not None and self._names[i] is None:
            self._names[i] = new_name = name
        if arguments:
            self._parts[i].append(arguments)
        elif new_id is None and new_name is None:
            return None
        return ToolCallDelta(i, new_id, new_name, arguments or "")

    def more(self, key: Hashable, arguments: str) -> ToolCallDelta | None:
        """More arguments of a call known by ``key``; None for a key of no call
        (an Anthropic server tool's input shares the delta type)."""
        i = self._keys.get(key)
        if i is None or not arguments:
            return None
        self._last = i
        self._parts[i].append(arguments)
        return ToolCallDelta(i, None, None, arguments)

    def whole(self, id: str | None, name: str, arguments: str) -> ToolCallDelta:
        """A call that arrives whole (Ollama; non-streamed bodies), with its
        arguments' JSON text (``{}`` for none). A call without an id is
        given one."""
        i = self._last = len(self._ids)
        id = id or self._make_id()
        arguments = arguments or "{}"
        self._ids.append(id)
        self._names.append(name or None)
        self._parts.append([arguments])
        return ToolCallDelta(i, id, name or None, arguments)

    def _open(
        self, key: Hashable, id: str | None, name: str | None, arguments: str
    ) -> ToolCallDelta:
        i = self._last = len(self._ids)
        self._keys[key] = i
        self._ids.append(id)
        self._names.append(name)
        self._parts.append([arguments] if arguments else [])
        return ToolCallDelta(i, id, name, arguments)

    def other_output(self) -> None:
        """Output that is not a call came after the calls so far (a text or
        thinking block, another output item): the response is no longer in
        the middle of a call, and a token limit cuts none off."""
        self._last = None

    def close(self, key: Hashable) -> ToolCallDelta | None:
        """The call keyed ``key`` is complete: its ``{}`` piece when no
        arguments text came (None otherwise, or for a key of no call)."""
        i = self._keys.get(key)
        if i is None or i in self._closed or "".join(self._parts[i]).strip():
            return None
        self._closed.add(i)
        self._parts[i].append("{}")
        return ToolCallDelta(i, None, None, "{}")

    def close_all(self) -> list[ToolCallDelta]:
        """``close`` every call: the response ended."""
        deltas = []
        for key in self._keys:
            delta = self.close(key)
            if delta is not None:
                deltas.append(delta)
        return deltas

    def finish(self, cut_off: bool) -> list[ToolCall]:
        """The assembled calls, once the response ended. ``cut_off``: it ended
        at the token limit, so calls whose arguments are not complete JSON are
        kept as incomplete instead of failing, and the call it was in the
        middle of is incomplete if no arguments came."""
        cut = self._last if cut_off else None
        calls: list[ToolCall] = []
        for i, parts in enumerate(self._parts):
            id, name, raw = self._ids[i], self._names[i], "".join(parts)
            if id is None:
                id = self._ids[i] = self._make_id()
            if name is None:
                raise DecodeError(
                    f"tool call {i} ({id}) has no name; its arguments were {raw!r:.200}"
                )
            if not raw.strip():
                raw = "{}"
            if i == cut and i in self._closed:
                # Cut off before any arguments: the model may have meant some.
                calls.append(ToolCall(id, name, {}, raw, complete=False))
                continue
            calls.append(_arguments_of(id, name, raw, cut_off=cut_off))
        return calls


def _arguments_of(id: str, name: str, raw: str, *, cut_off: bool) -> ToolCall:
    try:
        arguments = _arguments.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        if cut_off:
            return ToolCall(id, name, {}, raw, complete=False)
        error = DecodeError(
            f"the arguments of tool call {name!r} ({id}) are not a JSON object ({exc}): "
            f"{raw[:500]!r}"
        )
        error.raw_text = raw
        raise error from None
    return ToolCall(id, name, arguments, raw)
