"""The OpenAI Responses API's wire format (``/v1/responses``)."""

from __future__ import annotations

from typing import Any

from mal.testing._openai import _OPENAI_SERVER_ERROR, _OpenAI
from mal.testing._wire import _enc, _Job, _rand


class _Responses(_OpenAI):
    """The OpenAI Responses API (``/v1/responses``): typed SSE events, one
    output item after another (a reasoning item, a message, function calls),
    and ``response.completed`` (or ``response.incomplete`` when the reply's
    `finish_reason` is "length" or "content_filter") at the end."""

    def __init__(self, job: _Job) -> None:
        super().__init__(job)
        self.id = "resp_" + _rand(48, "0123456789abcdef")
        self.call_ids = [c.id or "call_" + _rand(24) for c in job.calls]
        self.items: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None
        self.seq = 0
        self.text = ""
        self.summary = ""

    def natural_finish(self) -> str:
        return "completed"

    def _event(self, obj: dict[str, Any]) -> bytes:
        obj["sequence_number"] = self.seq
        self.seq += 1
        name = str(obj["type"]).encode()
        return b"event: " + name + b"\ndata: " + _enc(obj) + b"\n\n"

    def _response(self, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "model": self.job.model,
            "output": output,
            "usage": None,
        }
        if status in ("completed", "incomplete"):
            # openai-python types/responses/response_usage.py ResponseUsage:
            # input_tokens counts every input token, input_tokens_details.cached_tokens
            # those "retrieved from the cache"; output_tokens includes the
            # output_tokens_details.reasoning_tokens.
            obj["usage"] = {
                "input_tokens": self.job.reply.input_tokens,
                "input_tokens_details": {"cached_tokens": self.job.reply.cache_read_tokens},
                "output_tokens": self.job.output_tokens,
                "output_tokens_details": {"reasoning_tokens": len(self.job.thinking_tokens)},
                "total_tokens": self.job.reply.input_tokens + self.job.output_tokens,
            }
        if status == "incomplete":
            reason = "content_filter" if self.finish == "content_filter" else "max_output_tokens"
            obj["incomplete_details"] = {"reason": reason}
        return obj

    def _status(self) -> str:
        return (
            "incomplete"
            if self.finish in ("length", "max_output_tokens", "content_filter")
            else "completed"
        )

    def _close(self) -> list[bytes]:
        """The ``output_item.done`` of the open item."""
        item = self.open
        if item is None:
            return []
        self.open = None
        if item["type"] == "message":
            part = {"type": "output_text", "text": self.text, "annotations": []}
            if self.job.refused:
                part = {"type": "refusal", "refusal": self.text}
            item = {**item, "status": "completed", "content": [part]}
        elif item["type"] == "reasoning":
            item = {**item, "summary": [{"type": "summary_text", "text": self.summary}]}
        elif item["type"] == "function_call":
            call = self.job.calls[item["_index"]]
            item = {k: v for k, v in item.items() if k != "_index"}
            item.update(arguments=call.arguments_json, status="completed")
        self.items.append(item)
        index = len(self.items) - 1
        return [
            self._event({"type": "response.output_item.done", "output_index": index, "item": item})
        ]

    def _open(self, item: dict[str, Any]) -> list[bytes]:
        frames = self._close()
        self.open = item
        shown = {k: v for k, v in item.items() if k != "_index"}
        index = len(self.items)
        frames.append(
            self._event(
                {"type": "response.output_item.added", "output_index": index, "item": shown}
            )
        )
        return frames

    def prelude(self) -> list[bytes]:
        created = self._response("in_progress", [])
        return [
            self._event({"type": "response.created", "response": created}),
            self._event({"type": "response.in_progress", "response": created}),
        ]

    def token(self, kind: str, text: str, index: int) -> list[bytes]:
        frames: list[bytes] = []
        if kind == "tool":
            call = self.job.calls[index]
            opened: dict[str, Any] = {
                "id": "fc_" + _rand(48, "0123456789abcdef"),
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": self.call_ids[index],
                "name": call.name,
                "_index": index,
            }
            return self._open(opened)
        if kind == "thinking" and (self.open is None or self.open["type"] != "reasoning"):
            reasoning = {
                "id": "rs_" + _rand(48, "0123456789abcdef"),
                "type": "reasoning",
                "summary": [],
                "encrypted_content": "gAAAAB" + _rand(64),
            }
            frames += self._open(reasoning)
        elif kind in ("text", "refusal") and (self.open is None or self.open["type"] != "message"):
            message = {
                "id": "msg_" + _rand(48, "0123456789abcdef"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            frames += self._open(message)
        item = self.open
        assert item is not None
        event: dict[str, Any] = {"item_id": item["id"], "output_index": len(self.items)}
        if kind == "thinking":
            self.summary += text
            event.update(type="response.reasoning_summary_text.delta", summary_index=0)
        elif kind == "args":
            event.update(type="response.function_call_arguments.delta")
        else:
            self.text += text
            name = "response.refusal.delta" if kind == "refusal" else "response.output_text.delta"
            event.update(type=name, content_index=0)
        event["delta"] = text
        frames.append(self._event(event))
        return frames

    def finale(self) -> list[bytes]:
        frames = self._close()
        status = self._status()
        name = "response.incomplete" if status == "incomplete" else "response.completed"
        frames.append(self._event({"type": name, "response": self._response(status, self.items)}))
        return frames

    def end(self) -> list[bytes]:
        return []

    def inband_error(self, etype: str | None, message: str) -> bytes:
        return self._event(
            {
                "type": "error",
                "code": etype or "server_error",
                "message": message or _OPENAI_SERVER_ERROR[2],
                "param": None,
            }
        )

    def complete(self) -> bytes:
        for kind, text, index in self.events():
            self.token(kind, text, index)
        self._close()
        return _enc(self._response(self._status(), self.items))
