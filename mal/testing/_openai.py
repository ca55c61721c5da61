"""OpenAI's chat completions wire format (``/v1/chat/completions``, also
Azure OpenAI's): ``chat.completion.chunk`` server-sent events ending with
``[DONE]``, or one ``chat.completion`` object, and OpenAI's error JSON."""

from __future__ import annotations

import time
from typing import Any, Final

from mal.testing._rules import Violation
from mal.testing._wire import _enc, _Job, _rand, _Wire

_FINGERPRINT: Final = "fp_" + _rand(10, "0123456789abcdef")
_OPENAI_ERRORS: Final[dict[int, tuple[str, str | None, str]]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported.",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model `{model}` does not exist or you do not have access to it.",
    ),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again in 1s.",
    ),
}
_OPENAI_SERVER_ERROR: Final = (
    "server_error",
    None,
    "The server had an error while processing your request. Sorry about that!",
)


class _OpenAI(_Wire):
    provider = "openai"
    ping = b": ping\n\n"

    def __init__(self, job: _Job) -> None:
        super().__init__(job)
        self.id = "chatcmpl-" + _rand(29)
        self.created = int(time.time())
        options = job.request.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        self.call_ids = [c.id or "call_" + _rand(24) for c in job.calls]
        # Only tool calls: the first call's delta carries the role (openai-python's
        # inline snapshot 2018feb6...bin of tests/lib/chat/test_completions_streaming.py).
        self.calls_only = bool(job.calls) and not job.text_tokens and not job.thinking_tokens

    def natural_finish(self) -> str:
        return "tool_calls" if self.job.calls else "stop"

    def headers(self) -> dict[str, str]:
        return {"x-request-id": "req_" + _rand(32, "0123456789abcdef")}

    def _obj(self, choices: list[Any]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.job.model,
            "system_fingerprint": _FINGERPRINT,
            "choices": choices,
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        obj = self._obj([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])
        if self.include_usage:
            obj["usage"] = None
        return b"data: " + _enc(obj) + b"\n\n"

    def _usage(self) -> dict[str, Any]:
        job = self.job
        return {
            "prompt_tokens": job.reply.input_tokens,
            "completion_tokens": job.output_tokens,
            "total_tokens": job.reply.input_tokens + job.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": len(job.thinking_tokens)},
        }

    def prelude(self) -> list[bytes]:
        if self.job.refused:
            return [self._chunk({"role": "assistant", "content": None, "refusal": ""})]
        if self.calls_only:
            return []
        return [self._chunk({"role": "assistant", "content": "", "refusal": None})]

    def token(self, kind: str, text: str, index: int) -> list[bytes]:
        if kind == "thinking":
            return [self._chunk({"reasoning_content": text})]
        if kind == "refusal":
            return [self._chunk({"refusal": text})]
        if kind == "tool":
            function = {"name": self.job.calls[index].name, "arguments": ""}
            entry = {"index": index, "id": self.call_ids[index], "type": "function"}
            entry["function"] = function
            if index == 0 and self.calls_only:
                delta = {"role": "assistant", "content": None, "tool_calls": [entry]}
                delta["refusal"] = None
                return [self._chunk(delta)]
            return [self._chunk({"tool_calls": [entry]})]
        if kind == "args":
            piece = {"index": index, "function": {"arguments": text}}
            return [self._chunk({"tool_calls": [piece]})]
        return [self._chunk({"content": text})]

    def finale(self) -> list[bytes]:
        frames = [self._chunk({}, self.finish)]
        if self.include_usage:
            obj = self._obj([])
            obj["usage"] = self._usage()
            frames.append(b"data: " + _enc(obj) + b"\n\n")
        return frames

    def end(self) -> list[bytes]:
        return [b"data: [DONE]\n\n"]

    def inband_error(self, etype: str | None, message: str) -> bytes:
        error = {
            "message": message or _OPENAI_SERVER_ERROR[2],
            "type": etype or _OPENAI_SERVER_ERROR[0],
            "param": None,
            "code": None,
        }
        return b"data: " + _enc({"error": error}) + b"\n\n"

    def complete(self) -> bytes:
        job = self.job
        content = None if job.refused or (job.calls and not job.text) else job.text
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if job.calls:
            # The order of the API's answers: role, content, tool_calls, refusal.
            message["tool_calls"] = [
                {
                    "id": self.call_ids[i],
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
                for i, call in enumerate(job.calls)
            ]
        message["refusal"] = job.refusal if job.refused else None
        if job.thinking_tokens:
            message["reasoning_content"] = job.thinking
        obj = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": job.model,
            "system_fingerprint": _FINGERPRINT,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish}
            ],
            "usage": self._usage(),
        }
        return _enc(obj)

    def error_body(self, status: int, etype: str | None, message: str) -> bytes:
        default_type, code, default_message = _OPENAI_ERRORS.get(status, _OPENAI_SERVER_ERROR)
        if status < 500 and status not in _OPENAI_ERRORS:
            default_type, code, default_message = _OPENAI_ERRORS[400]
        error = {
            "message": message or default_message.format(model=self.job.model),
            "type": etype or default_type,
            "param": None,
            "code": code,
        }
        return _enc({"error": error})

    def rejection(self, violation: Violation) -> bytes:
        # openai-python types/shared/error_object.py ErrorObject: message, type,
        # param (the offending field or null) and code (a string or null).
        error = {
            "message": violation.message,
            "type": violation.error_type,
            "param": violation.param,
            "code": violation.code,
        }
        return _enc({"error": error})
