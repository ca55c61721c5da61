"""What a stream yields, what a prompt is made of and what a call returns.
This module does no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from .hooks import CallStats

__all__ = [
    "Chunk",
    "Usage",
    "Message",
    "Prompt",
    "MessageLike",
    "Response",
    "ToolCall",
    "ToolCallDelta",
    "ToolResult",
]


class Usage(msgspec.Struct, gc=False, omit_defaults=True):
    """Token counts of one response, None where the provider reports none.

    ``input_tokens`` counts every input token, those read from or written to
    a prompt cache included, on every provider (Anthropic reports its cached
    tokens apart: mal adds them up), so that one number means the same
    everywhere; ``cache_read_tokens`` and ``cache_write_tokens`` are the parts
    of it read from and written to the provider's prompt cache.
    ``output_tokens`` counts every output token, reasoning included;
    ``reasoning_tokens`` is the part of it spent on reasoning.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None


class ToolCallDelta(msgspec.Struct, gc=False, omit_defaults=True):
    """One piece of a tool call as it streams.

    ``index`` is mal's ordinal of the call within the response (0, 1, 2... in
    the order the calls first appear), not the provider's wire index. ``id``
    and ``name`` are set on the first delta of a call where they are known and
    never repeated; ``arguments`` is a piece of the arguments' JSON text:
    concatenating every piece of one index gives the call's ``arguments_json``.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Chunk(msgspec.Struct, gc=False):
    """One piece of a streamed generation.

    ``text`` is the new text (possibly ""), ``reasoning`` the new thinking text;
    ``finish_reason`` is set on the chunk that carries the provider's stop reason,
    normalised to "stop", "length", "tool_calls" or "content_filter" where one of
    these fits; ``usage`` is set on the chunk where the provider reports it;
    ``tool_calls`` holds the tool-call deltas the chunk carries; ``refusal`` is
    refusal text (OpenAI's ``delta.refusal``), which is never part of ``text``.

    With ``tool_rounds``, ``step`` is the model call of the loop the chunk
    comes from (0, 1, ...), and after a step's tools ran the stream yields one
    chunk of that step whose ``tool_results`` holds what each call was sent
    back (and nothing else); the next step's chunks follow.
    """

    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    refusal: str = ""
    step: int = 0
    tool_results: tuple[ToolResult, ...] = ()


class ToolCall(msgspec.Struct, omit_defaults=True):
    """A tool call the model made, assembled from its deltas.

    ``arguments`` is the decoded JSON object and ``arguments_json`` the JSON
    text exactly as received (``"{}"`` for a call without arguments). Give
    either one when you build a call yourself; the other is derived.
    ``complete`` is False for a call the response cut off (it ended with
    ``finish_reason == "length"`` in the middle of the call's arguments):
    ``arguments_json`` then keeps the raw text that arrived and ``arguments``
    is empty; such a call must not be run.
    """

    id: str
    name: str
    arguments: dict[str, Any] = {}
    arguments_json: str = ""
    complete: bool = True

    def __post_init__(self) -> None:
        if not self.arguments_json:
            self.arguments_json = (
                msgspec.json.encode(self.arguments).decode() if self.arguments else "{}"
            )
        elif not self.arguments and self.complete and self.arguments_json != "{}":
            from .errors import ConfigError

            try:
                value = msgspec.json.decode(self.arguments_json)
            except msgspec.DecodeError as exc:
                raise ConfigError(
                    f"ToolCall {self.name!r}: arguments_json is not valid JSON ({exc})"
                ) from None
            if not isinstance(value, dict):
                raise ConfigError(f"ToolCall {self.name!r}: arguments_json must be a JSON object")
            self.arguments = value


class ToolResult(msgspec.Struct):
    """What a tool call of a loop was sent back: ``content``, the tool's
    formatted result (or the error it raised, with ``is_error``)."""

    call: ToolCall
    content: str
    is_error: bool = False


class Message(msgspec.Struct, omit_defaults=True):
    """A chat message; plain ``{"role": ..., "content": ...}`` dicts work too.

    ``content`` is a string, or a list of ``str`` and :class:`mal.Image` parts.
    An assistant turn that called tools has ``tool_calls``; a tool's result is
    ``Message(role="tool", content=..., tool_call_id=call.id)`` (``name``, the
    tool's name, is looked up from the call when left out). ``reasoning`` is
    the turn's thinking text, and ``blocks`` the assistant turn exactly as
    Anthropic sent it (thinking blocks with their signatures, redacted
    thinking, text and tool_use blocks, in order): it is sent back verbatim to
    Anthropic, which rejects a tool-use continuation without them when
    thinking is on. Other providers use ``content`` and ``tool_calls``.

    ``cache=True`` marks a prompt-cache breakpoint after this message: the
    prompt up to and including it may be cached and read back by a later
    call that starts alike. Anthropic is sent a ``cache_control`` marker
    (at most four in a request, counting ``cache_system`` and
    ``cache_tools``); the providers that cache a prompt's prefix by
    themselves (OpenAI, the Responses API, Ollama) are sent nothing. A dict
    message may say ``"cache": True`` too.
    """

    role: str
    content: Any = ""
    tool_call_id: str | None = None
    tool_calls: list[ToolCall] | None = None
    name: str | None = None
    reasoning: str | None = None
    blocks: list[dict[str, Any]] | None = None
    #: For a tool's result: whether it reports that the tool failed.
    is_error: bool = False
    #: A prompt-cache breakpoint after this message.
    cache: bool = False


MessageLike = Message | Mapping[str, Any]
#: A prompt: a string, or a list of chat messages.
Prompt = str | Sequence[MessageLike]


class Response(msgspec.Struct, kw_only=True):
    """The result of ``complete``: what a stream holds once it ended.

    ``message`` is the assistant turn, ready to append to the conversation;
    ``parsed`` the output decoded into the ``schema`` type (None without a
    schema); ``refusal`` the model's refusal text, if it refused; ``steps``
    the response of every model call, in order (schema re-asks; ``[self]``
    when there was one call), and ``stats`` what the last call did, with
    ``schema_retries`` for the whole.
    """

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = []
    finish_reason: str | None = None
    raw_finish_reason: str | None = None
    usage: Usage | None = None
    message: Message = msgspec.field(default_factory=lambda: Message("assistant"))
    parsed: Any = None
    refusal: str = ""
    provider: str = ""
    model: str = ""
    steps: list[Response] = []
    #: Every message the call added to the conversation, in order: the
    #: assistant turns, the tool results and any re-ask, ending with
    #: ``message``; ``history += r.messages`` continues the conversation.
    messages: list[Message] = []
    stats: CallStats | None = None

    def __repr__(self) -> str:
        calls = f", tool_calls={len(self.tool_calls)}" if self.tool_calls else ""
        return (
            f"Response({self.provider}/{self.model}, finish_reason={self.finish_reason!r}, "
            f"text={self.text[:40]!r}{calls})"
        )
