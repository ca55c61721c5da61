"""Anthropic's Messages wire format (``/v1/messages``): typed server-sent
events (``message_start``, content blocks, ``message_delta``, ``message_stop``)
or one ``message`` object, and Anthropic's error JSON."""

from __future__ import annotations

import base64
import random
from typing import Any, Final

from mal.testing._wire import _enc, _Job, _rand, _Wire

_ANTHROPIC_TYPES: Final[dict[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ANTHROPIC_STATUS: Final[dict[str, int]] = {v: k for k, v in _ANTHROPIC_TYPES.items()}
_ANTHROPIC_MESSAGES: Final[dict[str, str]] = {
    "invalid_request_error": "Invalid request.",
    "authentication_error": "invalid x-api-key",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "model: {model}",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit.",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out.",
    "overloaded_error": "Overloaded",
}


def _signature() -> str:
    """A made-up thinking signature: base64 of an opaque blob, like Anthropic's ("Ev...")."""
    blob = b"\x12" + random.randbytes(255)
    return base64.b64encode(blob).decode()


class _Anthropic(_Wire):
    provider = "anthropic"
    default_finish = "end_turn"
    ping = b'event: ping\ndata: {"type": "ping"}\n\n'

    def __init__(self, job: _Job) -> None:
        super().__init__(job)
        self.id = "msg_01" + _rand(22)
        self.request_id = "req_011C" + _rand(20)
        self.has_thinking = bool(job.thinking_tokens)
        # A text block comes unless the reply is only tool calls.
        self.has_text = bool(job.text_tokens or job.refusal_tokens or not job.calls)
        self.signature = job.reply.signature or _signature()
        self.call_ids = [c.id or "toolu_01" + _rand(22) for c in job.calls]
        self.block: str | None = None
        """The kind of the open content block ("thinking", "text", "tool")."""
        self.index = -1
        self.text_opened = False

    def natural_finish(self) -> str:
        if self.job.calls:
            return "tool_use"
        return "refusal" if self.job.refused else "end_turn"

    def headers(self) -> dict[str, str]:
        return {"request-id": self.request_id}

    @staticmethod
    def _event(name: str, obj: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + _enc(obj) + b"\n\n"

    def _usage(self, output_tokens: int) -> dict[str, Any]:
        # Anthropic counts cached input apart: input_tokens is only the part neither
        # read from nor written to the cache, and the three add up to the whole
        # input (https://platform.claude.com/docs/en/build-with-claude/prompt-caching,
        # "Tracking cache performance"; anthropic-sdk-python types/usage.py Usage).
        reply = self.job.reply
        return {
            "input_tokens": reply.input_tokens - reply.cache_read_tokens - reply.cache_write_tokens,
            "cache_creation_input_tokens": reply.cache_write_tokens,
            "cache_read_input_tokens": reply.cache_read_tokens,
            "output_tokens": output_tokens,
        }

    def _message(self, content: list[Any], stop: str | None, output_tokens: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.job.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": self._usage(output_tokens),
        }

    def _block_start(self, index: int, block: dict[str, Any]) -> bytes:
        obj = {"type": "content_block_start", "index": index, "content_block": block}
        return self._event("content_block_start", obj)

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        obj = {"type": "content_block_delta", "index": index, "delta": delta}
        return self._event("content_block_delta", obj)

    def _block_stop(self, index: int) -> bytes:
        return self._event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _close(self) -> list[bytes]:
        """Close the open block; a thinking block gets its signature just before its stop."""
        frames: list[bytes] = []
        if self.block == "thinking":
            delta = {"type": "signature_delta", "signature": self.signature}
            frames.append(self._delta(self.index, delta))
        if self.block is not None:
            frames.append(self._block_stop(self.index))
        self.block = None
        return frames

    def _open(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        frames = self._close()
        self.index += 1
        self.block = kind
        frames.append(self._block_start(self.index, block))
        return frames

    def _ensure(self, kind: str) -> list[bytes]:
        if self.block == kind:
            return []
        if kind == "thinking":
            return self._open(kind, {"type": "thinking", "thinking": "", "signature": ""})
        self.text_opened = True
        return self._open(kind, {"type": "text", "text": ""})

    def prelude(self) -> list[bytes]:
        start = {"type": "message_start", "message": self._message([], None, 1)}
        frames = [self._event("message_start", start)]
        if self.has_thinking:
            frames += self._ensure("thinking")
        elif self.has_text:
            frames += self._ensure("text")
        frames.append(self.ping or b"")
        return frames

    def token(self, kind: str, text: str, index: int) -> list[bytes]:
        if kind == "thinking":
            frames = self._ensure("thinking")
            frames.append(self._delta(self.index, {"type": "thinking_delta", "thinking": text}))
            return frames
        if kind == "tool":
            # anthropic-sdk-python tests/lib/streaming/fixtures/tool_use_response.txt:
            # `input` is an empty placeholder, then an empty piece, then the pieces.
            block = {
                "type": "tool_use",
                "id": self.call_ids[index],
                "name": self.job.calls[index].name,
                "input": {},
            }
            frames = self._open("tool", block)
            frames.append(self._delta(self.index, {"type": "input_json_delta", "partial_json": ""}))
            return frames
        if kind == "args":
            return [self._delta(self.index, {"type": "input_json_delta", "partial_json": text})]
        frames = self._ensure("text")
        frames.append(self._delta(self.index, {"type": "text_delta", "text": text}))
        return frames

    def finale(self) -> list[bytes]:
        frames = self._ensure("text") if self.has_text and not self.text_opened else []
        frames += self._close()
        # The usage of message_delta is cumulative and carries the input and cache
        # counts again beside the output tokens (anthropic-sdk-python
        # types/message_delta_usage.py MessageDeltaUsage; its fixture
        # tests/lib/streaming/fixtures/message_delta_fields_response.txt; and
        # lib/streaming/_messages.py accumulate_event, which takes each one given).
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self.finish, "stop_sequence": None},
            "usage": self._usage(self.job.output_tokens),
        }
        frames.append(self._event("message_delta", delta))
        return frames

    def end(self) -> list[bytes]:
        return [self._event("message_stop", {"type": "message_stop"})]

    def _error(self, etype: str, message: str) -> dict[str, Any]:
        message = message or _ANTHROPIC_MESSAGES.get(etype, "Error").format(model=self.job.model)
        return {"type": "error", "error": {"type": etype, "message": message}}

    def inband_error(self, etype: str | None, message: str) -> bytes:
        return self._event("error", self._error(etype or "overloaded_error", message))

    def inband_status(self, etype: str | None) -> int:
        return _ANTHROPIC_STATUS.get(etype or "overloaded_error", 500)

    def complete(self) -> bytes:
        job = self.job
        content: list[Any] = []
        if self.has_thinking:
            block = {"type": "thinking", "thinking": job.thinking, "signature": self.signature}
            content.append(block)
        if self.has_text:
            content.append({"type": "text", "text": job.text + job.refusal})
        for i, call in enumerate(job.calls):
            block = {"type": "tool_use", "id": self.call_ids[i], "name": call.name}
            block["input"] = call.arguments
            content.append(block)
        return _enc(self._message(content, self.finish, job.output_tokens))

    def error_body(self, status: int, etype: str | None, message: str) -> bytes:
        default = _ANTHROPIC_TYPES.get(status)
        if default is None:
            default = "api_error" if status >= 500 else "invalid_request_error"
        obj = self._error(etype or default, message)
        # anthropic-sdk-python types/shared/error_response.py: the body repeats the
        # request's id beside the error.
        obj["request_id"] = self.request_id
        return _enc(obj)
