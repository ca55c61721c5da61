"""What every wire format shares: a reply made ready for the wire (`_Job`, `_Call`)
and the interface of one provider's writer (`_Wire`), with the small helpers
the writers use to make ids, timestamps and JSON.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final

import msgspec

from mal.testing._rules import Violation
from mal.testing._script import Reply, ScriptedToolCall


def _enc(obj: Any) -> bytes:
    return msgspec.json.encode(obj)


_ALNUM: Final = string.ascii_letters + string.digits


def _rand(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(random.choices(alphabet, k=n))


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _pieces(text: str) -> tuple[str, ...]:
    """Cut `text` into pieces of 3 to 8 characters, as the providers stream arguments.

    The cuts are seeded by the text, so the same arguments always stream the same way.
    """
    rng = random.Random(text)
    out: list[str] = []
    i = 0
    while i < len(text):
        n = rng.randint(3, 8)
        out.append(text[i : i + n])
        i += n
    return tuple(out)


@dataclass(frozen=True)
class _Call:
    """A scripted tool call, ready for the wire formats."""

    name: str
    id: str | None
    arguments_json: str
    """The arguments' JSON text: compact JSON of a dict, or the scripted string as is."""
    arguments: Any
    """The arguments as an object, for the formats that send objects (a string
    that is not JSON stays a string)."""
    pieces: tuple[str, ...]

    @classmethod
    def make(cls, call: ScriptedToolCall) -> _Call:
        args = call.arguments
        if isinstance(args, str):
            text = args
            try:
                obj: Any = msgspec.json.decode(args) if args else {}
            except msgspec.DecodeError:
                obj = args
        else:
            text = _enc(args).decode()
            obj = args
        return cls(call.name, call.id, text, obj, _pieces(text))


@dataclass
class _Job:
    """Everything a wire format needs to render one reply."""

    model: str
    request: dict[str, Any]
    reply: Reply
    t0: float
    text_tokens: list[str]
    thinking_tokens: list[str]
    t_first: float | None = None
    refusal_tokens: list[str] = field(default_factory=list)
    calls: list[_Call] = field(default_factory=list)

    @classmethod
    def make(cls, model: str, request: dict[str, Any], reply: Reply, t0: float) -> _Job:
        return cls(
            model,
            request,
            reply,
            t0,
            reply.text_tokens(),
            reply.thinking_tokens(),
            refusal_tokens=reply.refusal_tokens(),
            calls=[_Call.make(call) for call in reply.scripted_calls()],
        )

    @property
    def refusal(self) -> str:
        return "".join(self.refusal_tokens)

    @property
    def refused(self) -> bool:
        """The reply is a refusal (maybe an empty one)."""
        return self.reply.refusal is not None

    @property
    def text(self) -> str:
        return "".join(self.text_tokens)

    @property
    def thinking(self) -> str:
        return "".join(self.thinking_tokens)

    @property
    def output_tokens(self) -> int:
        if self.reply.output_tokens is not None:
            return self.reply.output_tokens
        tools = sum(len(call.pieces) + 1 for call in self.calls)
        return len(self.text_tokens) + len(self.thinking_tokens) + len(self.refusal_tokens) + tools


class _Wire:
    """One provider's wire format, for one response."""

    provider = ""
    default_finish = "stop"
    stream_type = "text/event-stream; charset=utf-8"
    json_type = "application/json"
    ping: bytes | None = None

    def __init__(self, job: _Job) -> None:
        self.job = job

    @property
    def finish(self) -> str:
        reason = self.job.reply.finish_reason
        return self.natural_finish() if reason is None else reason

    def natural_finish(self) -> str:
        """The stop reason when the reply does not set one."""
        return self.default_finish

    def headers(self) -> dict[str, str]:
        return {}

    def prelude(self) -> list[bytes]:
        return []

    def events(self) -> list[tuple[str, str, int]]:
        """The token events ``(kind, text, call index)``: reasoning, text, refusal, tools."""
        job = self.job
        out = [("thinking", t, 0) for t in job.thinking_tokens]
        out += [("text", t, 0) for t in job.text_tokens]
        out += [("refusal", t, 0) for t in job.refusal_tokens]
        out += self.tool_events()
        return out

    def tool_events(self) -> list[tuple[str, str, int]]:
        """A ``tool`` event opening each call, then one ``args`` event per piece."""
        out: list[tuple[str, str, int]] = []
        for i, call in enumerate(self.job.calls):
            out.append(("tool", "", i))
            out += [("args", piece, i) for piece in call.pieces]
        return out

    def token(self, kind: str, text: str, index: int) -> list[bytes]:
        raise NotImplementedError

    def finale(self) -> list[bytes]:
        return []

    def end(self) -> list[bytes]:
        raise NotImplementedError

    def inband_error(self, etype: str | None, message: str) -> bytes:
        raise NotImplementedError

    def inband_status(self, etype: str | None) -> int:
        return 500

    def complete(self) -> bytes:
        raise NotImplementedError

    def error_body(self, status: int, etype: str | None, message: str) -> bytes:
        raise NotImplementedError

    def rejection(self, violation: Violation) -> bytes:
        """The provider's error body for a request its rules reject."""
        return self.error_body(violation.status, violation.error_type, violation.message)
