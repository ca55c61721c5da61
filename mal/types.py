"""What a stream yields and what a prompt is made of. This module does no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

__all__ = ["Chunk", "Usage", "Message", "Prompt", "MessageLike"]


class Usage(msgspec.Struct, gc=False, omit_defaults=True):
    """Token counts as the provider reports them (None where it reports none)."""

    input_tokens: int | None = None
    output_tokens: int | None = None


class Chunk(msgspec.Struct, gc=False):
    """One piece of a streamed generation.

    ``text`` is the new text (possibly ""), ``reasoning`` the new thinking text;
    ``finish_reason`` is set on the chunk that carries the provider's stop reason,
    normalised to "stop", "length", "tool_calls" or "content_filter" where one of
    these fits; ``usage`` is set on the chunk where the provider reports it.
    """

    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


class Message(msgspec.Struct, omit_defaults=True):
    """A chat message; plain ``{"role": ..., "content": ...}`` dicts work too."""

    role: str
    content: Any


MessageLike = Message | Mapping[str, Any]
#: A prompt: a string, or a list of chat messages.
Prompt = str | Sequence[MessageLike]
