"""Ollama's wire format (``/api/generate`` and ``/api/chat``): ndjson when
streaming, one JSON object otherwise, and the error JSON ``{"error": "..."}``."""

from __future__ import annotations

import string
import time
from typing import Any, Final

from mal.testing._wire import _enc, _Job, _now_iso, _rand, _Wire

_LOWER_ALNUM: Final = string.ascii_lowercase + string.digits


class _Ollama(_Wire):
    provider = "ollama"
    stream_type = "application/x-ndjson"
    json_type = "application/json; charset=utf-8"

    def __init__(self, job: _Job, *, chat: bool) -> None:
        super().__init__(job)
        self.chat = chat
        # server/routes.go toolCallId: "call_" and 8 characters of [a-z0-9].
        self.call_ids = [c.id or "call_" + _rand(8, _LOWER_ALNUM) for c in job.calls]

    def _head(self) -> dict[str, Any]:
        return {"model": self.job.model, "created_at": _now_iso()}

    def _content(
        self,
        obj: dict[str, Any],
        text: str,
        thinking: str | None,
        calls: range | None = None,
    ) -> None:
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking is not None:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = [self._tool_call(i) for i in calls]
            obj["message"] = message
        else:
            obj["response"] = text
            if thinking is not None:
                obj["thinking"] = thinking

    def _tool_call(self, i: int) -> dict[str, Any]:
        # api/types.go ToolCall: the index has no omitempty, arguments is an object.
        call = self.job.calls[i]
        function = {"index": i, "name": call.name, "arguments": call.arguments}
        return {"id": self.call_ids[i], "function": function}

    def tool_events(self) -> list[tuple[str, str, int]]:
        # Each call comes whole; `tool_calls_per_chunk` of them share a chunk.
        step = self.job.reply.tool_calls_per_chunk
        return [("tools", "", i) for i in range(0, len(self.job.calls), step)]

    def token(self, kind: str, text: str, index: int) -> list[bytes]:
        obj = self._head()
        if kind == "thinking":
            self._content(obj, "", text)
        elif kind == "tools":
            stop = min(index + self.job.reply.tool_calls_per_chunk, len(self.job.calls))
            self._content(obj, "", None, range(index, stop))
        else:
            self._content(obj, text, None)
        obj["done"] = False
        return [_enc(obj) + b"\n"]

    def _final(self, text: str, thinking: str | None, calls: range | None = None) -> dict[str, Any]:
        job = self.job
        obj = self._head()
        self._content(obj, text, thinking, calls)
        now = time.monotonic()
        first = job.t_first if job.t_first is not None else job.t0 + (now - job.t0) / 4
        total = int((now - job.t0) * 1e9)
        if self.chat:
            obj["done_reason"] = self.finish
            obj["done"] = True
        else:
            obj["done"] = True
            obj["done_reason"] = self.finish
            size = min(job.reply.input_tokens + job.output_tokens, 4096)
            obj["context"] = [(i * 7919) % 32000 + 1 for i in range(size)]
        obj["total_duration"] = total
        obj["load_duration"] = min(total // 10, 1_234_567)
        obj["prompt_eval_count"] = job.reply.input_tokens
        obj["prompt_eval_duration"] = max(int((first - job.t0) * 1e9), 0)
        obj["eval_count"] = job.output_tokens
        obj["eval_duration"] = max(int((now - first) * 1e9), 0)
        return obj

    def end(self) -> list[bytes]:
        return [_enc(self._final("", None)) + b"\n"]

    def inband_error(self, etype: str | None, message: str) -> bytes:
        message = message or "an error was encountered while running the model"
        return _enc({"error": message}) + b"\n"

    def complete(self) -> bytes:
        job = self.job
        thinking = job.thinking or None
        return _enc(self._final(job.text + job.refusal, thinking, range(len(job.calls))))

    def error_body(self, status: int, etype: str | None, message: str) -> bytes:
        if not message:
            if status == 404:
                message = f'model "{self.job.model}" not found, try pulling it first'
            elif status == 400:
                message = "invalid request"
            elif status in (401, 403):
                message = "unauthorized"
            elif status == 429:
                message = "server busy, please try again.  maximum pending requests exceeded"
            else:
                message = "an error was encountered while running the model"
        return _enc({"error": message})
