"""Rules of Ollama's API checked by the strict built-in server:
``POST /api/generate`` (kind "generate"), ``/api/chat`` ("chat") and
``/api/embed`` ("embed").

Sources: ``ollama/ollama`` at fb307609 (2026-08-21). The handlers in
``server/routes.go`` (``GenerateHandler``, ``ChatHandler``, ``EmbedHandler``)
bind the body with gin's ``ShouldBindJSON`` into the request types of
``api/types.go``, then check it; every rule here names the function it comes
from, with its status and ``{"error": ...}`` text. ``docs/api.md`` documents
the fields.

What Ollama does not reject is let through here too: unknown fields (Go's
decoder skips them), unknown ``options`` (``Options.FromMap`` logs
"invalid option provided" and goes on), any message ``role`` (the template
renders what it gets), a negative ``dimensions`` (only a positive one is
used), ``null`` for any field. Rules that depend on the model (thinking or
tool support, "this model only supports one image", the context length) are
left out: the built-in server serves any model name.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from . import Request, Violation

__all__ = ["check"]


class _Fatal(Exception):
    """An error Go's decoder returns at once (one from a type's own
    ``UnmarshalJSON``), rather than saving it to return at the end."""


class _Decoder:
    """How ``encoding/json`` reports a body that does not fit the request
    type: a type mismatch is saved and decoding goes on (the first one saved
    is returned at the end), an error of a custom ``UnmarshalJSON`` stops
    decoding at once (``decode.go``: ``saveError``, ``literalStore``,
    ``addErrorContext``)."""

    def __init__(self, struct: str) -> None:
        self.struct = struct
        self.saved: str | None = None

    def save(self, message: str) -> None:
        if self.saved is None:
            self.saved = message

    def mismatch(self, value: Any, struct: str, path: str, go_type: str) -> str:
        # ``UnmarshalTypeError.Error()``: "json: cannot unmarshal <value> into
        # Go struct field <struct>.<path> of type <type>"; <struct> is the
        # innermost struct being decoded and <path> the JSON names from the
        # top (Go 1.20+).
        return (
            f"json: cannot unmarshal {_json_kind(value, go_type)} into Go struct field "
            f"{struct}.{path} of type {go_type}"
        )

    def expect(self, value: Any, path: str, go_type: str, struct: str | None = None) -> bool:
        """Whether ``value`` decodes into ``go_type``; save the error if not.
        ``null`` decodes into anything (it leaves the field as it was)."""
        if value is None or _fits(value, go_type):
            return True
        self.save(self.mismatch(value, struct or self.struct, path, go_type))
        return False


def _json_kind(value: Any, go_type: str) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        # A number that does not fit an integer field names itself
        # ("number 1.5"); a number for a string names only its kind.
        return f"number {json.dumps(value)}" if go_type == "int" else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _fits(value: Any, go_type: str) -> bool:
    if go_type == "string":
        return isinstance(value, str)
    if go_type == "bool":
        return isinstance(value, bool)
    if go_type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if go_type.startswith("[]") or go_type == "api.Tools":
        return isinstance(value, list)
    if go_type.startswith("map[") or go_type.startswith("api."):
        return isinstance(value, Mapping)
    return True


# Go's base64 and durations -----------------------------------------------------

_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _base64_error(text: str) -> str | None:
    """The error ``base64.StdEncoding.Decode`` gives for ``text`` (how
    ``encoding/json`` decodes a ``[]byte``, Ollama's ``ImageData``), or None.
    ``encoding/base64/base64.go``, ``decodeQuantum``: newlines are skipped,
    padding is required."""
    src = text.encode()
    n = len(src)
    si = 0
    while si < n:
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return None
                return _corrupt(si - j)  # a quantum cut short: padding is required
            c = src[si]
            si += 1
            if c in _B64:
                j += 1
                continue
            if c in (0x0A, 0x0D):
                continue
            if c != 0x3D:  # "="
                return _corrupt(si - 1)
            if j in (0, 1):
                return _corrupt(si - 1)  # padding too early
            if j == 2:  # "==" expected
                while si < n and src[si] in (0x0A, 0x0D):
                    si += 1
                if si == n:
                    return _corrupt(n)
                if src[si] != 0x3D:
                    return _corrupt(si - 1)
                si += 1
            while si < n and src[si] in (0x0A, 0x0D):
                si += 1
            if si < n:
                return _corrupt(si)  # data after the padding
            return None
    return None


def _corrupt(index: int) -> str:
    # ``CorruptInputError.Error()``.
    return f"illegal base64 data at input byte {index}"


_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def _parse_duration(text: str) -> float:
    """``time.ParseDuration`` (``time/format.go``), in seconds; raises
    ``_Fatal`` with Go's message."""
    quoted = json.dumps(text, ensure_ascii=False)
    s = text
    negative = False
    if s and s[0] in "+-":
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise _Fatal(f"time: invalid duration {quoted}")
    total = 0.0
    while s:
        if not (s[0] == "." or s[0].isdigit()):
            raise _Fatal(f"time: invalid duration {quoted}")
        number = re.match(r"([0-9]*)(?:\.([0-9]*))?", s)
        assert number is not None
        whole, fraction = number.group(1), number.group(2)
        if not whole and not fraction:
            raise _Fatal(f"time: invalid duration {quoted}")
        s = s[number.end() :]
        unit_end = 0
        while unit_end < len(s) and not (s[unit_end] == "." or s[unit_end].isdigit()):
            unit_end += 1
        if unit_end == 0:
            raise _Fatal(f"time: missing unit in duration {quoted}")
        unit, s = s[:unit_end], s[unit_end:]
        if unit not in _UNITS:
            unit_quoted = json.dumps(unit, ensure_ascii=False)
            raise _Fatal(f"time: unknown unit {unit_quoted} in duration {quoted}")
        total += float(f"{whole or 0}.{fraction or 0}") * _UNITS[unit]
    return -total if negative else total


def _keep_alive(value: Any) -> float | None:
    """``api.Duration.UnmarshalJSON`` (``api/types.go``): the keep-alive in
    seconds (negative: forever); raises ``_Fatal`` as it errs."""
    if value is None:
        return None  # a nil pointer: the default
    if isinstance(value, bool):
        raise _Fatal("Unsupported type: 'bool'")
    if isinstance(value, (int, float)):
        return math.inf if value < 0 else float(value)
    if isinstance(value, str):
        seconds = _parse_duration(value)
        return math.inf if seconds < 0 else seconds
    kind = "[]interface {}" if isinstance(value, list) else "map[string]interface {}"
    raise _Fatal(f"Unsupported type: '{kind}'")


def _think(value: Any) -> None:
    # ``api.ThinkValue.UnmarshalJSON`` (``api/types.go``).
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if value not in ("high", "medium", "low", "max"):
            quoted = json.dumps(value, ensure_ascii=False)
            raise _Fatal(
                f'invalid think value: {quoted} (must be "high", "medium", "low", "max", true, '
                "or false)"
            )
        return
    raise _Fatal(
        'think must be a boolean or string ("high", "medium", "low", "max", true, or false)'
    )


# The request types ---------------------------------------------------------------

#: ``api.GenerateRequest`` (``api/types.go``): each JSON field and its Go type.
GENERATE_FIELDS = {
    "model": "string",
    "prompt": "string",
    "suffix": "string",
    "system": "string",
    "template": "string",
    "context": "[]int",
    "stream": "bool",
    "raw": "bool",
    "images": "[]api.ImageData",
    "options": "map[string]interface {}",
    "truncate": "bool",
    "shift": "bool",
    "_debug_render_only": "bool",
    "logprobs": "bool",
    "top_logprobs": "int",
}
#: ``api.ChatRequest``; ``messages`` and ``tools`` are decoded apart.
CHAT_FIELDS = {
    "model": "string",
    "stream": "bool",
    "options": "map[string]interface {}",
    "truncate": "bool",
    "shift": "bool",
    "_debug_render_only": "bool",
    "logprobs": "bool",
    "top_logprobs": "int",
}
#: ``api.EmbedRequest``; ``input`` is ``any``.
EMBED_FIELDS = {
    "model": "string",
    "truncate": "bool",
    "dimensions": "int",
    "options": "map[string]interface {}",
}
#: ``api.Message``: decoded by its own ``UnmarshalJSON`` through a local
#: ``Alias`` type, so its errors stop the decoding of the request.
MESSAGE_FIELDS = {
    "role": "string",
    "content": "string",
    "thinking": "string",
    "tool_name": "string",
    "tool_call_id": "string",
}


def _decode(kind: str, body: Mapping[str, Any]) -> None:
    """Go's decoding of the body into the handler's request type; raises
    ``_Fatal`` with the error ``ShouldBindJSON`` gives."""
    struct, fields = {
        "generate": ("GenerateRequest", GENERATE_FIELDS),
        "chat": ("ChatRequest", CHAT_FIELDS),
        "embed": ("EmbedRequest", EMBED_FIELDS),
    }[kind]
    decoder = _Decoder(struct)
    for name, value in body.items():
        go_type = fields.get(name)
        if go_type is not None:
            if decoder.expect(value, name, go_type) and isinstance(value, list):
                element = go_type[2:]
                for item in value:
                    if element == "api.ImageData":
                        _image(decoder, item, name, struct)
                    else:
                        decoder.expect(item, name, element)
        elif name == "keep_alive":
            _keep_alive(value)
        elif name == "think" and kind != "embed":
            _think(value)
        elif name == "messages" and kind == "chat":
            _messages(decoder, value)
        elif name == "tools" and kind == "chat":
            _tools(decoder, value)
        # ``format`` is a json.RawMessage and ``input`` an ``any``: anything
        # decodes; unknown fields are skipped.
    if decoder.saved is not None:
        raise _Fatal(decoder.saved)


def _image(decoder: _Decoder, item: Any, path: str, struct: str) -> None:
    if item is None:
        return
    if not isinstance(item, str):
        decoder.save(decoder.mismatch(item, struct, path, "api.ImageData"))
        return
    error = _base64_error(item)
    if error is not None:
        decoder.save(error)  # a base64 error is saved as it is, with no field


def _messages(outer: _Decoder, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        outer.save(outer.mismatch(value, "ChatRequest", "messages", "[]api.Message"))
        return
    for message in value:
        # ``Message.UnmarshalJSON`` decodes into ``Alias``; what it returns
        # stops the outer decoding, with the outer field path put in front.
        inner = _Decoder("Alias")
        if message is None:
            continue
        if not isinstance(message, Mapping):
            raise _Fatal(
                f"json: cannot unmarshal {_json_kind(message, '')} into Go struct field "
                "ChatRequest.messages of type api.Alias"
            )
        for name, field in message.items():
            go_type = MESSAGE_FIELDS.get(name)
            if go_type is not None:
                inner.expect(field, name, go_type)
            elif name == "images":
                if inner.expect(field, name, "[]api.ImageData") and isinstance(field, list):
                    for item in field:
                        _image(inner, item, name, "Alias")
            elif name == "tool_calls":
                _tool_calls(inner, field)
        if inner.saved is not None:
            raise _Fatal(_outer_path(inner.saved))


def _outer_path(message: str) -> str:
    # ``addErrorContext``: the outer decoder names its own struct and puts
    # its field path in front of the inner one.
    return re.sub(
        r"^(json: cannot unmarshal .*? into Go struct field )\w+\.",
        r"\1ChatRequest.messages.",
        message,
    )


def _tool_calls(decoder: _Decoder, value: Any) -> None:
    # ``api.ToolCall{id string, function ToolCallFunction{index int, name
    # string, arguments ToolCallFunctionArguments}}``.
    if not decoder.expect(value, "tool_calls", "[]api.ToolCall") or value is None:
        return
    for call in value:
        if call is None:
            continue
        if not isinstance(call, Mapping):
            decoder.save(decoder.mismatch(call, "Alias", "tool_calls", "api.ToolCall"))
            continue
        decoder.expect(call.get("id"), "tool_calls.id", "string", "ToolCall")
        function = call.get("function")
        if function is None:
            continue
        if not isinstance(function, Mapping):
            decoder.save(
                decoder.mismatch(
                    function, "ToolCall", "tool_calls.function", "api.ToolCallFunction"
                )
            )
            continue
        at = "tool_calls.function"
        decoder.expect(function.get("index"), f"{at}.index", "int", "ToolCallFunction")
        decoder.expect(function.get("name"), f"{at}.name", "string", "ToolCallFunction")


def _tools(decoder: _Decoder, value: Any) -> None:
    # ``api.Tools`` = ``[]Tool{type string, items any, function
    # ToolFunction{name, description string, parameters
    # ToolFunctionParameters{type string, required []string, ...}}}``.
    if not decoder.expect(value, "tools", "api.Tools") or value is None:
        return
    for tool in value:
        if tool is None:
            continue
        if not isinstance(tool, Mapping):
            decoder.save(decoder.mismatch(tool, "ChatRequest", "tools", "api.Tool"))
            continue
        decoder.expect(tool.get("type"), "tools.type", "string", "Tool")
        function = tool.get("function")
        if function is None:
            continue
        if not isinstance(function, Mapping):
            decoder.save(decoder.mismatch(function, "Tool", "tools.function", "api.ToolFunction"))
            continue
        for name in ("name", "description"):
            decoder.expect(function.get(name), f"tools.function.{name}", "string", "ToolFunction")
        parameters = function.get("parameters")
        if parameters is None:
            continue
        at = "tools.function.parameters"
        if not isinstance(parameters, Mapping):
            decoder.save(
                decoder.mismatch(parameters, "ToolFunction", at, "api.ToolFunctionParameters")
            )
            continue
        decoder.expect(parameters.get("type"), f"{at}.type", "string", "ToolFunctionParameters")
        required = parameters.get("required")
        if decoder.expect(required, f"{at}.required", "[]string", "ToolFunctionParameters"):
            for item in required or ():
                decoder.expect(item, f"{at}.required", "string", "ToolFunctionParameters")


# The handlers' own checks ---------------------------------------------------------

#: ``api.Options`` and its embedded ``api.Runner`` (``api/types.go``): each
#: option and the kind ``Options.FromMap`` wants for it.
OPTIONS = {
    "num_ctx": "integer",
    "num_batch": "integer",
    "num_gpu": "integer",
    "main_gpu": "integer",
    "use_mmap": "boolean",
    "num_thread": "integer",
    "draft_num_predict": "integer",
    "num_keep": "integer",
    "seed": "integer",
    "num_predict": "integer",
    "top_k": "integer",
    "top_p": "float32",
    "min_p": "float32",
    "typical_p": "float32",
    "repeat_last_n": "integer",
    "temperature": "float32",
    "repeat_penalty": "float32",
    "presence_penalty": "float32",
    "frequency_penalty": "float32",
    "stop": "array",
}


def _check_options(options: Any) -> Violation | None:
    """``Options.FromMap`` (``api/types.go``), run by ``scheduleRunner``; its
    error goes through ``handleScheduleError`` (``server/routes.go``), whose
    last branch answers 500. An unknown option is logged and skipped; a JSON
    number fits an integer option (it is truncated)."""
    if not isinstance(options, Mapping):
        return None
    for key, value in options.items():
        kind = OPTIONS.get(key)
        if kind is None or value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind in ("integer", "float32") and not number:
            return Violation(f'option "{key}" must be of type {kind}', f"options.{key}", 500)
        if kind == "boolean" and not isinstance(value, bool):
            return Violation(f'option "{key}" must be of type boolean', f"options.{key}", 500)
        if kind == "array":
            if not isinstance(value, list):
                return Violation(f'option "{key}" must be of type array', f"options.{key}", 500)
            if not all(isinstance(item, str) for item in value):
                return Violation(
                    f'option "{key}" must be of an array of strings', f"options.{key}", 500
                )
    return None


def _check_format(body: Mapping[str, Any]) -> Violation | None:
    """``llamaServerRunner.Completion`` and ``llamaServerChatResponseFormat``
    (``llm/llama_server.go``): ``format`` is unset (``null``, ``""``),
    ``"json"`` or a JSON schema object. The error reaches the client before
    any output, as a 500 (``streamResponse`` and the non-streamed path of
    ``GenerateHandler``/``ChatHandler`` default to 500)."""
    if "format" not in body:
        return None
    value = body["format"]
    if value is None or value in ("", "json") or isinstance(value, Mapping):
        return None
    raw = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    quoted = json.dumps(raw, ensure_ascii=False)
    return Violation(
        f'invalid format: {quoted}; expected "json" or a valid JSON Schema object', "format", 500
    )


def _top_logprobs(body: Mapping[str, Any]) -> Violation | None:
    # ``GenerateHandler``/``ChatHandler``: "top_logprobs must be between 0 and 20".
    value = body.get("top_logprobs")
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= 20:
        return Violation("top_logprobs must be between 0 and 20", "top_logprobs")
    return None


def _model_missing(body: Mapping[str, Any]) -> bool:
    # ``parseAndValidateModelRef`` -> ``modelref.ParseRef``: a blank name is
    # ``ErrModelRequired``.
    model = body.get("model")
    return not isinstance(model, str) or not model.strip()


def _unloads(body: Mapping[str, Any], empty: bool) -> bool:
    """An empty request with ``keep_alive`` 0 unloads the model and answers
    200 at once (``GenerateHandler``: ``req.Prompt == "" && req.KeepAlive !=
    nil && req.KeepAlive.Duration == 0``; ``ChatHandler`` alike with no
    messages)."""
    seconds = _keep_alive(body.get("keep_alive"))
    return empty and seconds is not None and seconds * 1e9 < 1


def _generate(body: Mapping[str, Any]) -> Violation | None:
    if (v := _top_logprobs(body)) is not None:
        return v
    if _model_missing(body):
        # ``GenerateHandler``: ``writeModelRefParseError(c, err,
        # http.StatusNotFound, fmt.Sprintf("model '%s' not found", req.Model))``.
        return Violation(f"model '{body.get('model') or ''}' not found", "model", 404)
    prompt = body.get("prompt") or ""
    if _unloads(body, prompt == ""):
        return None
    if body.get("raw") is True and (
        body.get("template") or body.get("system") or body.get("context")
    ):
        # ``GenerateHandler``: ``req.Raw && (req.Template != "" || req.System
        # != "" || len(req.Context) > 0)``.
        return Violation("raw mode does not support template, system, or context", "raw")
    if (v := _check_options(body.get("options"))) is not None:
        return v
    if prompt == "":
        return None  # ``GenerateHandler``: an empty prompt only loads the model
    return _check_format(body)


def _chat(body: Mapping[str, Any]) -> Violation | None:
    if (v := _top_logprobs(body)) is not None:
        return v
    if _model_missing(body):
        # ``ChatHandler``: ``writeModelRefParseError(c, err,
        # http.StatusBadRequest, "model is required")``.
        return Violation("model is required", "model")
    messages = body.get("messages") or []
    if _unloads(body, not messages):
        return None
    if (v := _check_options(body.get("options"))) is not None:
        return v
    if not messages:
        return None  # ``ChatHandler``: no messages only loads the model
    return _check_format(body)


def _embed(body: Mapping[str, Any]) -> Violation | None:
    if _model_missing(body):
        # ``EmbedHandler``: ``writeModelRefParseError(c, err,
        # http.StatusNotFound, fmt.Sprintf("model '%s' not found", req.Model))``.
        return Violation(f"model '{body.get('model') or ''}' not found", "model", 404)
    texts = body.get("input")
    # ``EmbedHandler``: ``input`` is a string, a list of strings, or absent;
    # anything else is "invalid input type".
    strings = isinstance(texts, list) and all(isinstance(t, str) for t in texts)
    if texts is not None and not isinstance(texts, str) and not strings:
        return Violation("invalid input type", "input")
    return _check_options(body.get("options"))


def check(request: Request) -> Violation | None:
    """The first rule of Ollama's API the request breaks, or None."""
    body = request.body
    if not isinstance(body, Mapping):
        struct = {"generate": "GenerateRequest", "chat": "ChatRequest"}.get(
            request.kind, "EmbedRequest"
        )
        return Violation(
            f"json: cannot unmarshal {_json_kind(body, '')} into Go value of type api.{struct}"
        )
    try:
        # ``ShouldBindJSON``: a body that does not decode is a 400 with Go's error.
        _decode(request.kind, body)
    except _Fatal as error:
        return Violation(str(error))
    if request.kind == "generate":
        return _generate(body)
    if request.kind == "chat":
        return _chat(body)
    return _embed(body)
