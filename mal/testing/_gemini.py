"""Google's Gemini API wire format (``/v1beta/models/{model}:generateContent``
and ``:streamGenerateContent?alt=sse``): server-sent events whose data are
``GenerateContentResponse`` objects, the last one carrying ``finishReason``
(there is no end marker), or one such object, and Google's error JSON."""

from __future__ import annotations

import base64
import random
from typing import Any, Final

from mal.testing._rules import Violation
from mal.testing._wire import _enc, _Job, _rand, _Wire

#: ``google.rpc.Code`` names of the statuses the Gemini API answers with
#: (https://ai.google.dev/gemini-api/docs/troubleshooting, "Backend error codes").
_STATUSES: Final[dict[int, tuple[str, str]]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "models/{model} is not found for API version v1beta."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
_CODES: Final[dict[str, int]] = {name: code for code, (name, _) in _STATUSES.items()}


def _signature() -> str:
    """A made-up thought signature: base64 of an opaque blob."""
    return base64.b64encode(b"\x0a\x24" + random.randbytes(70)).decode()


class _Gemini(_Wire):
    provider = "gemini"
    default_finish = "STOP"

    def __init__(self, job: _Job) -> None:
        super().__init__(job)
        self.response_id = _rand(22)
        self.signature = job.reply.signature or _signature()
        self.signed = False

    def _candidate(self, parts: list[dict[str, Any]] | None, finish: str | None) -> dict[str, Any]:
        candidate: dict[str, Any] = {}
        if parts is not None:
            candidate["content"] = {"parts": parts, "role": "model"}
        if finish is not None:
            candidate["finishReason"] = finish
        candidate["index"] = 0
        return candidate

    def _usage(self, output_tokens: int) -> dict[str, Any]:
        # UsageMetadata (https://ai.google.dev/api/generate-content#UsageMetadata):
        # thinking is counted apart from the candidates, and cached input is part
        # of the prompt.
        reply, job = self.job.reply, self.job
        thoughts = min(len(job.thinking_tokens), output_tokens)
        usage: dict[str, Any] = {
            "promptTokenCount": reply.input_tokens,
            "candidatesTokenCount": output_tokens - thoughts,
            "totalTokenCount": reply.input_tokens + output_tokens,
        }
        if reply.cache_read_tokens:
            usage["cachedContentTokenCount"] = reply.cache_read_tokens
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return usage

    def _response(self, candidate: dict[str, Any], output_tokens: int) -> dict[str, Any]:
        return {
            "candidates": [candidate],
            "usageMetadata": self._usage(output_tokens),
            "modelVersion": self.job.model,
            "responseId": self.response_id,
        }

    def _event(self, obj: dict[str, Any]) -> bytes:
        return b"data: " + _enc(obj) + b"\n\n"

    def _call_part(self, index: int) -> dict[str, Any]:
        call = self.job.calls[index]
        function: dict[str, Any] = {"name": call.name, "args": call.arguments}
        if call.id:
            function["id"] = call.id
        part: dict[str, Any] = {"functionCall": function}
        if not self.signed:
            # Gemini 3 signs the first function call of a turn
            # (https://ai.google.dev/gemini-api/docs/thought-signatures).
            part["thoughtSignature"] = self.signature
            self.signed = True
        return part

    def events(self) -> list[tuple[str, str, int]]:
        # Calls come whole, one part each: no argument pieces.
        events = super().events()
        return [event for event in events if event[0] != "args"]

    def token(self, kind: str, text: str, index: int) -> list[bytes]:
        if kind == "thinking":
            part: dict[str, Any] = {"text": text, "thought": True}
        elif kind == "tool":
            part = self._call_part(index)
        else:
            part = {"text": text}
        return [self._event(self._response(self._candidate([part], None), 1))]

    def finale(self) -> list[bytes]:
        candidate = self._candidate([{"text": ""}], self.finish)
        return [self._event(self._response(candidate, self.job.output_tokens))]

    def end(self) -> list[bytes]:
        return []

    def _error(self, status: int, name: str | None, message: str) -> dict[str, Any]:
        default_name, default_message = _STATUSES.get(status, ("UNKNOWN", "Unknown error."))
        name = name or default_name
        message = message or default_message.format(model=self.job.model)
        return {"error": {"code": status, "message": message, "status": name}}

    def inband_error(self, etype: str | None, message: str) -> bytes:
        name = etype or "UNAVAILABLE"
        return self._event(self._error(_CODES.get(name, 500), name, message))

    def inband_status(self, etype: str | None) -> int:
        return _CODES.get(etype or "UNAVAILABLE", 500)

    def complete(self) -> bytes:
        job = self.job
        parts: list[dict[str, Any]] = []
        if job.thinking:
            parts.append({"text": job.thinking, "thought": True})
        if job.text or job.refusal:
            parts.append({"text": job.text + job.refusal})
        parts += [self._call_part(i) for i in range(len(job.calls))]
        candidate = self._candidate(parts, self.finish)
        return _enc(self._response(candidate, job.output_tokens))

    def error_body(self, status: int, etype: str | None, message: str) -> bytes:
        return _enc(self._error(status, etype, message))

    def rejection(self, violation: Violation) -> bytes:
        # {"error": {"code", "message", "status"}}: python-genai errors.py APIError
        # reads these three.
        return _enc(self._error(violation.status, violation.error_type, violation.message))
